// The schema loader: finding the proto dir, caching, name lookup, (criu) options and
// 64-bit values through protobufjs.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import protobuf from 'protobufjs';
import {
  criuFieldOptions,
  criuSchemas,
  enumType,
  findProtoDir,
  listProtoFiles,
  messageType,
  PROTO_DIR,
  protoFingerprint,
  resolvedTop,
  SchemaLoadError,
  UnknownSchemaTypeError,
} from '../src/schema/index.js';

const PACKAGE_DIR = resolve(__dirname, '..');

type SchemaModule = typeof import('../src/schema/index.js');

/** A fresh copy of the schema module (empty cache), loaded with CRIU_TS_PROTO_DIR set as given. */
function freshSchemaModule(protoDirOverride?: string): SchemaModule {
  const saved = process.env.CRIU_TS_PROTO_DIR;
  if (protoDirOverride === undefined) delete process.env.CRIU_TS_PROTO_DIR;
  else process.env.CRIU_TS_PROTO_DIR = protoDirOverride;
  try {
    let mod: SchemaModule | undefined;
    jest.isolateModules(() => {
      mod = jest.requireActual<SchemaModule>('../src/schema/index.js');
    });
    return mod!;
  } finally {
    if (saved === undefined) delete process.env.CRIU_TS_PROTO_DIR;
    else process.env.CRIU_TS_PROTO_DIR = saved;
  }
}

describe('proto directory', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'criu-ts-schema-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test('PROTO_DIR is the package proto/ folder when running from src/', () => {
    expect(PROTO_DIR).toBe(join(PACKAGE_DIR, 'proto'));
    expect(listProtoFiles(PROTO_DIR).map((f) => f.slice(PROTO_DIR.length + 1))).toEqual(
      expect.arrayContaining(['inventory.proto', 'core.proto', 'core-x86.proto', 'core-ppc64.proto', 'rpc.proto', 'opts.proto']),
    );
  });

  test('found from the built dist/ folder', () => {
    expect(findProtoDir(join(PACKAGE_DIR, 'dist'))).toBe(join(PACKAGE_DIR, 'proto'));
  });

  test('found from an installed package and from a bundle that inlined it', () => {
    const installed = join(tmp, 'app', 'node_modules', '@criu', 'images');
    mkdirSync(join(installed, 'dist'), { recursive: true });
    symlinkSync(PROTO_DIR, join(installed, 'proto'));
    expect(findProtoDir(join(installed, 'dist'))).toBe(join(installed, 'proto'));
    // e.g. @criu/cli's dist with @criu/images bundled into it
    const bundled = join(tmp, 'app', 'node_modules', '@criu', 'cli', 'dist');
    mkdirSync(bundled, { recursive: true });
    expect(findProtoDir(bundled)).toBe(join(tmp, 'app', 'node_modules', '@criu', 'images', 'proto'));
  });

  test('not found: criuSchemas() throws SchemaLoadError, importing does not', () => {
    const lonely = join(tmp, 'nowhere');
    mkdirSync(lonely);
    expect(findProtoDir(lonely)).toBeUndefined();
    const mod = freshSchemaModule(join(tmp, 'empty-dir-without-protos'));
    expect(() => mod.criuSchemas()).toThrow(mod.SchemaLoadError);
  });

  test('a broken .proto file gives SchemaLoadError naming the directory', () => {
    const broken = join(tmp, 'broken');
    mkdirSync(broken);
    writeFileSync(join(broken, 'inventory.proto'), 'syntax = "proto2";\nmessage inventory_entry { required uint32 = 1; }\n');
    const mod = freshSchemaModule(broken);
    let caught: unknown;
    try {
      mod.criuSchemas();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(mod.SchemaLoadError);
    expect((caught as SchemaLoadError).protoDir).toBe(broken);
    expect((caught as Error).message).toContain(broken);
  });
});

describe('criuSchemas / messageType / enumType', () => {
  test('loads every file once and caches the Root', () => {
    const mod = freshSchemaModule();
    const root = mod.criuSchemas();
    // (a fresh module registry has its own protobufjs, hence no instanceof here)
    expect(root.constructor.name).toBe('Root');
    expect(mod.criuSchemas()).toBe(root);
    expect(root.files.filter((f) => f.startsWith(mod.PROTO_DIR)).length).toBe(listProtoFiles(mod.PROTO_DIR).length);
  });

  test('messageType returns the type, with CRIU snake_case field names kept', () => {
    const inv = messageType('inventory_entry');
    expect(inv).toBeInstanceOf(protobuf.Type);
    expect(inv).toBe(criuSchemas().lookupType('.inventory_entry'));
    expect(Object.keys(inv.fields)).toEqual(expect.arrayContaining(['img_version', 'root_ids', 'root_cg_set', 'lsmtype']));
    expect(messageType('criu_req').fields.type.resolvedType).toBe(enumType('criu_req_type'));
    expect(messageType('core_entry').fields.thread_info.resolvedType).toBe(messageType('thread_info_x86'));
  });

  test('unknown or non-message names throw UnknownSchemaTypeError', () => {
    for (const name of ['no_such_entry', '', '.inventory_entry', 'fd_types', 'inventory_entry.img_version', 'constructor', '__proto__']) {
      let caught: unknown;
      try {
        messageType(name);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(UnknownSchemaTypeError);
      expect(caught).toMatchObject({ typeName: name, kind: 'message' });
      expect((caught as Error).message).toContain(`'${name}'`);
    }
    expect(() => enumType('inventory_entry')).toThrow(UnknownSchemaTypeError);
  });

  test('enumType finds top-level and nested enums', () => {
    expect(enumType('core_entry.march').values.X86_64).toBe(1);
    expect(enumType('core_entry.march').values.PPC64).toBe(4);
    expect(enumType('fd_types').values.REG).toBe(1);
  });
});

describe('criuFieldOptions', () => {
  const opts = (type: string, field: string) => criuFieldOptions(messageType(type).fields[field]);

  test('reads each kind of (criu) option', () => {
    expect(opts('pagemap_entry', 'vaddr')).toEqual({ hex: true });
    expect(opts('pagemap_entry', 'flags')).toEqual({ flags: 'pmap.flags' });
    expect(opts('vma_entry', 'prot')).toEqual({ flags: 'mmap.prot' });
    expect(opts('irmap_cache_entry', 'dev')).toEqual({ dev: true, odev: true });
    expect(opts('inet_sk_entry', 'src_addr')).toEqual({ ipadd: true });
    expect(opts('task_core_entry', 'task_state')).toEqual({ dict: 'gen' });
    expect(opts('unix_sk_entry', 'name')).toEqual({ conv: 'unix_name' });
    expect(opts('thread_info_x86', 'gpregs')).toEqual({ hex: true });
  });

  test('a field without (criu) options, or with only other options, gives {}', () => {
    expect(opts('pagemap_entry', 'nr_pages')).toEqual({});
    expect(opts('reg_file_entry', 'mnt_id')).toEqual({}); // has [default = -1] only
  });
});

describe('64-bit values through protobufjs', () => {
  test('uint64 0xfffffffffffff001 round-trips as BigInt', () => {
    const type = messageType('pagemap_entry');
    const msg = type.fromObject({ vaddr: 0xfffffffffffff001n, nr_pages: 3 });
    const bytes = type.encode(msg).finish();
    // field 1 varint, 10-byte little-endian base-128 of 2^64 - 4095; then field 2 = 3
    expect(Buffer.from(bytes).toString('hex')).toBe('0881e0ffffffffffffff011003');
    const back = type.toObject(type.decode(bytes), { longs: BigInt });
    expect(back).toEqual({ vaddr: 0xfffffffffffff001n, nr_pages: 3 });
    expect(typeof back.vaddr).toBe('bigint');
  });

  test('negative int64 and sint64 round-trip as BigInt', () => {
    const lock = messageType('file_lock_entry');
    const lockObj = { pid: 1, fd: 2, flag: 3, type: 4, start: -5n, len: -(2n ** 63n) };
    const lockBack = lock.toObject(lock.decode(lock.encode(lock.fromObject(lockObj)).finish()), { longs: BigInt });
    expect(lockBack).toEqual(lockObj);
    const vma = messageType('vma_entry');
    const vmaObj = { start: 0x7ffff000n, end: 0x80000000n, pgoff: 0n, shmid: 0n, prot: 1, flags: 2, status: 3, fd: -1n };
    const vmaBack = vma.toObject(vma.decode(vma.encode(vma.fromObject(vmaObj)).finish()), { longs: BigInt });
    expect(vmaBack).toEqual(vmaObj);
  });

  test('decoding a message with a missing required field throws', () => {
    const type = messageType('pagemap_entry');
    expect(() => type.decode(Buffer.from('1003', 'hex'))).toThrow(/vaddr/);
  });
});

describe('schemas prebuilt at build time (dist/criu-schemas.json)', () => {
  const prebuiltFile = join(PACKAGE_DIR, 'dist', 'criu-schemas.json');

  test('the built package loads them, and they equal the parsed .proto files', () => {
    // The build (which jest runs after) writes the file; without it there is nothing to check.
    expect(require('node:fs').existsSync(prebuiltFile)).toBe(true);
    const saved = JSON.parse(require('node:fs').readFileSync(prebuiltFile, 'utf8'));
    expect(saved.fingerprint).toBe(protoFingerprint(PROTO_DIR));
    const parsed = criuSchemas(); // from src/: parsed from the .proto text
    // As loadPrebuilt() builds it: not resolved up front; each definition resolves on lookup.
    const loaded = new protobuf.Root();
    loaded.addJSON(saved.root.nested);
    let types = 0;
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const x of ns.nestedArray) {
        const y = resolvedTop(loaded.lookup(x.fullName));
        expect(y?.fullName).toBe(x.fullName);
        if (x instanceof protobuf.Type) {
          types++;
          const t = y as protobuf.Type;
          for (const f of x.fieldsArray) {
            const g = t.fields[f.name];
            f.resolve();
            g.resolve();
            expect([g.id, g.type, g.rule, g.packed, g.required, g.repeated, g.options, g.resolvedType?.fullName]).toEqual([f.id, f.type, f.rule, f.packed, f.required, f.repeated, f.options, f.resolvedType?.fullName]);
          }
        }
        if (x instanceof protobuf.Enum) expect((y as protobuf.Enum).values).toEqual(x.values);
        if (x instanceof protobuf.Namespace) walk(x);
      }
    };
    walk(parsed);
    expect(types).toBeGreaterThan(150);
  });

  test('a fingerprint changes with the contents of the .proto files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'criu-ts-fp-'));
    try {
      writeFileSync(join(dir, 'a.proto'), 'syntax = "proto2";\nmessage a { optional uint32 x = 1; }\n');
      const before = protoFingerprint(dir);
      writeFileSync(join(dir, 'a.proto'), 'syntax = "proto2";\nmessage a { optional uint64 x = 1; }\n');
      expect(protoFingerprint(dir)).not.toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
