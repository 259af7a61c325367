import type { CliIO } from '../../src/io';
import { main } from '../../src/main';

export interface CliRun {
  status: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs main() in-process with captured output and the given stdin bytes. */
export async function runCli(argv: string[], stdin: Buffer | string = ''): Promise<CliRun> {
  const out: Buffer[] = [];
  const err: string[] = [];
  const io: CliIO = {
    writeStdout: (d) => {
      out.push(Buffer.from(d));
    },
    writeStderr: (t) => {
      err.push(t);
    },
    readStdin: async () => Buffer.from(stdin),
  };
  const status = await main(argv, io);
  return { status, stdout: Buffer.concat(out), stderr: err.join('') };
}
