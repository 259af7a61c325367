// `criu dump -t PID -D DIR [-o LOG] [-v[N]] [--leave-running] [--shell-job] [--lazy-pages --port N]`: the dump engine
// of @criu/core with CRIU's command-line conventions.
import * as fs from 'fs';
import { dump, PostCopyPages, PS_DEFAULT_PORT, servePostCopy, type DumpResult } from '@criu/core';
import { sys } from '@criu/sys';
import { CliUsageError } from '../errors.js';
import { parseCpuCap } from './cpuinfo.js';
import { cgroupMode } from './cgroups.js';
import { checkOptions, engineDirs, openLog, optFlag, optString, progressPrinter, reportEngineError, statusReady, type OptionPolicy } from './engine.js';
import type { CommandContext } from './types.js';
import { externalOf } from './external.js';

export const DUMP_POLICY: OptionPolicy = {
  honoured: ['tree', 'leave-running', 'shell-job', 'display-stats', 'cpu-cap', 'ghost-limit', 'track-mem', 'prev-images-dir', 'auto-dedup', 'page-server', 'address', 'port',
    'lazy-pages', 'status-fd', 'manage-cgroups', 'external', 'ext-mount-map'],
  // They allow resources (sockets, locks, cgroups, ...) that the engine refuses anyway, or
  // tune machinery it does not have; a dump with them is the same dump.
  ignored: [
    'tcp-established', 'skip-in-flight', 'ext-unix-sk', 'file-locks', 'link-remap', 'evasive-devices',
    'ghost-fiemap', 'force-irmap', 'irmap-scan-path', 'cgroup-props', 'cgroup-props-file', 'cgroup-root',
    'cgroup-dump-controller', 'skip-mnt', 'enable-fs', 'timeout', 'log-pid',
    'network-lock', 'file-validation', 'pidfile', 'freeze-cgroup', 'weak-sysctls',
    // restore's options: CRIU accepts them on dump too and does nothing with them
    'restore-detached', 'restore-sibling',
  ],
};

/** `--ghost-limit SIZE` in bytes: a number with an optional K, M or G (powers of 1024), as CRIU reads it. */
export function parseGhostLimit(ctx: CommandContext): bigint | undefined {
  const v = ctx.args.options['ghost-limit'];
  if (v === undefined || v === false) return undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(String(v).trim());
  if (!m) throw new CliUsageError(`invalid --ghost-limit '${String(v)}' (a size: bytes, or a number with K, M or G)`);
  const shift = { '': 0n, K: 10n, M: 20n, G: 30n }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
  return BigInt(m[1]) << shift;
}

/** `--display-stats` as CRIU prints it. */
function statsText(r: DumpResult): string {
  const n = (v: number) => `${v} (0x${v.toString(16)})`;
  const s = r.stats;
  return [
    'Displaying dump stats:',
    `Freezing time: ${s.freezingTimeUs} us`,
    `Frozen time: ${s.frozenTimeUs} us`,
    `Memory dump time: ${s.memdumpTimeUs} us`,
    `Memory write time: ${s.memwriteTimeUs} us`,
    `Memory pages scanned: ${n(s.pagesScanned)}`,
    `Memory pages skipped from parent: ${n(s.pagesSkippedParent)}`,
    `Memory pages written: ${n(s.pagesWritten)}`,
    '',
  ].join('\n');
}

/** `criu pre-dump`: the memory only, tasks left running (iterations: --track-mem, --prev-images-dir). */
export async function runPreDump(ctx: CommandContext): Promise<number> {
  return runDump(ctx, true);
}

export async function runDump(ctx: CommandContext, preDump = false): Promise<number> {
  const pid = ctx.args.options.tree;
  // CRIU: "No pid specified (-t option)"
  if (typeof pid !== 'number') throw new CliUsageError('no pid specified (-t option)');
  if (pid <= 0) throw new CliUsageError(`invalid pid ${pid} (-t option)`);
  const warnings = checkOptions(preDump ? 'pre-dump' : 'dump', ctx.args.options, DUMP_POLICY);
  // The list is checked; cpuinfo.img is written whenever the arch records CPU features (ppc64).
  parseCpuCap(ctx);
  const ghostLimit = parseGhostLimit(ctx);
  const manageCgroups = cgroupMode(ctx);
  const dirs = engineDirs(ctx);
  const external = externalOf(ctx);
  // CRIU wants the directories to exist; the engine creates the images dir, so we do it first
  // for the log file that lives in it.
  try {
    fs.mkdirSync(dirs.imagesDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CliUsageError(`can't create the images directory ${dirs.imagesDir}: ${(err as Error).message}`);
  }
  if (!fs.existsSync(dirs.workDir)) throw new CliUsageError(`can't change directory to ${dirs.workDir}: No such file or directory`);
  let pageServer: { address: string; port: number } | undefined;
  if (optFlag(ctx, 'page-server')) {
    const port = ctx.args.options.port;
    const address = optString(ctx, 'address');
    if (address === undefined) throw new CliUsageError('--page-server needs --address');
    pageServer = { address, port: typeof port === 'number' ? port : PS_DEFAULT_PORT };
  }
  // --lazy-pages: post-copy. The lazy memory stays with us; after the dump we serve it on
  // --address/--port to `criu lazy-pages --page-server` and exit when that side is done.
  const postCopy = optFlag(ctx, 'lazy-pages') ? new PostCopyPages(sys.pageSize()) : undefined;
  if (postCopy && pageServer) throw new CliUsageError('--lazy-pages serves the memory itself: not with --page-server');
  const log = openLog(ctx, dirs);
  try {
    for (const w of warnings) log.logger.warn(w);
    log.logger.info(`Dumping task ${pid} into ${dirs.imagesDir}`);
    const result = await dump({
      pid,
      imagesDir: dirs.imagesDir,
      leaveRunning: optFlag(ctx, 'leave-running'),
      preDump,
      trackMem: optFlag(ctx, 'track-mem'),
      parentImagesDir: optString(ctx, 'prev-images-dir'),
      autoDedup: optFlag(ctx, 'auto-dedup'),
      shellJob: optFlag(ctx, 'shell-job'),
      manageCgroups,
      ...(ghostLimit !== undefined ? { ghostLimit } : {}),
      pageServer,
      postCopy,
      ...(external ? { external } : {}),
      logger: log.logger,
      onProgress: progressPrinter(ctx.io, log, 'dump'),
    });
    log.logger.info(preDump ? 'Pre-dumping finished successfully' : 'Dumping finished successfully');
    if (optFlag(ctx, 'display-stats')) ctx.io.writeStdout(statsText(result));
    if (postCopy) {
      const port = typeof ctx.args.options.port === 'number' ? ctx.args.options.port : PS_DEFAULT_PORT;
      const server = await servePostCopy(postCopy, { address: optString(ctx, 'address'), port, log: log.logger });
      statusReady(ctx);
      const { pagesServed } = await server.done;
      log.logger.info(`post-copy: ${pagesServed} of ${postCopy.pages} lazy pages served; done`);
    }
    log.flushHeldErrors();
    return 0;
  } catch (err) {
    return reportEngineError(ctx.io, err, log);
  } finally {
    log.close();
  }
}
