/**
 * Unix sockets: unix_sk_entry (sk-unix.proto) from sock_diag (name, peer, queue lengths,
 * shutdown, the inode of a bound path) and getsockopt, and the data queued on each
 * (sk-queues.img), peeked without consuming it (SO_PEEK_OFF + MSG_PEEK), as CRIU 4.1 dumps them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { sys, SOCKOPT, IOCTL } from '@criu/sys';
import type { Msg } from '@criu/images';
import { UnsupportedFileError } from './files-kinds.js';

const AF_NETLINK = 16, AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLMSG_ERROR = 2;
const UDIAG_SHOW_NAME = 1, UDIAG_SHOW_VFS = 2, UDIAG_SHOW_PEER = 4, UDIAG_SHOW_RQLEN = 0x10;
const UNIX_DIAG_NAME = 0, UNIX_DIAG_VFS = 1, UNIX_DIAG_PEER = 2, UNIX_DIAG_RQLEN = 4, UNIX_DIAG_SHUTDOWN = 6;
const SOL_SOCKET = 1;
const MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_CTRUNC = 8;
const SCM_RIGHTS = 1;
const SOCK_STREAM = 1;
/** The net namespace id dump.ts writes in inventory.img (net_ns_id). */
const NET_NS_ID = 2;

export interface UnixDiag {
  type: number; state: number; ino: number; peer: number; name?: Buffer; rqueue: number; wqueue: number; shutdown: number;
  /** The inode of the file a path-bound socket made (UNIX_DIAG_VFS). */
  vfsIno?: number;
}

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
    req.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, 28);
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
      else if (atype === UNIX_DIAG_VFS) d.vfsIno = buf.readUInt32LE(p);
      at += (alen + 3) & ~3;
    }
    return d;
  } finally {
    sys.close(nl);
  }
}

export function getInt(fd: number, opt: number, level = SOL_SOCKET): number {
  const v = Buffer.alloc(4), l = Buffer.alloc(4);
  l.writeUInt32LE(4);
  sys.syscall('getsockopt', fd, level, opt, v, l);
  return v.readInt32LE(0);
}

function getTimeval(fd: number, opt: number): [bigint, bigint] {
  const v = Buffer.alloc(16), l = Buffer.alloc(4);
  l.writeUInt32LE(16);
  sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, l);
  return [v.readBigInt64LE(0), v.readBigInt64LE(8)];
}

/**
 * sk_opts_entry as CRIU 4.1 fills it. `inet`: SO_PASSCRED and SO_PASSSEC are unix/netlink
 * options (recent kernels refuse them on inet sockets), left out.
 */
export function sockOpts(fd: number, inet = false): Msg {
  const SO = SOCKOPT;
  const [sts, stu] = getTimeval(fd, SOCKOPT.SO_SNDTIMEO);
  const [rts, rtu] = getTimeval(fd, SOCKOPT.SO_RCVTIMEO);
  return {
    so_sndbuf: getInt(fd, SO.SO_SNDBUF), so_rcvbuf: getInt(fd, SO.SO_RCVBUF),
    so_snd_tmo_sec: sts, so_snd_tmo_usec: stu, so_rcv_tmo_sec: rts, so_rcv_tmo_usec: rtu,
    reuseaddr: getInt(fd, SO.SO_REUSEADDR) !== 0, so_priority: getInt(fd, SO.SO_PRIORITY), so_rcvlowat: getInt(fd, SO.SO_RCVLOWAT),
    ...(inet ? {} : { so_passcred: getInt(fd, SO.SO_PASSCRED) !== 0, so_passsec: getInt(fd, SO.SO_PASSSEC) !== 0 }),
    so_dontroute: getInt(fd, SO.SO_DONTROUTE) !== 0, so_no_check: getInt(fd, SO.SO_NO_CHECK) !== 0,
    so_reuseport: getInt(fd, SO.SO_REUSEPORT) !== 0, so_broadcast: getInt(fd, SO.SO_BROADCAST) !== 0,
    so_keepalive: getInt(fd, SO.SO_KEEPALIVE) !== 0, so_oobinline: getInt(fd, SO.SO_OOBINLINE), so_buf_lock: getInt(fd, SO.SO_BUF_LOCK),
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
  const oldPeek = getInt(fd, SOCKOPT.SO_PEEK_OFF);
  const setPeek = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); sys.syscall('setsockopt', fd, SOL_SOCKET, SOCKOPT.SO_PEEK_OFF, b, 4); };
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

/**
 * unix_sk_entry of a socket; `perms` the mode and owner of the file a path-bound socket made
 * (a listener's and its accepted sockets' name is the listener's, as sock_diag tells).
 */
export function unixSkEntry(id: number, d: UnixDiag, flags: number, fown: Msg, opts: Msg, perms?: { mode: number; uid: number; gid: number }): Msg {
  const e: Msg = {
    id, ino: d.ino, type: d.type, state: d.state, flags, uflags: 0, backlog: d.wqueue, peer: d.peer,
    fown, opts, name: d.name ? new Uint8Array(d.name) : new Uint8Array(0),
  };
  if (d.shutdown) e.shutdown = d.shutdown & 3;
  if (perms) e.file_perms = { ...perms };
  e.ns_id = NET_NS_ID;
  return e;
}

/** The path of a path-bound socket's name (without its trailing NULs), undefined for abstract or no name. */
export function unixPath(name: Buffer | Uint8Array | undefined): string | undefined {
  if (!name || name.length === 0 || name[0] === 0) return undefined;
  let end = name.length;
  while (end > 0 && name[end - 1] === 0) end--;
  return Buffer.from(name.subarray(0, end)).toString('latin1');
}

/** The name as people read it: a path, or "@name" for an abstract one. */
export function unixNameText(name: Buffer | Uint8Array | undefined): string {
  if (!name || name.length === 0) return '(unnamed)';
  return unixPath(name) ?? `@${Buffer.from(name.subarray(1)).toString('latin1')}`;
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

const UNIX_LISTEN = 10, UNIX_ESTABLISHED = 1;

function sameName(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return !!a && !!b && a.length > 0 && a.equals(b);
}

/**
 * Refuses, before anything is frozen, the unix sockets of the tasks `pids` that restore cannot
 * rebuild: a peer in no dumped task, a listener with connections waiting to be accepted, a
 * stream connection whose accepted end's listener is not dumped too, a datagram socket connected
 * to one that is not connected back, a path whose socket file was removed or replaced.
 */
export function checkUnixSockets(pids: number[]): void {
  const socks = new Map<number, { pid: number; fd: number; link: string }>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile: the freeze reports it
    }
    for (const f of fds) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${f}`); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && !socks.has(Number(m[1]))) socks.set(Number(m[1]), { pid, fd: Number(f), link });
    }
  }
  const diags = new Map<number, UnixDiag>();
  for (const ino of socks.keys()) {
    try {
      diags.set(ino, unixDiag(ino));
    } catch {
      // not a unix socket (sock_diag of AF_UNIX does not know it)
    }
  }
  const listeners = [...diags.values()].filter((d) => d.state === UNIX_LISTEN);
  for (const [ino, d] of diags) {
    const { pid, fd, link } = socks.get(ino)!;
    const refuse = (why: string) => { throw new UnsupportedFileError(pid, fd, link, 'unix socket', `is not supported yet (${why})`); };
    const name = unixNameText(d.name);
    if (d.state === UNIX_LISTEN && d.rqueue > 0) refuse(`listening on ${name} with ${d.rqueue} connection(s) waiting in its accept queue`);
    const file = unixPath(d.name);
    if (file !== undefined && d.vfsIno !== undefined) {
      let st: fs.Stats | undefined;
      try { st = fs.statSync(`/proc/${pid}/root${file}`); } catch { st = undefined; }
      if (!st || st.ino !== d.vfsIno) refuse(`its socket file ${file} was removed or replaced since it was bound`);
    }
    // A connected stream whose peer has no inode: a connection still waiting in a listener's
    // accept queue (a closed peer would have shut both directions down).
    if (!d.peer && d.state === UNIX_ESTABLISHED && d.type !== SOCK_DGRAM && (d.shutdown & 3) !== 3) {
      refuse('connected to a listener that has not accepted the connection yet: its other end is in no dumped task');
    }
    if (!d.peer) continue;
    const peer = diags.get(d.peer);
    if (!peer) refuse(`its peer socket:[${d.peer}] is in no dumped task`);
    if (peer!.peer !== ino) refuse(`connected to ${unixNameText(peer!.name)} (socket:[${d.peer}]), which is not connected back`);
    const accepted = (x: UnixDiag) => x.name?.length && listeners.some((l) => sameName(l.name, x.name));
    if ((d.name?.length || peer!.name?.length) && !accepted(d) && !accepted(peer!)) {
      refuse(`connected to ${unixNameText(peer!.name)}: a connection accepted by a listener that is not dumped, or between two bound sockets`);
    }
  }
}
