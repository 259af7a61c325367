// Whole images <-> crit's JSON document {magic, entries}: what `crit decode`,
// `crit decode --pretty`, `crit show --nopl`, `crit encode` and `crit info` do.
import { formatError, ImageFormatError, type ErrorContext } from '../errors.js';
import { planOf } from '../codec/plan.js';
import type { Msg } from '../codec/message-codec.js';
import { parseHeader, requireMagic } from '../framing/header.js';
import { parseBody, runParserSync } from '../framing/parser.js';
import { entryType } from '../framing/serializer.js';
import type { EntryExtraInput, EntryInput, ImageEntry } from '../framing/entries.js';
import type { ImageLayout } from '../magic/table.js';
import { encodeImageEntries } from '../typed/image-buffer.js';
import { ImageReader } from '../stream/image-reader.js';
import { ImageWriter, type ImageWriterOptions } from '../stream/image-writer.js';
import { DictError, fromCritDict, jsonInt, toCritDict } from './dict.js';
import { decodeBase64Lines, encodeBase64Lines } from './encodings.js';
import type { CritJson } from './python-json.js';

export type CritImage = {
  magic: string;
  entries: Array<{ [key: string]: CritJson }>;
};

export interface DecodeImageOptions {
  /** File name for error messages. */
  file?: string;
  /** crit decode --pretty / crit show: hex, flag names, dev numbers, IP addresses. */
  pretty?: boolean;
  /** crit show --nopl: payloads replaced by '... <size>' (ghost-file data omitted). */
  noPayload?: boolean;
}

/** crit's human_readable() for --nopl sizes: '0B', '4KB', '1.5MB', with Python's %.1f rounding. */
export function humanReadableSize(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z'];
  // n / 1024^k is exact in binary; round half to even on the exact value as Python's %.1f does.
  let denom = 1n;
  const big = BigInt(n);
  for (const unit of units) {
    if (big < 1024n * denom) {
      if (big % denom === 0n) return `${big / denom}${unit}B`;
      const tenths = (big * 10n) / denom;
      const rem = (big * 10n) % denom;
      const twice = rem * 2n;
      const rounded = twice > denom || (twice === denom && tenths % 2n === 1n) ? tenths + 1n : tenths;
      return `${rounded / 10n}.${rounded % 10n}${unit}B`;
    }
    denom *= 1024n;
  }
  const tenths = (big * 10n) / denom;
  return `${tenths / 10n}.${tenths % 10n}YB`;
}

const b64 = (p: { data?: Buffer }): string => encodeBase64Lines(p.data ?? Buffer.alloc(0));

/** Convert one typed entry into crit's JSON object (with its 'extra' key). Returns false to stop (tcp --nopl). */
function entryToJson(layout: ImageLayout, e: ImageEntry, opts: DecodeImageOptions): { [key: string]: CritJson } {
  const d = toCritDict(planOf(e.type), e.message, opts.pretty === true);
  const ex = e.extra;
  if (!ex) return d;
  const nopl = opts.noPayload === true;
  if (layout.kind === 'ghost-file') {
    if (!nopl && ex.kind === 'bytes') d.extra = b64(ex);
    return d;
  }
  switch (ex.kind) {
    case 'bytes':
      d.extra = nopl ? `... <${humanReadableSize(ex.length)}>` : b64(ex);
      break;
    case 'tcp-queues':
      d.extra = nopl ? `... <${humanReadableSize(ex.inq.length + ex.outq.length)}>` : { inq: b64(ex.inq), outq: b64(ex.outq) };
      break;
    case 'ipc-sem':
      d.extra = nopl ? `... <${humanReadableSize(ex.values.length * 2)}>` : ex.values;
      break;
    case 'ipc-msg':
      if (nopl) d.extra = `... <${humanReadableSize(ex.messages.reduce((s, m) => s + m.recordSize + m.data.length, 0))}>`;
      else d.extra = ex.messages.flatMap((m) => [toCritDict(planOf('ipc_msg'), m.message, false), b64(m.data)]);
      break;
  }
  return d;
}

function wrap(err: unknown, ctx: ErrorContext): never {
  if (err instanceof ImageFormatError) throw err;
  throw formatError('DECODE_FAILED', ctx, `unexpected failure: ${(err as Error)?.message ?? String(err)}`, undefined, err);
}

/**
 * Decode an image held in memory into the object `crit decode` prints (same keys,
 * order and conversions). Integers are numbers, or BigInt beyond 2^53; print it
 * with stringifyCritJson(). Raw and unknown images throw ImageFormatError.
 */
export function decodeImage(bytes: Uint8Array, opts: DecodeImageOptions = {}): CritImage {
  try {
    const header = parseHeader(bytes.subarray(0, 8), opts.file);
    const entries: Array<{ [key: string]: CritJson }> = [];
    let stop = false;
    const parser = parseBody(header.layout, header.size, bytes.length, { file: opts.file, payloads: opts.noPayload ? 'skip' : 'read' });
    runParserSync(parser, bytes, header.size, (e) => {
      if (stop) return;
      entries.push(entryToJson(header.layout, e, opts));
      // crit --nopl seeks tcp-stream images to EOF after the first entry.
      if (opts.noPayload && e.extra?.kind === 'tcp-queues') stop = true;
    });
    return { magic: header.magic.name, entries };
  } catch (err) {
    wrap(err, { file: opts.file });
  }
}

/** decodeImage() for a file, read as a stream of records. */
export async function decodeImageFile(path: string, opts: DecodeImageOptions = {}): Promise<CritImage> {
  const file = opts.file ?? path;
  const reader = await ImageReader.open(path, { file, payloads: opts.noPayload ? 'skip' : 'read' });
  const entries: Array<{ [key: string]: CritJson }> = [];
  try {
    for await (const e of reader) {
      entries.push(entryToJson(reader.layout, e, opts));
      if (opts.noPayload && e.extra?.kind === 'tcp-queues') break;
    }
  } catch (err) {
    wrap(err, { file });
  } finally {
    await reader.close();
  }
  return { magic: reader.magic, entries };
}

/** `crit info`: the magic and the number of entries (pagemap: not counting pagemap_head). */
export function imageInfo(bytes: Uint8Array, opts: { file?: string } = {}): { magic: string; count: number } {
  try {
    const header = parseHeader(bytes.subarray(0, 8), opts.file);
    let count = 0;
    runParserSync(parseBody(header.layout, header.size, bytes.length, { file: opts.file, payloads: 'skip' }), bytes, header.size, () => count++);
    return { magic: header.magic.name, count: header.layout.kind === 'pagemap' ? count - 1 : count };
  } catch (err) {
    wrap(err, { file: opts.file });
  }
}

function extraFromJson(layout: ImageLayout, index: number, message: Msg, extra: CritJson | undefined, ctx: ErrorContext): EntryExtraInput | undefined {
  const bad = (reason: string, field = 'extra'): never => {
    throw formatError('INVALID_FIELD', ctx, reason, field);
  };
  const bytes = (v: CritJson | undefined, field: string): Buffer => {
    if (typeof v !== 'string') return bad('expected a base64 string', field);
    if (v.startsWith('... <')) return bad('payload was omitted (decoded with --nopl) and cannot be encoded', field);
    try {
      return decodeBase64Lines(v);
    } catch (err) {
      return bad((err as Error).message, field);
    }
  };
  // crit writes nothing for a missing or empty ("falsy") extra.
  const falsy = extra === undefined || extra === null || extra === '' || (Array.isArray(extra) && extra.length === 0);
  if (layout.kind === 'pagemap') return undefined;
  if (layout.kind === 'ghost-file') {
    if (index === 0 && message.chunks) return undefined;
    if (extra === undefined) return undefined;
    return { kind: 'bytes', data: bytes(extra, 'extra') };
  }
  if (!layout.extra || falsy) return undefined;
  switch (layout.extra) {
    case 'tcp-queues': {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return bad("expected {'inq': ..., 'outq': ...}");
      const o = extra as Record<string, CritJson>;
      return { kind: 'tcp-queues', inq: { data: bytes(o.inq, 'extra.inq') }, outq: { data: bytes(o.outq, 'extra.outq') } };
    }
    case 'ipc-sem': {
      if (!Array.isArray(extra)) return bad('expected a list of semaphore values');
      return { kind: 'ipc-sem', values: extra.map((v, i) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : bad('expected an integer', `extra[${i}]`))) };
    }
    case 'ipc-msg': {
      if (!Array.isArray(extra)) return bad('expected a list of [message, data, ...]');
      const messages: Array<{ message: Msg; data: { data?: Uint8Array } }> = [];
      for (let i = 0; i < extra.length; i += 2) {
        const m = extra[i];
        if (typeof m !== 'object' || m === null || Array.isArray(m)) bad('expected an ipc_msg object', `extra[${i}]`);
        let message: Msg;
        try {
          message = fromCritDict(planOf('ipc_msg'), m as Record<string, CritJson>, `extra[${i}]`);
        } catch (err) {
          if (err instanceof DictError) return bad(err.message, err.field);
          throw err;
        }
        messages.push({ message, data: { data: bytes(extra[i + 1], `extra[${i + 1}]`) } });
      }
      return { kind: 'ipc-msg', messages };
    }
    default:
      return { kind: 'bytes', data: bytes(extra, 'extra') };
  }
}

function entriesFromJson(img: unknown, file?: string): { magic: string; layout: ImageLayout; entries: Generator<EntryInput> } {
  if (typeof img !== 'object' || img === null || Array.isArray(img)) throw formatError('BAD_JSON', { file }, "expected an object with 'magic' and 'entries'");
  const { magic, entries } = img as { magic?: unknown; entries?: unknown };
  if (typeof magic !== 'string') throw formatError('BAD_JSON', { file }, "'magic' must be a string such as 'CORE'");
  const info = requireMagic(magic, file);
  if (!Array.isArray(entries)) throw formatError('BAD_JSON', { file }, "'entries' must be a list");
  const layout = info.layout;
  function* gen(): Generator<EntryInput> {
    for (let index = 0; index < (entries as unknown[]).length; index++) {
      const ctx = { file, recordIndex: index };
      const e = (entries as unknown[])[index];
      if (typeof e !== 'object' || e === null || Array.isArray(e)) throw formatError('BAD_JSON', ctx, 'each entry must be an object');
      const { extra, ...fields } = e as Record<string, CritJson>;
      const type = entryType(layout, index);
      let message: Msg;
      try {
        message = fromCritDict(planOf(type), fields);
      } catch (err) {
        if (err instanceof DictError) throw formatError('INVALID_FIELD', ctx, `${type}: ${err.field}: ${err.message}`, err.field);
        throw err;
      }
      yield { message, extra: extraFromJson(layout, index, message, extra, ctx) };
    }
  }
  return { magic, layout, entries: gen() };
}

/**
 * `crit encode`: crit's JSON object (as parseCritJson returns it) -> image bytes.
 * Refuses missing required fields, out-of-range values and payloads whose size
 * does not match the record, naming the entry and field.
 */
export function encodeImage(img: CritImage | unknown, opts: { file?: string } = {}): Buffer {
  try {
    const { magic, entries } = entriesFromJson(img, opts.file);
    return encodeImageEntries(magic, entries, opts);
  } catch (err) {
    wrap(err, { file: opts.file });
  }
}

/** encodeImage() straight to a file, one entry at a time. */
export async function encodeImageFile(img: CritImage | unknown, path: string, opts: ImageWriterOptions = {}): Promise<void> {
  const { magic, entries } = entriesFromJson(img, path);
  const w = await ImageWriter.create(path, magic, opts);
  try {
    for (const e of entries) await w.append(e);
  } catch (err) {
    wrap(err, { file: path });
  } finally {
    await w.close();
  }
}

/** imageInfo() for a file, streamed with payloads skipped. */
export async function imageInfoFile(path: string): Promise<{ magic: string; count: number }> {
  const reader = await ImageReader.open(path, { payloads: 'skip' });
  let count = 0;
  try {
    for await (const _ of reader) count++;
  } finally {
    await reader.close();
  }
  return { magic: reader.magic, count: reader.layout.kind === 'pagemap' ? count - 1 : count };
}

export { jsonInt };
