// zod schemas generated from the protobuf reflection: what a valid record of a
// CRIU message looks like in the typed API (keepCase names, 32-bit numbers,
// 64-bit BigInt, enums as numbers, Buffers for bytes). Used to check every
// decoded record and to refuse encoding what protobuf would silently mangle.
import { createRequire } from 'node:module';
import type { z } from 'zod';
import type { FieldPlan, MessagePlan } from '../codec/plan.js';
import { planOf } from '../codec/plan.js';
import { fastValid } from './fast-check.js';

// zod is loaded on first use: valid records never need it (see fast-check.ts), and loading it
// costs ~40-150 ms of module start-up in every process.
let zod: typeof z | undefined;
const Z = (): typeof z => (zod ??= (createRequire(__filename)('zod') as { z: typeof z }).z);

const I32 = [-2147483648, 2147483647] as const;
const U32 = [0, 4294967295] as const;
const I64 = [-(1n << 63n), (1n << 63n) - 1n] as const;
const U64 = [0n, (1n << 64n) - 1n] as const;

function int32Schema(range: readonly [number, number]): z.ZodType {
  return Z().number().int().gte(range[0]).lte(range[1]);
}

// 64-bit fields: BigInt (what decode returns); a safe-integer number is accepted when encoding.
// One custom check instead of a union: it is on the hot path of every decoded record.
function int64Schema(range: readonly [bigint, bigint]): z.ZodType {
  const [lo, hi] = range;
  const loNum = Math.max(Number(lo), Number.MIN_SAFE_INTEGER);
  return Z().custom<bigint | number>(
    (v) => (typeof v === 'bigint' ? v >= lo && v <= hi : typeof v === 'number' && Number.isSafeInteger(v) && v >= loNum),
    { message: `expected an integer from ${lo} to ${hi} (BigInt, or a safe-integer number)` },
  );
}

const cache = new WeakMap<MessagePlan, z.ZodType>();

function valueSchema(f: FieldPlan): z.ZodType {
  switch (f.kind) {
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return int32Schema(I32);
    case 'uint32':
    case 'fixed32':
      return int32Schema(U32);
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return int64Schema(I64);
    case 'uint64':
    case 'fixed64':
      return int64Schema(U64);
    case 'bool':
      return Z().boolean();
    case 'string':
      return Z().string();
    case 'bytes':
      return Z().instanceof(Uint8Array);
    case 'float':
    case 'double':
      return Z().number();
    case 'enum': {
      const ids = f.enumById!;
      const names = [...new Set(ids.values())].join(', ');
      return Z()
        .number()
        .int()
        .refine((v) => ids.has(v), { message: `not a value of enum ${f.typeName} (${names})` });
    }
    case 'message': {
      const plan = f.message!;
      return Z().lazy(() => messageSchemaOfPlan(plan()));
    }
  }
}

export function messageSchemaOfPlan(plan: MessagePlan): z.ZodType {
  const cached = cache.get(plan);
  if (cached) return cached;
  const shape: Record<string, z.ZodType> = {};
  for (const f of plan.fields) {
    const v = valueSchema(f);
    if (f.repeated) shape[f.name] = Z().array(v).optional();
    else if (f.required) shape[f.name] = v;
    else shape[f.name] = v.optional();
  }
  const schema = Z().strictObject(shape);
  cache.set(plan, schema);
  return schema;
}

/** The zod schema of a CRIU message, e.g. messageSchema('pagemap_entry'). */
export function messageSchema(name: string): z.ZodType {
  return messageSchemaOfPlan(planOf(name));
}

export interface ValidationProblem {
  /** 'vmas[3].start' style path; '' for the record itself. */
  field: string;
  message: string;
  missing: boolean;
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out;
}

/** Validate against a plan's schema; returns the first problem, or undefined when valid. */
export function checkMessage(plan: MessagePlan, value: unknown): ValidationProblem | undefined {
  if (fastValid(plan, value)) return undefined;
  const res = messageSchemaOfPlan(plan).safeParse(value);
  if (res.success) return undefined;
  const issue = res.error.issues[0];
  let path = issue.path;
  let message = issue.message;
  let missing = false;
  if (issue.code === 'unrecognized_keys') {
    path = [...path, issue.keys[0]];
    message = `unknown field of ${plan.name}`;
  } else if (isMissing(value, path)) {
    missing = true;
    message = 'required field is missing';
  }
  return { field: formatPath(path), message, missing };
}

// True when the last path element names a key its parent object does not have.
function isMissing(value: unknown, path: ReadonlyArray<PropertyKey>): boolean {
  if (path.length === 0) return false;
  let cur: unknown = value;
  for (const p of path.slice(0, -1)) {
    if (typeof cur !== 'object' || cur === null) return false;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return false;
  const last = path[path.length - 1];
  return (cur as Record<PropertyKey, unknown>)[last] === undefined;
}
