/**
 * A restored task's own userfaultfd: made by injected syscalls (so it belongs to the task's mm),
 * with ranges registered for missing pages, then handed to us (pidfd_getfd) and closed in the
 * task, so that ours is the only reference: closing it unregisters the ranges again. Used to fill
 * memory eagerly (fill-uffd.ts) and to hand it to a lazy-pages server (lazy.ts).
 */
import { sys, UFFD } from '@criu/sys';
import type { FrozenTask } from '../infect/frozen-task.js';
import { RestoreError } from './errors.js';
import { SCRATCH, type Scratch } from './scratch.js';

/** Throws a RestoreError (step fill-memory) naming what the kernel refused. */
export function taskUserfaultfd(task: FrozenTask, scratch: Scratch, ranges: ReadonlyArray<{ start: bigint; end: bigint }>, opts: { flags: number; features: number }): number {
  const ufd = task.rawSyscall('userfaultfd', opts.flags);
  if (ufd < 0n) throw new RestoreError('fill-memory', `userfaultfd() in task ${task.pid} failed with errno ${-ufd} (is vm.unprivileged_userfaultfd off and we unprivileged, or the kernel without CONFIG_USERFAULTFD?)`);
  try {
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(BigInt(UFFD.API), 0);
    api.writeBigUInt64LE(BigInt(opts.features), 8);
    const r = task.rawSyscall('ioctl', ufd, UFFD.UFFDIO_API, scratch.put(SCRATCH.args, api));
    if (r < 0n) throw new RestoreError('fill-memory', `UFFDIO_API on task ${task.pid}'s userfaultfd failed with errno ${-r}`);
    for (const v of ranges) {
      const reg = Buffer.alloc(32);
      reg.writeBigUInt64LE(v.start, 0);
      reg.writeBigUInt64LE(v.end - v.start, 8);
      reg.writeBigUInt64LE(BigInt(UFFD.REGISTER_MODE_MISSING), 16);
      const rr = task.rawSyscall('ioctl', ufd, UFFD.UFFDIO_REGISTER, scratch.put(SCRATCH.args, reg));
      if (rr < 0n) throw new RestoreError('fill-memory', `UFFDIO_REGISTER of 0x${v.start.toString(16)}-0x${v.end.toString(16)} in task ${task.pid} failed with errno ${-rr}`);
    }
    const pidfd = sys.pidfdOpen(task.pid);
    try {
      return sys.pidfdGetfd(pidfd, Number(ufd));
    } finally {
      sys.syscall('close', pidfd);
    }
  } finally {
    task.rawSyscall('close', ufd);
  }
}
