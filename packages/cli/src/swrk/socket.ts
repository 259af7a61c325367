// A SOCK_SEQPACKET AF_UNIX socket driven by raw syscalls (Node's net module has no SEQPACKET):
// one datagram per message, sized with MSG_PEEK|MSG_TRUNC before it is read, descriptors passed
// with SCM_RIGHTS. Receiving blocks on a helper thread (syscallAsync) so the event loop runs on.
import { sys, SysError, SOCKOPT } from '@criu/sys';

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const MSG_PEEK = 0x2;
const MSG_TRUNC = 0x20;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** One received datagram; `closed` when the peer has gone (a zero-length read, as CRIU takes it). */
export interface Datagram {
  data: Buffer;
  fds: number[];
  closed: boolean;
}

/** Process credentials of the peer (SO_PEERCRED): for a socketpair, whoever created it. */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}


/** sockaddr_un of a path (up to 107 bytes). */
function unixAddress(file: string): { addr: Buffer; len: number } {
  const name = Buffer.from(file);
  if (name.length > 107) throw new Error(`socket path too long (${name.length} bytes, at most 107): ${file}`);
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return { addr, len: 2 + name.length + 1 };
}

function timeval(ms: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  b.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  return b;
}

export class SeqpacketSocket {
  constructor(readonly fd: number) {}

  /** socketpair(AF_UNIX, SOCK_SEQPACKET[|SOCK_CLOEXEC]): what runc makes for `criu swrk`. */
  static pair(cloexec = true): [SeqpacketSocket, SeqpacketSocket] {
    const sv = Buffer.alloc(8);
    sys.syscall('socketpair', AF_UNIX, SOCK_SEQPACKET | (cloexec ? SOCK_CLOEXEC : 0), 0, sv);
    return [new SeqpacketSocket(sv.readInt32LE(0)), new SeqpacketSocket(sv.readInt32LE(4))];
  }

  /** A new socket connected to the SEQPACKET listener bound at `file` (the `criu service` socket). */
  static connect(file: string): SeqpacketSocket {
    const fd = Number(sys.syscall('socket', AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    try {
      const { addr, len } = unixAddress(file);
      sys.syscall('connect', fd, addr, len);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return new SeqpacketSocket(fd);
  }

  /** A SEQPACKET listener bound at `file` (replacing a stale socket file), as `criu service` makes it. */
  static listen(file: string, backlog = 16): SeqpacketSocket {
    const fd = Number(sys.syscall('socket', AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    try {
      const { addr, len } = unixAddress(file);
      sys.syscall('bind', fd, addr, len);
      sys.syscall('listen', fd, backlog);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return new SeqpacketSocket(fd);
  }

  /** Waits (on a helper thread) for the next connection; the new socket is close-on-exec. */
  async accept(): Promise<SeqpacketSocket> {
    return new SeqpacketSocket(Number(await sys.syscallAsync('accept4', this.fd, 0, 0, SOCK_CLOEXEC)));
  }

  /** Checks that `fd` is an AF_UNIX SOCK_SEQPACKET socket; throws a readable Error otherwise. */
  static adopt(fd: number): SeqpacketSocket {
    const v = Buffer.alloc(4);
    const len = Buffer.alloc(4);
    const get = (opt: number, what: string): number => {
      len.writeUInt32LE(4, 0);
      try {
        sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, len);
      } catch (e) {
        const errno = e instanceof SysError ? e.errno : 0;
        if (errno === 9 /* EBADF */) throw new Error(`descriptor ${fd} is not open`);
        if (errno === 88 /* ENOTSOCK */) throw new Error(`descriptor ${fd} is not a socket`);
        throw new Error(`descriptor ${fd}: can't read ${what}: ${(e as Error).message}`);
      }
      return v.readInt32LE(0);
    };
    const SO_TYPE = 3, SO_DOMAIN = 39;
    const type = get(SO_TYPE, 'its type');
    const domain = get(SO_DOMAIN, 'its domain');
    if (domain !== AF_UNIX || type !== SOCK_SEQPACKET) {
      throw new Error(`descriptor ${fd} is not an AF_UNIX SOCK_SEQPACKET socket (domain ${domain}, type ${type})`);
    }
    return new SeqpacketSocket(fd);
  }

  peerCred(): PeerCred {
    const cred = Buffer.alloc(12);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(12, 0);
    sys.syscall('getsockopt', this.fd, SOL_SOCKET, SOCKOPT.SO_PEERCRED, cred, len);
    return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
  }

  /** Bounds every later recv (EAGAIN after `ms`); 0 = wait forever. */
  setRecvTimeout(ms: number): void {
    const tv = timeval(ms);
    sys.syscall('setsockopt', this.fd, SOL_SOCKET, SOCKOPT.SO_RCVTIMEO, tv, tv.length);
  }

  /** Sends one datagram, with descriptors if given (SCM_RIGHTS). */
  send(data: Buffer, fds: readonly number[] = []): void {
    const n = sys.sendWithFds(this.fd, data, fds, MSG_NOSIGNAL);
    if (n !== data.length) throw new Error(`short send on the RPC socket (${n} of ${data.length} bytes)`);
  }

  /** Receives one whole datagram, whatever its size (up to `maxFds` descriptors with it). */
  async recv(maxFds = 4): Promise<Datagram> {
    // recv(NULL, 0, MSG_PEEK|MSG_TRUNC) returns the length of the waiting datagram.
    const size = Number(await sys.syscallAsync('recvfrom', this.fd, 0, 0, MSG_PEEK | MSG_TRUNC, 0, 0));
    const data = Buffer.alloc(Math.max(size, 1));
    const { n, fds } = sys.recvWithFds(this.fd, data, maxFds, MSG_CMSG_CLOEXEC | MSG_TRUNC);
    return { data: data.subarray(0, Math.min(n, data.length)), fds, closed: n === 0 };
  }

  close(): void {
    try {
      sys.close(this.fd);
    } catch {
      /* already closed */
    }
  }
}
