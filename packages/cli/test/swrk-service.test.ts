// `criu service`: the RPC protocol on a socket file, one swrk worker per connection; the
// connecting client's descriptors (images_dir_fd) are found through its credentials. The oracle
// CRIU's service answers VERSION the same way.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SwrkClient } from '../src/swrk/client';
import { REQ } from '../src/swrk/protocol';
import { ORACLE_CRIU, requireOracle } from '../../core/test/helpers/oracle';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { killVictim, lastCounter, waitFor, type Victim } from '../../core/test/helpers/victims';

const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-svc-'));
const services: ChildProcess[] = [];
const daemonPids: number[] = [];
const started: Victim[] = [];
const clients: SwrkClient[] = [];

function connect(file: string): SwrkClient {
  const c = SwrkClient.connect(file, 60_000);
  clients.push(c);
  return c;
}

/** Starts `cmd ... service --address FILE` in the foreground and waits for its socket. */
async function startService(cmd: string, args: string[], file: string): Promise<ChildProcess> {
  const p = spawn(cmd, [...args, 'service', '--address', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  services.push(p);
  await waitFor(`the service socket ${file}`, () => fs.existsSync(file) && fs.statSync(file).isSocket(), 10_000);
  return p;
}

beforeAll(() => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
  requireOracle();
});
afterAll(() => {
  clients.forEach((c) => c.close());
  for (const p of services) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const pid of daemonPids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  started.forEach(killVictim);
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('VERSION over the service socket, several connections, the same answer shape as the oracle service', async () => {
  const file = path.join(tmp, 'ours.sock');
  await startService(process.execPath, [BIN], file);
  expect(fs.statSync(file).mode & 0o777).toBe(0o666);
  for (let i = 0; i < 2; i++) {
    const c = connect(file);
    expect(await c.call({ type: REQ.VERSION })).toEqual({ type: REQ.VERSION, success: true, version: { major_number: 4, minor_number: 1, name: expect.stringMatching(/^criu-ts /) } });
    expect(await c.receiveOrEof()).toBeNull(); // the worker answered and exited
  }
  const ofile = path.join(tmp, 'oracle.sock');
  await startService(ORACLE_CRIU, [], ofile);
  const o = connect(ofile);
  const ov = await o.call({ type: REQ.VERSION });
  expect(ov).toMatchObject({ type: REQ.VERSION, success: true, version: { major_number: 4, minor_number: 1 } });
});

test('DUMP (leave_running) through the service: images_dir_fd is a descriptor of the connecting client; rst_sibling refused as CRIU does', async () => {
  const file = path.join(tmp, 'dump.sock');
  await startService(process.execPath, [BIN], file);
  const v = await startTestprog('counter');
  started.push(v);
  await waitFor('the counter to tick', () => lastCounter(v) >= 2, 10_000);
  const dir = path.join(tmp, 'images');
  fs.mkdirSync(dir);
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    const seen: unknown[] = [];
    const resp = await connect(file).call({ type: REQ.DUMP, opts: { images_dir_fd: fd, pid: v.pid, leave_running: true, log_file: 'dump.log', notify_scripts: true } }, undefined, seen as never);
    expect(resp).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(seen.map((n) => (n as { script: string }).script)).toEqual(['pre-dump', 'query-ext-files', 'post-dump']);
    expect(fs.existsSync(path.join(dir, `core-${v.pid}.img`))).toBe(true);
    const refused = await connect(file).call({ type: REQ.RESTORE, opts: { images_dir_fd: fd, rst_sibling: true } });
    expect(refused).toMatchObject({ type: REQ.RESTORE, success: false, cr_errmsg: 'rst_sibling is not allowed in standalone service' });
  } finally {
    fs.closeSync(fd);
  }
  expect(await verdict(v)).toMatch(/^PASS counter/);
});

test('service -d: returns at once with the socket ready, the daemon pid in --pidfile', async () => {
  const file = path.join(tmp, 'daemon.sock');
  const pidfile = path.join(tmp, 'daemon.pid');
  const { spawnSync } = await import('child_process');
  const r = spawnSync(process.execPath, [BIN, 'service', '-d', '--address', file, '--pidfile', pidfile], { encoding: 'utf8', timeout: 30_000 });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  const pid = Number(fs.readFileSync(pidfile, 'utf8'));
  daemonPids.push(pid);
  expect(fs.existsSync(`/proc/${pid}`)).toBe(true);
  expect(fs.statSync(file).isSocket()).toBe(true);
  const c = connect(file);
  expect(await c.call({ type: REQ.FEATURE_CHECK, features: {} })).toEqual({ type: REQ.FEATURE_CHECK, success: true, features: { mem_track: true, lazy_pages: false, pidfd_store: false } });
  process.kill(pid, 'SIGTERM');
  await waitFor('the daemon to stop', () => !fs.existsSync(`/proc/${pid}`) || /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1')), 10_000);
});
