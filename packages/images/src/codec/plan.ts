// A compact, cached view of a message type, shaped for our own encoder/decoder: fields sorted
// by number, each with its scalar kind and wire type. Built from the plan table made at build
// time (dist/criu-plans.json, scripts/schemas-json.mjs) when there is one: then neither
// protobufjs nor the schemas are loaded at all; else from protobufjs reflection of the .proto files.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { messageType, enumType, criuFieldOptions, criuSchemas, protobufjs, protoFingerprint, resolvedTop, PROTO_DIR, UnknownSchemaTypeError, type CriuFieldOptions } from '../schema/index.js';

export type ScalarKind =
  | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32'
  | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64'
  | 'bool' | 'string' | 'bytes' | 'float' | 'double';

export type FieldKind = ScalarKind | 'enum' | 'message';

export interface FieldPlan {
  name: string;
  id: number;
  kind: FieldKind;
  repeated: boolean;
  required: boolean;
  packed: boolean;
  /** Wire type of one (unpacked) value. */
  wireType: number;
  /** For enums: number -> name, name -> number. */
  enumById?: Map<number, string>;
  enumByName?: Map<string, number>;
  /** For messages: the nested plan (resolved lazily; schemas may refer to each other). */
  message?: () => MessagePlan;
  messageName?: string;
  criu: CriuFieldOptions;
  /** The field's type as the .proto declares it (enum and message names included). */
  typeName: string;
}

export interface MessagePlan {
  name: string;
  fields: FieldPlan[];
  byId: Map<number, FieldPlan>;
  byName: Map<string, FieldPlan>;
  required: FieldPlan[];
}

const WIRE: Record<FieldKind, number> = {
  int32: 0, uint32: 0, sint32: 0, int64: 0, uint64: 0, sint64: 0, bool: 0, enum: 0,
  fixed64: 1, sfixed64: 1, double: 1,
  string: 2, bytes: 2, message: 2,
  fixed32: 5, sfixed32: 5, float: 5,
};

const SCALARS = new Set<string>(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64', 'bool', 'string', 'bytes', 'float', 'double']);

export const is64 = (k: FieldKind): boolean => k === 'int64' || k === 'uint64' || k === 'sint64' || k === 'fixed64' || k === 'sfixed64';
export const isInt32 = (k: FieldKind): boolean => k === 'int32' || k === 'uint32' || k === 'sint32' || k === 'fixed32' || k === 'sfixed32';
export const isPackable = (k: FieldKind): boolean => k !== 'string' && k !== 'bytes' && k !== 'message';

/**
 * One field as the plan table stores it: name, number, kind, flags (PLAN_REPEATED | ...), the
 * full name of its enum or message type (0 for scalars), its declared type, its CRIU options (0: none).
 */
export type PlanFieldRow = [string, number, FieldKind, number, string | 0, string, CriuFieldOptions | 0];
/** A message type in the plan table: its short name and its fields in declaration order. */
export interface PlanTableEntry { name: string; fields: PlanFieldRow[] }
/** Every message type (by full name, no leading dot) and the enums they use ([name, value] in order). */
export interface PlanTable { messages: Record<string, PlanTableEntry>; enums: Record<string, Array<[string, number]>> }

const PLAN_REPEATED = 1, PLAN_REQUIRED = 2, PLAN_PACKED = 4;

/** A message type's table entry from protobufjs reflection (what the build stores). */
function reflectedEntry(name: string): PlanTableEntry {
  const pb = protobufjs();
  const type = messageType(name);
  resolvedTop(type);
  const fields = type.fieldsArray.map((f): PlanFieldRow => {
    f.resolve();
    let kind: FieldKind;
    let ref: string | 0 = 0;
    if (SCALARS.has(f.type)) kind = f.type as ScalarKind;
    else if (f.resolvedType instanceof pb.Enum) kind = 'enum';
    else if (f.resolvedType instanceof pb.Type) kind = 'message';
    else throw new Error(`field ${type.name}.${f.name}: unsupported type ${f.type}`);
    if (kind === 'enum' || kind === 'message') ref = f.resolvedType!.fullName.slice(1);
    const packed = f.repeated && isPackable(kind) && f.packed;
    const criu = criuFieldOptions(f);
    return [f.name, f.id, kind, (f.repeated ? PLAN_REPEATED : 0) | (f.required ? PLAN_REQUIRED : 0) | (packed ? PLAN_PACKED : 0), ref, f.type, Object.keys(criu).length ? criu : 0];
  });
  return { name: type.name, fields };
}

const reflectedEnum = (name: string): Array<[string, number]> => Object.entries(enumType(name).values);

/** The plan table of every message type of the schemas (the build writes it to dist/criu-plans.json). */
export function compilePlanTable(): PlanTable {
  const pb = protobufjs();
  const table: PlanTable = { messages: {}, enums: {} };
  const walk = (ns: { nestedArray: unknown[] }): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof pb.Type) {
        const name = o.fullName.slice(1);
        const entry = reflectedEntry(name);
        table.messages[name] = entry;
        for (const row of entry.fields) if (row[2] === 'enum') table.enums[row[4] as string] ??= reflectedEnum(row[4] as string);
      }
      if (o instanceof pb.Namespace) walk(o);
    }
  };
  walk(criuSchemas());
  return table;
}

/**
 * The table the build made next to this module, if it was made from these .proto files: the
 * package's own (shipped with it, and a rebuild follows every change to them), or, for another
 * directory (CRIU_TS_PROTO_DIR), ones with the same contents (hashing them costs ~3 ms).
 */
function loadPlanTable(): PlanTable | undefined {
  const file = join(__dirname, 'criu-plans.json');
  try {
    if (!existsSync(file) || !PROTO_DIR) return undefined;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { fingerprint?: string; table?: PlanTable };
    if (!saved.table) return undefined;
    if (resolve(PROTO_DIR) !== resolve(__dirname, '../proto') && saved.fingerprint !== protoFingerprint(PROTO_DIR)) return undefined;
    return saved.table;
  } catch {
    return undefined; // unreadable or not ours: reflection
  }
}

let table: PlanTable | undefined | null = null;
const plans = new Map<string, MessagePlan>();

/** Plan of a CRIU message by its full name, e.g. 'core_entry'. Throws UnknownSchemaTypeError. */
export function planOf(name: string): MessagePlan {
  const known = plans.get(name);
  if (known) return known;
  if (table === null) table = loadPlanTable();
  let entry: PlanTableEntry;
  if (table) {
    if (!Object.hasOwn(table.messages, name)) throw new UnknownSchemaTypeError(name, 'message');
    entry = table.messages[name];
  } else entry = reflectedEntry(name);
  const enumValues = (ref: string) => (table ? table.enums[ref] : reflectedEnum(ref));
  const fields: FieldPlan[] = entry.fields
    .map(([fname, id, kind, flags, ref, typeName, criu]): FieldPlan => {
      const f: FieldPlan = {
        name: fname, id, kind,
        repeated: (flags & PLAN_REPEATED) !== 0, required: (flags & PLAN_REQUIRED) !== 0, packed: (flags & PLAN_PACKED) !== 0,
        wireType: WIRE[kind], criu: criu || {}, typeName,
      };
      if (kind === 'enum') {
        const values = enumValues(ref as string);
        f.enumByName = new Map(values);
        f.enumById = new Map();
        // Last name wins for aliases, as in python protobuf's values_by_number.
        for (const [n, v] of values) f.enumById.set(v, n);
      } else if (kind === 'message') {
        const sub = ref as string;
        f.messageName = table ? table.messages[sub].name : sub.slice(sub.lastIndexOf('.') + 1);
        f.message = () => planOf(sub);
      }
      return f;
    })
    .sort((a, b) => a.id - b.id);
  const plan: MessagePlan = {
    name: entry.name,
    fields,
    byId: new Map(fields.map((f) => [f.id, f])),
    byName: new Map(fields.map((f) => [f.name, f])),
    required: fields.filter((f) => f.required),
  };
  plans.set(name, plan);
  return plan;
}

/** Whether plans come from the build's table (no protobufjs) or from reflection: for tests. */
export function planSource(): 'table' | 'reflection' {
  if (table === null) table = loadPlanTable();
  return table ? 'table' : 'reflection';
}
