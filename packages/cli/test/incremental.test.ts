// `criu pre-dump`, `criu dump --track-mem --prev-images-dir` and `criu check --feature
// mem_dirty_track` through the built executable, on the memdirty test program.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, readLog, waitFor, type Victim } from '../../core/test/helpers/victims';

jest.setTimeout(120_000);
const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cli-incr-'));
const started: Victim[] = [];
afterAll(() => {
  started.forEach(killVictim);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function criu(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('check --feature mem_dirty_track names the method; check without a feature is a usage error', () => {
  const r = criu(['check', '--feature', 'mem_dirty_track']);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^mem_dirty_track is supported \((soft-dirty bits|userfaultfd async write-protect \+ PAGEMAP_SCAN)\)\nLooks good\.\n$/);
  expect(criu(['check', '--feature', 'frobnicate']).status).toBe(1);
  expect(criu(['check']).status).toBe(1);
});

test('pre-dump, pre-dump, dump: --display-stats shows the pages left in the parent; restore passes', async () => {
  const v = await startTestprog('memdirty', ['16']);
  started.push(v);
  const stat = (out: string, what: string) => Number(new RegExp(`${what}: (\\d+)`).exec(out)?.[1]);
  const a = criu(['pre-dump', '-t', String(v.pid), '-D', 'p1', '--track-mem']);
  expect(a).toMatchObject({ status: 0, stderr: '' });
  expect(isAlive(v.pid)).toBe(true);
  expect(fs.existsSync(path.join(tmp, 'p1', `pagemap-${v.pid}.img`))).toBe(true);
  expect(fs.existsSync(path.join(tmp, 'p1', `core-${v.pid}.img`))).toBe(false);
  process.kill(v.pid, 'SIGUSR1');
  await waitFor('DIRTIED 0', () => /^DIRTIED 0 /m.test(readLog(v)), 10_000);
  const b = criu(['pre-dump', '-t', String(v.pid), '-D', 'p2', '--track-mem', '--prev-images-dir', '../p1', '--display-stats']);
  expect(b.status).toBe(0);
  expect(stat(b.stdout, 'Memory pages skipped from parent')).toBeGreaterThan(stat(b.stdout, 'Memory pages written'));
  process.kill(v.pid, 'SIGUSR1');
  await waitFor('DIRTIED 1', () => /^DIRTIED 1 /m.test(readLog(v)), 10_000);
  const c = criu(['dump', '-t', String(v.pid), '-D', 'p3', '--track-mem', '--prev-images-dir', '../p2', '--display-stats']);
  expect(c.status).toBe(0);
  expect(stat(c.stdout, 'Memory pages skipped from parent')).toBeGreaterThan(stat(c.stdout, 'Memory pages written'));
  expect(fs.readlinkSync(path.join(tmp, 'p3', 'parent'))).toBe('../p2');
  await waitPidGone(v.pid);
  expect(criu(['restore', '-D', 'p3', '-d'])).toMatchObject({ status: 0 });
  expect(await verdict(v, 20_000)).toBe('PASS memdirty');
});

test('dump --auto-dedup punches the pages saved again out of the parent pre-dump; the chain restores', async () => {
  const v = await startTestprog('memdirty', ['16']);
  started.push(v);
  const ps = Number(spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).stdout);
  expect(criu(['pre-dump', '-t', String(v.pid), '-D', 'dd1', '--track-mem'])).toMatchObject({ status: 0, stderr: '' });
  const parentPages = path.join(tmp, 'dd1', 'pages-1.img');
  const before = fs.statSync(parentPages);
  process.kill(v.pid, 'SIGUSR1');
  await waitFor('DIRTIED 0', () => /^DIRTIED 0 /m.test(readLog(v)), 10_000);
  const d = criu(['dump', '-t', String(v.pid), '-D', 'dd2', '--track-mem', '--prev-images-dir', '../dd1', '--auto-dedup', '--display-stats', '-o', 'dump.log', '-v4']);
  expect(d.status).toBe(0); // (-v4 shows the steps on stderr)
  const written = Number(/Memory pages written: (\d+)/.exec(d.stdout)?.[1]);
  // Same size, fewer blocks: the rewritten 5% (and not more than this dump saved again) freed in the parent.
  const after = fs.statSync(parentPages);
  expect(after.size).toBe(before.size);
  const freed = (before.blocks - after.blocks) * 512;
  expect(freed).toBeGreaterThanOrEqual(Math.ceil((16 << 20) / ps / 20) * ps);
  expect(freed).toBeLessThanOrEqual(written * ps);
  expect(fs.readFileSync(path.join(tmp, 'dd2', 'dump.log'), 'utf8')).toMatch(/auto-dedup: \d+ bytes punched out of the parent images/);
  await waitPidGone(v.pid);
  expect(criu(['restore', '-D', 'dd2', '-d'])).toMatchObject({ status: 0 });
  expect(await verdict(v, 20_000)).toBe('PASS memdirty');
});

test('a missing --prev-images-dir is refused, the task left running', async () => {
  const v = await startTestprog('memdirty', ['4']);
  started.push(v);
  const r = criu(['dump', '-t', String(v.pid), '-D', 'bad', '--prev-images-dir', '../missing']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/no previous images/);
  expect(isAlive(v.pid)).toBe(true);
  expect(await verdict(v)).toBe('PASS memdirty');
});
