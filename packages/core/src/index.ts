export * from './parasite/elf-blob.js';
export type { Arch } from './arch/types.js';
export { hostArch, UnsupportedArchError } from './arch/host.js';
export * from './proc/index.js';
export { FrozenTask } from './infect/frozen-task.js';
export { Parasite, type MemRange } from './infect/parasite.js';
export { InfectError, RemoteSyscallError } from './infect/errors.js';
export type { ParasiteTaskState, KernelSigaction, ITimer } from './infect/protocol.js';
