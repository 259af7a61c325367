/**
 * The receiving page server (`criu page-server`): accepts one dump connection and writes what
 * it receives as pagemap-<id>.img (or pagemap-shmem-<id>.img) + pages-<n>.img into imagesDir,
 * the images a local dump would have written. Also answers PS_IOV_GET from those images, so
 * a lazy-pages daemon can fetch pages from it.
 *
 * Iterations (pre-dump, pre-dump, dump) each go to their own page server and directory, linked
 * to the previous one as `parent` (prevImagesDir): OPEN2 and PARENT answer whether that parent
 * has the pagemap, and the dump side then sends PE_PARENT holes instead of unchanged pages.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { writeImageFile, PE_PARENT, PE_PRESENT, type Msg } from '@criu/images';
import { sys } from '@criu/sys';
import type { Logger } from '../util/log.js';
import {
  PS_IOV, PSI_SIZE, cmdOf, decodePsi, encodeCmd, encodePsi, flagsOf, int32, pagemapFileOf, PageServerError, type Psi,
} from './protocol.js';
import { LocalPages } from './local-pages.js';
import { ParentCoverage } from '../dump/mem-track.js';

export interface PageServerOptions {
  imagesDir: string;
  /** Port to listen on (0 = any free port). */
  port: number;
  /** Address to bind (default all). */
  address?: string;
  /**
   * The previous iteration's images (CRIU's --prev-images-dir, relative to imagesDir): linked as
   * `parent`, so the PE_PARENT holes the dump side sends point at it.
   */
  prevImagesDir?: string;
  log?: Logger;
}

export interface PageServerStats {
  pagemaps: number;
  pagesReceived: number;
  /** Pages the dump side left in the parent images (PE_PARENT holes). */
  pagesParent: number;
  pagesServed: number;
}

export interface PageServerHandle {
  /** The port actually bound. */
  port: number;
  /** Settles when the dump side has closed (FLUSH_N_CLOSE or EOF); rejects on a protocol error. */
  done: Promise<PageServerStats>;
  close(): void;
}

interface OpenXfer {
  dst: bigint;
  file: string;
  pagesId: number;
  pagesFd: number;
  entries: Msg[];
  /** What the parent's pagemap covers, loaded at the first PE_PARENT hole. */
  parent?: ParentCoverage;
}

/** Highest pages-<n>.img already in the directory, so ours never overwrite one. */
function firstFreePagesId(dir: string): number {
  let max = 0;
  for (const f of fs.readdirSync(dir)) {
    const m = /^pages-(\d+)\.img$/.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

export async function startPageServer(opts: PageServerOptions): Promise<PageServerHandle> {
  const imagesDir = path.resolve(opts.imagesDir);
  fs.mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
  const log = opts.log;
  const pageSize = sys.pageSize();
  const stats: PageServerStats = { pagemaps: 0, pagesReceived: 0, pagesParent: 0, pagesServed: 0 };
  if (opts.prevImagesDir !== undefined) {
    const prev = path.resolve(imagesDir, opts.prevImagesDir);
    if (!fs.existsSync(prev) || !fs.statSync(prev).isDirectory()) {
      throw new PageServerError(`no previous images directory ${prev} (--prev-images-dir ${opts.prevImagesDir} is relative to the images dir)`);
    }
    // As a dump does: the path as given, so the chain can be moved as a whole.
    fs.rmSync(path.join(imagesDir, 'parent'), { force: true });
    fs.symlinkSync(opts.prevImagesDir, path.join(imagesDir, 'parent'));
  }
  const summary = () => `${stats.pagesReceived} pages received in ${stats.pagemaps} pagemap(s), ${stats.pagesParent} left in the parent, ${stats.pagesServed} pages served`;
  /** Whether the parent images hold this pagemap (what OPEN2 and PARENT answer). */
  const parentHas = (file: string): boolean => {
    try {
      return fs.statSync(path.join(imagesDir, 'parent', file)).isFile();
    } catch {
      return false;
    }
  };
  let nextPagesId = firstFreePagesId(imagesDir);
  let local: LocalPages | undefined;

  let resolveDone!: (s: PageServerStats) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<PageServerStats>((res, rej) => { resolveDone = res; rejectDone = rej; });

  const server = net.createServer({ pauseOnConnect: false });
  let busy = false;

  server.on('connection', (sock) => {
    if (busy) { sock.destroy(); return; }
    busy = true;
    server.close();
    sock.setNoDelay(true);
    let xfer: OpenXfer | undefined;
    let buf: Buffer = Buffer.alloc(0);
    /** Bytes of page data still owed by the last ADD. */
    let owed = 0;
    let finished = false;
    let flushed = false;
    let queue: Promise<void> = Promise.resolve();

    const closeXfer = async (): Promise<void> => {
      if (!xfer) return;
      const x = xfer;
      xfer = undefined;
      fs.closeSync(x.pagesFd);
      await writeImageFile(path.join(imagesDir, x.file), 'PAGEMAP', x.entries.map((message) => ({ message })));
      stats.pagemaps++;
      log?.info(`page-server: wrote ${x.file} (${x.entries.length - 1} entries, pages-${x.pagesId}.img)`);
    };
    const fail = (e: unknown): void => {
      finished = true;
      const err = e instanceof Error ? e : new Error(String(e));
      log?.error(`page-server: ${err.message}`);
      sock.destroy();
      if (xfer) { try { fs.closeSync(xfer.pagesFd); } catch { /* already closed */ } xfer = undefined; }
      rejectDone(err);
    };

    const handle = async (p: Psi): Promise<void> => {
      const cmd = cmdOf(p.cmd);
      switch (cmd) {
        case PS_IOV.OPEN:
        case PS_IOV.OPEN2: {
          await closeXfer();
          const file = pagemapFileOf(p.dstId);
          // Looked up now: the dump side may share this directory and have written pages images since.
          nextPagesId = Math.max(nextPagesId, firstFreePagesId(imagesDir));
          const pagesId = nextPagesId++;
          const pagesFd = fs.openSync(path.join(imagesDir, `pages-${pagesId}.img`), 'w', 0o600);
          xfer = { dst: p.dstId, file, pagesId, pagesFd, entries: [{ pages_id: pagesId }] };
          const has = parentHas(file);
          log?.debug(`page-server: open ${file} -> pages-${pagesId}.img${has ? ', the parent has it' : ''}`);
          if (cmd === PS_IOV.OPEN2) sock.write(Buffer.from([has ? 1 : 0]));
          return;
        }
        case PS_IOV.PARENT: {
          // Asked by a pre-dump while the tasks are frozen, before it opens the pagemap.
          const has = parentHas(pagemapFileOf(p.dstId));
          log?.debug(`page-server: parent ${has ? 'has' : 'lacks'} ${pagemapFileOf(p.dstId)}`);
          sock.write(int32(has ? 1 : 0));
          return;
        }
        case PS_IOV.ADD:
        case PS_IOV.HOLE:
        case PS_IOV.ADD_F: {
          const flags = cmd === PS_IOV.ADD_F ? flagsOf(p.cmd) : cmd === PS_IOV.ADD ? PE_PRESENT : PE_PARENT;
          if (!xfer || xfer.dst !== p.dstId) throw new PageServerError(`pages for dst_id 0x${p.dstId.toString(16)} without an open pagemap`);
          const last = xfer.entries[xfer.entries.length - 1];
          // Consecutive pieces of one run become one pagemap entry.
          if (xfer.entries.length > 1 && Number(last.flags) === flags && BigInt(last.vaddr as bigint) + BigInt(Number(last.nr_pages) * pageSize) === p.vaddr) {
            last.nr_pages = Number(last.nr_pages) + p.nrPages;
          } else {
            xfer.entries.push({ vaddr: p.vaddr, nr_pages: p.nrPages, flags });
          }
          if (flags & PE_PRESENT) {
            owed = p.nrPages * pageSize;
            stats.pagesReceived += p.nrPages;
          } else if (flags & PE_PARENT) {
            // As CRIU: a hole is checked against the parent's pagemap when there is one.
            if (xfer.parent === undefined && parentHas(xfer.file)) xfer.parent = ParentCoverage.ofFile(path.join(imagesDir, 'parent', xfer.file), pageSize);
            const end = p.vaddr + BigInt(p.nrPages * pageSize);
            if (xfer.parent && xfer.parent.split(p.vaddr, end).some((piece) => !piece.covered)) {
              throw new PageServerError(`PE_PARENT hole 0x${p.vaddr.toString(16)}-0x${end.toString(16)} of ${xfer.file} is not in the parent's ${xfer.file}`);
            }
            stats.pagesParent += p.nrPages;
          }
          return;
        }
        case PS_IOV.FLUSH:
        case PS_IOV.FLUSH_N_CLOSE:
          await closeXfer();
          flushed = true;
          sock.write(int32(0));
          if (cmd === PS_IOV.FLUSH_N_CLOSE) {
            finished = true;
            sock.end();
            log?.info(`page-server: done, ${summary()}`);
            resolveDone(stats);
          }
          return;
        case PS_IOV.GET: {
          local ??= new LocalPages(imagesDir, pageSize);
          const got = local.read(Number(p.dstId), p.vaddr, p.nrPages);
          const reply: Psi = { cmd: encodeCmd(PS_IOV.ADD_F, PE_PRESENT), nrPages: got ? got.length / pageSize : 0, vaddr: p.vaddr, dstId: p.dstId };
          sock.write(encodePsi(reply));
          if (got) { sock.write(got); stats.pagesServed += got.length / pageSize; }
          return;
        }
        default:
          throw new PageServerError(`unknown command 0x${p.cmd.toString(16)}`);
      }
    };

    const consume = async (): Promise<void> => {
      while (!finished) {
        if (owed > 0) {
          if (!buf.length) return;
          const n = Math.min(owed, buf.length);
          let w = 0;
          while (w < n) w += fs.writeSync(xfer!.pagesFd, buf, w, n - w);
          buf = buf.subarray(n);
          owed -= n;
          continue;
        }
        if (buf.length < PSI_SIZE) return;
        const p = decodePsi(buf);
        buf = buf.subarray(PSI_SIZE);
        await handle(p);
      }
    };

    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      sock.pause();
      queue = queue.then(consume).then(() => { if (!finished) sock.resume(); }, fail);
    });
    sock.on('end', () => {
      queue = queue.then(async () => {
        if (finished) return;
        finished = true;
        if (owed > 0 || buf.length) throw new PageServerError('the dump side closed the connection in the middle of a message');
        if (!flushed) throw new PageServerError('the dump side closed the connection without flushing (PS_IOV_FLUSH)');
        await closeXfer();
        // (CRIU's pre-dump flushes, then closes without FLUSH_N_CLOSE.)
        log?.info(`page-server: done (connection closed), ${summary()}`);
        resolveDone(stats);
      }).catch(fail);
    });
    sock.on('error', (e) => { if (!finished) fail(e); });
  });

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port, opts.address, () => { server.off('error', rej); res(); });
  });
  const port = (server.address() as net.AddressInfo).port;
  log?.info(`page-server: listening on ${opts.address ?? '*'}:${port}`);
  return { port, done, close: () => server.close() };
}
