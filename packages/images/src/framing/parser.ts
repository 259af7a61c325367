// The record-layout parser, written once as a generator that asks its driver for
// bytes: a synchronous driver serves it from a Buffer (decodeImage), an async one
// from a file read in chunks (ImageReader). All lengths are checked against the
// bytes left in the image before anything is requested or allocated.
import { formatError, type ImageErrorCode } from '../errors.js';
import type { ImageLayout } from '../magic/table.js';
import type { Msg } from '../codec/message-codec.js';
import { decodeRecord } from './record.js';
import type { EntryExtra, ImageEntry, PayloadBytes } from './entries.js';

export type ParseRequest = { op: 'read'; n: number } | { op: 'skip'; n: number } | { op: 'entry'; entry: ImageEntry };
/** The driver answers 'read' with exactly n bytes, anything else with undefined. */
export type ParseReply = Uint8Array | undefined;
export type Parser = Generator<ParseRequest, void, ParseReply>;

export interface ParseOptions {
  file?: string;
  /** 'read' (default) loads payload bytes; 'skip' only reports their offset and length. */
  payloads?: 'read' | 'skip';
  /** Largest protobuf record accepted (default 64 MiB). */
  maxRecordSize?: number;
  /** Largest payload loaded into memory in 'read' mode (default 256 MiB). */
  maxPayloadSize?: number;
}

export const DEFAULT_MAX_RECORD = 64 * 1024 * 1024;
export const DEFAULT_MAX_PAYLOAD = 256 * 1024 * 1024;

const roundUp = (x: number, y: number): number => Math.ceil(x / y) * y;

export function* parseBody(layout: ImageLayout, headerSize: number, size: number, opts: ParseOptions = {}): Parser {
  const file = opts.file;
  const skipPayloads = opts.payloads === 'skip';
  const maxRecord = opts.maxRecordSize ?? DEFAULT_MAX_RECORD;
  const maxPayload = opts.maxPayloadSize ?? DEFAULT_MAX_PAYLOAD;
  let pos = headerSize;
  let index = 0;
  const left = (): number => size - pos;
  const fail = (code: ImageErrorCode, offset: number, reason: string, field?: string): never => {
    throw formatError(code, { file, recordIndex: index, offset }, reason, field);
  };

  function* record(typeName: string): Generator<ParseRequest, Msg, ParseReply> {
    const at = pos;
    if (left() < 4) fail('TRUNCATED_RECORD', at, `${left()} byte(s) left where a 4-byte record length was expected`);
    const lenBuf = (yield { op: 'read', n: 4 }) as Uint8Array;
    pos += 4;
    const len = (lenBuf[0] | (lenBuf[1] << 8) | (lenBuf[2] << 16) | (lenBuf[3] << 24)) >>> 0;
    if (len > maxRecord) fail('RECORD_TOO_LONG', at, `${typeName} record length ${len} is over the ${maxRecord}-byte limit`);
    if (len > left()) fail('TRUNCATED_RECORD', at, `${typeName} record length ${len} goes beyond the end of the file (${left()} bytes left)`);
    const body = len === 0 ? new Uint8Array(0) : ((yield { op: 'read', n: len }) as Uint8Array);
    const bodyAt = pos;
    pos += len;
    return decodeRecord(typeName, body, { file, recordIndex: index, offset: bodyAt });
  }

  function* bytes(length: number | bigint, what: string): Generator<ParseRequest, PayloadBytes, ParseReply> {
    const offset = pos;
    if (BigInt(length) > BigInt(left())) fail('PAYLOAD_TOO_LONG', offset, `${what} of ${length} bytes goes beyond the end of the file (${left()} bytes left)`, what);
    const n = Number(length);
    if (skipPayloads || n === 0) {
      if (n) yield { op: 'skip', n };
      pos += n;
      return n === 0 && !skipPayloads ? { offset, length: 0, data: Buffer.alloc(0) } : { offset, length: n };
    }
    if (n > maxPayload) fail('PAYLOAD_TOO_LONG', offset, `${what} of ${n} bytes is over the ${maxPayload}-byte in-memory limit (use payloads: 'skip')`, what);
    const data = (yield { op: 'read', n }) as Uint8Array;
    pos += n;
    return { offset, length: n, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
  }

  // Alignment padding after a payload; tolerated when cut short at EOF, as crit does.
  function* pad(n: number): Generator<ParseRequest, void, ParseReply> {
    const k = Math.min(n, left());
    if (k > 0) yield { op: 'skip', n: k };
    pos += k;
  }

  const num = (m: Msg, f: string): number => Number((m[f] as number | bigint | undefined) ?? 0);

  while (left() > 0) {
    const offset = pos;
    let type: string;
    let extra: EntryExtra | undefined;
    let message: Msg;
    if (layout.kind === 'pagemap') {
      type = index === 0 ? 'pagemap_head' : 'pagemap_entry';
      message = yield* record(type);
    } else if (layout.kind === 'ghost-file') {
      type = index === 0 ? 'ghost_file_entry' : 'ghost_chunk_entry';
      message = yield* record(type);
      if (index === 0 && !message.chunks) {
        // Not chunked: the rest of the file is the ghost file's contents.
        extra = { kind: 'bytes', ...(yield* bytes(left(), 'extra')) };
      } else if (index > 0) {
        extra = { kind: 'bytes', ...(yield* bytes(num(message, 'len'), 'extra')) };
      }
    } else {
      type = layout.message;
      message = yield* record(type);
      switch (layout.extra) {
        case undefined:
          break;
        case 'pipe-data':
          extra = { kind: 'bytes', ...(yield* bytes(num(message, 'bytes'), 'extra')) };
          break;
        case 'sk-queue':
          extra = { kind: 'bytes', ...(yield* bytes(num(message, 'length'), 'extra')) };
          break;
        case 'bpfmap-data':
          extra = { kind: 'bytes', ...(yield* bytes(num(message, 'keys_bytes') + num(message, 'values_bytes'), 'extra')) };
          break;
        case 'tcp-queues': {
          const inq = yield* bytes(num(message, 'inq_len'), 'extra.inq');
          const outq = yield* bytes(num(message, 'outq_len'), 'extra.outq');
          extra = { kind: 'tcp-queues', inq, outq };
          break;
        }
        case 'ipc-shm': {
          const sz = BigInt((message.size as bigint | number | undefined) ?? 0);
          const b = yield* bytes(sz, 'extra');
          extra = { kind: 'bytes', ...b };
          yield* pad(roundUp(b.length, 4) - b.length);
          break;
        }
        case 'ipc-sem': {
          const nsems = num(message, 'nsems');
          const at = pos;
          if (nsems * 2 > left()) fail('PAYLOAD_TOO_LONG', at, `${nsems} semaphore values go beyond the end of the file (${left()} bytes left)`, 'extra');
          const raw = nsems ? ((yield { op: 'read', n: nsems * 2 }) as Uint8Array) : new Uint8Array(0);
          pos += nsems * 2;
          const values: number[] = new Array(nsems);
          for (let i = 0; i < nsems; i++) values[i] = raw[2 * i] | (raw[2 * i + 1] << 8);
          extra = { kind: 'ipc-sem', values };
          yield* pad(roundUp(nsems * 2, 8) - nsems * 2);
          break;
        }
        case 'ipc-msg': {
          const qnum = num(message, 'qnum');
          const messages: Array<{ message: Msg; data: PayloadBytes; recordSize: number }> = [];
          for (let i = 0; i < qnum; i++) {
            if (left() === 0) fail('TRUNCATED_RECORD', pos, `qnum is ${qnum} but the image ends after ${i} queued message(s)`, 'extra');
            const recAt = pos;
            const m = yield* record('ipc_msg');
            const recordSize = pos - recAt - 4;
            const msize = num(m, 'msize');
            const data = yield* bytes(msize, `extra[${i}]`);
            messages.push({ message: m, data, recordSize });
            yield* pad(roundUp(msize, 8) - msize);
          }
          extra = { kind: 'ipc-msg', messages };
          break;
        }
      }
    }
    const entry: ImageEntry = extra ? { index, offset, type, message, extra } : { index, offset, type, message };
    yield { op: 'entry', entry };
    index++;
  }
}

/** Run a parser over bytes held in memory, collecting its entries. */
export function runParserSync(parser: Parser, bytes: Uint8Array, start: number, onEntry: (e: ImageEntry) => void): void {
  let cur = start;
  let reply: ParseReply;
  for (;;) {
    const step = parser.next(reply);
    if (step.done) return;
    const req = step.value;
    reply = undefined;
    if (req.op === 'read') {
      reply = bytes.subarray(cur, cur + req.n);
      cur += req.n;
    } else if (req.op === 'skip') cur += req.n;
    else onEntry(req.entry);
  }
}
