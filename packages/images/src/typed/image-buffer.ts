// Whole-image typed decode/encode for images already in memory.
import { formatError, ImageFormatError } from '../errors.js';
import { parseHeader, headerBytes, requireMagic, type HeaderFound } from '../framing/header.js';
import { parseBody, runParserSync, type ParseOptions } from '../framing/parser.js';
import { serializeEntry } from '../framing/serializer.js';
import type { EntryInput, ImageEntry } from '../framing/entries.js';

export interface DecodedImage {
  /** crit magic name, e.g. 'CORE'. */
  magic: string;
  /** Which first magic the image had. */
  header: HeaderFound;
  entries: ImageEntry[];
}

function wrapUnexpected(err: unknown, file?: string): never {
  if (err instanceof ImageFormatError) throw err;
  throw formatError('DECODE_FAILED', { file }, `unexpected failure: ${(err as Error)?.message ?? String(err)}`, undefined, err);
}

/** Decode every entry of an image held in memory (typed values, validated). */
export function decodeImageEntries(bytes: Uint8Array, opts: ParseOptions = {}): DecodedImage {
  try {
    const header = parseHeader(bytes.subarray(0, 8), opts.file);
    const entries: ImageEntry[] = [];
    runParserSync(parseBody(header.layout, header.size, bytes.length, opts), bytes, header.size, (e) => entries.push(e));
    return { magic: header.magic.name, header: header.found, entries };
  } catch (err) {
    wrapUnexpected(err, opts.file);
  }
}

/** Encode entries (in image order) into a complete image with CRIU's header. */
export function encodeImageEntries(magic: string, entries: Iterable<EntryInput>, opts: { file?: string } = {}): Buffer {
  try {
    const info = requireMagic(magic, opts.file);
    const chunks: Uint8Array[] = [headerBytes(magic, opts.file)];
    let index = 0;
    let offset = chunks[0].length;
    for (const entry of entries) {
      const parts = serializeEntry(info.layout, index, entry, { file: opts.file, recordIndex: index, offset });
      for (const p of parts) offset += p.length;
      chunks.push(...parts);
      index++;
    }
    return Buffer.concat(chunks);
  } catch (err) {
    wrapUnexpected(err, opts.file);
  }
}
