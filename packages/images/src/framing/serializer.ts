// Entry -> bytes: the record with its u32 length prefix plus its payload, checked
// against the lengths the record declares (CRIU trusts them when it reads back).
import { formatError, type ErrorContext } from '../errors.js';
import type { ImageLayout } from '../magic/table.js';
import type { Msg } from '../codec/message-codec.js';
import { encodeRecord } from './record.js';
import type { EntryExtraInput, EntryInput } from './entries.js';

/** The message type the layout expects for the entry at `index`. */
export function entryType(layout: ImageLayout, index: number): string {
  switch (layout.kind) {
    case 'records':
      return layout.message;
    case 'pagemap':
      return index === 0 ? 'pagemap_head' : 'pagemap_entry';
    case 'ghost-file':
      return index === 0 ? 'ghost_file_entry' : 'ghost_chunk_entry';
  }
}

export function frame(body: Uint8Array): Uint8Array[] {
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, body.length, true);
  return [len, body];
}

const roundUp = (x: number, y: number): number => Math.ceil(x / y) * y;

function payload(extra: EntryExtraInput | undefined, kind: string, ctx: ErrorContext): EntryExtraInput | undefined {
  if (extra === undefined) return undefined;
  if (typeof extra !== 'object' || extra === null || extra.kind !== kind) throw formatError('INVALID_FIELD', ctx, `expected an extra payload of kind '${kind}'`, 'extra');
  return extra;
}

function data(d: { data?: Uint8Array } | undefined, field: string, ctx: ErrorContext): Uint8Array {
  if (!d || !(d.data instanceof Uint8Array)) throw formatError('INVALID_FIELD', ctx, 'payload bytes are missing (was the image read with payloads: \'skip\'?)', field);
  return d.data;
}

function checkLen(actual: number, declared: number | bigint, what: string, ctx: ErrorContext, field: string): void {
  if (BigInt(actual) !== BigInt(declared)) throw formatError('INVALID_FIELD', ctx, `payload is ${actual} bytes but the record's ${what} says ${declared}`, field);
}

/** Encode one entry to the chunks that go into the file, in order. */
export function serializeEntry(layout: ImageLayout, index: number, entry: EntryInput, ctx: ErrorContext): Uint8Array[] {
  if (typeof entry !== 'object' || entry === null) throw formatError('INVALID_FIELD', ctx, 'entry must be an object with a message');
  const type = entryType(layout, index);
  if (entry.type !== undefined && entry.type !== type) throw formatError('INVALID_FIELD', ctx, `entry ${index} of this image must be a ${type}, not ${entry.type}`);
  const msg = entry.message as Msg;
  const out = frame(encodeRecord(type, msg, ctx));
  const num = (f: string): number => Number((msg[f] as number | bigint | undefined) ?? 0);
  const zeros = (n: number): Uint8Array => new Uint8Array(n);

  if (layout.kind === 'pagemap') {
    if (entry.extra !== undefined) throw formatError('INVALID_FIELD', ctx, 'pagemap entries carry no payload', 'extra');
    return out;
  }
  if (layout.kind === 'ghost-file') {
    const ex = payload(entry.extra, 'bytes', ctx) as { data?: Uint8Array } | undefined;
    if (index === 0 && msg.chunks) {
      if (ex) throw formatError('INVALID_FIELD', ctx, 'a chunked ghost file keeps its data in the chunk entries', 'extra');
      return out;
    }
    if (index > 0) {
      const d = data(ex, 'extra', ctx);
      checkLen(d.length, num('len'), 'len', ctx, 'extra');
      out.push(d);
      return out;
    }
    if (ex) out.push(data(ex, 'extra', ctx));
    return out;
  }
  const extra = entry.extra;
  switch (layout.extra) {
    case undefined:
      if (extra !== undefined) throw formatError('INVALID_FIELD', ctx, `${type} records carry no payload`, 'extra');
      return out;
    case 'pipe-data':
    case 'sk-queue':
    case 'bpfmap-data':
    case 'ipc-shm': {
      const declared =
        layout.extra === 'pipe-data' ? num('bytes') : layout.extra === 'sk-queue' ? num('length') : layout.extra === 'bpfmap-data' ? num('keys_bytes') + num('values_bytes') : BigInt((msg.size as bigint | number | undefined) ?? 0);
      const what = layout.extra === 'pipe-data' ? 'bytes' : layout.extra === 'sk-queue' ? 'length' : layout.extra === 'bpfmap-data' ? 'keys_bytes + values_bytes' : 'size';
      const ex = payload(extra, 'bytes', ctx) as { data?: Uint8Array } | undefined;
      const d = ex === undefined && BigInt(declared) === 0n ? new Uint8Array(0) : data(ex, 'extra', ctx);
      checkLen(d.length, declared, what, ctx, 'extra');
      out.push(d);
      if (layout.extra === 'ipc-shm') out.push(zeros(roundUp(d.length, 4) - d.length));
      return out;
    }
    case 'tcp-queues': {
      const ex = payload(extra, 'tcp-queues', ctx) as { inq: { data?: Uint8Array }; outq: { data?: Uint8Array } } | undefined;
      const inq = ex === undefined && num('inq_len') === 0 ? new Uint8Array(0) : data(ex?.inq, 'extra.inq', ctx);
      const outq = ex === undefined && num('outq_len') === 0 ? new Uint8Array(0) : data(ex?.outq, 'extra.outq', ctx);
      checkLen(inq.length, num('inq_len'), 'inq_len', ctx, 'extra.inq');
      checkLen(outq.length, num('outq_len'), 'outq_len', ctx, 'extra.outq');
      out.push(inq, outq);
      return out;
    }
    case 'ipc-sem': {
      const ex = payload(extra, 'ipc-sem', ctx) as { values: number[] } | undefined;
      const values = ex?.values ?? [];
      if (!Array.isArray(values)) throw formatError('INVALID_FIELD', ctx, 'semaphore values must be an array', 'extra');
      if (values.length !== num('nsems')) throw formatError('INVALID_FIELD', ctx, `${values.length} semaphore values but nsems is ${num('nsems')}`, 'extra');
      const b = new Uint8Array(roundUp(values.length * 2, 8));
      values.forEach((v, i) => {
        if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw formatError('INVALID_FIELD', ctx, `semaphore value ${String(v)} is not a u16`, `extra[${i}]`);
        b[2 * i] = v & 0xff;
        b[2 * i + 1] = v >> 8;
      });
      out.push(b);
      return out;
    }
    case 'ipc-msg': {
      const ex = payload(extra, 'ipc-msg', ctx) as { messages: Array<{ message: Msg; data: { data?: Uint8Array } }> } | undefined;
      const msgs = ex?.messages ?? [];
      if (!Array.isArray(msgs)) throw formatError('INVALID_FIELD', ctx, 'queued messages must be an array', 'extra');
      if (msgs.length !== num('qnum')) throw formatError('INVALID_FIELD', ctx, `${msgs.length} queued messages but qnum is ${num('qnum')}`, 'extra');
      msgs.forEach((m, i) => {
        const body = encodeRecord('ipc_msg', m?.message, ctx);
        const d = data(m?.data, `extra[${i}]`, ctx);
        const msize = Number((m.message.msize as number | undefined) ?? 0);
        checkLen(d.length, msize, 'msize', ctx, `extra[${i}]`);
        out.push(...frame(body), d, zeros(roundUp(msize, 8) - msize));
      });
      return out;
    }
  }
}
