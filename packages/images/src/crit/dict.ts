// Typed message <-> crit's JSON dict (pycriu pb2dict / dict2pb): same keys in
// field-number order, enum names, base64 bytes, and in pretty mode the
// (criu).hex/dev/flags/dict/ipadd renderings. Decoding the text back accepts
// everything crit's dict2pb accepts (names, hex strings, "a | b" flags, ...).
import type { FieldPlan, MessagePlan } from '../codec/plan.js';
import { is64, isInt32 } from '../codec/plan.js';
import type { Msg } from '../codec/message-codec.js';
import type { CritJson } from './python-json.js';
import { decodeBase64Lines, decodeQuotedPrintable, encodeBase64Lines, encodeQuotedPrintable } from './encodings.js';
import { wordsToIp, ipToWords } from './ip.js';
import { DICT_MAPS, FLAG_MAPS, decodeDev, encodeDev, mapFlags, pyHex, pyInt, unmapFlags } from './conversions.js';

/** A JSON integer: number when exactly representable, else BigInt (what parseCritJson yields). */
export function jsonInt(v: bigint | number): number | bigint {
  if (typeof v === 'number') return v;
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function castOut(f: FieldPlan, v: unknown, pretty: boolean, parentHex: boolean): CritJson {
  const hex = parentHex || f.criu.hex === true;
  switch (f.kind) {
    case 'message':
      return toCritDict(f.message!(), v as Msg, pretty, hex);
    case 'bytes':
      if (f.criu.conv === 'unix_name') return encodeQuotedPrintable(v as Uint8Array);
      if (f.criu.conv) throw new Error(`unknown (criu).conv '${f.criu.conv}' on ${f.name}`);
      return encodeBase64Lines(v as Uint8Array);
    case 'enum':
      return f.enumById!.get(v as number)!;
    case 'bool':
      return v as boolean;
    case 'string':
      return v as string;
    case 'float':
    case 'double':
      return v as number;
    default:
      break;
  }
  const n = v as number | bigint;
  if (!pretty) return jsonInt(n);
  const big = BigInt(n);
  if (hex) return pyHex(big);
  if (f.criu.dev) return decodeDev(big, f.criu.odev === true);
  if (f.criu.flags !== undefined) {
    const map = FLAG_MAPS[f.criu.flags];
    return map ? mapFlags(big, map) : pyHex(big);
  }
  if (f.criu.dict !== undefined) {
    const name = DICT_MAPS[f.criu.dict]?.[f.name]?.[Number(n)];
    return name ?? jsonInt(n);
  }
  return jsonInt(n);
}

/** pb2dict: a typed message as crit's JSON object. */
export function toCritDict(plan: MessagePlan, msg: Msg, pretty: boolean, isHex = false): { [key: string]: CritJson } {
  const d: { [key: string]: CritJson } = {};
  for (const f of plan.fields) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    if (f.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      // crit renders the first (IPv4) or first four (IPv6) words as one address.
      if (pretty && f.criu.ipadd && isInt32(f.kind) && (arr.length === 1 || arr.length >= 4)) d[f.name] = [wordsToIp(arr as number[])];
      else d[f.name] = arr.map((x) => castOut(f, x, pretty, isHex));
    } else d[f.name] = castOut(f, v, pretty, isHex);
  }
  return d;
}

export class DictError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

const isPlainObject = (v: unknown): v is Record<string, CritJson> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

// Python truthiness, for bool fields (dict2pb uses bool(value)).
function pyTruthy(v: CritJson): boolean {
  if (v === null || v === false || v === 0 || v === 0n || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  if (typeof v === 'number' && Number.isNaN(v)) return true;
  return true;
}

function castIn(f: FieldPlan, v: CritJson, path: string): unknown {
  const fail = (reason: string): never => {
    throw new DictError(path, reason);
  };
  switch (f.kind) {
    case 'message':
      if (!isPlainObject(v)) fail(`expected an object for message ${f.messageName}`);
      return fromCritDict(f.message!(), v as Record<string, CritJson>, path);
    case 'bytes':
      if (typeof v !== 'string') fail(`expected a ${f.criu.conv === 'unix_name' ? 'quoted-printable' : 'base64'} string`);
      try {
        return f.criu.conv === 'unix_name' ? decodeQuotedPrintable(v as string) : decodeBase64Lines(v as string);
      } catch (err) {
        return fail((err as Error).message);
      }
    case 'enum': {
      if (typeof v === 'string') {
        const n = f.enumByName!.get(v);
        return n ?? fail(`'${v}' is not a name in enum ${f.typeName}`);
      }
      if (typeof v === 'number' && f.enumById!.has(v)) return v;
      return fail(`expected a name from enum ${f.typeName}`);
    }
    case 'bool':
      return pyTruthy(v);
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'bigint') return String(v);
      if (typeof v === 'boolean') return v ? 'True' : 'False';
      return fail('expected a string');
    case 'float':
    case 'double':
      if (typeof v === 'number') return v;
      if (typeof v === 'bigint') return Number(v);
      return fail('expected a number');
    default:
      break;
  }
  // Integer kinds.
  let big: bigint;
  if (typeof v === 'string') {
    try {
      if (f.criu.dev) big = encodeDev(v, f.criu.odev === true);
      else if (f.criu.flags !== undefined && FLAG_MAPS[f.criu.flags]) big = unmapFlags(v, FLAG_MAPS[f.criu.flags]);
      else if (f.criu.dict !== undefined) {
        const table = DICT_MAPS[f.criu.dict]?.[f.name] ?? {};
        const hit = Object.entries(table).find(([, name]) => name === v);
        big = hit ? BigInt(hit[0]) : pyInt(v, 0);
      } else big = pyInt(v, 0);
    } catch (err) {
      return fail((err as Error).message);
    }
  } else if (typeof v === 'bigint') big = v;
  else if (typeof v === 'number') {
    if (!Number.isFinite(v)) return fail(`cannot convert ${v} to an integer`);
    big = BigInt(Math.trunc(v));
  } else if (typeof v === 'boolean') big = v ? 1n : 0n;
  else return fail('expected an integer');
  if (is64(f.kind)) return big;
  // 32-bit: a number when it fits, else keep the BigInt so validation names the range problem.
  return big >= -(2n ** 53n) && big <= 2n ** 53n ? Number(big) : big;
}

/** dict2pb: crit's JSON object -> typed message (not yet validated). Unknown keys are ignored, as crit does. */
export function fromCritDict(plan: MessagePlan, d: Record<string, CritJson>, path = ''): Msg {
  const out: Msg = {};
  for (const f of plan.fields) {
    if (!Object.prototype.hasOwnProperty.call(d, f.name)) continue;
    const v = d[f.name];
    const fpath = path ? `${path}.${f.name}` : f.name;
    if (f.repeated) {
      if (!Array.isArray(v)) throw new DictError(fpath, 'expected an array');
      if (v.length === 0) continue;
      if (f.criu.ipadd && typeof v[0] === 'string') {
        const words = ipToWords(v[0]);
        if (!words) throw new DictError(`${fpath}[0]`, `'${v[0]}' does not appear to be an IPv4 or IPv6 address`);
        out[f.name] = words;
        continue;
      }
      out[f.name] = v.map((x, i) => castIn(f, x, `${fpath}[${i}]`));
    } else {
      if (v === null && f.kind !== 'bool') throw new DictError(fpath, 'null is not a valid value');
      out[f.name] = castIn(f, v, fpath);
    }
  }
  return out;
}
