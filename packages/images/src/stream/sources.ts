// Byte sources for the streaming reader: a file read with positional reads, or
// an in-memory buffer (handy for tests and for data that is already loaded).
import { open, type FileHandle } from 'node:fs/promises';
import { formatError } from '../errors.js';

export interface ByteSource {
  readonly name: string;
  readonly size: number;
  /** Fill `into` from `position`; must fill it completely (throws at EOF). */
  readExact(into: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

export class FileSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private fh: FileHandle | undefined,
  ) {}

  static async open(path: string): Promise<FileSource> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'r');
      const st = await fh.stat();
      if (!st.isFile()) throw new Error('not a regular file');
      return new FileSource(path, st.size, fh);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      throw formatError('IO', { file: path }, `cannot open image: ${(err as Error).message}`, undefined, err);
    }
  }

  async readExact(into: Uint8Array, position: number): Promise<void> {
    if (!this.fh) throw formatError('IO', { file: this.name, offset: position }, 'image is closed');
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await this.fh.read(into, done, into.length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw formatError('IO', { file: this.name, offset: position + done }, `read failed: ${(err as Error).message}`, undefined, err);
    }
    if (done < into.length) throw formatError('IO', { file: this.name, offset: position + done }, `file ended early (it shrank while being read?)`);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly name = '<buffer>',
  ) {
    this.size = bytes.length;
  }
  async readExact(into: Uint8Array, position: number): Promise<void> {
    if (position + into.length > this.bytes.length) throw formatError('IO', { file: this.name, offset: position }, 'read past the end of the buffer');
    into.set(this.bytes.subarray(position, position + into.length));
  }
  async close(): Promise<void> {}
}
