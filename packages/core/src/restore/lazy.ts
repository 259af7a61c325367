/**
 * Lazy restore (CRIU's --lazy-pages): anonymous private memory is mapped but not filled. The
 * restored task gets a userfaultfd (made by injected syscalls, so it belongs to the task's mm),
 * its lazy vmas are registered on it, and the descriptor is handed over (pidfd_getfd) to
 * whoever serves the pages: the `criu lazy-pages` daemon, which copies them in on fault and
 * in the background after the restore returns.
 */
import { UFFD } from '@criu/sys';
import { PE_LAZY, type PageRun } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import { taskUserfaultfd } from './task-uffd.js';
import type { Scratch } from './scratch.js';

const MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_GROWSDOWN = 0x100, MAP_LOCKED = 0x2000;
const VMA_AREA_VSYSCALL = 1 << 2, VMA_AREA_VDSO = 1 << 3, VMA_AREA_VVAR = 1 << 12, VMA_ANON_PRIVATE = 1 << 9;
const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const PROT_READ = 1, PROT_WRITE = 2;

export interface LazyVma { start: bigint; end: bigint; flags: number; status: number; prot: number }

/** Who takes the userfaultfd of each restored task. */
export interface LazyPagesSink {
  /**
   * `uffd` is our copy of the task's userfaultfd (closed by the restore after the call). Throws
   * (or rejects) when the server will not serve the task: the restore then fails and kills it.
   */
  handOver(pid: number, uffd: number, info: { lazyPages: number; ranges: Array<{ start: bigint; end: bigint }> }): void | Promise<void>;
  /** The tasks run (called once, right after they are released). */
  resumed?(): void;
}

/**
 * The vmas left to the lazy-pages server: anonymous private read-write ones with PE_LAZY runs
 * (the stack and locked memory are filled now, as the kernel and the restore itself touch
 * them; so are vmas with other protections, whose faults the mprotect program showed wrong).
 */
export function lazyVmasOf<V extends LazyVma>(vmas: V[], runs: PageRun[]): V[] {
  return vmas.filter((v) => (v.status & VMA_ANON_PRIVATE) !== 0 && (v.flags & MAP_ANONYMOUS) !== 0 && (v.flags & MAP_PRIVATE) !== 0
    && v.prot === (PROT_READ | PROT_WRITE) && !(v.flags & (MAP_GROWSDOWN | MAP_LOCKED)) && !(v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL))
    && runs.some((r) => r.flags & PE_LAZY && r.vaddr >= v.start && r.vaddr < v.end));
}

/**
 * Splits the runs at the lazy vmas' edges (one run may span several vmas, e.g. a mapping split
 * by mprotect): the pieces the restore fills now, and the number of pages left to the server.
 */
export function splitLazyRuns(runs: PageRun[], lazy: LazyVma[], pageSize: number): { eager: PageRun[]; lazyPages: number } {
  const ps = BigInt(pageSize);
  const eager: PageRun[] = [];
  let lazyPages = 0;
  for (const r of runs) {
    if (!(r.flags & PE_LAZY) || !lazy.length) { eager.push(r); continue; }
    let a = r.vaddr;
    const end = r.vaddr + BigInt(r.nrPages) * ps;
    while (a < end) {
      const inLazy = lazy.find((v) => a >= v.start && a < v.end);
      let b = end;
      if (inLazy) {
        if (inLazy.end < b) b = inLazy.end;
      } else {
        for (const v of lazy) if (v.start > a && v.start < b) b = v.start;
      }
      const n = Number((b - a) / ps);
      if (inLazy) lazyPages += n;
      else eager.push({ ...r, vaddr: a, nrPages: n, offset: r.offset === undefined ? undefined : r.offset + Number(a - r.vaddr) });
      a = b;
    }
  }
  return { eager, lazyPages };
}

/** Makes the task's userfaultfd, registers the lazy vmas, returns our copy of it. */
export function registerLazy(task: FrozenTask, scratch: Scratch, lazy: LazyVma[]): number {
  // munmap/madvise(DONTNEED)/mremap of lazy memory must reach the server, or it would copy stale pages there.
  return taskUserfaultfd(task, scratch, lazy, { flags: O_CLOEXEC | O_NONBLOCK, features: UFFD.FEATURE_EVENT_REMAP | UFFD.FEATURE_EVENT_REMOVE | UFFD.FEATURE_EVENT_UNMAP });
}
