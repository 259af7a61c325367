// Streaming writer of one image: header, then validated entries in layout order,
// buffered into large writes; optional fsync on close.
import { open, type FileHandle } from 'node:fs/promises';
import { formatError, ImageFormatError } from '../errors.js';
import { headerBytes, requireMagic } from '../framing/header.js';
import { serializeEntry } from '../framing/serializer.js';
import type { EntryInput } from '../framing/entries.js';
import type { ImageLayout } from '../magic/table.js';

export interface ImageWriterOptions {
  /** fsync the file before closing (default false). */
  fsync?: boolean;
  /** File mode for a new file (default 0o600, as CRIU creates images). */
  mode?: number;
  /** Refuse to overwrite an existing file (default false: truncate it). */
  exclusive?: boolean;
  /** Buffer up to this many bytes before writing (default 1 MiB). */
  bufferSize?: number;
}

/** Buffers per writev (Linux's UIO_MAXIOV). */
const IOV_MAX = 1024;

export class ImageWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private index = 0;
  private offset: number;
  private closed = false;

  private constructor(
    private fh: FileHandle,
    readonly file: string,
    readonly magic: string,
    private readonly layout: ImageLayout,
    private readonly opts: ImageWriterOptions,
    header: Uint8Array,
  ) {
    this.pending.push(header);
    this.pendingBytes = header.length;
    this.offset = header.length;
  }

  /** Create (or truncate) an image file of the given magic and queue its header. */
  static async create(path: string, magic: string, opts: ImageWriterOptions = {}): Promise<ImageWriter> {
    const info = requireMagic(magic, path);
    const header = headerBytes(magic, path);
    let fh: FileHandle;
    try {
      fh = await open(path, opts.exclusive ? 'wx' : 'w', opts.mode ?? 0o600);
    } catch (err) {
      throw formatError('IO', { file: path }, `cannot create image: ${(err as Error).message}`, undefined, err);
    }
    return new ImageWriter(fh, path, magic, info.layout, opts, header);
  }

  /** Entries appended so far. */
  get count(): number {
    return this.index;
  }

  /** Bytes in the image so far (including buffered ones). */
  get size(): number {
    return this.offset;
  }

  /** Validate, encode and queue one entry (record + payload). */
  async append(entry: EntryInput): Promise<void> {
    if (this.closed) throw formatError('IO', { file: this.file }, 'image writer is closed');
    const parts = serializeEntry(this.layout, this.index, entry, { file: this.file, recordIndex: this.index, offset: this.offset });
    this.index++;
    for (const p of parts) {
      this.pending.push(p);
      this.pendingBytes += p.length;
      this.offset += p.length;
    }
    if (this.pendingBytes >= (this.opts.bufferSize ?? 1024 * 1024)) await this.flush();
  }

  /** Write buffered bytes to the file. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      // writev takes at most IOV_MAX buffers and may write partially: go by index (a pagemap
      // of tens of thousands of small records is one flush; shifting the list was quadratic).
      const list = bufs.filter((b) => b.length > 0);
      let i = 0;
      while (i < list.length) {
        const { bytesWritten } = await this.fh.writev(list.slice(i, i + IOV_MAX));
        let n = bytesWritten;
        while (i < list.length && n >= list[i].length) n -= list[i++].length;
        if (n > 0) list[i] = list[i].subarray(n);
      }
    } catch (err) {
      throw formatError('IO', { file: this.file, offset: this.offset }, `write failed: ${(err as Error).message}`, undefined, err);
    }
  }

  /** Flush, fsync when asked, close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.flush();
      if (this.opts.fsync) await this.fh.sync();
    } catch (err) {
      if (err instanceof ImageFormatError) throw err;
      throw formatError('IO', { file: this.file }, `close failed: ${(err as Error).message}`, undefined, err);
    } finally {
      await this.fh.close().catch(() => undefined);
    }
  }
}

/** Write a whole image file from entries (streamed through ImageWriter). */
export async function writeImageFile(path: string, magic: string, entries: Iterable<EntryInput> | AsyncIterable<EntryInput>, opts: ImageWriterOptions = {}): Promise<void> {
  const w = await ImageWriter.create(path, magic, opts);
  try {
    for await (const e of entries) await w.append(e);
  } finally {
    await w.close();
  }
}
