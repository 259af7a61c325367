// `criu dump --external mnt[MP]:KEY` and `criu restore --root DIR --external mnt[KEY]:PATH` /
// `--ext-mount-map KEY:PATH` of a task in a mount namespace of its own (tools/testprogs/mntns).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { waitPidGone } from '../../core/test/helpers/oracle';
import { testprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, readLog, startDetached, waitFor, type Victim } from '../../core/test/helpers/victims';

jest.setTimeout(120_000);
const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cli-mntns-'));
const started: Victim[] = [];
const ext = path.join(tmp, 'ext');
fs.mkdirSync(ext);
fs.writeFileSync(path.join(ext, 'marker'), 'ext-marker\n');

function criu(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

afterAll(() => {
  started.forEach(killVictim);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('dump with --external mnt[], restore with --root and --ext-mount-map, then with --external mnt[]', async () => {
  const root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  const outer = startDetached(testprog('mntns'), [root, ext]);
  started.push(outer);
  const v: Victim = { pid: outer.pid, log: path.join(root, 'log') };
  await waitFor('READY mntns', () => /READY mntns /.test(readLog(v)), 10_000);

  expect(criu(['dump', '-t', String(v.pid), '-D', 'd1', '--external', 'mnt[/ext]:extkey', '--external', 'mnt[/proc/uptime]:devnull'])).toMatchObject({ status: 0, stderr: '' });
  await waitPidGone(v.pid);
  expect(criu(['restore', '-D', 'd1', '-d', '--root', root, '--ext-mount-map', `extkey:${ext}`, '--ext-mount-map', 'devnull:/dev/null'])).toMatchObject({ status: 0, stderr: '' });
  expect(isAlive(v.pid)).toBe(true);

  expect(criu(['dump', '-t', String(v.pid), '-D', 'd2', '--external', 'mnt[/ext]:extkey', '--external', 'mnt[/proc/uptime]:devnull'])).toMatchObject({ status: 0, stderr: '' });
  await waitPidGone(v.pid);
  // Without --root: refused before anything is created, naming the image.
  const noRoot = criu(['restore', '-D', 'd2', '-d', '--external', `mnt[extkey]:${ext}`, '--external', 'mnt[devnull]:/dev/null']);
  expect(noRoot.status).not.toBe(0);
  expect(noRoot.stderr).toMatch(/root directory must be given.*mountpoints-\d+\.img/);
  expect(criu(['restore', '-D', 'd2', '-d', '-r', root, '--external', `mnt[extkey]:${ext}`, '--external', 'mnt[devnull]:/dev/null'])).toMatchObject({ status: 0, stderr: '' });
  expect(await verdict(v)).toBe('PASS mntns');
});

test('a malformed --external mnt[] or --ext-mount-map is a usage error', () => {
  for (const args of [['--external', 'mnt[]:x'], ['--ext-mount-map', 'novalue']]) {
    const r = criu(['restore', '-D', tmp, '-d', ...args]);
    expect({ args, status: r.status }).toEqual({ args, status: 1 });
    expect(r.stderr).toMatch(/mnt\[\]:x|--ext-mount-map 'novalue'/);
  }
});
