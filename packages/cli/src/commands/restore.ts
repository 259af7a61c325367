// `criu restore -D DIR [-d] [--pidfile FILE] [-o LOG] [-v[N]] [--shell-job] [--force-vdso-proxy]`: the restore engine
// of @criu/core with CRIU's command-line conventions. Without -d, CRIU stays until the restored
// task exits and then exits 0 itself; so do we.
import * as fs from 'fs';
import * as path from 'path';
import { restore, type RestoreResult } from '@criu/core';
import { CliUsageError } from '../errors.js';
import { parseCpuCap } from './cpuinfo.js';
import { cgroupMode, cgroupRoots } from './cgroups.js';
import { checkOptions, engineDirs, inWorkDir, openLog, optFlag, optString, progressPrinter, reportEngineError, type OptionPolicy } from './engine.js';
import type { CommandContext } from './types.js';
import { externalOf, inheritFdsOf } from './external.js';
import { LazyPagesLink, lazySocketPath } from './lazy-pages.js';

export const RESTORE_POLICY: OptionPolicy = {
  honoured: ['restore-detached', 'pidfile', 'shell-job', 'cpu-cap', 'force-vdso-proxy', 'lazy-pages', 'manage-cgroups', 'cgroup-root', 'inherit-fd', 'root', 'external', 'ext-mount-map'],
  ignored: [
    'tcp-established', 'tcp-close', 'ext-unix-sk', 'file-locks', 'link-remap', 'evasive-devices',
    'cgroup-props', 'cgroup-props-file', 'skip-mnt', 'enable-fs', 'log-pid',
    'network-lock', 'file-validation', 'skip-file-rwx-check', 'weak-sysctls', 'display-stats',
    // dump's options: CRIU accepts them on restore too and does nothing with them
    'tree', 'leave-running', 'timeout',
  ],
};

function exitText(exit: RestoreResult['exit']): string {
  if (!exit) return 'exited';
  if (exit.signal !== undefined) return `was killed by signal ${exit.signal}`;
  return `exited with status ${exit.code ?? 0}`;
}

export async function runRestore(ctx: CommandContext): Promise<number> {
  const warnings = checkOptions('restore', ctx.args.options, RESTORE_POLICY);
  const cpuCap = parseCpuCap(ctx);
  const manageCgroups = cgroupMode(ctx);
  const roots = cgroupRoots(ctx);
  const inheritFds = inheritFdsOf(ctx);
  const dirs = engineDirs(ctx);
  const external = externalOf(ctx);
  const root = optString(ctx, 'root');
  for (const d of [dirs.imagesDir, dirs.workDir]) {
    if (!fs.existsSync(d)) throw new CliUsageError(`can't change directory to ${d}: No such file or directory`);
  }
  // --lazy-pages: the daemon (`criu lazy-pages`) must be listening in the work dir already.
  const lazy = optFlag(ctx, 'lazy-pages') ? LazyPagesLink.connect(lazySocketPath(dirs)) : undefined;
  const log = openLog(ctx, dirs);
  try {
    for (const w of warnings) log.logger.warn(w);
    const detach = optFlag(ctx, 'restore-detached');
    const pidfile = optString(ctx, 'pidfile');
    log.logger.info(`Restoring from ${dirs.imagesDir}${detach ? ' (detached)' : ''}`);
    const result = await restore({
      imagesDir: dirs.imagesDir,
      detach,
      pidfile: pidfile === undefined ? undefined : inWorkDir(dirs, pidfile),
      shellJob: optFlag(ctx, 'shell-job'),
      cpuCap,
      manageCgroups,
      cgroupRoots: roots,
      vdso: optFlag(ctx, 'force-vdso-proxy') ? 'proxy' : 'auto',
      logger: log.logger,
      onProgress: progressPrinter(ctx.io, log, 'restore'),
      lazyPages: lazy,
      inheritFds,
      ...(root !== undefined ? { root: path.resolve(root) } : {}),
      ...(external ? { external } : {}),
    });
    if (lazy) {
      log.logger.info(`${result.lazyPages ?? 0} pages left to the lazy-pages daemon`);
      // What the daemon has done by the time the restore returns (the tasks already run).
      if (result.lazyPages) {
        try {
          const p = await lazy.progress();
          log.logger.info(`as the restore returns, the lazy-pages daemon has copied ${p.copied} pages; ${p.left} left`);
        } catch (e) {
          // The tasks run already: not a failed restore, but the daemon is gone (see its log).
          log.logger.warn(`could not get the lazy-pages daemon's counts: ${(e as Error).message}`);
        }
      }
    }
    log.logger.info('Restore finished successfully. Tasks resumed.');
    if (!detach) log.logger.info(`Restored task ${result.pid} ${exitText(result.exit)}`);
    log.flushHeldErrors();
    return 0;
  } catch (err) {
    return reportEngineError(ctx.io, err, log);
  } finally {
    lazy?.close();
    log.close();
  }
}
