// Raw pages-<id>.img files: no header, just the contents of every PE_PRESENT
// pagemap run, in pagemap order. Read at offsets and stream in bounded chunks;
// never load the whole file.
import { open, type FileHandle } from 'node:fs/promises';
import { formatError } from '../errors.js';
import type { Msg } from '../codec/message-codec.js';

export const PE_PARENT = 1;
export const PE_LAZY = 2;
export const PE_PRESENT = 4;

const MAX_SINGLE_READ = 256 * 1024 * 1024;

export class PagesReader {
  private constructor(
    private fh: FileHandle | undefined,
    readonly file: string,
    /** File size in bytes. */
    readonly size: number,
  ) {}

  static async open(path: string): Promise<PagesReader> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'r');
      const st = await fh.stat();
      return new PagesReader(fh, path, st.size);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      throw formatError('IO', { file: path }, `cannot open pages image: ${(err as Error).message}`, undefined, err);
    }
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw formatError('IO', { file: this.file, offset }, `bad range offset=${offset} length=${length}`);
    if (offset + length > this.size) throw formatError('PAYLOAD_TOO_LONG', { file: this.file, offset }, `range of ${length} bytes goes beyond the end of the pages image (${this.size} bytes)`);
  }

  /** Fill `into` with the bytes at `offset` (the whole buffer; throws if the file is shorter). */
  async readInto(into: Uint8Array, offset: number): Promise<void> {
    this.check(offset, into.length);
    if (!this.fh) throw formatError('IO', { file: this.file, offset }, 'pages image is closed');
    let done = 0;
    try {
      while (done < into.length) {
        const { bytesRead } = await this.fh.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) throw new Error('unexpected end of file');
        done += bytesRead;
      }
    } catch (err) {
      throw formatError('IO', { file: this.file, offset: offset + done }, `read failed: ${(err as Error).message}`, undefined, err);
    }
  }

  /** Read `length` bytes at `offset` into a new Buffer (at most 256 MiB; use chunks() for more). */
  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    if (length > MAX_SINGLE_READ) throw formatError('PAYLOAD_TOO_LONG', { file: this.file, offset }, `read of ${length} bytes is over the 256 MiB limit; use chunks()`);
    const buf = Buffer.allocUnsafe(length);
    await this.readInto(buf, offset);
    return buf;
  }

  /**
   * Stream a range in chunks of at most `chunkSize` bytes (default 1 MiB). The same
   * buffer is reused for every chunk: consume or copy it before asking for the next.
   */
  async *chunks(offset = 0, length = this.size - offset, chunkSize = 1024 * 1024): AsyncGenerator<Buffer, void, undefined> {
    this.check(offset, length);
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(chunkSize, length)));
    let done = 0;
    while (done < length) {
      const n = Math.min(buf.length, length - done);
      const view = buf.subarray(0, n);
      await this.readInto(view, offset + done);
      done += n;
      yield view;
    }
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

export interface PagesWriterOptions {
  fsync?: boolean;
  mode?: number;
  exclusive?: boolean;
}

export class PagesWriter {
  private position = 0;
  private closed = false;
  private constructor(
    private readonly fh: FileHandle,
    readonly file: string,
    private readonly opts: PagesWriterOptions,
  ) {}

  static async create(path: string, opts: PagesWriterOptions = {}): Promise<PagesWriter> {
    try {
      const fh = await open(path, opts.exclusive ? 'wx' : 'w', opts.mode ?? 0o600);
      return new PagesWriter(fh, path, opts);
    } catch (err) {
      throw formatError('IO', { file: path }, `cannot create pages image: ${(err as Error).message}`, undefined, err);
    }
  }

  /** Bytes written so far = offset of the next run. */
  get size(): number {
    return this.position;
  }

  /** Append one run of page data (one buffer or several, written with writev). Returns its file offset. */
  async write(data: Uint8Array | readonly Uint8Array[]): Promise<number> {
    if (this.closed) throw formatError('IO', { file: this.file }, 'pages writer is closed');
    const start = this.position;
    let list = (data instanceof Uint8Array ? [data] : [...data]).filter((b) => b.length > 0);
    try {
      while (list.length) {
        const { bytesWritten } = await this.fh.writev(list, this.position);
        this.position += bytesWritten;
        let n = bytesWritten;
        while (list.length && n >= list[0].length) n -= list.shift()!.length;
        if (n > 0) list[0] = list[0].subarray(n);
      }
    } catch (err) {
      throw formatError('IO', { file: this.file, offset: this.position }, `write failed: ${(err as Error).message}`, undefined, err);
    }
    return start;
  }

  /** Append everything an async source yields (e.g. PagesReader.chunks of another image). */
  async writeStream(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<number> {
    const start = this.position;
    for await (const c of chunks) await this.write(c);
    return start;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.opts.fsync) await this.fh.sync();
    } finally {
      await this.fh.close();
    }
  }
}

export interface PageRun {
  /** Index of the pagemap entry (1 = first entry after pagemap_head when entries include it). */
  entry: number;
  vaddr: bigint;
  nrPages: number;
  flags: number;
  /** Byte offset of this run in pages-<id>.img, or undefined when its data is not there (parent/lazy). */
  offset: number | undefined;
}

/**
 * Where each pagemap run lives in the pages image. Entries may be pagemap_entry
 * messages or whole ImageEntry objects; a leading pagemap_head is skipped.
 * Old images without flags mean PE_PRESENT (or PE_PARENT when in_parent is set).
 */
export function pageRuns(entries: Iterable<Msg | { type: string; message: Msg }>, pageSize: number): PageRun[] {
  const runs: PageRun[] = [];
  let offset = 0;
  let i = 0;
  for (const e of entries) {
    const idx = i++;
    const m = ('message' in e && typeof e.message === 'object' ? e.message : e) as Msg;
    if ('type' in e && e.type === 'pagemap_head') continue;
    if (m.pages_id !== undefined && m.vaddr === undefined) continue;
    const nrPages = Number(m.nr_pages ?? 0);
    const flags = m.flags !== undefined ? Number(m.flags) : m.in_parent ? PE_PARENT : PE_PRESENT;
    const present = (flags & PE_PRESENT) !== 0;
    runs.push({ entry: idx, vaddr: BigInt(m.vaddr as bigint), nrPages, flags, offset: present ? offset : undefined });
    if (present) offset += nrPages * pageSize;
  }
  return runs;
}
