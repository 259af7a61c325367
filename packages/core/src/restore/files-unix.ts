/**
 * Unix socketpairs rebuilt in the restorer from unix_sk_entry records: one socketpair per pair
 * of entries that name each other as peers (a lone end gets a socketpair whose other end is
 * closed once its data is queued), the packets of sk-queues.img sent from the other end in their
 * order, then buffer sizes, timeouts, flags and shutdowns. The tasks take them with pidfd_getfd.
 */
import { sys, SOCKOPT } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';

const AF_UNIX = 1, SOCK_CLOEXEC = 0o2000000, SOL_SOCKET = 1;
const SO_SNDBUF = 7, SO_RCVBUF = 8, SO_PRIORITY = 12, SO_SNDBUFFORCE = 32, SO_RCVBUFFORCE = 33, SO_PASSSEC = 34;
const F_SETFL = 4;
const MSG_NOSIGNAL = 0x4000;

function getInt(fd: number, opt: number): number {
  const v = Buffer.alloc(4), l = Buffer.alloc(4);
  l.writeUInt32LE(4);
  sys.syscall('getsockopt', fd, SOL_SOCKET, opt, v, l);
  return v.readInt32LE(0);
}

function setInt(fd: number, opt: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  sys.syscall('setsockopt', fd, SOL_SOCKET, opt, v, 4);
}

function setTimeval(fd: number, opt: number, sec: unknown, usec: unknown): void {
  const s = BigInt((sec as bigint | number | undefined) ?? 0n), u = BigInt((usec as bigint | number | undefined) ?? 0n);
  if (s === 0n && u === 0n) return;
  const v = Buffer.alloc(16);
  v.writeBigInt64LE(s, 0);
  v.writeBigInt64LE(u, 8);
  sys.syscall('setsockopt', fd, SOL_SOCKET, opt, v, 16);
}

/** Buffer sizes and the options a socketpair's end can carry. */
function applyOpts(fd: number, o: Msg | undefined): void {
  if (!o) return;
  // The kernel doubles what is set; FORCE passes the limits (root), as CRIU does.
  if (o.so_sndbuf !== undefined && getInt(fd, SO_SNDBUF) !== Number(o.so_sndbuf)) setInt(fd, SO_SNDBUFFORCE, Number(o.so_sndbuf) / 2);
  if (o.so_rcvbuf !== undefined && getInt(fd, SO_RCVBUF) !== Number(o.so_rcvbuf)) setInt(fd, SO_RCVBUFFORCE, Number(o.so_rcvbuf) / 2);
  setTimeval(fd, SOCKOPT.SO_SNDTIMEO, o.so_snd_tmo_sec, o.so_snd_tmo_usec);
  setTimeval(fd, SOCKOPT.SO_RCVTIMEO, o.so_rcv_tmo_sec, o.so_rcv_tmo_usec);
  if (o.so_priority) setInt(fd, SO_PRIORITY, Number(o.so_priority));
  if (o.so_rcvlowat !== undefined && Number(o.so_rcvlowat) > 1) setInt(fd, SOCKOPT.SO_RCVLOWAT, Number(o.so_rcvlowat));
  if (o.so_passcred) setInt(fd, SOCKOPT.SO_PASSCRED, 1);
  if (o.so_passsec) setInt(fd, SO_PASSSEC, 1);
}

function send(fd: number, data: Buffer, stream: boolean): void {
  let off = 0;
  do {
    const n = Number(sys.syscall('sendto', fd, data.subarray(off), data.length - off, MSG_NOSIGNAL, null, 0));
    off += n;
  } while (stream && off < data.length);
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
  for (const id of ids) {
    if (out.has(id)) continue;
    const e = entries.get(id)!;
    const type = Number(e.type);
    const ino = Number(e.ino);
    const peer = Number(e.peer ?? 0) ? byIno.get(Number(e.peer)) : undefined;
    if (Number(e.peer ?? 0) && !peer) {
      throw new RestoreError('files', `unix socket ${ino} (file ${id}): its peer ${e.peer} is in no image`, { file: 'files.img', field: 'usk.peer', hint: 'only socketpairs whose both ends were dumped can be restored' });
    }
    if (peer && Number(peer.e.peer) !== ino) throw new RestoreError('files', `unix socket ${ino}: its peer ${e.peer} names ${peer.e.peer} as its own peer`, { file: 'files.img', field: 'usk.peer' });
    const pair = Buffer.alloc(8);
    try {
      sys.syscall('socketpair', AF_UNIX, type | SOCK_CLOEXEC, 0, pair);
    } catch (err) {
      throw new RestoreError('files', `unix socket ${ino}: socketpair: ${(err as Error).message}`, { cause: err, file: 'files.img', field: 'usk.type' });
    }
    const a = own(pair.readInt32LE(0)), b = pair.readInt32LE(4);
    out.set(id, a);
    made.push({ id, e, fd: a });
    const stream = type === 1;
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
