/**
 * inotify descriptors rebuilt in the restorer (the task takes them with pidfd_getfd): each watch
 * comes back with its watch descriptor. The kernel hands out watch descriptors in increasing
 * order per instance, so watches are added from the lowest, and a number below a wanted one is
 * used up (added and removed again) until the wanted one comes.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { Msg } from '@criu/images';
import { openHandle } from '../proc/file-handle.js';
import { RestoreError } from './errors.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000, F_SETFL = 4;
/** A bound on used-up watch descriptors (a dumped task that churned through more is refused). */
const MAX_SKIPPED = 100_000;

export function createInotify(e: Msg): number {
  const where = (field: string) => ({ file: 'files.img', field: `ify.${field}` });
  const fd = Number(sys.syscall('inotify_init1', O_CLOEXEC | O_NONBLOCK));
  try {
    const watches = ((e.wd as Msg[] | undefined) ?? []).map((w, i) => ({ w, i })).sort((a, b) => Number(a.w.wd) - Number(b.w.wd));
    for (const { w, i } of watches) {
      const want = Number(w.wd);
      const fh = w.f_handle as Msg;
      const bytes = Number(fh.bytes);
      const words = (fh.handle as bigint[] | undefined) ?? [];
      const raw = Buffer.alloc(words.length * 8);
      words.forEach((x, k) => raw.writeBigUInt64LE(BigInt.asUintN(64, BigInt(x)), k * 8));
      if (bytes > raw.length) throw new RestoreError('files', `inotify ${e.id}: watch ${want} has a ${bytes}-byte handle in ${raw.length} bytes`, where(`wd[${i}].f_handle`));
      // The very inode by its handle; its recorded path where the handle no longer opens.
      const target = openHandle(Number(w.s_dev), Number(fh.type), raw.subarray(0, bytes));
      const path = target >= 0 ? `/proc/self/fd/${target}` : (fh.path as string | undefined);
      try {
        if (!path) throw new RestoreError('files', `inotify ${e.id}: the file of watch ${want} (inode ${w.i_ino}) cannot be found`, where(`wd[${i}].f_handle`));
        for (let skipped = 0; ; skipped++) {
          const got = Number(sys.syscall('inotify_add_watch', fd, Buffer.from(`${path}\0`), Number(w.mask)));
          if (got === want) break;
          if (got > want) throw new RestoreError('files', `inotify ${e.id}: watch ${want} came back as ${got} (another watch on the same file?)`, where(`wd[${i}].wd`));
          sys.syscall('inotify_rm_watch', fd, got);
          if (skipped > MAX_SKIPPED) throw new RestoreError('files', `inotify ${e.id}: watch descriptor ${want} is out of reach`, where(`wd[${i}].wd`));
        }
      } finally {
        if (target >= 0) fs.closeSync(target);
      }
    }
    // Each skipped watch queued an IN_IGNORED event: drop them (still non-blocking here).
    const buf = Buffer.alloc(4096);
    for (;;) {
      try { if (Number(sys.syscall('read', fd, buf, buf.length)) <= 0) break; } catch { break; }
    }
    sys.syscall('fcntl', fd, F_SETFL, Number(e.flags ?? 0) & ~3);
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof RestoreError) throw err;
    throw new RestoreError('files', `inotify ${e.id}: ${(err as Error).message}`, { cause: err, file: 'files.img', field: 'ify' });
  }
}
