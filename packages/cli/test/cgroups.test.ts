// Cgroups through the `criu` command and `criu swrk`: --manage-cgroups[=MODE] / --cgroup-root on
// the command line, manage_cgroups_mode / cg_root over RPC (what runc sends at restore: the
// container's cgroup in every hierarchy), on a counter put into a cgroup of this test's own.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SwrkClient } from '../src/swrk/client';
import { CG_MODE, REQ } from '../src/swrk/protocol';
import { waitPidGone } from '../../core/test/helpers/oracle';
import { testCgroups } from '../../core/test/helpers/cgroups';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { killVictim, lastCounter, waitFor, type Victim } from '../../core/test/helpers/victims';

const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cli-cg-'));
const started: Victim[] = [];
const cg = testCgroups('clicg');

function criu(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function counterIn(rel: string): Promise<Victim> {
  const v = await startTestprog('counter');
  started.push(v);
  cg.enter(v.pid, rel);
  await waitFor('the counter to tick', () => lastCounter(v) >= 2, 10_000);
  return v;
}

beforeAll(() => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
});
afterAll(async () => {
  started.forEach(killVictim);
  // made by the RPC restore itself (soft mode)
  for (const m of cg.used) await cg.remove(cg.dirIn(m, `${cg.tag}-rpcroot`).dir).catch(() => undefined);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('criu restore --cgroup-root CTRL:PATH for each hierarchy: the task comes back below PATH', async () => {
  cg.make(`${cg.tag}-a`);
  cg.make(`${cg.tag}-root`);
  const v = await counterIn(`${cg.tag}-a`);
  const dir = path.join(tmp, 'a');
  expect(criu(['dump', '-t', String(v.pid), '-D', dir, '--manage-cgroups'])).toMatchObject({ status: 0, stderr: '' });
  await waitPidGone(v.pid);
  const roots = cg.used.flatMap((m) => ['--cgroup-root', `${m.name}:${cg.dirIn(m, `${cg.tag}-root`).cg}`]);
  expect(criu(['restore', '-D', dir, '-d', '--manage-cgroups=soft', ...roots])).toMatchObject({ status: 0, stderr: '' });
  expect(cg.where(v.pid)).toEqual(cg.expected(`${cg.tag}-root`));
  expect(await verdict(v)).toMatch(/^PASS counter/);
});

test('criu restore --manage-cgroups=full is refused for a task outside the restorer\'s cgroup (criu-ts restores no properties); a bad mode is a usage error', async () => {
  cg.make(`${cg.tag}-b`);
  const v = await counterIn(`${cg.tag}-b`);
  const dir = path.join(tmp, 'b');
  expect(criu(['dump', '-t', String(v.pid), '-D', dir])).toMatchObject({ status: 0 });
  await waitPidGone(v.pid);
  const full = criu(['restore', '-D', dir, '-d', '--manage-cgroups=full']);
  expect(full.status).toBe(1);
  expect(full.stderr).toMatch(/cgroup mode full restores cgroup properties, which criu-ts does not do/);
  const bad = criu(['restore', '-D', dir, '-d', '--manage-cgroups=sometimes']);
  expect(bad.status).toBe(1);
  expect(bad.stderr).toMatch(/--manage-cgroups: unknown cgroup mode 'sometimes'/);
  // ignore: the task stays in the restorer's cgroup.
  expect(criu(['restore', '-D', dir, '-d', '--manage-cgroups=ignore'])).toMatchObject({ status: 0 });
  expect(cg.where(v.pid)).not.toEqual(cg.expected(`${cg.tag}-b`));
  expect(await verdict(v)).toMatch(/^PASS counter/);
});

test('RPC RESTORE with cg_root per hierarchy and manage_cgroups_mode SOFT (as runc sends them): the task comes back below the roots', async () => {
  cg.make(`${cg.tag}-c`);
  const v = await counterIn(`${cg.tag}-c`);
  const dir = path.join(tmp, 'c');
  expect(criu(['dump', '-t', String(v.pid), '-D', dir])).toMatchObject({ status: 0 });
  await waitPidGone(v.pid);
  // A root that does not exist yet: soft mode makes it.
  const cgRoot = cg.used.map((m) => ({ ctrl: m.name, path: cg.dirIn(m, `${cg.tag}-rpcroot`).cg }));
  const c = SwrkClient.start({ command: process.execPath, args: [BIN] });
  try {
    const resp = await c.call({ type: REQ.RESTORE, opts: { images_dir_fd: -1, images_dir: dir, log_file: 'rpc-restore.log', manage_cgroups: true, manage_cgroups_mode: CG_MODE.SOFT, cg_root: cgRoot } });
    expect(resp).toMatchObject({ type: REQ.RESTORE, success: true, restore: { pid: v.pid } });
    expect((await c.exited()).code).toBe(0);
  } finally {
    c.kill();
    c.close();
  }
  expect(cg.where(v.pid)).toEqual(cg.expected(`${cg.tag}-rpcroot`));
  expect(await verdict(v)).toMatch(/^PASS counter/);
});
