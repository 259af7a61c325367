/**
 * TCP and UDP sockets rebuilt in the restorer from inet_sk_entry records: the socket, the
 * options that must precede bind (SO_REUSEADDR, SO_REUSEPORT, IPV6_V6ONLY, IP_FREEBIND), bind to
 * the dumped address and port, listen with the dumped backlog, then the other options and the
 * file flags. Only listeners and unconnected sockets: a connection would need TCP_REPAIR.
 * The tasks take them with pidfd_getfd.
 */
import { sys, SOCKOPT } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';
import { applyOpts, setInt } from './files-unix.js';

const AF_INET = 2, AF_INET6 = 10, IPPROTO_TCP = 6, IPPROTO_UDP = 17, SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000;
const TCP_LISTEN = 10, TCP_CLOSE = 7;
const SOL_IP = 0, IP_FREEBIND = 15, SOL_IPV6 = 41, IPV6_V6ONLY = 26, IPV6_FREEBIND = 78;
const SOL_TCP = 6, TCP_NODELAY = 1, TCP_CORK = 3;
const F_SETFL = 4;

/** sockaddr_in / sockaddr_in6 of an address kept as native 32-bit words of network-order bytes. */
function sockaddr(family: number, words: number[], port: number): Buffer {
  if (family === AF_INET) {
    const a = Buffer.alloc(16);
    a.writeUInt16LE(AF_INET, 0);
    a.writeUInt16BE(port, 2);
    a.writeUInt32LE((words[0] ?? 0) >>> 0, 4);
    return a;
  }
  const a = Buffer.alloc(28);
  a.writeUInt16LE(AF_INET6, 0);
  a.writeUInt16BE(port, 2);
  for (let i = 0; i < 4; i++) a.writeUInt32LE((words[i] ?? 0) >>> 0, 8 + 4 * i);
  return a;
}

function addrText(family: number, words: number[], port: number): string {
  const b = sockaddr(family, words, port);
  if (family === AF_INET) return `${[...b.subarray(4, 8)].join('.')}:${port}`;
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(8 + i).toString(16));
  return `[${g.join(':')}]:${port}`;
}

/** Our descriptor of each inet socket of `ids` (`entries`: inet_sk_entry by file id). */
export function createInetSockets(ids: number[], entries: Map<number, Msg>, own: (fd: number) => number): Map<number, number> {
  const out = new Map<number, number>();
  for (const id of ids) {
    const e = entries.get(id)!;
    const ino = Number(e.ino);
    const family = Number(e.family), type = Number(e.type), proto = Number(e.proto), state = Number(e.state);
    const fail = (what: string, field: string, hint?: string): never => {
      throw new RestoreError('files', `inet socket ${ino} (file ${id}): ${what}`, { file: 'files.img', field: `isk.${field}`, hint });
    };
    if (family !== AF_INET && family !== AF_INET6) fail(`family ${family} is not supported`, 'family');
    if (!((type === SOCK_STREAM && proto === IPPROTO_TCP) || (type === SOCK_DGRAM && proto === IPPROTO_UDP))) fail(`type ${type} protocol ${proto} is not supported yet`, 'proto');
    if (state !== TCP_CLOSE && !(proto === IPPROTO_TCP && state === TCP_LISTEN)) {
      fail(`state ${state} is not supported yet`, 'state', proto === IPPROTO_TCP ? 'established TCP connections need TCP_REPAIR' : undefined);
    }
    const src = ((e.src_addr as number[] | undefined) ?? []).map(Number);
    if (src.length !== (family === AF_INET ? 1 : 4) && src.length !== 0) fail(`${src.length} address words for family ${family}`, 'src_addr');
    const port = Number(e.src_port ?? 0);
    const fd = own(Number(sys.syscall('socket', family, type | SOCK_CLOEXEC, proto)));
    const o = e.opts as Msg | undefined;
    if (o?.reuseaddr) setInt(fd, SOCKOPT.SO_REUSEADDR, 1);
    if (o?.so_reuseport) setInt(fd, SOCKOPT.SO_REUSEPORT, 1);
    if (family === AF_INET6 && e.v6only !== undefined) setInt(fd, IPV6_V6ONLY, e.v6only ? 1 : 0, SOL_IPV6);
    if ((e.ip_opts as Msg | undefined)?.freebind) setInt(fd, family === AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, 1, family === AF_INET6 ? SOL_IPV6 : SOL_IP);
    const bound = port !== 0 || src.some((w) => w !== 0);
    if (bound) {
      const a = sockaddr(family, src, port);
      const r = sys.trySyscall('bind', fd, a, a.length);
      if (r.errno !== 0) {
        fail(`cannot bind to ${addrText(family, src, port)} (errno ${r.errno})`, 'src_port',
          r.errno === 98 ? 'another socket holds that address and port (is the dumped task still running?)' : r.errno === 99 ? 'that address is not configured on this machine' : undefined);
      }
    }
    if (state === TCP_LISTEN) {
      const r = sys.trySyscall('listen', fd, Number(e.backlog ?? 0));
      if (r.errno !== 0) fail(`cannot listen (errno ${r.errno})`, 'backlog');
    }
    applyOpts(fd, o);
    const tcp = e.tcp_opts as Msg | undefined;
    if (tcp?.nodelay) setInt(fd, TCP_NODELAY, 1, SOL_TCP);
    if (tcp?.cork) setInt(fd, TCP_CORK, 1, SOL_TCP);
    sys.syscall('fcntl', fd, F_SETFL, Number(e.flags ?? 0) & ~3);
    if (Number(e.shutdown ?? 0)) fail('a shut down socket is not supported yet', 'shutdown');
    out.set(id, fd);
  }
  return out;
}
