/** Files by their handles (open_by_handle_at), as fdinfo shows them for inotify and fanotify marks. */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';

const O_PATH = 0o10000000, O_CLOEXEC = 0o2000000;

/** struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; } */
export function fileHandle(type: number, handle: Buffer): Buffer {
  const b = Buffer.alloc(8 + handle.length);
  b.writeUInt32LE(handle.length, 0);
  b.writeInt32LE(type, 4);
  handle.copy(b, 8);
  return b;
}

/** A mount of the filesystem with kernel device number `sdev` (major << 20 | minor), from our mountinfo. */
export function mountPointOf(sdev: number): string | undefined {
  const want = `${sdev >>> 20}:${sdev & 0xfffff}`;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const f = line.split(' ');
    if (f[2] === want) return f[4].replace(/\\040/g, ' ');
  }
  return undefined;
}

/** Opens the file behind a handle (O_PATH); -1 when it cannot (another machine, gone). */
export function openHandle(sdev: number, type: number, handle: Buffer): number {
  const mnt = mountPointOf(sdev);
  if (!mnt) return -1;
  let mfd = -1;
  try {
    mfd = fs.openSync(mnt, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    return Number(sys.syscall('open_by_handle_at', mfd, fileHandle(type, handle), O_PATH | O_CLOEXEC));
  } catch {
    return -1;
  } finally {
    if (mfd >= 0) fs.closeSync(mfd);
  }
}
