/**
 * inotify descriptors: inotify_file_entry with one inotify_wd_entry per watch, from the
 * "inotify wd:" lines of /proc/PID/fdinfo/FD as CRIU 4.1 records them (the file handle padded to
 * 16 words). The watched file's path is found by opening the handle on its filesystem, so a
 * restore can fall back to it where the handle no longer opens.
 */
import * as fs from 'node:fs';
import type { Msg } from '@criu/images';
import { openHandle } from '../proc/file-handle.js';
import { FilesDumpError } from './files-kinds.js';

/** CRIU stores at least this many 64-bit words of a handle (fh_entry_sizes.min_entries). */
export const FH_WORDS = 16;

export interface InotifyWatch { wd: number; ino: bigint; sdev: number; mask: number; ignoredMask: number; handleType: number; handle: Buffer }

export function inotifyWatches(pid: number, fd: number, text: string): InotifyWatch[] {
  const out: InotifyWatch[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('inotify ')) continue;
    const m = /^inotify wd:(\d+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:([0-9a-f]+) fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]*)/.exec(line);
    if (!m) throw new FilesDumpError(pid, `fd ${fd}`, `cannot parse "${line}" in /proc/${pid}/fdinfo/${fd}`);
    const bytes = parseInt(m[6], 16);
    const handle = Buffer.from(m[8], 'hex');
    if (handle.length !== bytes) throw new FilesDumpError(pid, `fd ${fd}`, `watch ${m[1]}: a ${bytes}-byte file handle shows ${handle.length} bytes`);
    out.push({ wd: Number(m[1]), ino: BigInt(`0x${m[2]}`), sdev: parseInt(m[3], 16), mask: parseInt(m[4], 16) >>> 0, ignoredMask: parseInt(m[5], 16) >>> 0, handleType: parseInt(m[7], 16), handle });
  }
  return out;
}

/** The handle as fh_entry.handle: little-endian 64-bit words, at least FH_WORDS of them. */
export function handleWords(handle: Buffer): bigint[] {
  const padded = Buffer.alloc(Math.max(FH_WORDS, Math.ceil(handle.length / 8)) * 8);
  handle.copy(padded);
  return Array.from({ length: padded.length / 8 }, (_, i) => padded.readBigUInt64LE(i * 8));
}

function pathOf(w: InotifyWatch): string | undefined {
  const fd = openHandle(w.sdev, w.handleType, w.handle);
  if (fd < 0) return undefined;
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } finally {
    fs.closeSync(fd);
  }
}

export function inotifyEntry(pid: number, fd: number, id: number, flags: number, fown: Msg, text: string): Msg {
  const wd = inotifyWatches(pid, fd, text).map((w) => {
    const path = pathOf(w);
    return {
      id: 0, i_ino: w.ino, mask: w.mask, ignored_mask: w.ignoredMask, s_dev: w.sdev, wd: w.wd,
      f_handle: { bytes: w.handle.length, type: w.handleType, handle: handleWords(w.handle), ...(path ? { path } : {}) },
    };
  });
  return { id, flags, fown, wd };
}
