// A fast pre-check of records against a message plan. Building and running the zod schemas
// costs ~100 ms per process (most of a small dump's or restore's fixed cost), so valid records
// — nearly all of them — are accepted here with plain closures; anything this check does not
// accept is handed to the zod schema, which decides and words the error. It must therefore
// never accept what zod would refuse (it may refuse more: zod then has the last word).
import type { FieldKind, FieldPlan, MessagePlan } from '../codec/plan.js';

type Check = (v: unknown) => boolean;

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;
const U32_MAX = 4294967295;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

const int32In = (lo: number, hi: number): Check => (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= lo && v <= hi;
const int64In = (lo: bigint, hi: bigint): Check => {
  const loNum = Math.max(Number(lo), Number.MIN_SAFE_INTEGER);
  return (v) => (typeof v === 'bigint' ? v >= lo && v <= hi : typeof v === 'number' && Number.isSafeInteger(v) && v >= loNum);
};

const SCALAR: Partial<Record<FieldKind, Check>> = {
  int32: int32In(I32_MIN, I32_MAX),
  sint32: int32In(I32_MIN, I32_MAX),
  sfixed32: int32In(I32_MIN, I32_MAX),
  uint32: int32In(0, U32_MAX),
  fixed32: int32In(0, U32_MAX),
  int64: int64In(I64_MIN, I64_MAX),
  sint64: int64In(I64_MIN, I64_MAX),
  sfixed64: int64In(I64_MIN, I64_MAX),
  uint64: int64In(0n, U64_MAX),
  fixed64: int64In(0n, U64_MAX),
  bool: (v) => typeof v === 'boolean',
  string: (v) => typeof v === 'string',
  bytes: (v) => v instanceof Uint8Array,
  float: (v) => typeof v === 'number' && Number.isFinite(v),
  double: (v) => typeof v === 'number' && Number.isFinite(v),
};

const compiled = new WeakMap<MessagePlan, Check>();

function valueCheck(f: FieldPlan): Check {
  if (f.kind === 'enum') {
    const ids = f.enumById!;
    return (v) => typeof v === 'number' && Number.isSafeInteger(v) && ids.has(v);
  }
  if (f.kind === 'message') {
    const plan = f.message!;
    let c: Check | undefined;
    return (v) => (c ??= checkOf(plan()))(v);
  }
  return SCALAR[f.kind]!;
}

function checkOf(plan: MessagePlan): Check {
  const have = compiled.get(plan);
  if (have) return have;
  const fields = plan.fields.map((f) => ({ name: f.name, repeated: f.repeated, required: f.required, check: valueCheck(f) }));
  const known = plan.byName;
  const check: Check = (v) => {
    if (typeof v !== 'object' || v === null) return false;
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return false;
    const o = v as Record<string, unknown>;
    for (const k in o) if (!known.has(k)) return false;
    for (const f of fields) {
      const x = o[f.name];
      if (x === undefined) {
        if (f.required) return false;
        continue;
      }
      if (f.repeated) {
        if (!Array.isArray(x)) return false;
        for (let i = 0; i < x.length; i++) if (!f.check(x[i])) return false;
      } else if (!f.check(x)) return false;
    }
    return true;
  };
  compiled.set(plan, check);
  return check;
}

/** True when `value` is certainly a valid record of `plan` (false: ask the zod schema). */
export function fastValid(plan: MessagePlan, value: unknown): boolean {
  return checkOf(plan)(value);
}
