// wait4 with a decoded status. The tracer learns about its tracees' stops only through wait, and
// any thread of the tracer's thread group may wait, so the async variant runs on a helper thread.
import { PTRACE_EVENT } from './constants/ptrace.js';
import { WAIT } from './constants/flags.js';
import { SysError } from './errors.js';
import { readI32 } from './native.js';
import type { SyscallRunner } from './runner.js';
import { SIGNALS } from './signals.js';

export type WaitStatus =
  | { kind: 'exited'; pid: number; raw: number; code: number }
  | { kind: 'signaled'; pid: number; raw: number; signal: number; core: boolean }
  | {
      kind: 'stopped';
      pid: number;
      raw: number;
      /** The stop signal; SIGTRAP for a syscall-stop (the 0x80 bit is reported as syscallStop). */
      signal: number;
      /** PTRACE_EVENT_* from bits 16..23, when the stop is a ptrace event stop. */
      event?: number;
      /** A group-stop of a PTRACE_SEIZEd tracee (PTRACE_EVENT_STOP with a stopping signal). */
      groupStop: boolean;
      /** A syscall-stop under PTRACE_O_TRACESYSGOOD (signal SIGTRAP|0x80). */
      syscallStop: boolean;
    }
  | { kind: 'continued'; pid: number; raw: number };

const STOPPING = new Set<number>([SIGNALS.SIGSTOP, SIGNALS.SIGTSTP, SIGNALS.SIGTTIN, SIGNALS.SIGTTOU]);

/** Decodes a wait status word as the W*() macros do, plus the ptrace event bits. */
export function decodeWaitStatus(raw: number, pid: number): WaitStatus {
  const low = raw & 0x7f;
  if (low === 0) return { kind: 'exited', pid, raw, code: (raw >> 8) & 0xff };
  if (raw === 0xffff) return { kind: 'continued', pid, raw };
  if ((raw & 0xff) === 0x7f) {
    const sig = (raw >> 8) & 0xff;
    const event = (raw >>> 16) & 0xff;
    const signal = sig & 0x7f;
    const syscallStop = sig === (SIGNALS.SIGTRAP | 0x80);
    const groupStop = event === PTRACE_EVENT.STOP && STOPPING.has(signal);
    return event ? { kind: 'stopped', pid, raw, signal, event, groupStop, syscallStop } : { kind: 'stopped', pid, raw, signal, groupStop, syscallStop };
  }
  return { kind: 'signaled', pid, raw, signal: low, core: (raw & 0x80) !== 0 };
}

function detail(pid: number, options: number): string {
  const names = Object.entries(WAIT).filter(([k, v]) => k !== 'WSTOPPED' && (options & v) >>> 0 === v).map(([k]) => k);
  return `${pid}, ${names.join('|') || '0'}`;
}

/**
 * wait4(pid, &status, options, NULL). Returns null when WNOHANG is set and nothing is ready.
 * Default options: __WALL (children and tracees of any kind). EINTR is retried.
 */
export function waitpid(r: SyscallRunner, pid: number, options: number = WAIT.__WALL): WaitStatus | null {
  const status = Buffer.alloc(4);
  for (;;) {
    try {
      const got = Number(r.call('wait4', [pid, status, options, 0], () => detail(pid, options)));
      return got === 0 ? null : decodeWaitStatus(readI32(status, 0), got);
    } catch (e) {
      if (!SysError.is(e, 'EINTR')) throw e;
    }
  }
}

/** waitpid on a helper thread: the event loop keeps running while the wait blocks. */
export async function waitpidAsync(r: SyscallRunner, pid: number, options: number = WAIT.__WALL): Promise<WaitStatus | null> {
  const status = Buffer.alloc(4);
  for (;;) {
    try {
      const got = Number(await r.callAsync('wait4', [pid, status, options, 0], () => detail(pid, options)));
      return got === 0 ? null : decodeWaitStatus(readI32(status, 0), got);
    } catch (e) {
      if (!SysError.is(e, 'EINTR')) throw e;
    }
  }
}
