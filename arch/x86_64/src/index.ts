export * from './parasite.js';
