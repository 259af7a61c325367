// The built executable (bin/criu.cjs -> dist), side by side with the real crit executable.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { critOraclePath, type OracleDump, oracleDump, removeOracleDumps } from '../../images/test/helpers/oracle-dumps';

const BIN = path.join(__dirname, '../bin/criu.cjs');

function criu(args: string[], input?: Buffer) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

let tree: OracleDump;
beforeAll(async () => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
  tree = await oracleDump('tree');
}, 120000);
afterAll(() => removeOracleDumps());

test('criu --version and a CRIU command that is not there yet: exit status as CRIU', () => {
  const v = criu(['--version']);
  expect(v.status).toBe(0);
  expect(v.stdout.toString()).toMatch(/^Version: 4\.1\ncriu-ts: /);
  const d = criu(['dedup', '-t', '1', '-D', '/tmp']);
  expect(d.status).toBe(1);
  expect(d.stderr).toContain('not implemented yet');
});

test('criu show / decode print byte for byte what the real crit prints', () => {
  const bad: string[] = [];
  for (const f of ['pstree.img', 'pipes-data.img', tree.files.find((x) => x.startsWith('mm-'))!]) {
    const file = path.join(tree.dir, f);
    for (const [ours, theirs] of [
      [['show', file], ['show', file]],
      [['decode', '-i', file], ['decode', '-i', file]],
      [['show', '--nopl', file], ['show', '--nopl', file]],
    ]) {
      const a = criu(ours);
      const b = spawnSync(critOraclePath(), theirs, { maxBuffer: 1 << 28 });
      expect({ f, status: b.status }).toEqual({ f, status: 0 });
      if (a.status !== 0 || !a.stdout.equals(b.stdout)) bad.push(`${ours.join(' ')}: ${a.stderr}`);
    }
  }
  expect(bad).toEqual([]);
});

test('criu encode reads JSON on stdin and writes the image to stdout', () => {
  const file = path.join(tree.dir, 'pstree.img');
  const json = criu(['show', file]).stdout;
  const r = criu(['encode'], json);
  expect(r.status).toBe(0);
  expect(r.stdout.equals(fs.readFileSync(file))).toBe(true);
});

test('a bad image: exit 1, the error message, no stack trace', () => {
  const r = criu(['show', path.join(tree.dir, 'pages-1.img')]);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/^Error: .*pages-1\.img/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
});
