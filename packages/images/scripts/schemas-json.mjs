// Build step: the CRIU schemas, parsed once from proto/*.proto, saved as protobufjs JSON in
// dist/criu-schemas.json with a hash of the .proto files. Loading that JSON takes ~15 ms where
// parsing the .proto text takes ~50-70 ms, in every dump, restore and crit run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist');
const out = path.join(dist, 'criu-schemas.json');
fs.rmSync(out, { force: true }); // a stale file must not be used while we build the new one
const { criuSchemas, protoFingerprint, PROTO_DIR } = await import(path.join(dist, 'index.js'));
const root = criuSchemas();
fs.writeFileSync(out, JSON.stringify({ fingerprint: protoFingerprint(PROTO_DIR), root: root.toJSON() }));
