// `criu swrk FD` in the command table: FD is an AF_UNIX SOCK_SEQPACKET socket already connected
// to the client (runc: the server end of a socketpair, as fd 3; go-criu passes its number).
import { CliUsageError } from '../errors.js';
import type { CommandContext } from '../commands/types.js';
import { SwrkServer } from './server.js';
import { STANDALONE_ENV } from './service.js';
import { SeqpacketSocket } from './socket.js';

export async function runSwrk(ctx: CommandContext): Promise<number> {
  const word = ctx.args.positionals[0];
  if (word === undefined || !/^\d+$/.test(word)) throw new CliUsageError(`swrk: expected a socket descriptor number, got ${word === undefined ? 'nothing' : `'${word}'`}`);
  let socket: SeqpacketSocket;
  try {
    socket = SeqpacketSocket.adopt(Number(word));
  } catch (e) {
    throw new CliUsageError(`swrk: ${(e as Error).message}`);
  }
  try {
    return await new SwrkServer({ socket, stderr: (t) => ctx.io.writeStderr(t), standalone: process.env[STANDALONE_ENV] === '1' }).serve();
  } finally {
    socket.close();
  }
}
