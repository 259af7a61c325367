// Our .proto files against the real CRIU's compiled descriptors (the oracle's pycriu).
// Any difference in a field's name, number, type, label, packing, default or (criu)
// options, in an enum, or in the bytes a message encodes to, fails here.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { criuFieldOptions, criuSchemas, PROTO_DIR } from '../src/schema/index.js';

interface OracleField {
  name: string;
  number: number;
  label: 'optional' | 'required' | 'repeated';
  type: string;
  typeName: string | null;
  packed: boolean;
  default: string | boolean | null;
  oneof: string | null;
  criu: Record<string, string | boolean>;
}
interface OracleEnum { name: string; values: { name: string; number: number }[] }
interface OracleFile {
  name: string;
  dependencies: string[];
  messages: { name: string; fields: OracleField[] }[];
  enums: OracleEnum[];
  extensions: { name: string; number: number; extendee: string; label: string; type: string; typeName: string | null }[];
}
interface OracleDump { files: OracleFile[]; samples: Record<string, { hex: string; value: unknown }> }

/** The oracle's install dir: CRIU_ORACLE_DIR, or derived from CRIT_ORACLE (crit binary or dir). */
function oracleDir(): string {
  if (process.env.CRIU_ORACLE_DIR) return process.env.CRIU_ORACLE_DIR;
  const crit = process.env.CRIT_ORACLE;
  if (crit && existsSync(crit)) return statSync(crit).isDirectory() ? crit : dirname(dirname(crit));
  return '/var/tmp/criu-oracle';
}

function dumpOracle(): OracleDump {
  const dist = join(oracleDir(), 'usr/lib/python3/dist-packages');
  const images = join(dist, 'pycriu/images');
  if (!existsSync(join(images, 'core_pb2.py'))) {
    throw new Error(`CRIU oracle not found: no ${images}/core_pb2.py (install it with /work/shared/oracle/install-criu.sh or set CRIT_ORACLE)`);
  }
  const python = process.env.CRIU_ORACLE_PYTHON || (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const out = execFileSync(python, ['-s', join(__dirname, 'oracle-descriptors.py'), dist], {
    env: { ...process.env, PYTHONPATH: `${dist}:${images}`, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION: 'python' },
    maxBuffer: 64 << 20,
    encoding: 'utf8',
  });
  return JSON.parse(out) as OracleDump;
}

const SCALARS = new Set(Object.keys(protobuf.types.basic));

/** Our field in the oracle dump's shape. */
function describeField(field: protobuf.Field): OracleField {
  field.resolve();
  const resolved = field.resolvedType;
  const isMessage = resolved instanceof protobuf.Type;
  const isEnum = resolved instanceof protobuf.Enum;
  const rawDefault: unknown = field.options?.default;
  return {
    name: field.name,
    number: field.id,
    label: field.required ? 'required' : field.repeated ? 'repeated' : 'optional',
    type: isMessage ? 'message' : isEnum ? 'enum' : field.type,
    typeName: resolved ? resolved.fullName.replace(/^\./, '') : null,
    packed: field.repeated ? field.packed : field.options?.packed === true,
    default: rawDefault === undefined ? null : typeof rawDefault === 'boolean' ? rawDefault : String(rawDefault),
    oneof: field.partOf ? field.partOf.name : null,
    criu: { ...criuFieldOptions(field) },
  };
}

/** File that declared a reflection object, relative to the proto dir. */
function fileOf(obj: protobuf.ReflectionObject): string | null {
  return obj.filename ? basename(obj.filename) : null;
}

/** Messages and enums defined by our .proto files (not google/protobuf ones), by full name. */
function ourDefinitions(root: protobuf.Root): { types: Map<string, protobuf.Type>; enums: Map<string, protobuf.Enum> } {
  const types = new Map<string, protobuf.Type>();
  const enums = new Map<string, protobuf.Enum>();
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      const name = obj.fullName.replace(/^\./, '');
      if (name.startsWith('google.')) continue;
      if (obj instanceof protobuf.Type) types.set(name, obj);
      if (obj instanceof protobuf.Enum) enums.set(name, obj);
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj as protobuf.NamespaceBase);
    }
  };
  walk(root);
  return { types, enums };
}

/** Imports of one of our .proto files, read from its text. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(PROTO_DIR, file), 'utf8');
  return [...text.matchAll(/^import\s+"([^"]+)";/gm)].map((m) => m[1]);
}

describe('CRIU schemas conform to the oracle', () => {
  let oracle: OracleDump;
  let root: protobuf.Root;
  let ours: ReturnType<typeof ourDefinitions>;

  beforeAll(() => {
    oracle = dumpOracle();
    root = criuSchemas();
    ours = ourDefinitions(root);
  });

  test('the oracle covers the image protos and rpc.proto', () => {
    const names = oracle.files.map((f) => f.name);
    for (const must of ['inventory.proto', 'core.proto', 'core-x86.proto', 'core-ppc64.proto', 'mm.proto', 'rpc.proto', 'opts.proto']) {
      expect(names).toContain(must);
    }
    expect(oracle.files.length).toBeGreaterThanOrEqual(70);
  });

  test('same files, each with the same imports', () => {
    for (const file of oracle.files) {
      expect(existsSync(join(PROTO_DIR, file.name))).toBe(true);
      expect({ file: file.name, imports: [...importsOf(file.name)].sort() }).toEqual({ file: file.name, imports: [...file.dependencies].sort() });
    }
  });

  test('same set of messages and enums, each in the same file', () => {
    const oracleMessages = new Map<string, string>();
    const oracleEnums = new Map<string, string>();
    for (const file of oracle.files) {
      for (const m of file.messages) oracleMessages.set(m.name, file.name);
      for (const e of file.enums) oracleEnums.set(e.name, file.name);
    }
    expect([...ours.types.keys()].sort()).toEqual([...oracleMessages.keys()].sort());
    expect([...ours.enums.keys()].sort()).toEqual([...oracleEnums.keys()].sort());
    for (const [name, type] of ours.types) expect([name, fileOf(type)]).toEqual([name, oracleMessages.get(name)]);
    for (const [name, en] of ours.enums) expect([name, fileOf(en)]).toEqual([name, oracleEnums.get(name)]);
  });

  test('every message has the same fields, declared in field-number order', () => {
    let checked = 0;
    for (const file of oracle.files) {
      for (const message of file.messages) {
        const type = ours.types.get(message.name);
        expect(type).toBeDefined();
        const fields = type!.fieldsArray.map(describeField);
        const expected = [...message.fields].sort((a, b) => a.number - b.number);
        // Compared per message so a failure names it.
        expect({ message: message.name, fields }).toEqual({ message: message.name, fields: expected });
        checked += fields.length;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  test('every enum has the same values', () => {
    for (const file of oracle.files) {
      for (const en of file.enums) {
        const ourEnum = ours.enums.get(en.name);
        expect(ourEnum).toBeDefined();
        const values = Object.entries(ourEnum!.values).map(([name, number]) => ({ name, number }));
        expect({ enum: en.name, values }).toEqual({ enum: en.name, values: en.values });
      }
    }
  });

  test('opts.proto extends FieldOptions with (criu) like CRIU', () => {
    const ext = oracle.files.find((f) => f.name === 'opts.proto')!.extensions;
    expect(ext).toEqual([{ name: 'criu', number: 1018, extendee: 'google.protobuf.FieldOptions', label: 'optional', type: 'message', typeName: 'CRIU_Opts' }]);
    // protobufjs keeps an extension where it is declared, with `extend` naming the target.
    const field = root.lookup('.criu');
    expect(field).toBeInstanceOf(protobuf.Field);
    const f = field as protobuf.Field;
    f.resolve();
    expect([f.id, f.extend, f.rule ?? 'optional', f.resolvedType?.fullName, basename(f.filename ?? '')]).toEqual([
      1018, 'google.protobuf.FieldOptions', 'optional', '.CRIU_Opts', 'opts.proto',
    ]);
    expect(root.lookupType('.google.protobuf.FieldOptions').fields['.criu']).toBeDefined();
  });

  test('oracle-encoded samples of every message decode to the same values and re-encode to the same bytes', () => {
    const names = Object.keys(oracle.samples);
    expect(names.length).toBe(ours.types.size);
    for (const name of names) {
      const sample = oracle.samples[name];
      const type = ours.types.get(name)!;
      const bytes = Buffer.from(sample.hex, 'hex');
      const decoded = type.decode(bytes);
      const value = type.toObject(decoded, { longs: String, enums: String, bytes: String });
      expect({ name, value }).toEqual({ name, value: sample.value });
      const direct = Buffer.from(type.encode(decoded).finish()).toString('hex');
      // Through plain objects with BigInt longs, the path the image writer takes.
      const viaObject = type.fromObject(type.toObject(decoded, { longs: BigInt, enums: String, bytes: Buffer }));
      const rebuilt = Buffer.from(type.encode(viaObject).finish()).toString('hex');
      expect({ name, direct, rebuilt }).toEqual({ name, direct: sample.hex, rebuilt: sample.hex });
    }
  });
});
