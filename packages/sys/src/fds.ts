// File-descriptor level calls Node's fs module does not offer: pidfds, memfd, pipe2, the splice
// family, kcmp, fcntl, prctl. fds returned here are plain numbers usable with fs.readSync etc.
import { SysArgError } from './errors.js';
import { readI32, writeU64 } from './native.js';
import type { SysArg, SyscallRunner } from './runner.js';

export function close(r: SyscallRunner, fd: number): void {
  r.call('close', [fd], () => `${fd}`);
}

/** A pidfd for `pid` (PIDFD_NONBLOCK / PIDFD_THREAD in flags). */
export function pidfdOpen(r: SyscallRunner, pid: number, flags = 0): number {
  return Number(r.call('pidfd_open', [pid, flags], () => `${pid}, ${flags}`));
}

/** Sends `signal` to the process behind a pidfd (no siginfo). */
export function pidfdSendSignal(r: SyscallRunner, pidfd: number, signal: number, flags = 0): void {
  r.call('pidfd_send_signal', [pidfd, signal, 0, flags], () => `${pidfd}, ${signal}`);
}

/** Duplicates fd `targetFd` of the process behind `pidfd` into this process. */
export function pidfdGetfd(r: SyscallRunner, pidfd: number, targetFd: number, flags = 0): number {
  return Number(r.call('pidfd_getfd', [pidfd, targetFd, flags], () => `${pidfd}, ${targetFd}`));
}

/**
 * Compares kernel objects of two processes: 0 equal, 1/2 ordered-unequal, 3 unequal (see
 * KCMP_RESULT). For KCMP_FILE idx1/idx2 are fds; other types ignore them.
 */
export function kcmp(r: SyscallRunner, pid1: number, pid2: number, type: number, idx1: SysArg = 0, idx2: SysArg = 0): number {
  return Number(r.call('kcmp', [pid1, pid2, type, idx1, idx2], () => `${pid1}, ${pid2}, ${type}, ${String(idx1)}, ${String(idx2)}`));
}

export function memfdCreate(r: SyscallRunner, name: string, flags = 0): number {
  if (name.includes('\0')) throw new SysArgError('name', 'contains a NUL byte');
  const cname = Buffer.from(`${name}\0`);
  return Number(r.call('memfd_create', [cname, flags], () => JSON.stringify(name)));
}

/** [readFd, writeFd] of a new pipe. */
export function pipe2(r: SyscallRunner, flags = 0): [number, number] {
  const fds = Buffer.alloc(8);
  r.call('pipe2', [fds, flags], () => `${flags}`);
  return [readI32(fds, 0), readI32(fds, 4)];
}

function offsetArg(off: bigint | number | null | undefined): Buffer | null {
  if (off === null || off === undefined) return null;
  const b = Buffer.alloc(8);
  writeU64(b, BigInt(off), 0);
  return b;
}

/**
 * Moves up to `len` bytes between two fds, one of which is a pipe. An offset (for the non-pipe
 * side) reads/writes at that position without moving the file position. Returns bytes moved.
 */
export function splice(r: SyscallRunner, fdIn: number, offIn: bigint | number | null, fdOut: number, offOut: bigint | number | null, len: number, flags = 0): number {
  const inOff = offsetArg(offIn);
  const outOff = offsetArg(offOut);
  const n = r.call('splice', [fdIn, inOff, fdOut, outOff, len, flags], () => `${fdIn}, ${offIn ?? 'NULL'}, ${fdOut}, ${offOut ?? 'NULL'}, ${len}`);
  return Number(n);
}

/** splice() on another OS thread (libuv's pool): copies into a page cache can run on two cores. */
export async function spliceAsync(r: SyscallRunner, fdIn: number, offIn: bigint | number | null, fdOut: number, offOut: bigint | number | null, len: number, flags = 0): Promise<number> {
  const inOff = offsetArg(offIn);
  const outOff = offsetArg(offOut);
  const n = await r.callAsync('splice', [fdIn, inOff, fdOut, outOff, len, flags], () => `${fdIn}, ${offIn ?? 'NULL'}, ${fdOut}, ${offOut ?? 'NULL'}, ${len}`);
  return Number(n);
}

/** Maps user memory into a pipe. Without SPLICE_F_GIFT the Buffers must stay unchanged until the data is read. */
export function vmsplice(r: SyscallRunner, fd: number, bufs: Buffer | readonly Buffer[], flags = 0): number {
  const list = Buffer.isBuffer(bufs) ? [bufs] : (bufs as readonly Buffer[]);
  const iov = Buffer.alloc(16 * Math.max(list.length, 1));
  list.forEach((b, i) => {
    writeU64(iov, r.address(b), 16 * i);
    writeU64(iov, BigInt(b.length), 16 * i + 8);
  });
  const n = r.call('vmsplice', [fd, iov, list.length, flags], () => `${fd}, ${list.length} iovecs`);
  void list;
  return Number(n);
}

/** Duplicates up to `len` bytes from one pipe to another without consuming them. */
export function tee(r: SyscallRunner, fdIn: number, fdOut: number, len: number, flags = 0): number {
  return Number(r.call('tee', [fdIn, fdOut, len, flags], () => `${fdIn}, ${fdOut}, ${len}`));
}

/** fcntl(fd, cmd, arg) with an integer argument (F_GETPIPE_SZ, F_SETPIPE_SZ, F_GETFL, ...). */
export function fcntl(r: SyscallRunner, fd: number, cmd: number, arg: SysArg = 0): number {
  return Number(r.call('fcntl', [fd, cmd, arg], () => `${fd}, ${cmd}`));
}

/** prctl(option, a2..a5); Buffers are passed by address. */
export function prctl(r: SyscallRunner, option: number, a2: SysArg = 0, a3: SysArg = 0, a4: SysArg = 0, a5: SysArg = 0): bigint {
  return r.call('prctl', [option, a2, a3, a4, a5], () => `${option}`);
}
