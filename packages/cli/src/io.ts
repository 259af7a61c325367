// The CLI's only contact with the process: where output goes and where stdin comes from.
// main() takes a CliIO so that tests can run it in-process and capture everything.
import * as fs from 'fs';
import { CliFileError } from './errors.js';

export interface CliIO {
  writeStdout(data: string | Uint8Array): void;
  writeStderr(text: string): void;
  readStdin(): Promise<Buffer>;
}

export const processIO: CliIO = {
  writeStdout: (data) => {
    process.stdout.write(data);
  },
  writeStderr: (text) => {
    process.stderr.write(text);
  },
  readStdin: () =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      process.stdin.on('data', (c: Buffer) => chunks.push(c));
      process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
      process.stdin.on('error', reject);
    }),
};

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') return 'No such file or directory';
  if (e && e.code === 'EACCES') return 'Permission denied';
  if (e && e.code === 'EISDIR') return 'Is a directory';
  return e && e.message ? e.message : String(err);
}

/** Reads FILE, or stdin when no file was given. */
export async function readInput(io: CliIO, file: string | undefined): Promise<{ name: string; bytes: Buffer }> {
  if (file === undefined || file === '-') return { name: '<stdin>', bytes: await io.readStdin() };
  try {
    return { name: file, bytes: fs.readFileSync(file) };
  } catch (err) {
    throw new CliFileError(file, 'read', describe(err));
  }
}

/** Writes to FILE, or stdout when no file was given. */
export function writeOutput(io: CliIO, file: string | undefined, data: string | Uint8Array): void {
  if (file === undefined || file === '-') {
    io.writeStdout(data);
    return;
  }
  try {
    fs.writeFileSync(file, data);
  } catch (err) {
    throw new CliFileError(file, 'write', describe(err));
  }
}
