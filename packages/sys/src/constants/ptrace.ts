// ptrace(2) requests, options and events (linux/ptrace.h, asm/ptrace*.h).

/** Requests shared by every arch. */
export const PTRACE = Object.freeze({
  TRACEME: 0, PEEKTEXT: 1, PEEKDATA: 2, PEEKUSR: 3, POKETEXT: 4, POKEDATA: 5, POKEUSR: 6,
  CONT: 7, KILL: 8, SINGLESTEP: 9, ATTACH: 16, DETACH: 17, SYSCALL: 24,
  SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201, GETSIGINFO: 0x4202, SETSIGINFO: 0x4203,
  GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207, LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, SECCOMP_GET_FILTER: 0x420c,
  SECCOMP_GET_METADATA: 0x420d, GET_SYSCALL_INFO: 0x420e, GET_RSEQ_CONFIGURATION: 0x420f,
  SET_SYSCALL_USER_DISPATCH_CONFIG: 0x4210, GET_SYSCALL_USER_DISPATCH_CONFIG: 0x4211,
  SET_SYSCALL_INFO: 0x4212,
});

/** x86_64-only requests (asm/ptrace-abi.h). */
export const PTRACE_X86_64 = Object.freeze({
  GETREGS: 12, SETREGS: 13, GETFPREGS: 14, SETFPREGS: 15, GETFPXREGS: 18, SETFPXREGS: 19,
  OLDSETOPTIONS: 21, GET_THREAD_AREA: 25, SET_THREAD_AREA: 26, ARCH_PRCTL: 30, SYSEMU: 31,
  SYSEMU_SINGLESTEP: 32, SINGLEBLOCK: 33,
});

/** ppc64-only requests (asm/ptrace.h of powerpc). */
export const PTRACE_PPC64 = Object.freeze({
  GETREGS: 0xc, SETREGS: 0xd, GETFPREGS: 0xe, SETFPREGS: 0xf, GETVRREGS: 0x12, SETVRREGS: 0x13,
  GETEVRREGS: 0x14, SETEVRREGS: 0x15, GETREGS64: 0x16, SETREGS64: 0x17, GET_DEBUGREG: 0x19,
  SET_DEBUGREG: 0x1a, GETVSRREGS: 0x1b, SETVSRREGS: 0x1c, SYSEMU: 0x1d, SYSEMU_SINGLESTEP: 0x1e,
  SINGLEBLOCK: 0x100,
});

/** PTRACE_SETOPTIONS / PTRACE_SEIZE option bits. */
export const PTRACE_O = Object.freeze({
  TRACESYSGOOD: 1, TRACEFORK: 1 << 1, TRACEVFORK: 1 << 2, TRACECLONE: 1 << 3, TRACEEXEC: 1 << 4,
  TRACEVFORKDONE: 1 << 5, TRACEEXIT: 1 << 6, TRACESECCOMP: 1 << 7, EXITKILL: 1 << 20,
  SUSPEND_SECCOMP: 1 << 21,
});

/** Events reported in bits 16..23 of a stop status. */
export const PTRACE_EVENT = Object.freeze({
  FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, SECCOMP: 7, STOP: 128,
});

/** ptrace_syscall_info.op values. */
export const PTRACE_SYSCALL_INFO = Object.freeze({ NONE: 0, ENTRY: 1, EXIT: 2, SECCOMP: 3 });

/** Flag of struct ptrace_peeksiginfo_args: read the process-wide (shared) queue. */
export const PTRACE_PEEKSIGINFO_SHARED = 1;

const requestNames = new Map<number, string>();
for (const table of [PTRACE_X86_64, PTRACE_PPC64, PTRACE]) for (const [k, v] of Object.entries(table)) requestNames.set(v, `PTRACE_${k}`);

/** 'PTRACE_SEIZE' for 0x4206; arch-specific numbers may be named after either arch. */
export function ptraceRequestName(request: number): string {
  return requestNames.get(request) ?? `PTRACE_${request}`;
}
