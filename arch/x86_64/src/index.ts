export * from './parasite.js';
export * from './regs.js';
export { x86_64 } from './infect.js';
export * from './xsave-layout.js';
export * from './thread-info.js';
export * from './sigframe.js';
export { vdsoProxy } from './vdso.js';
