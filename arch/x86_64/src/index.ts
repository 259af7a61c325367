export * from './parasite.js';
export * from './regs.js';
export { x86_64 } from './infect.js';
