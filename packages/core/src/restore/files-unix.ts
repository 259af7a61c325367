/**
 * Unix sockets rebuilt in the restorer from unix_sk_entry records: listeners bound to their
 * name (a stale socket file at the path removed first, its mode and owner set back) and
 * listening; other bound sockets bound; a stream connection accepted by a listener made again
 * by connecting to the restored listener and accepting; one socketpair per other pair of entries
 * that name each other as peers (a lone end gets a socketpair whose other end is closed once its
 * data is queued). The packets of sk-queues.img are sent to each socket in their order (from its
 * peer, or from a throwaway socket to its name), then buffer sizes, timeouts, flags and
 * shutdowns. The tasks take them with pidfd_getfd.
 */
import * as fs from 'node:fs';
import { sys, SOCKOPT } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';

const AF_UNIX = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1, SOL_TCP = 6;
const TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6;
const SO = SOCKOPT;
const F_SETFL = 4;
const MSG_NOSIGNAL = 0x4000;

function getInt(fd: number, opt: number): number {
  const v = Buffer.alloc(4), l = Buffer.alloc(4);
  l.writeUInt32LE(4);
  sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, l);
  return v.readInt32LE(0);
}

export function setInt(fd: number, opt: number, value: number, level = SOL_SOCKET): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  sys.syscall('setsockopt', fd, level, opt, v, 4);
}

function setTimeval(fd: number, opt: number, sec: unknown, usec: unknown): void {
  const s = BigInt((sec as bigint | number | undefined) ?? 0n), u = BigInt((usec as bigint | number | undefined) ?? 0n);
  if (s === 0n && u === 0n) return;
  const v = Buffer.alloc(16);
  v.writeBigInt64LE(s, 0);
  v.writeBigInt64LE(u, 8);
  sys.syscall('setsockopt', fd, SOL_SOCKET, opt, v, 16);
}

/**
 * Buffer sizes and the options of sk_opts_entry (those set before bind, SO_REUSEADDR and
 * SO_REUSEPORT, are set by the caller when they matter).
 */
export function applyOpts(fd: number, o: Msg | undefined): void {
  if (!o) return;
  // The kernel doubles what is set; FORCE passes the limits (root), as CRIU does.
  if (o.so_sndbuf !== undefined && getInt(fd, SO.SO_SNDBUF) !== Number(o.so_sndbuf)) setInt(fd, SO.SO_SNDBUFFORCE, Number(o.so_sndbuf) / 2);
  if (o.so_rcvbuf !== undefined && getInt(fd, SO.SO_RCVBUF) !== Number(o.so_rcvbuf)) setInt(fd, SO.SO_RCVBUFFORCE, Number(o.so_rcvbuf) / 2);
  setTimeval(fd, SO.SO_SNDTIMEO, o.so_snd_tmo_sec, o.so_snd_tmo_usec);
  setTimeval(fd, SO.SO_RCVTIMEO, o.so_rcv_tmo_sec, o.so_rcv_tmo_usec);
  if (o.so_priority) setInt(fd, SO.SO_PRIORITY, Number(o.so_priority));
  if (o.so_rcvlowat !== undefined && Number(o.so_rcvlowat) > 1) setInt(fd, SO.SO_RCVLOWAT, Number(o.so_rcvlowat));
  if (o.so_passcred) setInt(fd, SO.SO_PASSCRED, 1);
  if (o.so_passsec) setInt(fd, SO.SO_PASSSEC, 1);
  if (o.so_mark) setInt(fd, SO.SO_MARK, Number(o.so_mark));
  if (o.so_dontroute) setInt(fd, SO.SO_DONTROUTE, 1);
  if (o.so_no_check) setInt(fd, SO.SO_NO_CHECK, 1);
  if (o.so_broadcast) setInt(fd, SO.SO_BROADCAST, 1);
  if (o.so_oobinline) setInt(fd, SO.SO_OOBINLINE, 1);
  if (o.so_keepalive) {
    setInt(fd, SO.SO_KEEPALIVE, 1);
    if (o.tcp_keepcnt) setInt(fd, TCP_KEEPCNT, Number(o.tcp_keepcnt), SOL_TCP);
    if (o.tcp_keepidle) setInt(fd, TCP_KEEPIDLE, Number(o.tcp_keepidle), SOL_TCP);
    if (o.tcp_keepintvl) setInt(fd, TCP_KEEPINTVL, Number(o.tcp_keepintvl), SOL_TCP);
  }
  if (o.so_buf_lock) setInt(fd, SO.SO_BUF_LOCK, Number(o.so_buf_lock));
}

function send(fd: number, data: Buffer, stream: boolean): void {
  let off = 0;
  do {
    const n = Number(sys.syscall('sendto', fd, data.subarray(off), data.length - off, MSG_NOSIGNAL, null, 0));
    off += n;
  } while (stream && off < data.length);
}

const LISTEN = 10, ESTABLISHED = 1;

/** sockaddr_un of a unix_sk_entry name (path bytes as dumped, or NUL + abstract name). */
function sockaddrUn(name: Buffer): Buffer {
  const a = Buffer.alloc(2 + name.length);
  a.writeUInt16LE(AF_UNIX, 0);
  name.copy(a, 2);
  return a;
}

function nameOf(e: Msg): Buffer {
  const n = e.name as Uint8Array | undefined;
  return n ? Buffer.from(n) : Buffer.alloc(0);
}

/** The path of a path name (trailing NULs dropped), undefined for an abstract one. */
function pathOf(name: Buffer): string | undefined {
  if (name.length === 0 || name[0] === 0) return undefined;
  let end = name.length;
  while (end > 0 && name[end - 1] === 0) end--;
  return name.subarray(0, end).toString('latin1');
}

function nameText(name: Buffer): string {
  return pathOf(name) ?? `@${name.subarray(1).toString('latin1')}`;
}

/**
 * Binds `fd` to the name of entry `e`: a socket file left at the path by the dumped socket is
 * removed first (a file of another kind is not), and the new one gets the mode and owner of
 * file_perms.
 */
function bindName(fd: number, e: Msg, id: number): void {
  const name = nameOf(e);
  const ino = Number(e.ino);
  const where = { file: 'files.img', field: 'usk.name' };
  if (name.length > 108) throw new RestoreError('files', `unix socket ${ino} (file ${id}): its name is ${name.length} bytes long`, where);
  const file = pathOf(name);
  if (file !== undefined) {
    if (!file.startsWith('/') || e.name_dir) {
      throw new RestoreError('files', `unix socket ${ino} (file ${id}): the relative name ${file} is not supported yet`, { ...where, field: e.name_dir ? 'usk.name_dir' : 'usk.name' });
    }
    if (e.deleted) throw new RestoreError('files', `unix socket ${ino} (file ${id}): bound to the removed file ${file}: not supported yet`, { ...where, field: 'usk.deleted' });
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(file); } catch { st = undefined; }
    if (st?.isSocket()) fs.unlinkSync(file);
    else if (st) throw new RestoreError('files', `unix socket ${ino} (file ${id}): ${file} exists and is not a socket`, { ...where, hint: 'move it away: the socket is bound at that path' });
  }
  const addr = sockaddrUn(name);
  const r = sys.trySyscall('bind', fd, addr, addr.length);
  if (r.errno !== 0) throw new RestoreError('files', `unix socket ${ino} (file ${id}): cannot bind to ${nameText(name)} (errno ${r.errno})`, { ...where, hint: r.errno === 98 ? 'another socket holds that name' : undefined });
  const perms = e.file_perms as Msg | undefined;
  if (file !== undefined && perms) {
    try {
      fs.chmodSync(file, Number(perms.mode) & 0o7777);
      fs.chownSync(file, Number(perms.uid), Number(perms.gid));
    } catch (err) {
      throw new RestoreError('files', `unix socket ${ino} (file ${id}): cannot set the mode and owner of ${file}: ${(err as Error).message}`, { cause: err, file: 'files.img', field: 'usk.file_perms' });
    }
  }
}

function newSocket(type: number, ino: number, id: number): number {
  try {
    return Number(sys.syscall('socket', AF_UNIX, type | SOCK_CLOEXEC, 0));
  } catch (err) {
    throw new RestoreError('files', `unix socket ${ino} (file ${id}): socket: ${(err as Error).message}`, { cause: err, file: 'files.img', field: 'usk.type' });
  }
}

/** Sends `packets` to the socket bound to `name` from a throwaway unbound datagram socket. */
function sendToName(name: Buffer, type: number, packets: Buffer[]): void {
  if (!packets.length) return;
  const s = Number(sys.syscall('socket', AF_UNIX, type | SOCK_CLOEXEC, 0));
  try {
    const addr = sockaddrUn(name);
    for (const p of packets) sys.syscall('sendto', s, p, p.length, MSG_NOSIGNAL, addr, addr.length);
  } finally {
    sys.close(s);
  }
}

/**
 * Our descriptor for each file id of `ids` that is a unix socket (`entries`: every unix_sk_entry
 * of files.img by file id; `queues`: sk-queues.img packets by id_for).
 */
export function createUnixSockets(ids: number[], entries: Map<number, Msg>, queues: Map<number, Buffer[]>, own: (fd: number) => number): Map<number, number> {
  const byIno = new Map<number, { id: number; e: Msg }>();
  for (const [id, e] of entries) byIno.set(Number(e.ino), { id, e });
  const out = new Map<number, number>();
  const made: Array<{ id: number; e: Msg; fd: number }> = [];
  const sends: Array<() => void> = [];
  const closeAfter: number[] = [];
  const wanted = new Set(ids);
  const listenerByName = new Map<string, number>();
  // 1. listeners, so that the connections they accepted can be made again.
  for (const id of ids) {
    const e = entries.get(id)!;
    if (Number(e.state) !== LISTEN) continue;
    const fd = own(newSocket(Number(e.type), Number(e.ino), id));
    bindName(fd, e, id);
    sys.syscall('listen', fd, Number(e.backlog ?? 0));
    out.set(id, fd);
    made.push({ id, e, fd });
    if (nameOf(e).length) listenerByName.set(nameOf(e).toString('hex'), fd);
  }
  const isAccepted = (e: Msg) => Number(e.state) !== LISTEN && nameOf(e).length > 0 && listenerByName.has(nameOf(e).toString('hex'));
  for (const id of ids) {
    if (out.has(id)) continue;
    const e = entries.get(id)!;
    const type = Number(e.type);
    const ino = Number(e.ino);
    const stream = type !== 2;
    const peer = Number(e.peer ?? 0) ? byIno.get(Number(e.peer)) : undefined;
    if (Number(e.peer ?? 0) && !peer) {
      throw new RestoreError('files', `unix socket ${ino} (file ${id}): its peer ${e.peer} is in no image`, { file: 'files.img', field: 'usk.peer', hint: 'only connections whose both ends were dumped can be restored' });
    }
    if (peer && Number(peer.e.peer) !== ino) throw new RestoreError('files', `unix socket ${ino}: its peer ${e.peer} names ${peer.e.peer} as its own peer`, { file: 'files.img', field: 'usk.peer' });
    if (peer && !wanted.has(peer.id)) throw new RestoreError('files', `unix socket ${ino} (file ${id}): its peer ${e.peer} (file ${peer.id}) is open in no restored task`, { file: 'files.img', field: 'usk.peer' });
    if (peer && (nameOf(e).length || nameOf(peer.e).length)) {
      // A connection a listener accepted: connect to the restored listener and accept it.
      const [acc, cli] = isAccepted(e) ? [{ id, e }, peer] : isAccepted(peer.e) ? [peer, { id, e }] : [undefined, undefined];
      if (!acc || !cli) {
        throw new RestoreError('files', `unix socket ${ino} (file ${id}): connected to ${peer.e.ino} and bound to ${nameText(nameOf(e).length ? nameOf(e) : nameOf(peer.e))}, but no listener of that name is restored`, { file: 'files.img', field: 'usk.name', hint: 'only connections accepted by a listener that was dumped too can be restored' });
      }
      const listener = listenerByName.get(nameOf(acc.e).toString('hex'))!;
      const c = own(newSocket(type, Number(cli.e.ino), cli.id));
      if (nameOf(cli.e).length) bindName(c, cli.e, cli.id);
      const addr = sockaddrUn(nameOf(acc.e));
      const r = sys.trySyscall('connect', c, addr, addr.length);
      if (r.errno !== 0) throw new RestoreError('files', `unix socket ${cli.e.ino} (file ${cli.id}): cannot connect to the listener ${nameText(nameOf(acc.e))} (errno ${r.errno})`, { file: 'files.img', field: 'usk.peer' });
      const a = own(Number(sys.syscall('accept4', listener, null, null, SOCK_CLOEXEC)));
      out.set(cli.id, c);
      out.set(acc.id, a);
      made.push({ id: cli.id, e: cli.e, fd: c }, { id: acc.id, e: acc.e, fd: a });
      sends.push(() => { for (const p of queues.get(cli.id) ?? []) send(a, p, stream); });
      sends.push(() => { for (const p of queues.get(acc.id) ?? []) send(c, p, stream); });
      continue;
    }
    if (!peer && nameOf(e).length) {
      // A bound socket without a peer: its queued packets come from a throwaway socket.
      if (type !== 2 && (queues.get(id)?.length ?? 0) > 0) {
        throw new RestoreError('files', `unix socket ${ino} (file ${id}): data queued on an unconnected stream socket`, { file: 'sk-queues.img', field: 'id_for' });
      }
      const fd = own(newSocket(type, ino, id));
      bindName(fd, e, id);
      out.set(id, fd);
      made.push({ id, e, fd });
      const name = nameOf(e);
      sends.push(() => sendToName(name, type, queues.get(id) ?? []));
      continue;
    }
    if (!peer && Number(e.state) !== ESTABLISHED && !(queues.get(id)?.length)) {
      // Never connected, nothing queued: a plain socket.
      const fd = own(newSocket(type, ino, id));
      out.set(id, fd);
      made.push({ id, e, fd });
      continue;
    }
    const pair = Buffer.alloc(8);
    try {
      sys.syscall('socketpair', AF_UNIX, type | SOCK_CLOEXEC, 0, pair);
    } catch (err) {
      throw new RestoreError('files', `unix socket ${ino}: socketpair: ${(err as Error).message}`, { cause: err, file: 'files.img', field: 'usk.type' });
    }
    const a = own(pair.readInt32LE(0)), b = pair.readInt32LE(4);
    out.set(id, a);
    made.push({ id, e, fd: a });
    if (peer) {
      own(b);
      out.set(peer.id, b);
      made.push({ id: peer.id, e: peer.e, fd: b });
      sends.push(() => { for (const p of queues.get(id) ?? []) send(b, p, stream); });
      sends.push(() => { for (const p of queues.get(peer.id) ?? []) send(a, p, stream); });
    } else {
      sends.push(() => { for (const p of queues.get(id) ?? []) send(b, p, stream); });
      closeAfter.push(b);
    }
  }
  for (const m of made) applyOpts(m.fd, m.e.opts as Msg | undefined);
  for (const s of sends) s();
  for (const fd of closeAfter) sys.close(fd);
  for (const m of made) {
    sys.syscall('fcntl', m.fd, F_SETFL, Number(m.e.flags ?? 0) & ~3);
    const how = Number(m.e.shutdown ?? 0);
    if (how) sys.syscall('shutdown', m.fd, how - 1);
  }
  return out;
}
