/**
 * The sending side of the page server protocol (`criu dump --page-server`), and the PS_IOV_GET
 * requests of a lazy-pages daemon. A plain blocking TCP socket made with syscalls, so the dump
 * can stream pages synchronously between parasite calls.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import { PS_IOV, PSI_SIZE, cmdOf, decodePsi, encodeCmd, encodeDst, encodePsi, readInt32, PageServerError } from './protocol.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

function sockaddrIn(address: string, port: number): Buffer {
  const a = address === 'localhost' ? '127.0.0.1' : address;
  const parts = a.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new PageServerError(`page server address ${address}: only numeric IPv4 addresses are supported`);
  }
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new PageServerError(`bad page server port ${port}`);
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0); // sa_family is host order (both our arches are little-endian)
  b.writeUInt16BE(port, 2);
  Buffer.from(parts).copy(b, 4);
  return b;
}

export class PageServerClient {
  private constructor(readonly fd: number, readonly where: string) {}

  static connect(address: string, port: number): PageServerClient {
    const sa = sockaddrIn(address, port);
    const fd = Number(sys.syscall('socket', AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    try {
      sys.syscall('connect', fd, sa, sa.length);
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      sys.trySyscall('setsockopt', fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
    } catch (e) {
      fs.closeSync(fd);
      throw new PageServerError(`cannot connect to the page server at ${address}:${port}: ${(e as Error).message}`, { cause: e });
    }
    return new PageServerClient(fd, `${address}:${port}`);
  }

  send(buf: Uint8Array): void {
    let done = 0;
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done);
  }

  private recv(n: number): Buffer {
    const b = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const got = fs.readSync(this.fd, b, done, n - done, null);
      if (got <= 0) throw new PageServerError(`the page server at ${this.where} closed the connection`);
      done += got;
    }
    return b;
  }

  /** Starts a pagemap on the receiver; returns whether it has a parent for it. */
  open(type: number, id: number): boolean {
    this.send(encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: encodeDst(type, id) }));
    return this.recv(1)[0] !== 0;
  }

  /** One pagemap entry; PE_PRESENT entries must be followed by their pages (send()). */
  add(type: number, id: number, vaddr: bigint, nrPages: number, flags: number): void {
    this.send(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, flags), nrPages, vaddr, dstId: encodeDst(type, id) }));
  }

  /** Lazy pages: asks for nrPages at vaddr of task pid; returns what the server had (maybe fewer pages). */
  get(pid: number, vaddr: bigint, nrPages: number, pageSize: number): { vaddr: bigint; data: Buffer } | undefined {
    this.send(encodePsi({ cmd: PS_IOV.GET, nrPages, vaddr, dstId: BigInt(pid) }));
    const p = decodePsi(this.recv(PSI_SIZE));
    if (cmdOf(p.cmd) !== PS_IOV.ADD_F && cmdOf(p.cmd) !== PS_IOV.ADD) throw new PageServerError(`unexpected reply 0x${p.cmd.toString(16)} to PS_IOV_GET`);
    if (p.nrPages === 0) return undefined;
    return { vaddr: p.vaddr, data: this.recv(p.nrPages * pageSize) };
  }

  /** Ends the session (PS_IOV_FLUSH_N_CLOSE) and returns the receiver's status (0 = all stored). */
  close(): number {
    try {
      this.send(encodePsi({ cmd: PS_IOV.FLUSH_N_CLOSE, nrPages: 0, vaddr: 0n, dstId: 0n }));
      return readInt32(this.recv(4));
    } finally {
      this.destroy();
    }
  }

  destroy(): void {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
  }
}
