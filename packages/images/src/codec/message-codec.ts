// Proto2 encode/decode driven by protobufjs reflection. We do the wire work
// ourselves so that decoding follows python-protobuf (what crit uses) exactly:
// strict UTF-8, unknown enum values dropped like unknown fields, merge of
// repeated message occurrences, and 64-bit values as BigInt without Long.
import { WireError, WireReader, WireWriter, unzigzag32, unzigzag64, zigzag32, zigzag64, WT_LEN } from './wire.js';
import { is64, type FieldPlan, type MessagePlan } from './plan.js';

/** A decoded message: keepCase field names, only fields present on the wire. */
export type Msg = { [field: string]: unknown };

export class CodecError extends Error {
  constructor(
    readonly reason: string,
    /** Offset relative to the start of the decoded bytes. */
    readonly at: number,
    readonly field?: string,
    readonly code: 'DECODE_FAILED' | 'MISSING_REQUIRED' = 'DECODE_FAILED',
  ) {
    super(reason);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_DEPTH = 100;

function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function readScalar(r: WireReader, f: FieldPlan): unknown {
  switch (f.kind) {
    case 'int32':
    case 'enum':
      return r.varint32() | 0;
    case 'uint32':
      return r.varint32();
    case 'sint32':
      return unzigzag32(r.varint32());
    case 'int64':
      return BigInt.asIntN(64, r.varint64());
    case 'uint64':
      return r.varint64();
    case 'sint64':
      return unzigzag64(r.varint64());
    case 'bool':
      return r.varint64() !== 0n;
    case 'fixed32':
      return r.fixed32();
    case 'sfixed32':
      return r.sfixed32();
    case 'fixed64':
      return r.fixed64();
    case 'sfixed64':
      return r.sfixed64();
    case 'float':
      return r.float();
    case 'double':
      return r.double();
    case 'bytes':
      return Buffer.from(r.bytes());
    case 'string': {
      const at = r.pos;
      const b = r.bytes();
      try {
        return utf8.decode(b);
      } catch {
        throw new WireError('string is not valid UTF-8', at);
      }
    }
    default:
      throw new WireError(`unexpected kind ${f.kind}`, r.pos);
  }
}

function decodeInto(plan: MessagePlan, r: WireReader, end: number, out: Msg, path: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new CodecError('messages nested too deeply', r.pos, path || undefined);
  const savedEnd = r.end;
  r.end = end;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = r.varint32();
    const fieldNo = tag >>> 3;
    const wt = tag & 7;
    if (fieldNo === 0) throw new CodecError('field number 0 is illegal', tagAt, path || undefined);
    const f = plan.byId.get(fieldNo);
    if (!f) {
      r.skip(wt, fieldNo);
      continue;
    }
    if (f.kind === 'message') {
      const fpath = join(path, f.name);
      if (wt !== WT_LEN) {
        r.skip(wt, fieldNo);
        continue;
      }
      const len = r.lengthPrefix();
      const subEnd = r.pos + len;
      const sub = f.message!();
      if (f.repeated) {
        let arr = out[f.name] as Msg[] | undefined;
        if (!arr) out[f.name] = arr = [];
        const m: Msg = {};
        decodeInto(sub, r, subEnd, m, `${fpath}[${arr.length}]`, depth + 1);
        arr.push(m);
      } else {
        // A repeated occurrence of a singular message merges into the first.
        const m = (out[f.name] as Msg | undefined) ?? {};
        decodeInto(sub, r, subEnd, m, fpath, depth + 1);
        out[f.name] = m;
      }
      continue;
    }
    if (f.repeated && wt === WT_LEN && f.kind !== 'string' && f.kind !== 'bytes') {
      // Packed encoding (accepted whether or not the schema says packed).
      const len = r.lengthPrefix();
      const subEnd = r.pos + len;
      const inner = r.end;
      r.end = subEnd;
      let arr = out[f.name] as unknown[] | undefined;
      while (r.pos < subEnd) {
        const v = readScalar(r, f);
        if (f.kind === 'enum' && !f.enumById!.has(v as number)) continue;
        if (!arr) out[f.name] = arr = [];
        arr.push(v);
      }
      r.end = inner;
      continue;
    }
    if (wt !== f.wireType) {
      // python-protobuf treats a known field with another wire type as unknown.
      r.skip(wt, fieldNo);
      continue;
    }
    const v = readScalar(r, f);
    // proto2 enums are closed: an unknown value is kept as an unknown field, i.e. dropped.
    if (f.kind === 'enum' && !f.enumById!.has(v as number)) continue;
    if (f.repeated) {
      let arr = out[f.name] as unknown[] | undefined;
      if (!arr) out[f.name] = arr = [];
      arr.push(v);
    } else out[f.name] = v;
  }
  r.end = savedEnd;
  for (const f of plan.required) {
    if (!(f.name in out)) throw new CodecError(`missing required field '${join(path, f.name)}' of ${plan.name}`, end, join(path, f.name), 'MISSING_REQUIRED');
  }
}

/**
 * Decode one proto2 message. Throws CodecError (with an offset relative to
 * `bytes`) on malformed input or a missing required field.
 */
export function decodeMessagePlan(plan: MessagePlan, bytes: Uint8Array): Msg {
  const r = new WireReader(bytes);
  const out: Msg = {};
  try {
    decodeInto(plan, r, bytes.length, out, '', 0);
  } catch (err) {
    if (err instanceof CodecError) throw err;
    if (err instanceof WireError) throw new CodecError(err.message, err.at);
    if (err instanceof RangeError) throw new CodecError(`decode failed: ${err.message}`, r.pos);
    throw err;
  }
  return out;
}

function writeScalar(w: WireWriter, f: FieldPlan, v: unknown): void {
  switch (f.kind) {
    case 'int32':
    case 'enum':
      w.int32(v as number);
      return;
    case 'uint32':
      w.uvarint32(v as number);
      return;
    case 'sint32':
      w.uvarint32(zigzag32(v as number));
      return;
    case 'int64':
    case 'uint64':
      w.varint64(BigInt(v as bigint));
      return;
    case 'sint64':
      w.varint64(zigzag64(BigInt(v as bigint)));
      return;
    case 'bool':
      w.uvarint32(v ? 1 : 0);
      return;
    case 'fixed32':
      w.fixed32(v as number);
      return;
    case 'sfixed32':
      w.sfixed32(v as number);
      return;
    case 'fixed64':
    case 'sfixed64':
      w.fixed64(BigInt(v as bigint));
      return;
    case 'float':
      w.float(v as number);
      return;
    case 'double':
      w.double(v as number);
      return;
    case 'string':
      w.lengthDelimited(Buffer.from(v as string, 'utf8'));
      return;
    case 'bytes':
      w.lengthDelimited(v as Uint8Array);
      return;
    default:
      throw new Error(`unexpected kind ${f.kind}`);
  }
}

function encodeInto(plan: MessagePlan, msg: Msg, w: WireWriter): void {
  for (const f of plan.fields) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    if (f.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      if (f.kind === 'message') {
        const sub = f.message!();
        for (const m of arr) {
          w.tag(f.id, WT_LEN);
          w.lengthDelimited(encodeMessagePlan(sub, m as Msg));
        }
      } else if (f.packed) {
        const inner = new WireWriter(arr.length * (is64(f.kind) ? 10 : 5));
        for (const x of arr) writeScalar(inner, f, x);
        w.tag(f.id, WT_LEN);
        w.lengthDelimited(inner.finish());
      } else {
        for (const x of arr) {
          w.tag(f.id, f.wireType);
          writeScalar(w, f, x);
        }
      }
    } else if (f.kind === 'message') {
      w.tag(f.id, WT_LEN);
      w.lengthDelimited(encodeMessagePlan(f.message!(), v as Msg));
    } else {
      w.tag(f.id, f.wireType);
      writeScalar(w, f, v);
    }
  }
}

/** Encode a message that has already been validated (see validate/). Fields go out in number order. */
export function encodeMessagePlan(plan: MessagePlan, msg: Msg): Uint8Array {
  const w = new WireWriter();
  encodeInto(plan, msg, w);
  return w.finish();
}
