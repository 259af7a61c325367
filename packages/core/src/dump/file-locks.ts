/**
 * File locks held by the dumped tasks, for filelocks.img (file_lock_entry, as CRIU 4.1 writes it
 * with --file-locks): flock() locks, POSIX record locks and OFD locks, read from the "lock:"
 * lines of /proc/PID/fdinfo/FD (the kernel lists there exactly the locks taken through that
 * open file: POSIX ones only for their owner task, flock/OFD ones for every holder of the open
 * file). Each lock is recorded once, on the first descriptor and task it is seen through.
 */
import { writeImageFile, type Msg } from '@criu/images';
import * as path from 'node:path';
import type { FileRegistry } from './file-registry.js';
import type { LockLine } from './files-kinds.js';
export { parseLockLines, type LockLine } from './files-kinds.js';

/** file_lock_entry.flag values (CRIU's FL_POSIX, FL_FLOCK, FL_OFD). */
export const FL = Object.freeze({ POSIX: 1, FLOCK: 2, OFD: 4 });
const F_RDLCK = 0, F_WRLCK = 1;

export class FileLocks {
  private readonly entries: Msg[] = [];
  private readonly seen = new Set<string>();
  /** The pid the image names a task by (its pid namespace's, for the init of one). */
  nsPid: (hostPid: number) => number = (p) => p;

  /** Records the locks held through task `pid`'s descriptor `fd` (open file `fileId`). */
  add(pid: number, fd: number, fileId: number, locks: LockLine[]): void {
    for (const l of locks) {
      // POSIX locks belong to the task; flock and OFD locks to the open file.
      const key = `${l.kind === 'POSIX' ? pid : 0}:${fileId}:${l.kind}:${l.write}:${l.start}:${l.end}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.entries.push({
        flag: l.kind === 'POSIX' ? FL.POSIX : l.kind === 'FLOCK' ? FL.FLOCK : FL.OFD,
        type: l.write ? F_WRLCK : F_RDLCK,
        pid: this.nsPid(pid), fd, start: l.start, len: l.end === 'EOF' ? 0n : l.end - l.start + 1n,
      });
    }
  }

  get size(): number {
    return this.entries.length;
  }

  /** filelocks.img with every lock so far (written again after each task). */
  async flush(dir: string): Promise<void> {
    if (this.entries.length) await writeImageFile(path.join(dir, 'filelocks.img'), 'FILE_LOCKS', this.entries.map((message) => ({ message })));
  }
}

const sets = new WeakMap<FileRegistry, FileLocks>();

export function locksOf(files: FileRegistry): FileLocks {
  let l = sets.get(files);
  if (!l) sets.set(files, (l = new FileLocks()));
  return l;
}
