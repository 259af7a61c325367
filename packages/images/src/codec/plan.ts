// A compact, cached view of a protobufjs message type, shaped for our own
// encoder/decoder: fields sorted by number, each with its scalar kind and wire type.
import protobuf from 'protobufjs';
import { messageType, criuFieldOptions, resolvedTop, type CriuFieldOptions } from '../schema/index.js';

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
  field: protobuf.Field;
}

export interface MessagePlan {
  name: string;
  type: protobuf.Type;
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

const plans = new WeakMap<protobuf.Type, MessagePlan>();

export function planOfType(type: protobuf.Type): MessagePlan {
  const cached = plans.get(type);
  if (cached) return cached;
  resolvedTop(type);
  const fields: FieldPlan[] = type.fieldsArray
    .map((f) => {
      f.resolve();
      let kind: FieldKind;
      let enumById: Map<number, string> | undefined;
      let enumByName: Map<string, number> | undefined;
      let message: (() => MessagePlan) | undefined;
      let messageName: string | undefined;
      if (SCALARS.has(f.type)) kind = f.type as ScalarKind;
      else if (f.resolvedType instanceof protobuf.Enum) {
        kind = 'enum';
        const e = f.resolvedType;
        enumByName = new Map(Object.entries(e.values));
        enumById = new Map();
        // Last name wins for aliases, as in python protobuf's values_by_number.
        for (const [name, v] of Object.entries(e.values)) enumById.set(v, name);
      } else if (f.resolvedType instanceof protobuf.Type) {
        kind = 'message';
        const sub = f.resolvedType;
        messageName = sub.name;
        message = () => planOfType(sub);
      } else throw new Error(`field ${type.name}.${f.name}: unsupported type ${f.type}`);
      return {
        name: f.name,
        id: f.id,
        kind,
        repeated: f.repeated,
        required: f.required,
        packed: f.repeated && isPackable(kind) && f.packed,
        wireType: WIRE[kind],
        enumById,
        enumByName,
        message,
        messageName,
        criu: criuFieldOptions(f),
        field: f,
      } satisfies FieldPlan;
    })
    .sort((a, b) => a.id - b.id);
  const plan: MessagePlan = {
    name: type.name,
    type,
    fields,
    byId: new Map(fields.map((f) => [f.id, f])),
    byName: new Map(fields.map((f) => [f.name, f])),
    required: fields.filter((f) => f.required),
  };
  plans.set(type, plan);
  return plan;
}

/** Plan of a CRIU message by name, e.g. 'core_entry'. */
export function planOf(name: string): MessagePlan {
  return planOfType(messageType(name));
}
