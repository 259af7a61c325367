// Running a piece of work inside another task's namespace, on this thread only: the kinds a
// thread of a multi-threaded process may enter with setns() (not pid, mnt or user).
import * as fs from 'node:fs';
import { sys } from '@criu/sys';

const FLAG = { uts: 0x04000000, ipc: 0x08000000, net: 0x40000000 } as const;
export type EnterableNs = keyof typeof FLAG;

/** True when task `pid` is in this thread's namespace of `kind` (or the kernel has no such kind). */
export function sharesNamespace(pid: number, kind: EnterableNs): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/${kind}`) === fs.readlinkSync(`/proc/thread-self/ns/${kind}`);
  } catch {
    return true;
  }
}

/** Runs `fn` with this thread in namespace `kind` of task `pid`, and back in its own afterwards. */
export function inNamespaceOf<T>(pid: number, kind: EnterableNs, fn: () => T): T {
  const mine = fs.openSync(`/proc/thread-self/ns/${kind}`, 'r');
  let theirs = -1;
  try {
    theirs = fs.openSync(`/proc/${pid}/ns/${kind}`, 'r');
    sys.syscall('setns', theirs, FLAG[kind]);
    try {
      return fn();
    } finally {
      sys.syscall('setns', mine, FLAG[kind]);
    }
  } finally {
    if (theirs >= 0) fs.closeSync(theirs);
    fs.closeSync(mine);
  }
}
