/**
 * TCP and UDP sockets that need no TCP_REPAIR (listeners, unconnected sockets): inet_sk_entry
 * (sk-inet.proto) from inet_diag (state, addresses, ports, a listener's backlog) and getsockopt
 * on the dumper's copy of the descriptor, as CRIU 4.1 dumps them.
 */
import * as os from 'node:os';
import { sys } from '@criu/sys';
import type { Msg } from '@criu/images';
import { getInt, sockOpts } from './files-unix.js';

const AF_NETLINK = 16, SOCK_DGRAM = 2, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000, NETLINK_SOCK_DIAG = 4;
export const AF_INET = 2, AF_INET6 = 10, IPPROTO_TCP = 6, IPPROTO_UDP = 17;
const SOCK_DIAG_BY_FAMILY = 20, NLM_F_REQUEST = 1, NLM_F_DUMP = 0x300, NLMSG_ERROR = 2, NLMSG_DONE = 3;
const SOL_IP = 0, IP_FREEBIND = 15, SOL_IPV6 = 41, IPV6_V6ONLY = 26, IPV6_FREEBIND = 78;
const SOL_TCP = 6, TCP_NODELAY = 1, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5, TCP_KEEPCNT = 6, TCP_CORK = 3;
/** The net namespace id dump.ts writes in inventory.img (net_ns_id). */
const NET_NS_ID = 2;

export interface InetDiag {
  family: number; state: number; sport: number; dport: number;
  /** Addresses as CRIU keeps them: the network-order bytes read as native 32-bit words. */
  src: number[]; dst: number[];
  rqueue: number; wqueue: number; ino: number;
}

/** What inet_diag tells about the socket with inode `ino` (family AF_INET/AF_INET6, proto TCP/UDP). */
export function inetDiag(family: number, proto: number, ino: number): InetDiag {
  if (os.endianness() === 'BE') throw new Error('inet_diag parsing is little-endian only for now');
  const nl = Number(sys.syscall('socket', AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  try {
    const req = Buffer.alloc(16 + 56);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(family, 16);
    req.writeUInt8(proto, 17);
    req.writeUInt32LE(0xffffffff, 20); // every state
    sys.syscall('sendto', nl, req, req.length, 0, null, 0);
    const buf = Buffer.alloc(32768);
    const words = family === AF_INET6 ? 4 : 1;
    let found: InetDiag | undefined;
    for (;;) {
      const n = Number(sys.syscall('recvfrom', nl, buf, buf.length, 0, null, null));
      if (n < 16) throw new Error(`short inet_diag answer (${n} bytes)`);
      for (let at = 0; at + 16 <= n;) {
        const len = buf.readUInt32LE(at), type = buf.readUInt16LE(at + 4);
        if (len < 16) throw new Error('bad netlink message length');
        if (type === NLMSG_DONE) {
          if (!found) throw new Error(`socket ${ino} is not among the ${proto === IPPROTO_TCP ? 'TCP' : 'UDP'} sockets of family ${family}`);
          return found;
        }
        if (type === NLMSG_ERROR) throw new Error(`inet_diag: errno ${-buf.readInt32LE(at + 16)}`);
        const m = at + 16;
        if (!found && buf.readUInt32LE(m + 68) === ino >>> 0) {
          const addr = (o: number) => Array.from({ length: words }, (_, i) => buf.readUInt32LE(m + o + 4 * i));
          found = {
            family: buf.readUInt8(m), state: buf.readUInt8(m + 1), sport: buf.readUInt16BE(m + 4), dport: buf.readUInt16BE(m + 6),
            src: addr(8), dst: addr(24), rqueue: buf.readUInt32LE(m + 56), wqueue: buf.readUInt32LE(m + 60), ino,
          };
        }
        at += (len + 3) & ~3;
      }
    }
  } finally {
    sys.close(nl);
  }
}

const TCP_LISTEN = 10, TCP_CLOSE = 7;

/**
 * Why the socket inet_diag described cannot be dumped (undefined when it can), once the task is
 * frozen: the /proc check before freezing cannot see a connection that arrived since.
 */
export function inetDiagRefusal(d: InetDiag, proto: number): string | undefined {
  if (proto === IPPROTO_TCP && d.state === TCP_LISTEN) {
    return d.rqueue > 0 ? `is not supported yet (listening with ${d.rqueue} connection(s) waiting in its accept queue)` : undefined;
  }
  if (d.state !== TCP_CLOSE) return `is not supported yet (state ${d.state}: ${proto === IPPROTO_TCP ? 'established connections need TCP_REPAIR' : 'connected UDP socket'})`;
  if (proto === IPPROTO_UDP && d.rqueue > 0) return `is not supported yet (${d.rqueue} bytes of datagrams queued)`;
  return undefined;
}

/** inet_sk_entry of TCP or UDP socket `fd` (our copy), as CRIU 4.1 writes it. */
export function inetSkEntry(id: number, fd: number, d: InetDiag, proto: number, flags: number, fown: Msg): Msg {
  const type = proto === IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  const opts = sockOpts(fd, true);
  if (proto === IPPROTO_TCP && opts.so_keepalive) {
    opts.tcp_keepcnt = getInt(fd, TCP_KEEPCNT, SOL_TCP);
    opts.tcp_keepidle = getInt(fd, TCP_KEEPIDLE, SOL_TCP);
    opts.tcp_keepintvl = getInt(fd, TCP_KEEPINTVL, SOL_TCP);
  }
  const v6 = d.family === AF_INET6;
  const ipOpts: Msg = {};
  if (getInt(fd, v6 ? IPV6_FREEBIND : IP_FREEBIND, v6 ? SOL_IPV6 : SOL_IP)) ipOpts.freebind = true;
  const e: Msg = {
    id, ino: d.ino, family: d.family, type, proto, state: d.state, src_port: d.sport, dst_port: d.dport, flags,
    backlog: d.wqueue, src_addr: d.src, dst_addr: d.dst, fown, opts,
  };
  if (v6) e.v6only = getInt(fd, IPV6_V6ONLY, SOL_IPV6) !== 0;
  e.ip_opts = ipOpts;
  e.ns_id = NET_NS_ID;
  if (proto === IPPROTO_TCP) {
    const tcp: Msg = {};
    if (getInt(fd, TCP_CORK, SOL_TCP)) tcp.cork = true;
    if (getInt(fd, TCP_NODELAY, SOL_TCP)) tcp.nodelay = true;
    e.tcp_opts = tcp;
  }
  return e;
}
