// `criu service [--address FILE] [-d] [--pidfile FILE] [--status-fd FD]`: CRIU's RPC service on
// a SOCK_SEQPACKET socket file. Each connection is served by a `criu swrk` worker of its own (CRIU
// forks one), the accepted socket as its fd 3; the worker reads the client's credentials from
// the socket, so images_dir_fd names a descriptor of the connecting client, as in CRIU.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliUsageError } from '../errors.js';
import { optFlag, optString, statusReady } from '../commands/engine.js';
import type { CommandContext } from '../commands/types.js';
import { SeqpacketSocket } from './socket.js';

/** CRIU's CR_DEFAULT_SERVICE_ADDRESS, relative to the current directory. */
export const DEFAULT_SERVICE_ADDRESS = 'criu_service.socket';
/** Set in a daemon's environment: its listening socket, inherited from `criu service -d`. */
const LISTEN_FD_ENV = 'CRIU_TS_SERVICE_LISTEN_FD';
/** Set in a worker's environment: it serves a standalone service (rst_sibling, inherit_fd refused). */
export const STANDALONE_ENV = 'CRIU_TS_SWRK_STANDALONE';

function writePidfile(ctx: CommandContext, pid: number): void {
  const file = optString(ctx, 'pidfile');
  if (file === undefined) return;
  try {
    fs.writeFileSync(path.resolve(file), `${pid}`);
  } catch (e) {
    throw new CliUsageError(`can't write the pidfile ${file}: ${(e as Error).message}`);
  }
}

export async function runService(ctx: CommandContext): Promise<number> {
  const address = path.resolve(optString(ctx, 'address') ?? DEFAULT_SERVICE_ADDRESS);
  const inherited = process.env[LISTEN_FD_ENV];
  let listener: SeqpacketSocket;
  if (inherited !== undefined) {
    listener = new SeqpacketSocket(Number(inherited));
    delete process.env[LISTEN_FD_ENV];
  } else {
    try {
      fs.rmSync(address, { force: true });
      listener = SeqpacketSocket.listen(address);
      fs.chmodSync(address, 0o666); // anyone may connect, as CRIU sets it
    } catch (e) {
      throw new CliUsageError(`can't bind the service socket ${address}: ${(e as Error).message}`);
    }
    // CRIU's -d is --daemon for the service (the parser files it under --restore-detached).
    if (optFlag(ctx, 'daemon') || optFlag(ctx, 'restore-detached')) {
      // Node cannot fork: the daemon is a detached copy of this command that inherits the bound
      // socket, so the socket is ready when `criu service -d` returns, as with CRIU.
      const child = spawn(process.execPath, [process.argv[1], 'service', '--address', address], {
        detached: true,
        stdio: ['ignore', 'ignore', 'ignore', listener.fd],
        env: { ...process.env, [LISTEN_FD_ENV]: '3' },
      });
      child.unref();
      listener.close();
      if (child.pid === undefined) throw new CliUsageError("can't start the service daemon");
      writePidfile(ctx, child.pid);
      statusReady(ctx);
      return 0;
    }
  }
  writePidfile(ctx, process.pid);
  statusReady(ctx);
  for (;;) {
    let conn: SeqpacketSocket;
    try {
      conn = await listener.accept();
    } catch (e) {
      ctx.io.writeStderr(`Error (criu-ts service): can't accept a connection: ${(e as Error).message}\n`);
      listener.close();
      return 1;
    }
    try {
      const worker = spawn(process.execPath, [process.argv[1], 'swrk', '3'], {
        stdio: ['ignore', 'inherit', 'inherit', conn.fd],
        env: { ...process.env, [STANDALONE_ENV]: '1' },
      });
      worker.on('error', (e) => ctx.io.writeStderr(`Error (criu-ts service): a worker failed: ${e.message}\n`));
    } finally {
      conn.close();
    }
  }
}
