export * from './parasite.js';
export * from './regs.js';
export { ppc64, syscallRegs, syscallResult, callRegs, INSN_SC, INSN_TRAP, STACK_FRAME_MIN_SIZE } from './infect.js';
export * from './thread-info.js';
export * from './sigframe.js';
export * from './cpuinfo.js';
export { vdsoProxy, vdsoExits } from './vdso.js';
