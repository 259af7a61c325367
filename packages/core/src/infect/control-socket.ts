/**
 * The dumper's end of the parasite control channel: an abstract AF_UNIX SOCK_SEQPACKET socket,
 * driven through raw syscalls because Node's net module cannot pass file descriptors.
 */
import { sys, SysError, SOCKOPT } from '@criu/sys';
import * as crypto from 'node:crypto';

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const { SO_RCVTIMEO, SO_SNDTIMEO } = SOCKOPT;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_NOSIGNAL = 0x4000;

function timeval(ms: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  b.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  return b;
}

function abstractAddress(name: string): { addr: Buffer; len: number } {
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0); // sun_path[0] = 0: abstract namespace
  const n = addr.write(name, 3, 'latin1');
  return { addr, len: 3 + n };
}

/** A received datagram and the descriptors that came with it. */
export interface Datagram {
  data: Buffer;
  fds: number[];
}

export class ControlSocket {
  private constructor(readonly fd: number) {}

  /** A listening socket with a fresh abstract name; `timeoutMs` bounds accept/recv/send. */
  static listen(timeoutMs: number): { listener: ControlSocket; name: string } {
    const name = `criu-ts-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    const fd = Number(sys.syscall('socket', AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    const s = new ControlSocket(fd);
    try {
      const { addr, len } = abstractAddress(name);
      sys.syscall('bind', fd, addr, len);
      sys.syscall('listen', fd, 1);
      s.setTimeout(timeoutMs);
    } catch (e) {
      s.close();
      throw e;
    }
    return { listener: s, name };
  }

  setTimeout(ms: number): void {
    const tv = timeval(ms);
    sys.syscall('setsockopt', this.fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length);
    sys.syscall('setsockopt', this.fd, SOL_SOCKET, SO_SNDTIMEO, tv, tv.length);
  }

  accept(timeoutMs: number): ControlSocket {
    const fd = Number(sys.syscall('accept4', this.fd, 0, 0, SOCK_CLOEXEC));
    const s = new ControlSocket(fd);
    s.setTimeout(timeoutMs);
    return s;
  }

  send(data: Buffer, fds: readonly number[] = []): void {
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(sys.address(data), 0);
    iov.writeBigUInt64LE(BigInt(data.length), 8);
    const msg = Buffer.alloc(56);
    msg.writeBigUInt64LE(sys.address(iov), 16);
    msg.writeBigUInt64LE(1n, 24);
    let control: Buffer | undefined;
    if (fds.length) {
      const len = 16 + fds.length * 4;
      control = Buffer.alloc((len + 7) & ~7);
      control.writeBigUInt64LE(BigInt(len), 0);
      control.writeInt32LE(SOL_SOCKET, 8);
      control.writeInt32LE(SCM_RIGHTS, 12);
      fds.forEach((f, i) => control!.writeInt32LE(f, 16 + i * 4));
      msg.writeBigUInt64LE(sys.address(control), 32);
      msg.writeBigUInt64LE(BigInt(control.length), 40);
    }
    const n = Number(sys.syscall('sendmsg', this.fd, msg, MSG_NOSIGNAL));
    if (n !== data.length) throw new Error(`control socket: short send (${n} of ${data.length} bytes)`);
    void control; void iov; // kept alive until here: the kernel read them through raw addresses
  }

  /** Receives one datagram (blocking up to the socket timeout); EAGAIN means it timed out. */
  recv(maxBytes: number, maxFds = 0): Datagram {
    const data = Buffer.alloc(maxBytes);
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(sys.address(data), 0);
    iov.writeBigUInt64LE(BigInt(maxBytes), 8);
    const control = Buffer.alloc(maxFds ? 16 + maxFds * 4 + 8 : 0);
    const msg = Buffer.alloc(56);
    msg.writeBigUInt64LE(sys.address(iov), 16);
    msg.writeBigUInt64LE(1n, 24);
    if (maxFds) {
      msg.writeBigUInt64LE(sys.address(control), 32);
      msg.writeBigUInt64LE(BigInt(control.length), 40);
    }
    const n = Number(sys.syscall('recvmsg', this.fd, msg, MSG_CMSG_CLOEXEC));
    const fds: number[] = [];
    const controlLen = Number(msg.readBigUInt64LE(40));
    for (let off = 0; maxFds && off + 16 <= controlLen; ) {
      const len = Number(control.readBigUInt64LE(off));
      if (len < 16) break;
      if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
        for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
      }
      off += (len + 7) & ~7;
    }
    if (n === 0) throw new SysError('recvmsg', 104 /* ECONNRESET */, 'control socket closed by the parasite');
    return { data: data.subarray(0, n), fds };
  }

  close(): void {
    try { sys.close(this.fd); } catch { /* already closed */ }
  }
}
