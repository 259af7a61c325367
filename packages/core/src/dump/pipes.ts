/**
 * Pipes in a dump: the data buffered in each pipe (pipes-data.img), read without consuming it.
 * A pipe's data is taken once per dump (by pipe inode), from whichever task's descriptor is met
 * first: tee() from a read end, or from a read end we open through /proc when we hold only the
 * write end (as CRIU does). Every task must be frozen while this runs.
 */
import * as fs from 'node:fs';
import { sys, F, O, SPLICE_F, IOCTL } from '@criu/sys';
import type { EntryInput } from '@criu/images';
import type { FileRegistry } from './file-registry.js';

const O_ACCMODE = 3, O_RDONLY = 0;

export interface PipeData { pipeId: number; size: number; data: Buffer }

/** What tee() copied out of one pipe: its buffered bytes and its buffer size. */
export function peekPipe(lfd: number, flags: number): { size: number; data: Buffer } {
  let rfd = lfd;
  let opened: number | undefined;
  if ((flags & O_ACCMODE) !== O_RDONLY) {
    opened = fs.openSync(`/proc/self/fd/${lfd}`, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    rfd = opened;
  }
  let tmp: [number, number] | undefined;
  try {
    const size = sys.fcntl(rfd, F.GETPIPE_SZ);
    const q = Buffer.alloc(4);
    sys.syscall('ioctl', rfd, IOCTL.FIONREAD, q);
    const queued = q.readInt32LE(0);
    if (queued === 0) return { size, data: Buffer.alloc(0) };
    tmp = sys.pipe2(O.CLOEXEC | O.NONBLOCK);
    if (sys.fcntl(tmp[1], F.GETPIPE_SZ) < size) sys.fcntl(tmp[1], F.SETPIPE_SZ, size);
    const n = sys.tee(rfd, tmp[1], Math.max(size, queued), SPLICE_F.NONBLOCK);
    if (n !== queued) throw new Error(`tee copied ${n} of the ${queued} bytes buffered in the pipe`);
    const data = Buffer.alloc(n);
    let off = 0;
    while (off < n) off += fs.readSync(tmp[0], data, off, n - off, null);
    return { size, data };
  } finally {
    if (tmp) { sys.close(tmp[0]); sys.close(tmp[1]); }
    if (opened !== undefined) fs.closeSync(opened);
  }
}

/** The pipe data of one dump, kept per FileRegistry (one registry = one dump). */
export class PipeDataSet {
  private readonly byId = new Map<number, PipeData>();

  /** Takes the data of pipe `pipeId` through our descriptor `lfd`, unless already taken. */
  capture(pipeId: number, lfd: number, flags: number): void {
    if (this.byId.has(pipeId)) return;
    const { size, data } = peekPipe(lfd, flags);
    this.byId.set(pipeId, { pipeId, size, data });
  }

  /** pipes-data.img records (pipes that hold data only, as CRIU writes them). */
  entries(): EntryInput[] {
    return [...this.byId.values()].filter((p) => p.data.length > 0).map((p) => ({
      message: { pipe_id: p.pipeId, bytes: p.data.length, size: p.size },
      extra: { kind: 'bytes', data: p.data },
    }));
  }
}

const sets = new WeakMap<FileRegistry, PipeDataSet>();

export function pipeDataOf(files: FileRegistry): PipeDataSet {
  let s = sets.get(files);
  if (!s) sets.set(files, (s = new PipeDataSet()));
  return s;
}
