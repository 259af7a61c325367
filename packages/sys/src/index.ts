// @criu/sys: libc and raw Linux syscalls through FFI (koffi by default, ffi-rs optionally).
import { createSys, type Sys } from './sys.js';

export { Sys, createSys, type SysOptions } from './sys.js';
export type { SysArg, SyscallRunner } from './runner.js';
export { SysError, SysArgError, SysBackendError } from './errors.js';
export type { BackendName, FfiBackend, SyscallResult } from './ffi/backend.js';
export { BACKEND_NAMES } from './ffi/backend.js';
export { BACKEND_ENV, loadBackend, resolveBackendName } from './ffi/load.js';

export { type Arch, type SyscallAbi, SYSCALL_TABLES, hostArch, archFromNode, abiOf, syscallNumber, syscallName } from './arch.js';
export { SYSCALLS_X86_64 } from './data/syscalls-x86_64.js';
export { SYSCALLS_PPC64 } from './data/syscalls-ppc64.js';
export { ERRNO, ERRNO_GENERIC, ERRNO_PPC64_EXTRA, ERRNO_KERNEL_INTERNAL, ERRNO_ALIASES, errnoName, errnoMessage, errnoNumber, type ErrnoRow } from './errno.js';
export { SIGNALS, SIGNALS_X86_64, SIGNALS_PPC64, SIGRTMIN, SIGRTMAX, type SignalName, signalName, signalNumber, signalsOf, sigmask, signalsInMask } from './signals.js';

export { PTRACE, PTRACE_X86_64, PTRACE_PPC64, PTRACE_O, PTRACE_EVENT, PTRACE_SYSCALL_INFO, PTRACE_PEEKSIGINFO_SHARED, ptraceRequestName } from './constants/ptrace.js';
export { NT } from './constants/notes.js';
export { SOCKOPT, SOCKOPT_X86_64, SOCKOPT_PPC64, IOCTL, IOCTL_X86_64, IOCTL_PPC64, TTY_IOCTL, TTY_X86_64, TTY_PPC64, type TtyIoctls, STRUCTS, STRUCTS_X86_64, STRUCTS_PPC64, type StructLayouts } from './constants/flags.js';
export { WAIT, KCMP, KCMP_RESULT, CLONE, MFD, SPLICE_F, O, PIDFD, F, PR, PR_SET_MM, AT } from './constants/flags.js';
export { UFFD } from './constants/userfaultfd.js';

export { Ptrace, SIGINFO_SIZE, decodeSigInfo, decodeSyscallInfo, type SigInfo, type SyscallInfo, type RseqConfiguration } from './ptrace.js';
export { decodeWaitStatus, type WaitStatus } from './wait.js';
export { IOV_MAX, type RemoteRange } from './memory.js';
export { CLONE_ARGS_SIZE, MAX_SET_TID, packCloneArgs, unpackCloneArgs, packTidArray, unpackTidArray, type CloneArgs } from './clone3.js';
export { readAuxv, auxvPageSize } from './auxv.js';

/** The default instance (backend from CRIU_TS_FFI, else koffi; loaded on first use). */
export const sys: Sys = createSys();

// Shortcuts bound to the default instance.
export const ptrace = sys.ptrace;
export const syscall = sys.syscall.bind(sys);
export const trySyscall = sys.trySyscall.bind(sys);
export const syscallAsync = sys.syscallAsync.bind(sys);
export const waitpid = sys.waitpid.bind(sys);
export const waitpidAsync = sys.waitpidAsync.bind(sys);
export const processVmReadv = sys.processVmReadv.bind(sys);
export const processVmWritev = sys.processVmWritev.bind(sys);
export const readMemory = sys.readMemory.bind(sys);
export const writeMemory = sys.writeMemory.bind(sys);
export const pidfdOpen = sys.pidfdOpen.bind(sys);
export const pidfdSendSignal = sys.pidfdSendSignal.bind(sys);
export const pidfdGetfd = sys.pidfdGetfd.bind(sys);
export const kcmp = sys.kcmp.bind(sys);
export const memfdCreate = sys.memfdCreate.bind(sys);
export const pipe2 = sys.pipe2.bind(sys);
export const splice = sys.splice.bind(sys);
export const spliceAsync = sys.spliceAsync.bind(sys);
export const vmsplice = sys.vmsplice.bind(sys);
export const tee = sys.tee.bind(sys);
export const fcntl = sys.fcntl.bind(sys);
export const prctl = sys.prctl.bind(sys);
export const pageSize = sys.pageSize.bind(sys);
