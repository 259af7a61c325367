/**
 * Post-copy migration (`criu dump --lazy-pages`): the dump saves the lazy memory of each task
 * nowhere on disk; the pages stay with the dump process, which then serves them as a page
 * server (PS_IOV_GET) to `criu lazy-pages --page-server` on the restore side.
 */
import * as net from 'node:net';
import type { Logger } from '../util/log.js';
import { PS_IOV, PSI_SIZE, cmdOf, decodePsi, encodeCmd, encodePsi, int32, PageServerError, type Psi } from './protocol.js';
import { PE_PRESENT } from '@criu/images';

interface Piece { vaddr: bigint; nrPages: number; data: Buffer }

/** The pages a post-copy dump kept, by task and address. */
export class PostCopyPages {
  private readonly tasks = new Map<number, Piece[]>();
  pages = 0;

  constructor(readonly pageSize: number) {}

  /** Pages of `pid` at `vaddr` (added in address order per task). */
  add(pid: number, vaddr: bigint, data: Buffer): void {
    let t = this.tasks.get(pid);
    if (!t) this.tasks.set(pid, (t = []));
    const nrPages = data.length / this.pageSize;
    t.push({ vaddr, nrPages, data });
    this.pages += nrPages;
  }

  /** Up to nrPages pages from vaddr (stopping at the end of what was kept there), or undefined. */
  read(pid: number, vaddr: bigint, nrPages: number): Buffer | undefined {
    const t = this.tasks.get(pid);
    if (!t) return undefined;
    const ps = BigInt(this.pageSize);
    let lo = 0, hi = t.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const p = t[mid];
      if (vaddr < p.vaddr) hi = mid - 1;
      else if (vaddr >= p.vaddr + BigInt(p.nrPages) * ps) lo = mid + 1;
      else {
        const skip = Number((vaddr - p.vaddr) / ps);
        const n = Math.min(nrPages, p.nrPages - skip);
        return p.data.subarray(skip * this.pageSize, (skip + n) * this.pageSize);
      }
    }
    return undefined;
  }
}

export interface PostCopyServerOptions {
  port: number;
  address?: string;
  log?: Logger;
}

export interface PostCopyServer {
  port: number;
  /** Settles when the lazy-pages side has closed the session, with the pages it fetched. */
  done: Promise<{ pagesServed: number }>;
  close(): void;
}

/** Listens for one lazy-pages daemon and answers its PS_IOV_GET requests from `store`. */
export async function servePostCopy(store: PostCopyPages, opts: PostCopyServerOptions): Promise<PostCopyServer> {
  const log = opts.log;
  let pagesServed = 0;
  let resolveDone!: (s: { pagesServed: number }) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<{ pagesServed: number }>((res, rej) => { resolveDone = res; rejectDone = rej; });
  const server = net.createServer();
  server.on('connection', (sock) => {
    server.close(); // one restore side
    sock.setNoDelay(true);
    log?.info('post-copy: the lazy-pages daemon connected');
    let buf: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (why: string) => {
      if (finished) return;
      finished = true;
      log?.info(`post-copy: ${why}; ${pagesServed} of ${store.pages} pages served`);
      resolveDone({ pagesServed });
    };
    const handle = (p: Psi): void => {
      switch (cmdOf(p.cmd)) {
        case PS_IOV.GET: {
          const got = store.read(Number(p.dstId), p.vaddr, p.nrPages);
          const n = got ? got.length / store.pageSize : 0;
          sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, PE_PRESENT), nrPages: n, vaddr: p.vaddr, dstId: p.dstId }));
          if (got) { sock.write(got); pagesServed += n; }
          return;
        }
        case PS_IOV.FLUSH:
        case PS_IOV.FLUSH_N_CLOSE:
          sock.write(int32(0));
          if (cmdOf(p.cmd) === PS_IOV.FLUSH_N_CLOSE) { sock.end(); finish('the lazy-pages daemon closed the session'); }
          return;
        default:
          throw new PageServerError(`post-copy page server: unexpected command 0x${p.cmd.toString(16)}`);
      }
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        while (!finished && buf.length >= PSI_SIZE) {
          const p = decodePsi(buf);
          buf = buf.subarray(PSI_SIZE);
          handle(p);
        }
      } catch (e) {
        finished = true;
        sock.destroy();
        rejectDone(e as Error);
      }
    });
    sock.on('end', () => finish('the lazy-pages daemon disconnected'));
    sock.on('error', (e) => { if (!finished) { finished = true; rejectDone(e); } });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port, opts.address, () => { server.off('error', rej); res(); });
  });
  const port = (server.address() as net.AddressInfo).port;
  log?.info(`post-copy: serving ${store.pages} pages on ${opts.address ?? '*'}:${port}`);
  return { port, done, close: () => server.close() };
}
