/**
 * The dumper's end of the parasite control channel: an abstract AF_UNIX SOCK_SEQPACKET socket,
 * driven through raw syscalls because Node's net module cannot pass file descriptors.
 */
import { sys, SysError, SOCKOPT } from '@criu/sys';
import * as crypto from 'node:crypto';
import { inNamespaceOf, sharesNamespace } from '../ns/enter.js';

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const { SO_RCVTIMEO, SO_SNDTIMEO } = SOCKOPT;
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

  /**
   * A listening socket with a fresh abstract name; `timeoutMs` bounds accept/recv/send. Abstract
   * names are per network namespace: the socket is made in task `inNetOf`'s.
   */
  static listen(timeoutMs: number, inNetOf?: number): { listener: ControlSocket; name: string } {
    const name = `criu-ts-${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    const fd = inNetOf === undefined ? Number(sys.syscall('socket', AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) : socketInNetOf(inNetOf);
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
    const n = retryEintr(() => sys.sendWithFds(this.fd, data, fds, MSG_NOSIGNAL));
    if (n !== data.length) throw new Error(`control socket: short send (${n} of ${data.length} bytes)`);
  }

  /** Receives one datagram (blocking up to the socket timeout); EAGAIN means it timed out. */
  recv(maxBytes: number, maxFds = 0): Datagram {
    const data = Buffer.alloc(maxBytes);
    const { n, fds } = retryEintr(() => sys.recvWithFds(this.fd, data, maxFds, MSG_CMSG_CLOEXEC));
    if (n === 0) throw new SysError('recvmsg', 104 /* ECONNRESET */, 'control socket closed by the parasite');
    return { data: data.subarray(0, n), fds };
  }

  close(): void {
    try { sys.close(this.fd); } catch { /* already closed */ }
  }
}

/** A signal to the dumper (e.g. node --cpu-prof's SIGPROF) interrupts a blocking call before any data moved: call again. */
function retryEintr<T>(fn: () => T): T {
  for (;;) {
    try {
      return fn();
    } catch (e) {
      if (!SysError.is(e, 'EINTR')) throw e;
    }
  }
}

/** A control socket created in the network namespace of task `pid` (this thread enters it for the socket() call only). */
function socketInNetOf(pid: number): number {
  const make = () => Number(sys.syscall('socket', AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  return sharesNamespace(pid, 'net') ? make() : inNamespaceOf(pid, 'net', make);
}
