import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import type protobuf from 'protobufjs';
import { SchemaLoadError, UnknownSchemaTypeError } from './errors.js';
import { findProtoDir, listProtoFiles } from './proto-dir.js';

/**
 * Directory of the CRIU .proto files this package ships (see findProtoDir).
 * Empty string if it could not be found; criuSchemas() then throws SchemaLoadError.
 */
export const PROTO_DIR: string = findProtoDir() ?? '';

const DESCRIPTOR_IMPORT = 'google/protobuf/descriptor.proto';

let cached: protobuf.Root | undefined;

const requireHere = createRequire(__filename);
let pb: typeof protobuf | undefined;

/**
 * protobufjs, loaded on first use: loading it costs ~25 ms, and the codec's plans come from the
 * build's plan table without it (codec/plan.ts); crit's reflection and the tests still use it.
 */
export function protobufjs(): typeof protobuf {
  pb ??= requireHere('protobufjs') as typeof protobuf;
  return pb;
}

/**
 * protobufjs bundles only some google/protobuf files; descriptor.proto (needed by
 * opts.proto's `extend google.protobuf.FieldOptions`) is shipped as a file in the
 * protobufjs package, so point that import there.
 */
function descriptorProtoPath(): string {
  return requireHere.resolve(`protobufjs/${DESCRIPTOR_IMPORT}`);
}

/** A hash of the .proto files of `dir` (names and contents): what a prebuilt JSON was made from. */
export function protoFingerprint(dir: string): string {
  const h = createHash('sha256');
  for (const f of listProtoFiles(dir)) h.update(basename(f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

/**
 * The schemas prebuilt at build time (scripts/schemas-json.mjs writes dist/criu-schemas.json),
 * if they were made from exactly these .proto files; parsing the .proto text is the slow part.
 */
function loadPrebuilt(dir: string): protobuf.Root | undefined {
  const file = join(__dirname, 'criu-schemas.json');
  try {
    if (!existsSync(file)) return undefined;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { fingerprint?: string; root?: protobuf.INamespace };
    if (!saved.root || saved.fingerprint !== protoFingerprint(dir)) return undefined;
    // Not Root.fromJSON: it resolves every type (features, field types) at once, ~20 ms; a type is
    // resolved when it is first looked up instead (resolvedTop).
    const root = new (protobufjs().Root)();
    if (saved.root.options) root.setOptions(saved.root.options);
    root.addJSON(saved.root.nested ?? {});
    return root;
  } catch {
    return undefined; // unreadable or not ours: parse the .proto files
  }
}

function loadRoot(dir: string): protobuf.Root {
  const prebuilt = dir ? loadPrebuilt(dir) : undefined;
  if (prebuilt) return prebuilt;
  if (!dir) throw new SchemaLoadError('cannot find the CRIU .proto directory (looked for proto/inventory.proto above this module; set CRIU_TS_PROTO_DIR)', dir);
  let files: string[];
  try {
    files = listProtoFiles(dir);
  } catch (err) {
    throw new SchemaLoadError(`cannot list CRIU .proto files in ${dir}: ${(err as Error).message}`, dir, err);
  }
  const root = new (protobufjs().Root)();
  const defaultResolve = root.resolvePath.bind(root);
  let descriptor: string | undefined;
  root.resolvePath = (origin: string, target: string) => {
    if (target !== DESCRIPTOR_IMPORT) return defaultResolve(origin, target);
    descriptor ??= descriptorProtoPath();
    return descriptor;
  };
  try {
    // keepCase: CRIU's JSON and field names are snake_case; protobufjs would camelCase them.
    root.loadSync(files, { keepCase: true });
  } catch (err) {
    throw new SchemaLoadError(`cannot load CRIU .proto files from ${dir}: ${(err as Error).message}`, dir, err);
  }
  return root;
}

/** All CRIU image and RPC schemas in one protobufjs Root (loaded once, then cached). */
export function criuSchemas(): protobuf.Root {
  cached ??= loadRoot(PROTO_DIR);
  return cached;
}

/**
 * A message type by its CRIU name, e.g. 'inventory_entry' or 'core_entry'.
 * CRIU's protos have no package, so names are global. Throws UnknownSchemaTypeError.
 */
export function messageType(name: string): protobuf.Type {
  const found = resolvedTop(lookup(name));
  if (!(found instanceof protobufjs().Type)) throw new UnknownSchemaTypeError(name, 'message');
  return found;
}

/** An enum by its CRIU name, e.g. 'fd_types' or 'core_entry.march'. Throws UnknownSchemaTypeError. */
export function enumType(name: string): protobuf.Enum {
  const found = resolvedTop(lookup(name));
  if (!(found instanceof protobufjs().Enum)) throw new UnknownSchemaTypeError(name, 'enum');
  return found;
}

/**
 * Resolves (field types, editions features) the top-level definition `obj` belongs to, nested
 * types included, once; returns `obj`. Top-level definitions carry their file's edition, so
 * each resolves on its own (a test checks the result against a fully resolved root).
 */
export function resolvedTop<T extends protobuf.ReflectionObject | null>(obj: T): T {
  let top: protobuf.ReflectionObject | null = obj;
  while (top?.parent && top.parent.parent) top = top.parent;
  if (top instanceof protobufjs().Namespace) top.resolveAll();
  else top?.resolve();
  return obj;
}

function lookup(name: string): protobuf.ReflectionObject | null {
  if (typeof name !== 'string' || name === '' || name.startsWith('.')) return null;
  // Names resolve from the root only; a bare lookup would also search parent scopes.
  return criuSchemas().lookup(`.${name}`);
}
