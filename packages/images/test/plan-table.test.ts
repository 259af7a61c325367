// The built package's plan table (dist/criu-plans.json, scripts/schemas-json.mjs): the codec works
// from it without loading protobufjs, and every plan it gives is the plan reflection of the .proto
// files gives. Runs the built dist/ in fresh node processes.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const DIST = path.join(__dirname, '../dist');
const PROTO = path.join(__dirname, '../proto');

/** Every message plan of the schemas, as plain data, from a fresh node with `env`. */
function plansIn(env: NodeJS.ProcessEnv): { source: string; protobufjsLoaded: boolean; plans: Record<string, unknown> } {
  const code = `
    const im = require(${JSON.stringify(path.join(DIST, 'index.cjs'))});
    const names = Object.keys(require(${JSON.stringify(path.join(DIST, 'criu-plans.json'))}).table.messages);
    const source = im.planSource();
    // A round trip through the codec first: it must not need protobufjs either.
    const bytes = im.encodeImageEntries('CORE', [{ message: { mtype: 1 } }]);
    im.decodeImageEntries(bytes);
    const protobufjsLoaded = Object.keys(require.cache).some((k) => k.includes('protobufjs'));
    const plans = {};
    for (const n of names) {
      const p = im.planOf(n);
      plans[n] = { name: p.name, required: p.required.map((f) => f.name), fields: p.fields.map((f) => ({
        name: f.name, id: f.id, kind: f.kind, repeated: f.repeated, required: f.required, packed: f.packed, wireType: f.wireType,
        criu: f.criu, typeName: f.typeName, messageName: f.messageName, sub: f.message ? f.message().name : undefined,
        enumById: f.enumById ? [...f.enumById] : undefined, enumByName: f.enumByName ? [...f.enumByName] : undefined,
      })) };
    }
    console.log(JSON.stringify({ source, protobufjsLoaded, plans }));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

let tmp: string;
beforeAll(() => {
  if (!fs.existsSync(path.join(DIST, 'criu-plans.json'))) throw new Error('packages/images is not built: run `pnpm exec turbo run build`');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-plans-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('the table gives, without protobufjs, the very plans reflection of the .proto files gives', () => {
  const fromTable = plansIn({});
  expect(fromTable.source).toBe('table');
  expect(fromTable.protobufjsLoaded).toBe(false);
  expect(Object.keys(fromTable.plans).length).toBeGreaterThan(100);

  // Other .proto files (one comment more): the table is not theirs, plans come from reflection.
  const changed = path.join(tmp, 'changed');
  fs.cpSync(PROTO, changed, { recursive: true });
  fs.appendFileSync(path.join(changed, 'core.proto'), '\n// changed\n');
  const fromReflection = plansIn({ CRIU_TS_PROTO_DIR: changed });
  expect(fromReflection.source).toBe('reflection');
  expect(fromReflection.protobufjsLoaded).toBe(true);
  expect(fromReflection.plans).toEqual(fromTable.plans);
});

test('a copy of the same .proto files elsewhere still uses the table', () => {
  const same = path.join(tmp, 'same');
  fs.cpSync(PROTO, same, { recursive: true });
  expect(plansIn({ CRIU_TS_PROTO_DIR: same }).source).toBe('table');
});
