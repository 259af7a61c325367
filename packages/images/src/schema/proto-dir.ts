import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

// A file every CRIU schema set has; its presence marks the right directory.
const MARKER = 'inventory.proto';

/**
 * Finds the directory holding our .proto files. It walks up from this module, so
 * it works from src/ (jest), from dist/ (built bundle) and from an installed
 * package (package.json "files" ships "proto" next to "dist"). A bundler that
 * inlines this package elsewhere still finds node_modules/@criu/images/proto.
 * CRIU_TS_PROTO_DIR overrides the search.
 */
export function findProtoDir(start: string = __dirname): string | undefined {
  const override = process.env.CRIU_TS_PROTO_DIR;
  if (override) return override;
  for (let dir = start; ; dir = dirname(dir)) {
    for (const candidate of [join(dir, 'proto'), join(dir, 'node_modules', '@criu', 'images', 'proto')]) {
      if (existsSync(join(candidate, MARKER))) return candidate;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** Every .proto file in `dir`, sorted, as absolute paths. */
export function listProtoFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.proto'))
    .sort()
    .map((name) => join(dir, name));
}
