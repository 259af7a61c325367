// The built entry points (tools/packaging/code-cache.cjs): every package loads its bundle with the
// V8 code cache made at build time, import and require share one instance, and a cache that does
// not fit (another bundle, other V8 flags, none) is left aside without changing what loads.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '../../..');
const PACKAGES = ['packages/sys', 'packages/images', 'packages/core', 'packages/cli', 'arch/x86_64', 'arch/ppc64'];

/** Runs a CommonJS snippet in a fresh node (with extra node flags) and returns its JSON output. */
function node(code: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): any {
  const r = spawnSync(process.execPath, [...flags, '-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The loader's verdict on a dist/ directory's bundle after requiring its index.cjs. */
function verdictOf(dist: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): { status: string; exports: number } {
  return node(`const m = require(${JSON.stringify(path.join(dist, 'index.cjs'))});
    const s = require(${JSON.stringify(path.join(dist, 'load-with-code-cache.cjs'))}).status;
    console.log(JSON.stringify({ status: s[${JSON.stringify(path.join(dist, 'bundle.cjs'))}], exports: Object.keys(m).length }));`, flags, env);
}

let tmp: string;
beforeAll(() => {
  for (const p of PACKAGES) {
    if (!fs.existsSync(path.join(ROOT, p, 'dist/bundle.cjs.v8cache'))) throw new Error(`${p} is not built: run \`pnpm exec turbo run build\``);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-code-cache-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('every package loads its bundle with the code cache the build made', () => {
  for (const p of PACKAGES) {
    const v = verdictOf(path.join(ROOT, p, 'dist'));
    expect({ p, ...v }).toEqual({ p, status: 'accepted', exports: expect.any(Number) });
    expect(v.exports).toBeGreaterThan(0);
  }
});

test('import and require give the same instance, with every name of the bundle', () => {
  const core = path.join(ROOT, 'packages/core/dist');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module';
    const esm = await import(${JSON.stringify(path.join(core, 'index.js'))});
    const require = createRequire(${JSON.stringify(core + '/')});
    const cjs = require('./index.cjs');
    const byPath = require('./bundle.cjs');
    console.log(JSON.stringify({
      esm: Object.keys(esm).sort(), cjs: Object.keys(cjs).sort(),
      sameDump: esm.dump === cjs.dump, sameModule: byPath === cjs,
    }));`], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  const out = JSON.parse(r.stdout);
  expect(out.esm).toEqual(out.cjs);
  expect(out.esm).toEqual(expect.arrayContaining(['dump', 'restore', 'Logger']));
  expect(out.sameDump).toBe(true);
  expect(out.sameModule).toBe(true);
});

test('a cache that does not fit is left aside and the bundle still loads and works', () => {
  // A copy of @criu/sys's dist whose bundle differs from the one the cache was made from.
  const dist = path.join(tmp, 'sys-dist');
  fs.cpSync(path.join(ROOT, 'packages/sys/dist'), dist, { recursive: true });
  const bundle = path.join(dist, 'bundle.cjs');
  fs.appendFileSync(bundle, '// changed after the build\n');
  const works = (flags: string[] = [], env: NodeJS.ProcessEnv = {}) => node(`const { sys } = require(${JSON.stringify(path.join(dist, 'index.cjs'))});
    console.log(JSON.stringify({ page: sys.pageSize(), status: require(${JSON.stringify(path.join(dist, 'load-with-code-cache.cjs'))}).status[${JSON.stringify(bundle)}] }));`, flags, env);
  expect(works()).toEqual({ page: 4096, status: 'stale' });

  // The original bundle back: the cache fits again; other V8 flags make V8 refuse it.
  fs.copyFileSync(path.join(ROOT, 'packages/sys/dist/bundle.cjs'), bundle);
  expect(works()).toEqual({ page: 4096, status: 'accepted' });
  expect(works(['--stack-size=2000'])).toEqual({ page: 4096, status: 'rejected' });
  expect(works([], { CRIU_TS_NO_CODE_CACHE: '1' })).toEqual({ page: 4096, status: 'disabled' });
  fs.rmSync(`${bundle}.v8cache`);
  expect(works()).toEqual({ page: 4096, status: 'absent' });
});

test('an error thrown while a bundle loads reaches the caller, and a later require tries again', () => {
  const dist = path.join(tmp, 'throwing-dist');
  fs.cpSync(path.join(ROOT, 'packages/sys/dist'), dist, { recursive: true });
  fs.writeFileSync(path.join(dist, 'bundle.cjs'), 'throw new Error("bundle failed to load");\n');
  const out = node(`const first = (() => { try { require(${JSON.stringify(path.join(dist, 'index.cjs'))}); return 'loaded'; } catch (e) { return e.message; } })();
    console.log(JSON.stringify({ first, cached: require.cache[${JSON.stringify(path.join(dist, 'bundle.cjs'))}] !== undefined }));`);
  expect(out).toEqual({ first: 'bundle failed to load', cached: false });
});

test('inside a vm context (as here, under jest) the bundle is left to the caller\'s require, in the caller\'s realm', () => {
  const dist = path.join(ROOT, 'packages/sys/dist');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { sys, SysError } = require(path.join(dist, 'index.cjs'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { status } = require(path.join(dist, 'load-with-code-cache.cjs'));
  expect(status[path.join(dist, 'bundle.cjs')]).toBe('sandboxed');
  expect(sys.pageSize()).toBe(4096);
  let caught: unknown;
  try {
    sys.syscall('close', -1);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SysError);
  expect(caught).toBeInstanceOf(Error);
});
