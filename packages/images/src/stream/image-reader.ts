// Streaming, validated reader of one image file: reads in chunks, yields entries
// one at a time, never holds more than one record (plus its payload, unless
// payloads are skipped) in memory.
import { formatError, ImageFormatError } from '../errors.js';
import { parseHeader, type HeaderFound } from '../framing/header.js';
import { parseBody, type ParseOptions, type ParseReply } from '../framing/parser.js';
import type { ImageEntry } from '../framing/entries.js';
import type { ImageLayout } from '../magic/table.js';
import { BufferSource, FileSource, type ByteSource } from './sources.js';

export interface ImageReaderOptions extends Omit<ParseOptions, 'file'> {
  /** Read-ahead size in bytes (default 64 KiB). */
  chunkSize?: number;
  /** Name used in errors (defaults to the path). */
  file?: string;
}

export class ImageReader implements AsyncIterable<ImageEntry> {
  private window = new Uint8Array(0);
  private windowStart = 0;
  private used = false;

  private constructor(
    private readonly source: ByteSource,
    /** crit magic name, e.g. 'PAGEMAP'. */
    readonly magic: string,
    readonly header: HeaderFound,
    readonly layout: ImageLayout,
    private readonly headerSize: number,
    private readonly opts: ImageReaderOptions,
  ) {}

  /** Name used in errors. */
  get file(): string {
    return this.source.name;
  }

  /** Total image size in bytes. */
  get size(): number {
    return this.source.size;
  }

  /** Open an image file and read its header. Throws ImageFormatError. */
  static async open(path: string, opts: ImageReaderOptions = {}): Promise<ImageReader> {
    const source = await FileSource.open(path);
    return ImageReader.fromSource(source, { ...opts, file: opts.file ?? path });
  }

  /** Read an image that is already in memory (same checks, same chunking). */
  static async fromBuffer(bytes: Uint8Array, opts: ImageReaderOptions = {}): Promise<ImageReader> {
    return ImageReader.fromSource(new BufferSource(bytes, opts.file ?? '<buffer>'), opts);
  }

  private static async fromSource(source: ByteSource, opts: ImageReaderOptions): Promise<ImageReader> {
    try {
      const head = new Uint8Array(Math.min(8, source.size));
      await source.readExact(head, 0);
      const h = parseHeader(head, source.name);
      return new ImageReader(source, h.magic.name, h.found, h.layout, h.size, opts);
    } catch (err) {
      await source.close().catch(() => undefined);
      if (err instanceof ImageFormatError) throw err;
      throw formatError('IO', { file: source.name }, (err as Error)?.message ?? String(err), undefined, err);
    }
  }

  private async readAt(position: number, n: number): Promise<Uint8Array> {
    const chunk = this.opts.chunkSize ?? 64 * 1024;
    if (n > chunk) {
      // Large record or payload: read it straight into its own buffer (already bounded by the parser).
      const out = Buffer.allocUnsafe(n);
      await this.source.readExact(out, position);
      return out;
    }
    const winEnd = this.windowStart + this.window.length;
    if (position < this.windowStart || position + n > winEnd) {
      const len = Math.min(Math.max(chunk, n), this.source.size - position);
      const win = new Uint8Array(len);
      await this.source.readExact(win, position);
      this.window = win;
      this.windowStart = position;
    }
    const off = position - this.windowStart;
    // Copy: callers keep payloads after the window moves on.
    return Buffer.from(this.window.subarray(off, off + n));
  }

  /** Iterate the entries (once). The file is closed when iteration ends, fails or is abandoned. */
  async *entries(): AsyncGenerator<ImageEntry, void, undefined> {
    if (this.used) throw formatError('IO', { file: this.file }, 'an ImageReader can be iterated only once');
    this.used = true;
    const parser = parseBody(this.layout, this.headerSize, this.source.size, { ...this.opts, file: this.file });
    let pos = this.headerSize;
    let reply: ParseReply;
    try {
      for (;;) {
        const step = parser.next(reply);
        if (step.done) return;
        const req = step.value;
        reply = undefined;
        if (req.op === 'read') {
          reply = await this.readAt(pos, req.n);
          pos += req.n;
        } else if (req.op === 'skip') pos += req.n;
        else yield req.entry;
      }
    } catch (err) {
      if (err instanceof ImageFormatError) throw err;
      throw formatError('DECODE_FAILED', { file: this.file, offset: pos }, `unexpected failure: ${(err as Error)?.message ?? String(err)}`, undefined, err);
    } finally {
      await this.close();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<ImageEntry> {
    return this.entries();
  }

  async close(): Promise<void> {
    this.window = new Uint8Array(0);
    await this.source.close().catch(() => undefined);
  }
}

/** Read every entry of an image file (streamed, validated). */
export async function readImageFile(path: string, opts: ImageReaderOptions = {}): Promise<{ magic: string; header: HeaderFound; entries: ImageEntry[] }> {
  const reader = await ImageReader.open(path, opts);
  const entries: ImageEntry[] = [];
  for await (const e of reader) entries.push(e);
  return { magic: reader.magic, header: reader.header, entries };
}
