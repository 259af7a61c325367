// Background `criu` processes that say they are ready on --status-fd 3 (page-server,
// lazy-pages, dump --lazy-pages), and free TCP ports for them.
import { spawn, type ChildProcess } from 'child_process';
import * as net from 'net';
import * as path from 'path';

export const BIN = path.join(__dirname, '../../bin/criu.cjs');

export interface Daemon {
  child: ChildProcess;
  /** Its exit code (null: killed by a signal). */
  exited: Promise<number | null>;
}

/**
 * Starts `[prefix...] node criu.cjs args... --status-fd 3` and resolves once it wrote to fd 3;
 * rejects with its stderr if it exits first. `registry` collects it for the suite's afterAll.
 */
export async function startDaemon(args: string[], registry: ChildProcess[], prefix: string[] = []): Promise<Daemon> {
  const argv = [...prefix, process.execPath, BIN, ...args, '--status-fd', '3'];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  registry.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const ready = await new Promise<boolean>((res) => {
    (child.stdio[3] as NodeJS.ReadableStream).once('data', () => res(true));
    child.once('exit', () => res(false));
  });
  if (!ready) throw new Error(`criu ${args[0]} did not start: ${stderr}`);
  return { child, exited };
}

/** Kills the daemons still running (afterAll). */
export function stopDaemons(registry: ChildProcess[]): void {
  for (const d of registry) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}
