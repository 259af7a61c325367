export * from './parasite/elf-blob.js';
