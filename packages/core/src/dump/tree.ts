/**
 * The process tree of a dump: the root and every descendant (/proc/PID/task/TID/children of
 * every thread), each task frozen with all its threads. The walk is repeated until a pass finds
 * no new task: once a task is frozen it cannot fork, so its children list is final.
 */
import * as fs from 'node:fs';
import { sys, KCMP } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import { readStat } from '../proc/stat.js';
import { DumpError } from './errors.js';
import { freezeThreads, killThreads, listThreads, releaseThreads, unregisterExitWrites } from './threads.js';

export interface TreeTask {
  pid: number;
  /** 0 for the root. */
  ppid: number;
  /** Main thread first (none for a zombie). */
  threads: FrozenTask[];
  /** A zombie (dead, not yet reaped by its parent): only its pstree entry and core are dumped. */
  zombie?: boolean;
  /** Stopped (by SIGSTOP & co) when it was frozen: it stays stopped after a restore. */
  stopped?: boolean;
}

/** Tasks with an address space, threads and files (everything but zombies). */
export function liveTasks(tasks: TreeTask[]): TreeTask[] {
  return tasks.filter((t) => !t.zombie);
}

/** Children of every thread of `pid`, in thread order then creation order. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: number[];
  try {
    tids = listThreads(pid);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let text = '';
    try { text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1'); } catch { continue; }
    for (const w of text.trim().split(/\s+/)) {
      if (w && !out.includes(Number(w))) out.push(Number(w));
    }
  }
  return out;
}

export function stateOf(pid: number): string | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

function threadCount(pid: number): number {
  try {
    return readStat(pid).numThreads;
  } catch {
    return 0;
  }
}

/** The tree as /proc shows it now (nothing frozen): pids in CRIU's order (depth first, parents first). */
export function listTree(root: number): Array<{ pid: number; ppid: number }> {
  const out: Array<{ pid: number; ppid: number }> = [];
  const walk = (pid: number, ppid: number) => {
    if (out.some((t) => t.pid === pid)) return;
    out.push({ pid, ppid });
    for (const c of childrenOf(pid)) walk(c, pid);
  };
  walk(root, 0);
  return out;
}

/**
 * Freezes the whole tree under `root`. Returns the tasks depth first (root first, each parent
 * before its children), as pstree.img lists them. On failure nothing stays frozen.
 */
export function freezeTree(root: number, arch: Arch): TreeTask[] {
  const frozen = new Map<number, TreeTask>();
  const kids = new Map<number, number[]>();
  try {
    for (let pass = 0; ; pass++) {
      if (pass > 100) throw new DumpError('freeze', root, 'tasks keep appearing; cannot freeze the tree');
      let found = 0;
      const walk = (pid: number, ppid: number) => {
        if (!frozen.has(pid)) {
          const st = stateOf(pid);
          if (pid !== root) {
            if (st === undefined || st === 'X') return; // exited meanwhile
            if (st === 'Z') {
              // A group leader that exited while its other threads run shows 'Z' too, but lives on.
              if (threadCount(pid) > 1) throw new DumpError('freeze', pid, `task ${pid} (child of ${ppid}): its main thread has exited while other threads run; not supported yet`);
              // Dead: it cannot change any more and has nothing to freeze.
              frozen.set(pid, { pid, ppid, threads: [], zombie: true });
              found++;
              return;
            }
          }
          const vforked = vforkChildOf(pid);
          if (vforked !== undefined) {
            throw new DumpError('freeze', pid, `task ${pid} is waiting for its vfork() child ${vforked}, which shares its address space until it execs or exits; not supported (the waiting task cannot be frozen)`, { hint: 'dump once the child has exec\'d' });
          }
          let threads: FrozenTask[];
          try {
            threads = freezeThreads(pid, arch);
          } catch (e) {
            if (pid !== root && !fs.existsSync(`/proc/${pid}`)) return;
            // It died meanwhile: the next pass takes it as a zombie.
            if (pid !== root && stateOf(pid) === 'Z') { found++; return; }
            throw e;
          }
          frozen.set(pid, { pid, ppid, threads, ...(st === 'T' ? { stopped: true } : {}) });
          found++;
        }
        const list = childrenOf(pid);
        kids.set(pid, list);
        for (const c of list) walk(c, pid);
      };
      walk(root, 0);
      if (found === 0) break;
    }
  } catch (e) {
    for (const t of frozen.values()) {
      try { releaseThreads(t.threads); } catch { /* keep the first error */ }
    }
    throw e;
  }
  const order: TreeTask[] = [];
  const visit = (pid: number) => {
    const t = frozen.get(pid);
    if (!t || order.includes(t)) return;
    order.push(t);
    for (const c of kids.get(pid) ?? []) visit(c);
  };
  visit(root);
  return order;
}

function threadState(pid: number, tid: number): string | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/**
 * A child of `pid` made by vfork() that has not exec'd yet: it shares the parent's address space
 * while the parent's thread waits, uninterruptible ('D'), and a ptrace interrupt never stops it.
 * Seen as a thread staying in 'D' with a child sharing its mm (a short disk wait is told apart
 * by looking again).
 */
function vforkChildOf(pid: number): number | undefined {
  let tids: number[];
  try { tids = listThreads(pid); } catch { return undefined; }
  const waiting = () => tids.some((tid) => threadState(pid, tid) === 'D');
  if (!waiting()) return undefined;
  const child = childrenOf(pid).find((c) => { try { return sys.kcmp(pid, c, KCMP.VM) === 0; } catch { return false; } });
  if (child === undefined) return undefined;
  for (let i = 0; i < 5; i++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    if (!waiting()) return undefined;
  }
  return child;
}

/** The kernel objects of a task as CRIU numbers them in ids-N.img (task_kobj_ids_entry). */
export interface KobjIds {
  vm: number;
  files: number;
  fs: number;
  sighand: number;
}

type Kind = keyof KobjIds;
const KINDS: Array<[Kind, number, string]> = [['vm', KCMP.VM, 'address space'], ['files', KCMP.FILES, 'descriptor table'], ['fs', KCMP.FS, 'fs info (cwd, root, umask)'], ['sighand', KCMP.SIGHAND, 'signal handlers']];

/**
 * Numbers the kernel objects of the live tasks, in pstree order, as CRIU does: per kind, the
 * first task holding an object gives it the next id (from 2; 1 is criu's own, in the inventory),
 * and a task sharing it (kcmp) gets the same id. Any object may be shared with the parent (restore
 * clones the child with CLONE_VM / CLONE_FILES / CLONE_FS / CLONE_SIGHAND); sharing with a task
 * that is not the parent is refused, since clone() can only share what the caller holds.
 */
export function kobjIdsOf(all: TreeTask[]): Map<number, KobjIds> {
  const tasks = liveTasks(all);
  const out = new Map<number, KobjIds>();
  const next: Record<Kind, number> = { vm: 2, files: 2, fs: 2, sighand: 2 };
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i];
    const ids = {} as KobjIds;
    for (const [kind, kcmpType, what] of KINDS) {
      const owner = tasks.slice(0, i).find((o) => sys.kcmp(o.pid, t.pid, kcmpType) === 0);
      if (!owner) {
        ids[kind] = next[kind]++;
        continue;
      }
      ids[kind] = out.get(owner.pid)![kind];
      const parent = out.get(t.ppid);
      if (!parent || parent[kind] !== ids[kind]) {
        const how = kind === 'vm' || kind === 'sighand' ? ' (cloned with CLONE_VM by another task, e.g. with CLONE_PARENT, or reparented)' : '';
        throw new DumpError('freeze', t.pid, `task ${t.pid} shares its ${what} with task ${owner.pid}, which is not its parent (${t.ppid})${how}; only ${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what} shared with the parent can be restored`);
      }
    }
    out.set(t.pid, ids);
  }
  return out;
}

export function releaseTree(tasks: TreeTask[]): void {
  let first: unknown;
  for (const t of liveTasks(tasks)) {
    try { releaseThreads(t.threads); } catch (e) { first ??= e; }
  }
  if (first) throw first;
}

/** unregisterExitWrites for every live task (see there: before a kill with a deferred page copy). */
export function unregisterTreeExitWrites(tasks: TreeTask[], tidAddresses?: ReadonlyMap<number, bigint>): void {
  const putBack: Array<() => void> = [];
  try {
    for (const t of liveTasks(tasks)) putBack.push(unregisterExitWrites(t.threads, tidAddresses));
  } catch (e) {
    putBack.forEach((f) => f());
    throw e;
  }
}

/** Kills every task, leaves first, collecting each death as their tracer. */
export function killTree(tasks: TreeTask[]): void {
  let first: unknown;
  for (const t of liveTasks(tasks).reverse()) {
    try { killThreads(t.threads); } catch (e) { first ??= e; }
  }
  if (first) throw first;
}
