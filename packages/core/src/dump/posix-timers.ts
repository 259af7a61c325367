/**
 * POSIX timers of a task (timer_create) as CRIU records them in task_core.timers.posix:
 * /proc/PID/timers gives id, signal, value, notify mode (and target thread) and clock; the
 * time left, interval and overrun need timer_gettime/timer_getoverrun inside the task, which
 * are injected into its frozen main thread.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { FrozenTask } from '../infect/frozen-task.js';
import { DumpError } from './errors.js';
import type { Msg } from './model.js';

export const SIGEV = Object.freeze({ SIGNAL: 0, NONE: 1, THREAD: 2, THREAD_ID: 4 });

export interface ProcPosixTimer {
  id: number;
  signo: number;
  sival: bigint;
  notify: number;
  /** The thread the signal goes to (SIGEV_THREAD_ID), else the process. */
  target: number;
  clock: number;
}

const NOTIFY_BASE: Record<string, number> = { signal: SIGEV.SIGNAL, none: SIGEV.NONE, thread: SIGEV.THREAD };

/** Parses /proc/PID/timers (records of "ID:", "signal:", "notify:", "ClockID:" lines), by id. */
export function parseProcTimers(text: string, file = 'timers'): ProcPosixTimer[] {
  const out: ProcPosixTimer[] = [];
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  for (let i = 0; i < lines.length; i += 4) {
    const rec = lines.slice(i, i + 4).join('\n');
    const m = /^ID: (\d+)\nsignal: (\d+)\/([0-9a-f]+)\nnotify: (\w+)\/(pid|tid)\.(\d+)\nClockID: (\d+)$/.exec(rec);
    const base = m ? NOTIFY_BASE[m[4]] : undefined;
    if (!m || base === undefined) throw new Error(`${file}: cannot parse the record at line ${i + 1}: ${JSON.stringify(rec)}`);
    out.push({
      id: Number(m[1]), signo: Number(m[2]), sival: BigInt('0x' + m[3]),
      notify: base | (m[5] === 'tid' ? SIGEV.THREAD_ID : 0), target: Number(m[6]), clock: Number(m[7]),
    });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The task's POSIX timers as posix_timer_entry records, by id (none: an empty list). */
export function collectPosixTimers(pid: number, task: FrozenTask, pageSize: number): Msg[] {
  const file = `/proc/${pid}/timers`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'latin1');
  } catch (e) {
    // Without CONFIG_CHECKPOINT_RESTORE the file does not exist: only a task with timers is a problem.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  let timers: ProcPosixTimer[];
  try {
    timers = parseProcTimers(text, file);
  } catch (e) {
    throw new DumpError('collect-proc', pid, (e as Error).message, { cause: e });
  }
  if (!timers.length) return [];
  const page = task.syscall('mmap', 0, pageSize, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
  try {
    return timers.map((t) => {
      task.syscall('timer_gettime', t.id, page);
      const overrun = Number(task.syscall('timer_getoverrun', t.id));
      const b = sys.readMemory(pid, page, 32);
      const e: Msg = {
        it_id: t.id, clock_id: t.clock, si_signo: t.signo, it_sigev_notify: t.notify, sival_ptr: t.sival, overrun,
        isec: b.readBigUInt64LE(0), insec: b.readBigUInt64LE(8), vsec: b.readBigUInt64LE(16), vnsec: b.readBigUInt64LE(24),
      };
      if (t.notify & SIGEV.THREAD_ID) e.notify_thread_id = t.target;
      return e;
    });
  } finally {
    task.syscall('munmap', page, pageSize);
  }
}
