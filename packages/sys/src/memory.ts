// Another process's memory through process_vm_readv/writev: local Buffers on one side, remote
// (address, length) ranges on the other, copied by the kernel without stopping the target.
import { SysArgError } from './errors.js';
import { writeU64 } from './native.js';
import type { SyscallRunner } from './runner.js';

/** A range of the remote process's address space. */
export interface RemoteRange {
  addr: bigint | number;
  len: number;
}

/** The kernel's limit on iovec counts (UIO_MAXIOV). */
export const IOV_MAX = 1024;

function iovecs(r: SyscallRunner, ranges: readonly { addr: bigint; len: number }[], what: string): Buffer {
  if (ranges.length > IOV_MAX) throw new SysArgError(what, `${ranges.length} ranges exceed IOV_MAX (${IOV_MAX}); split the transfer`);
  const iov = Buffer.alloc(16 * Math.max(ranges.length, 1));
  ranges.forEach((x, i) => {
    if (!Number.isSafeInteger(x.len) || x.len < 0) throw new SysArgError(`${what}[${i}].len`, `${x.len} is not a length`);
    writeU64(iov, x.addr, 16 * i);
    writeU64(iov, BigInt(x.len), 16 * i + 8);
  });
  return iov;
}

function transfer(r: SyscallRunner, name: 'process_vm_readv' | 'process_vm_writev', pid: number, local: Buffer | readonly Buffer[], remote: RemoteRange | readonly RemoteRange[], flags: number): number {
  const locals = Buffer.isBuffer(local) ? [local] : (local as readonly Buffer[]);
  const remotes = (Array.isArray(remote) ? remote : [remote]) as readonly RemoteRange[];
  const liov = iovecs(r, locals.map((b) => ({ addr: r.address(b), len: b.length })), 'local');
  const riov = iovecs(r, remotes.map((x) => ({ addr: BigInt(x.addr), len: x.len })), 'remote');
  const first = remotes[0] ? `0x${BigInt(remotes[0].addr).toString(16)}` : '-';
  const n = r.call(name, [pid, liov, locals.length, riov, remotes.length, flags], () => `${pid}, ${locals.length} local, ${remotes.length} remote from ${first}`);
  void locals; // the local Buffers stay referenced until the kernel is done with them
  return Number(n);
}

/** Copies remote ranges into local Buffers (in order, across boundaries). Returns bytes read (may be short). */
export function processVmReadv(r: SyscallRunner, pid: number, local: Buffer | readonly Buffer[], remote: RemoteRange | readonly RemoteRange[], flags = 0): number {
  return transfer(r, 'process_vm_readv', pid, local, remote, flags);
}

/** Copies local Buffers into remote ranges. Returns bytes written (may be short). */
export function processVmWritev(r: SyscallRunner, pid: number, local: Buffer | readonly Buffer[], remote: RemoteRange | readonly RemoteRange[], flags = 0): number {
  return transfer(r, 'process_vm_writev', pid, local, remote, flags);
}

/** Reads `len` bytes at `addr`; the result is shorter when the range runs into unmapped memory. */
export function readMemory(r: SyscallRunner, pid: number, addr: bigint | number, len: number): Buffer {
  if (!Number.isSafeInteger(len) || len < 0) throw new SysArgError('len', `${len} is not a length`);
  const buf = Buffer.alloc(len);
  return buf.subarray(0, len === 0 ? 0 : processVmReadv(r, pid, buf, { addr, len }));
}

/** Writes `data` at `addr`; returns the number of bytes written. */
export function writeMemory(r: SyscallRunner, pid: number, addr: bigint | number, data: Buffer): number {
  return data.length === 0 ? 0 : processVmWritev(r, pid, data, { addr, len: data.length });
}
