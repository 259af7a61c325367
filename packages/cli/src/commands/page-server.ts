// `criu page-server [--address A] [--port N] [-D DIR] [--prev-images-dir P] [-d] [--status-fd FD]
// [--pidfile F]`: receives the memory of a `criu (pre-)dump --page-server` and writes
// pagemap-<id>.img + pages-<n>.img into DIR; with --prev-images-dir, DIR's `parent` is P (relative
// to DIR), where the dump's PE_PARENT holes point. Serves one dump connection, then exits (as CRIU does).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startPageServer, PS_DEFAULT_PORT } from '@criu/core';
import { CliUsageError } from '../errors.js';
import { checkOptions, engineDirs, openLog, optFlag, optString, reportEngineError, statusReady, type OptionPolicy } from './engine.js';
import type { CommandContext } from './types.js';

export const PAGE_SERVER_POLICY: OptionPolicy = {
  honoured: ['address', 'port', 'prev-images-dir', 'daemon', 'restore-detached', 'status-fd', 'pidfile'],
  ignored: ['shell-job', 'leave-running', 'tree', 'log-pid'],
};

/** -d: a detached copy of this command; we return once it listens (it reports on its status fd). */
async function daemonize(ctx: CommandContext): Promise<number> {
  const argv = process.argv.slice(2).filter((a) => a !== '-d' && a !== '--daemon' && a !== '--restore-detached');
  const child = spawn(process.execPath, [process.argv[1], ...argv, '--status-fd', '3'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  const ok = await new Promise<boolean>((res) => {
    pipe.once('data', () => res(true));
    pipe.once('end', () => res(false));
    child.once('exit', () => res(false));
  });
  (pipe as unknown as { destroy(): void }).destroy();
  child.unref();
  if (!ok || child.pid === undefined) {
    ctx.io.writeStderr('Error (criu-ts): the page server daemon did not start\n');
    return 1;
  }
  const pidfile = optString(ctx, 'pidfile');
  if (pidfile !== undefined) fs.writeFileSync(path.resolve(pidfile), `${child.pid}`);
  statusReady(ctx);
  return 0;
}

export async function runPageServer(ctx: CommandContext): Promise<number> {
  checkOptions('page-server', ctx.args.options, PAGE_SERVER_POLICY);
  const portOpt = ctx.args.options.port;
  const port = typeof portOpt === 'number' ? portOpt : PS_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliUsageError(`invalid port ${port}`);
  if (optFlag(ctx, 'daemon') || optFlag(ctx, 'restore-detached')) return daemonize(ctx);
  const dirs = engineDirs(ctx);
  try {
    fs.mkdirSync(dirs.imagesDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CliUsageError(`can't create the images directory ${dirs.imagesDir}: ${(err as Error).message}`);
  }
  const log = openLog(ctx, dirs);
  try {
    const server = await startPageServer({ imagesDir: dirs.imagesDir, port, address: optString(ctx, 'address'), prevImagesDir: optString(ctx, 'prev-images-dir'), log: log.logger });
    const pidfile = optString(ctx, 'pidfile');
    if (pidfile !== undefined) fs.writeFileSync(path.resolve(pidfile), `${process.pid}`);
    statusReady(ctx);
    await server.done;
    return 0;
  } catch (err) {
    return reportEngineError(ctx.io, err, log);
  } finally {
    log.close();
  }
}
