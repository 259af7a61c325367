/**
 * File locks (filelocks.img): each file_lock_entry is taken again, by an flock() or fcntl()
 * injected into the task that held it, on the descriptor it was dumped through, once all the
 * task's descriptors are in place. Non-blocking: a lock someone else took meanwhile fails the
 * restore with the record named instead of hanging it.
 */
import type { Msg } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import { RestoreError } from './errors.js';
import { readImage } from './files-kinds.js';
import type { ImageSource } from './images-in.js';
import type { Scratch } from './scratch.js';

const FILE = 'filelocks.img';
const FL_POSIX = 1, FL_FLOCK = 2, FL_OFD = 4;
const F_RDLCK = 0, F_WRLCK = 1;
// The same on x86_64 and ppc64 (asm-generic fcntl numbers; 64-bit struct flock).
const F_SETLK = 6, F_OFD_SETLK = 37;
const LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
const SEEK_SET = 0;
const EAGAIN = 11, EACCES = 13;

export interface FileLock { flag: number; type: number; pid: number; fd: number; start: bigint; len: bigint; record: number }

/** Reads and checks filelocks.img (none when absent). */
export function readFileLocks(images: string | ImageSource): FileLock[] {
  return readImage(images, FILE, 'FILE_LOCKS', true).map(({ message: m }, record) => {
    for (const k of ['flag', 'type', 'pid', 'fd', 'start', 'len']) {
      if (m[k] === undefined) throw new RestoreError('read-images', 'required value missing', { file: FILE, record, field: k });
    }
    const l: FileLock = { flag: Number(m.flag), type: Number(m.type), pid: Number(m.pid), fd: Number(m.fd), start: BigInt(m.start as bigint), len: BigInt(m.len as bigint), record };
    if (l.flag !== FL_POSIX && l.flag !== FL_FLOCK && l.flag !== FL_OFD) throw new RestoreError('read-images', `lock kind ${l.flag} is not supported (POSIX 1, flock 2, OFD 4 are)`, { file: FILE, record, field: 'flag' });
    if (l.type !== F_RDLCK && l.type !== F_WRLCK) throw new RestoreError('read-images', `lock type ${l.type} is not supported (read 0, write 1 are)`, { file: FILE, record, field: 'type' });
    if (l.start < 0n || l.len < 0n) throw new RestoreError('read-images', `lock range ${l.start}+${l.len} is negative`, { file: FILE, record, field: l.start < 0n ? 'start' : 'len' });
    return l;
  });
}

/** Every lock names a task of the tree and one of its descriptors. */
export function checkFileLocks(locks: FileLock[], tasks: Array<{ pid: number; fdinfo: Msg[] }>): void {
  for (const l of locks) {
    const t = tasks.find((x) => x.pid === l.pid);
    if (!t) throw new RestoreError('read-images', `lock of task ${l.pid}, which is not in pstree.img`, { file: FILE, record: l.record, field: 'pid' });
    if (!t.fdinfo.some((e) => Number(e.fd) === l.fd)) throw new RestoreError('read-images', `lock on fd ${l.fd} of task ${l.pid}, which has no such descriptor`, { file: FILE, record: l.record, field: 'fd' });
  }
}

function flockStruct(type: number, start: bigint, len: bigint): Buffer {
  // struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; }
  const b = Buffer.alloc(32);
  b.writeInt16LE(type, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(start, 8);
  b.writeBigInt64LE(len, 16);
  return b;
}

/** Takes the locks of task `task` (its descriptors are all open). */
export function restoreFileLocks(task: FrozenTask, scratch: Scratch, locks: FileLock[], littleEndian: boolean, vpid = task.pid): void {
  // `vpid`: the task's pid in the images (in its pid namespace).
  for (const l of locks) {
    if (l.pid !== vpid) continue;
    let r: bigint;
    let what: string;
    if (l.flag === FL_FLOCK) {
      what = `flock(${l.fd}, ${l.type === F_WRLCK ? 'LOCK_EX' : 'LOCK_SH'})`;
      r = task.rawSyscall('flock', l.fd, (l.type === F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB);
    } else {
      const s = flockStruct(l.type, l.start, l.len);
      if (!littleEndian) {
        s.writeInt16BE(l.type, 0); s.writeInt16BE(SEEK_SET, 2); s.writeBigInt64BE(l.start, 8); s.writeBigInt64BE(l.len, 16);
      }
      what = `fcntl(${l.fd}, ${l.flag === FL_OFD ? 'F_OFD_SETLK' : 'F_SETLK'}, ${l.type === F_WRLCK ? 'F_WRLCK' : 'F_RDLCK'} ${l.start}+${l.len})`;
      r = task.rawSyscall('fcntl', l.fd, l.flag === FL_OFD ? F_OFD_SETLK : F_SETLK, scratch.arg(s));
    }
    if (r < 0n) {
      const errno = Number(-r);
      throw new RestoreError('files', `task ${l.pid}: ${what} failed with errno ${errno}`, {
        file: FILE, record: l.record, hint: errno === EAGAIN || errno === EACCES ? 'another process holds a conflicting lock on that file now' : undefined,
      });
    }
  }
}
