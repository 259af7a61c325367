// Build step: the CRIU schemas, parsed once from proto/*.proto, saved with a hash of the .proto
// files as
//   dist/criu-plans.json    the codec's plan of every message type: all a dump, a restore or crit
//                           needs to encode and decode, loaded without protobufjs (~2 ms where
//                           loading protobufjs and resolving the schemas takes ~40 ms);
//   dist/criu-schemas.json  protobufjs JSON, for reflection (~15 ms where parsing the .proto text
//                           takes ~50-70 ms).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist');
const out = path.join(dist, 'criu-schemas.json');
const plansOut = path.join(dist, 'criu-plans.json');
// Stale files must not be used while we build the new ones.
fs.rmSync(out, { force: true });
fs.rmSync(plansOut, { force: true });
const { criuSchemas, compilePlanTable, protoFingerprint, PROTO_DIR } = await import(path.join(dist, 'index.js'));
const root = criuSchemas();
fs.writeFileSync(out, JSON.stringify({ fingerprint: protoFingerprint(PROTO_DIR), root: root.toJSON() }));
fs.writeFileSync(plansOut, JSON.stringify({ fingerprint: protoFingerprint(PROTO_DIR), table: compilePlanTable() }));
