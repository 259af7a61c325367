// `criu lazy-pages -D DIR [--page-server --address A --port N] [-d] [--status-fd FD]`: the
// lazy-pages daemon. `criu restore --lazy-pages` hands it each restored task's userfaultfd over
// <work dir>/lazy-pages.socket (SCM_RIGHTS); it serves the faults from the images in DIR (or
// from a page server with PS_IOV_GET), copies the rest once the restore has resumed the tasks,
// and exits when every page is in.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LazyPagesServer, PageServerClient, PS_DEFAULT_PORT, type LazyPagesSink } from '@criu/core';
import { CliUsageError } from '../errors.js';
import { SeqpacketSocket } from '../swrk/socket.js';
import { checkOptions, engineDirs, openLog, optFlag, optString, reportEngineError, type EngineDirs, type OptionPolicy } from './engine.js';
import type { CommandContext } from './types.js';

export const LAZY_SOCKET = 'lazy-pages.socket';

export const LAZY_PAGES_POLICY: OptionPolicy = {
  honoured: ['page-server', 'address', 'port', 'status-fd', 'pidfile'],
  ignored: ['shell-job', 'log-pid'],
};

export function lazySocketPath(dirs: EngineDirs): string {
  return path.join(dirs.workDir, LAZY_SOCKET);
}

/** The restore side: connects to the daemon and hands it each task's userfaultfd. */
export class LazyPagesLink implements LazyPagesSink {
  private constructor(private readonly sock: SeqpacketSocket) {}

  static connect(file: string): LazyPagesLink {
    try {
      return new LazyPagesLink(SeqpacketSocket.connect(file));
    } catch (e) {
      throw new CliUsageError(`can't connect to the lazy-pages daemon at ${file}: ${(e as Error).message} (start \`criu lazy-pages\` first)`);
    }
  }

  async handOver(pid: number, uffd: number, info: { lazyPages: number; ranges: Array<{ start: bigint; end: bigint }> }): Promise<void> {
    const msg = { kind: 'uffd', pid, lazyPages: info.lazyPages, ranges: info.ranges.map((r) => [r.start.toString(), r.end.toString()]) };
    this.sock.send(Buffer.from(JSON.stringify(msg)), [uffd]);
    // The daemon says whether it can serve the task before the restore lets the task run.
    const d = await this.sock.recv(1);
    if (d.closed) throw new Error(`the lazy-pages daemon hung up when handed task ${pid}`);
    const m = JSON.parse(d.data.toString('utf8')) as { kind: string; error?: string };
    if (m.error) throw new Error(`the lazy-pages daemon refused task ${pid}: ${m.error}`);
  }

  resumed(): void {
    this.sock.send(Buffer.from(JSON.stringify({ kind: 'resumed' })));
  }

  /** The daemon's counts now: pages it has copied into the tasks, and pages still to copy. */
  async progress(): Promise<{ copied: number; left: number }> {
    this.sock.send(Buffer.from(JSON.stringify({ kind: 'progress' })));
    const d = await this.sock.recv(1);
    if (d.closed) throw new Error('the lazy-pages daemon closed the connection');
    const m = JSON.parse(d.data.toString('utf8')) as { copied: number; left: number };
    return { copied: m.copied, left: m.left };
  }

  close(): void {
    this.sock.close();
  }
}

export async function runLazyPages(ctx: CommandContext): Promise<number> {
  checkOptions('lazy-pages', ctx.args.options, LAZY_PAGES_POLICY);
  const dirs = engineDirs(ctx);
  if (!fs.existsSync(dirs.imagesDir)) throw new CliUsageError(`can't change directory to ${dirs.imagesDir}: No such file or directory`);
  const log = openLog(ctx, dirs);
  const file = lazySocketPath(dirs);
  let listener: SeqpacketSocket | undefined;
  let remote: PageServerClient | undefined;
  let server: LazyPagesServer | undefined;
  try {
    if (optFlag(ctx, 'page-server')) {
      const address = optString(ctx, 'address');
      if (address === undefined) throw new CliUsageError('--page-server needs --address');
      const port = typeof ctx.args.options.port === 'number' ? ctx.args.options.port : PS_DEFAULT_PORT;
      remote = PageServerClient.connect(address, port);
      log.logger.info(`lazy-pages: pages come from the page server at ${remote.where}`);
    }
    fs.rmSync(file, { force: true });
    listener = SeqpacketSocket.listen(file);
    const pidfile = optString(ctx, 'pidfile');
    if (pidfile !== undefined) fs.writeFileSync(path.resolve(pidfile), `${process.pid}`);
    const sfd = ctx.args.options['status-fd'];
    if (typeof sfd === 'number') { fs.writeSync(sfd, Buffer.from([0])); fs.closeSync(sfd); }
    log.logger.info(`lazy-pages: waiting for the restore on ${file}`);
    const conn = await listener.accept();
    listener.close();
    listener = undefined;
    fs.rmSync(file, { force: true });
    server = new LazyPagesServer({ imagesDir: dirs.imagesDir, remote, log: log.logger });
    let open = true;
    let resumed = false;
    let refused: Error | undefined;
    while (open || server.busy) {
      const { extraReady } = await server.step(open ? conn.fd : undefined);
      if (!extraReady) continue;
      const d = await conn.recv(1);
      if (d.closed) {
        open = false;
        conn.close();
        if (!resumed) log.logger.warn('lazy-pages: the restore went away without resuming the tasks');
        continue;
      }
      const m = JSON.parse(d.data.toString('utf8')) as { kind: string; pid?: number; ranges?: string[][] };
      if (m.kind === 'uffd' && d.fds.length === 1 && typeof m.pid === 'number') {
        try {
          server.addTask(m.pid, d.fds[0], (m.ranges ?? []).map(([s, e]) => ({ start: BigInt(s), end: BigInt(e) })));
          conn.send(Buffer.from(JSON.stringify({ kind: 'ack' })));
        } catch (e) {
          refused ??= e as Error;
          log.logger.error(`lazy-pages: ${(e as Error).message}`);
          conn.send(Buffer.from(JSON.stringify({ kind: 'ack', error: (e as Error).message })));
        }
      } else if (m.kind === 'resumed') {
        resumed = true;
        server.markResumed();
      } else if (m.kind === 'progress') {
        const p = server.progress();
        log.logger.info(`lazy-pages: the restore asks for the counts: ${p.copied} pages copied, ${p.left} left`);
        conn.send(Buffer.from(JSON.stringify({ kind: 'progress', ...p })));
      } else {
        for (const fd of d.fds) fs.closeSync(fd);
        log.logger.warn(`lazy-pages: unexpected message ${d.data.toString('utf8').slice(0, 80)}`);
      }
    }
    if (refused) throw refused;
    const s = server.stats;
    log.logger.info(`lazy-pages: finished: ${s.tasks} task(s), ${s.faults} faults, ${s.pagesOnFault} pages on fault, ${s.pagesBackground} in the background, ${s.zeroPages} zero pages, ${s.pagesAfterResume} after the restore returned`);
    log.flushHeldErrors();
    return 0;
  } catch (err) {
    return reportEngineError(ctx.io, err, log);
  } finally {
    server?.close();
    listener?.close();
    if (remote) { try { remote.close(); } catch { /* the page server is gone */ } }
    log.close();
  }
}
