// sendmsg/recvmsg of one datagram with descriptors (SCM_RIGHTS), for the unix sockets Node's net
// module cannot drive (SOCK_SEQPACKET, fd passing). struct msghdr and cmsghdr as on LP64 Linux.
import type { SyscallRunner } from './runner.js';

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSGHDR_SIZE = 56;
const CMSG_HDR = 16;

function iovec(r: SyscallRunner, data: Buffer): Buffer {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(data.length ? r.address(data) : 0n, 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  return iov;
}

function msghdr(r: SyscallRunner, iov: Buffer, control: Buffer | undefined): Buffer {
  const msg = Buffer.alloc(MSGHDR_SIZE);
  msg.writeBigUInt64LE(r.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (control?.length) {
    msg.writeBigUInt64LE(r.address(control), 32);
    msg.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return msg;
}

/** Sends `data` as one message with `fds` attached; returns the bytes sent. */
export function sendWithFds(r: SyscallRunner, fd: number, data: Buffer, fds: readonly number[], flags: number): number {
  const iov = iovec(r, data);
  let control: Buffer | undefined;
  if (fds.length) {
    const len = CMSG_HDR + fds.length * 4;
    control = Buffer.alloc((len + 7) & ~7);
    control.writeBigUInt64LE(BigInt(len), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((f, i) => control!.writeInt32LE(f, CMSG_HDR + i * 4));
  }
  const msg = msghdr(r, iov, control);
  const n = Number(r.call('sendmsg', [fd, msg, flags]));
  void [data, iov, control]; // alive until the kernel has read them through their addresses
  return n;
}

/** Receives one message into `data` (up to `maxFds` descriptors); n is recvmsg's result. */
export function recvWithFds(r: SyscallRunner, fd: number, data: Buffer, maxFds: number, flags: number): { n: number; fds: number[] } {
  const iov = iovec(r, data);
  const control = maxFds ? Buffer.alloc(CMSG_HDR + maxFds * 4 + 8) : undefined;
  const msg = msghdr(r, iov, control);
  const n = Number(r.call('recvmsg', [fd, msg, flags]));
  const fds: number[] = [];
  const controlLen = control ? Number(msg.readBigUInt64LE(40)) : 0;
  for (let off = 0; control && off + CMSG_HDR <= controlLen; ) {
    const len = Number(control.readBigUInt64LE(off));
    if (len < CMSG_HDR) break;
    if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
    }
    off += (len + 7) & ~7;
  }
  void iov;
  return { n, fds };
}
