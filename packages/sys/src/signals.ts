// Signal numbers. x86_64 and ppc64 use the same numbers for 1..31 (checked against both uapi
// headers in the tests); real-time signals run from 32 to 64 on both.
import { hostArch, type Arch } from './arch.js';

const STANDARD = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPWR: 30, SIGSYS: 31,
} as const;

export type SignalName = keyof typeof STANDARD;
export const SIGNALS_X86_64: Readonly<Record<SignalName, number>> = Object.freeze({ ...STANDARD });
export const SIGNALS_PPC64: Readonly<Record<SignalName, number>> = Object.freeze({ ...STANDARD });
/** Signal numbers of the host (x86_64 numbers on an unsupported host). */
export const SIGNALS: Readonly<Record<SignalName, number>> = hostArch()?.startsWith('ppc64') ? SIGNALS_PPC64 : SIGNALS_X86_64;

/** The kernel's first real-time signal (glibc reserves 32 and 33 for itself). */
export const SIGRTMIN = 32;
/** The last signal number (_NSIG). */
export const SIGRTMAX = 64;

export function signalsOf(arch: Arch | null = hostArch()): Readonly<Record<SignalName, number>> {
  return arch?.startsWith('ppc64') ? SIGNALS_PPC64 : SIGNALS_X86_64;
}

/** 'SIGTERM' for 15, 'SIGRTMIN+2' for 34, 'SIG<n>' for anything else. */
export function signalName(sig: number, arch: Arch | null = hostArch()): string {
  for (const [name, n] of Object.entries(signalsOf(arch))) if (n === sig) return name;
  if (sig === SIGRTMIN) return 'SIGRTMIN';
  if (sig > SIGRTMIN && sig <= SIGRTMAX) return `SIGRTMIN+${sig - SIGRTMIN}`;
  return `SIG${sig}`;
}

/** The number of a signal name ('SIGTERM' or 'TERM', 'SIGRTMIN+2'), or undefined. */
export function signalNumber(name: string, arch: Arch | null = hostArch()): number | undefined {
  const full = name.startsWith('SIG') ? name : `SIG${name}`;
  const table = signalsOf(arch) as Record<string, number>;
  if (full === 'SIGIOT') return table.SIGABRT;
  if (full === 'SIGPOLL') return table.SIGIO;
  if (Object.prototype.hasOwnProperty.call(table, full)) return table[full];
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(full);
  if (rt) {
    const n = SIGRTMIN + Number(rt[1] ?? 0);
    return n <= SIGRTMAX ? n : undefined;
  }
  return undefined;
}

/** A kernel sigset (64 bits) with the given signals' bits set: bit (sig-1). */
export function sigmask(signals: Iterable<number>): bigint {
  let mask = 0n;
  for (const s of signals) {
    if (!Number.isInteger(s) || s < 1 || s > SIGRTMAX) throw new RangeError(`signal ${s} out of range 1..${SIGRTMAX}`);
    mask |= 1n << BigInt(s - 1);
  }
  return mask;
}

/** The signals whose bits are set in a kernel sigset, ascending. */
export function signalsInMask(mask: bigint): number[] {
  const out: number[] = [];
  for (let s = 1; s <= SIGRTMAX; s++) if ((mask >> BigInt(s - 1)) & 1n) out.push(s);
  return out;
}
