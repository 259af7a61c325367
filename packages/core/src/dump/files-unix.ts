/**
 * Unix sockets of socketpairs: unix_sk_entry (sk-unix.proto) from sock_diag (peer, queue
 * lengths, shutdown) and getsockopt, and the data queued on each (sk-queues.img), peeked
 * without consuming it (SO_PEEK_OFF + MSG_PEEK), as CRIU 4.1 dumps them.
 */
import * as os from 'node:os';
import { sys, SOCKOPT, IOCTL } from '@criu/sys';
import type { Msg } from '@criu/images';

const AF_NETLINK = 16, AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLMSG_ERROR = 2;
const UDIAG_SHOW_NAME = 1, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 0x10;
const UNIX_DIAG_NAME = 0, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;
const SOL_SOCKET = 1;
const SO = { REUSEADDR: 2, DONTROUTE: 5, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, OOBINLINE: 10, NO_CHECK: 11, PRIORITY: 12, REUSEPORT: 15, PASSSEC: 34, PEEK_OFF: 42, BUF_LOCK: 72 };
const MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_CTRUNC = 8;
const SCM_RIGHTS = 1;
const SOCK_STREAM = 1;
/** The net namespace id dump.ts writes in inventory.img (net_ns_id). */
const NET_NS_ID = 2;

export interface UnixDiag { type: number; state: number; ino: number; peer: number; name?: Buffer; rqueue: number; wqueue: number; shutdown: number }

/** What sock_diag tells about the unix socket with inode `ino` (in our net namespace). */
export function unixDiag(ino: number): UnixDiag {
  const nl = Number(sys.syscall('socket', AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  try {
    const req = Buffer.alloc(16 + 24);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(ino >>> 0, 24);
    req.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, 28);
    req.writeUInt32LE(0xffffffff, 32); // no cookie
    req.writeUInt32LE(0xffffffff, 36);
    if (os.endianness() === 'BE') throw new Error('sock_diag parsing is little-endian only for now');
    sys.syscall('sendto', nl, req, req.length, 0, null, 0);
    const buf = Buffer.alloc(8192);
    const n = Number(sys.syscall('recvfrom', nl, buf, buf.length, 0, null, null));
    if (n < 16) throw new Error(`short sock_diag answer (${n} bytes)`);
    const type = buf.readUInt16LE(4);
    if (type === NLMSG_ERROR) throw new Error(`sock_diag: errno ${-buf.readInt32LE(16)}`);
    const len = Math.min(buf.readUInt32LE(0), n);
    const d: UnixDiag = { type: buf.readUInt8(17), state: buf.readUInt8(18), ino: buf.readUInt32LE(20), peer: 0, rqueue: 0, wqueue: 0, shutdown: 0 };
    for (let at = 32; at + 4 <= len;) {
      const alen = buf.readUInt16LE(at), atype = buf.readUInt16LE(at + 2) & 0x3fff;
      if (alen < 4) break;
      const p = at + 4;
      if (atype === UNIX_DIAG_PEER) d.peer = buf.readUInt32LE(p);
      else if (atype === UNIX_DIAG_RQLEN) { d.rqueue = buf.readUInt32LE(p); d.wqueue = buf.readUInt32LE(p + 4); }
      else if (atype === UNIX_DIAG_SHUTDOWN) d.shutdown = buf.readUInt8(p);
      else if (atype === UNIX_DIAG_NAME) d.name = Buffer.from(buf.subarray(p, at + alen));
      at += (alen + 3) & ~3;
    }
    return d;
  } finally {
    sys.close(nl);
  }
}

function getInt(fd: number, opt: number): number {
  const v = Buffer.alloc(4), l = Buffer.alloc(4);
  l.writeUInt32LE(4);
  sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, l);
  return v.readInt32LE(0);
}

function getTimeval(fd: number, opt: number): [bigint, bigint] {
  const v = Buffer.alloc(16), l = Buffer.alloc(4);
  l.writeUInt32LE(16);
  sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, l);
  return [v.readBigInt64LE(0), v.readBigInt64LE(8)];
}

/** sk_opts_entry as CRIU 4.1 fills it for a unix socket. */
export function sockOpts(fd: number): Msg {
  const [sts, stu] = getTimeval(fd, SOCKOPT.SO_SNDTIMEO);
  const [rts, rtu] = getTimeval(fd, SOCKOPT.SO_RCVTIMEO);
  return {
    so_sndbuf: getInt(fd, SO.SNDBUF), so_rcvbuf: getInt(fd, SO.RCVBUF),
    so_snd_tmo_sec: sts, so_snd_tmo_usec: stu, so_rcv_tmo_sec: rts, so_rcv_tmo_usec: rtu,
    reuseaddr: getInt(fd, SO.REUSEADDR) !== 0, so_priority: getInt(fd, SO.PRIORITY), so_rcvlowat: getInt(fd, SOCKOPT.SO_RCVLOWAT),
    so_passcred: getInt(fd, SOCKOPT.SO_PASSCRED) !== 0, so_passsec: getInt(fd, SO.PASSSEC) !== 0,
    so_dontroute: getInt(fd, SO.DONTROUTE) !== 0, so_no_check: getInt(fd, SO.NO_CHECK) !== 0,
    so_reuseport: getInt(fd, SO.REUSEPORT) !== 0, so_broadcast: getInt(fd, SO.BROADCAST) !== 0,
    so_keepalive: getInt(fd, SO.KEEPALIVE) !== 0, so_oobinline: getInt(fd, SO.OOBINLINE), so_buf_lock: getInt(fd, SO.BUF_LOCK),
  };
}

let peekBuf: Buffer | undefined;

/**
 * The packets queued on socket `fd` (one per datagram; a stream's bytes in one), read with
 * MSG_PEEK from peek offset 0 so nothing is consumed. Throws on passed descriptors (SCM_RIGHTS).
 */
export function peekQueue(fd: number, type: number): Buffer[] {
  const out: Buffer[] = [];
  const data = (peekBuf ??= Buffer.alloc(4 << 20));
  const control = Buffer.alloc(512);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(sys.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const msg = Buffer.alloc(56);
  const oldPeek = getInt(fd, SO.PEEK_OFF);
  const setPeek = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); sys.syscall('setsockopt', fd, SOL_SOCKET, SO.PEEK_OFF, b, 4); };
  const q = Buffer.alloc(4);
  sys.syscall('ioctl', fd, IOCTL.FIONREAD, q);
  const queued = q.readInt32LE(0);
  if (queued === 0) return out;
  setPeek(0);
  try {
    for (;;) {
      msg.fill(0);
      msg.writeBigUInt64LE(sys.address(iov), 16);
      msg.writeBigUInt64LE(1n, 24);
      msg.writeBigUInt64LE(sys.address(control), 32);
      msg.writeBigUInt64LE(BigInt(control.length), 40);
      const r = sys.trySyscall('recvmsg', fd, msg, MSG_PEEK | MSG_DONTWAIT);
      if (r.errno === 11) break; // EAGAIN: all seen
      if (r.errno !== 0) throw new Error(`recvmsg(MSG_PEEK): errno ${r.errno}`);
      const n = Number(r.ret);
      const flags = msg.readInt32LE(48);
      const clen = Number(msg.readBigUInt64LE(40));
      if (clen > 0) {
        const level = control.readInt32LE(8), ctype = control.readInt32LE(12);
        if (level === SOL_SOCKET && ctype === SCM_RIGHTS) {
          const cl = Number(control.readBigUInt64LE(0));
          for (let o = 16; o + 4 <= cl; o += 4) sys.close(control.readInt32LE(o));
          throw new Error('descriptors (SCM_RIGHTS) are queued on it: not supported yet');
        }
      }
      if (flags & (MSG_TRUNC | MSG_CTRUNC)) throw new Error(`a queued packet is larger than ${data.length} bytes`);
      if (n === 0) {
        if (type === SOCK_STREAM) break; // end of stream
        throw new Error('a zero-length datagram is queued on it: not supported yet');
      }
      out.push(Buffer.from(data.subarray(0, n)));
    }
  } finally {
    setPeek(oldPeek);
  }
  const total = out.reduce((s, b) => s + b.length, 0);
  if (type === SOCK_STREAM && total !== queued) throw new Error(`peeked ${total} of the ${queued} bytes queued`);
  return out;
}

/** unix_sk_entry of an unnamed socket (a socketpair's end). */
export function unixSkEntry(id: number, d: UnixDiag, flags: number, fown: Msg, opts: Msg): Msg {
  const e: Msg = {
    id, ino: d.ino, type: d.type, state: d.state, flags, uflags: 0, backlog: d.wqueue, peer: d.peer,
    fown, opts, name: new Uint8Array(0), ns_id: NET_NS_ID,
  };
  if (d.shutdown) e.shutdown = d.shutdown & 3;
  return e;
}

/**
 * The order CRIU 4.1 writes unix_sk_entry records in: a socket whose peer was not met yet waits,
 * and is written right after that peer. One per dump (FileRegistry).
 */
export class UnixOrder {
  private readonly waiting = new Map<number, Array<() => void>>();
  private readonly seen = new Set<number>();

  /** `write()` now, or once the peer `peer` of socket `ino` is met. */
  place(ino: number, peer: number, write: () => void): void {
    this.seen.add(ino);
    const after = this.waiting.get(ino);
    if (peer !== 0 && !this.seen.has(peer) && !after) {
      this.waiting.set(peer, [...(this.waiting.get(peer) ?? []), write]);
      return;
    }
    write();
    if (after) {
      this.waiting.delete(ino);
      for (const w of after) w();
    }
  }

  /** Writes whatever still waits (peers in no dumped task are refused before). */
  flush(): void {
    for (const ws of this.waiting.values()) for (const w of ws) w();
    this.waiting.clear();
  }
}
