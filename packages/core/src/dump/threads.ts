/**
 * Freezing every thread of a task, and the per-thread state only the thread itself can report
 * (sigaltstack, clear_child_tid address, parent-death signal), read by syscalls injected into
 * each frozen thread with a scratch page mapped through the main thread.
 */
import * as fs from 'node:fs';
import { sys, WAIT } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { FrozenTask } from '../infect/frozen-task.js';
import { DumpError } from './errors.js';

const PR_GET_PDEATHSIG = 2, PR_GET_TID_ADDRESS = 40;

export function listThreads(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
}

/** Freezes all threads, main first, re-reading the list until no new thread appeared. */
export function freezeThreads(pid: number, arch: Arch): FrozenTask[] {
  const frozen = new Map<number, FrozenTask>();
  try {
    for (let pass = 0; ; pass++) {
      const tids = listThreads(pid).filter((t) => !frozen.has(t));
      if (tids.length === 0) break;
      if (pass > 100) throw new DumpError('freeze', pid, 'threads keep appearing; cannot freeze the task');
      for (const tid of tids) {
        try {
          frozen.set(tid, FrozenTask.freeze(tid, arch));
        } catch (e) {
          if (tid !== pid && !fs.existsSync(`/proc/${pid}/task/${tid}`)) continue; // it exited meanwhile
          throw e;
        }
      }
    }
  } catch (e) {
    for (const t of frozen.values()) {
      try { t.release(); } catch { /* keep the first error */ }
    }
    throw e;
  }
  return [...frozen.values()];
}

/** Kills the whole thread group and collects every traced thread's death. */
export function killThreads(threads: FrozenTask[]): void {
  const [main, ...rest] = threads;
  // A traced group leader's death is reported only once the other threads are collected.
  sys.kill(main.pid, 9 /* SIGKILL */);
  for (const t of rest) {
    for (;;) {
      let st;
      try { st = sys.waitpid(t.pid, WAIT.__WALL); } catch { break; }
      if (st && (st.kind === 'exited' || st.kind === 'signaled')) break;
    }
  }
  main.kill();
}

/**
 * Before a dump kills a task whose pages still sit in pipes (the copy deferred until after the
 * kill, memory.ts): the pipes reference the task's own pages, and at exit the kernel writes into
 * them (each thread's robust futex list gets FUTEX_OWNER_DIED, its clear_child_tid word 0), which
 * would then reach the images. Each thread unregisters both first; on a failure the ones done
 * are put back (the dump then fails and resumes the task as it was). Returns what puts them all back.
 */
export function unregisterExitWrites(threads: FrozenTask[], tidAddresses?: ReadonlyMap<number, bigint>): () => void {
  if (!threads.length) return () => {};
  const [main] = threads;
  const pageSize = sys.pageSize();
  const done: Array<{ t: FrozenTask; head: bigint; len: number; tidAddress: bigint }> = [];
  // The threads' clear_child_tid addresses, as the dump read them; else asked now, through a
  // scratch page (the threads share the mm) for PR_GET_TID_ADDRESS to write into. Each injected
  // syscall is frozen time.
  const known = threads.every((t) => tidAddresses?.has(t.pid));
  const page = known ? undefined : main.syscall('mmap', 0, pageSize, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
  const tidAddressOf = (t: FrozenTask): bigint => {
    if (page === undefined) return tidAddresses!.get(t.pid)!;
    t.syscall('prctl', PR_GET_TID_ADDRESS, page, 0, 0, 0);
    return sys.readMemory(main.pid, page, 8).readBigUInt64LE(0);
  };
  const putBack = (): void => {
    for (const d of done) {
      try {
        if (d.len > 0) d.t.syscall('set_robust_list', d.head, d.len);
        d.t.syscall('set_tid_address', d.tidAddress);
      } catch { /* the dump fails anyway */ }
    }
  };
  try {
    for (const t of threads) {
      const head = Buffer.alloc(8), len = Buffer.alloc(8);
      sys.syscall('get_robust_list', t.pid, head, len);
      const d = { t, head: head.readBigUInt64LE(0), len: Number(len.readBigUInt64LE(0)), tidAddress: tidAddressOf(t) };
      done.push(d);
      if (d.len > 0) t.syscall('set_robust_list', 0, d.len);
      t.syscall('set_tid_address', 0);
    }
  } catch (e) {
    putBack();
    throw e;
  } finally {
    try {
      if (page !== undefined) main.syscall('munmap', page, pageSize);
    } catch { /* the task is being killed or the dump fails */ }
  }
  return putBack;
}

export function releaseThreads(threads: FrozenTask[]): void {
  let first: unknown;
  for (const t of threads) {
    try { t.release(); } catch (e) { first ??= e; }
  }
  if (first) throw first;
}

export interface ThreadSelfState {
  sas: { sp: bigint; size: bigint; flags: number };
  tidAddress: bigint;
  pdeathSig: number;
}

/** Asks each (non-main) frozen thread for what only it can tell. */
export function collectThreadSelfState(main: FrozenTask, others: FrozenTask[], pageSize: number): Map<number, ThreadSelfState> {
  const out = new Map<number, ThreadSelfState>();
  if (!others.length) return out;
  const page = main.syscall('mmap', 0, pageSize, 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
  try {
    for (const t of others) {
      t.syscall('sigaltstack', 0, page);
      t.syscall('prctl', PR_GET_TID_ADDRESS, page + 64n, 0, 0, 0);
      t.syscall('prctl', PR_GET_PDEATHSIG, page + 128n, 0, 0, 0);
      const b = sys.readMemory(main.pid, page, 256);
      out.set(t.pid, {
        sas: { sp: b.readBigUInt64LE(0), flags: b.readUInt32LE(8), size: b.readBigUInt64LE(16) },
        tidAddress: b.readBigUInt64LE(64),
        pdeathSig: b.readInt32LE(128),
      });
    }
  } finally {
    main.syscall('munmap', page, pageSize);
  }
  return out;
}
