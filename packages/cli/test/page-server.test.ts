// The page server in CRIU's wire format, both ways with the oracle CRIU 4.1 on 127.0.0.1:
// the memory goes over TCP, the other images stay in the dump's -D, and criu-ts restores the
// combined images; the `mem` program then passes its checksum.
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { critDecode, oracle, oracleRestore, requireOracle, waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, type Victim } from '../../core/test/helpers/victims';

const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-ps-'));
const started: Victim[] = [];
const servers: ChildProcess[] = [];

function criu(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** Our page server in the background; resolves once it listens (--status-fd), with its exit. */
async function ourPageServer(dir: string, port: number): Promise<{ exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, '-o', 'ps.log', '-v4', '--status-fd', '3'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const ready = await new Promise<boolean>((res) => {
    (child.stdio[3] as NodeJS.ReadableStream).once('data', () => res(true));
    child.once('exit', () => res(false));
  });
  if (!ready) throw new Error(`criu-ts page-server did not start: ${stderr}`);
  // Wrapped: an async function returning a bare promise would wait for it.
  return { exited };
}

async function mem(mib: number): Promise<Victim> {
  const v = await startTestprog('mem', [String(mib)]);
  started.push(v);
  return v;
}

function pagemapOf(dir: string, pid: number) {
  return critDecode(path.join(dir, `pagemap-${pid}.img`)).entries as Array<Record<string, unknown>>;
}

beforeAll(() => requireOracle());
afterAll(() => {
  started.forEach(killVictim);
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('page server', () => {
  test('criu-ts page-server receives the memory of an oracle `criu dump --page-server`; criu-ts restores it', async () => {
    const v = await mem(32);
    const dir = path.join(tmp, 'from-oracle');
    fs.mkdirSync(dir);
    const port = await freePort();
    const { exited } = await ourPageServer(dir, port);
    const d = oracle(['dump', '-t', String(v.pid), '-D', dir, '--page-server', '--address', '127.0.0.1', '--port', String(port), '-o', 'dump.log', '-v4'], path.join(dir, 'dump.log'));
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await exited).toBe(0);
    // The oracle wrote no memory itself; ours did, in a pagemap crit reads.
    const entries = pagemapOf(dir, v.pid);
    const pagesId = entries[0].pages_id as number;
    const present = entries.slice(1).filter((e) => Number(e.flags) & 4 /* PE_PRESENT */).reduce((s, e) => s + Number(e.nr_pages), 0);
    expect(present).toBeGreaterThan((32 << 20) / 4096);
    expect(fs.statSync(path.join(dir, `pages-${pagesId}.img`)).size).toBe(present * 4096);
    expect(fs.readFileSync(path.join(dir, 'ps.log'), 'utf8')).toMatch(new RegExp(`wrote pagemap-${v.pid}.img`));
    await waitPidGone(v.pid);
    const r = criu(['restore', '-D', dir, '-d', '-o', 'restore.log']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await verdict(v)).toMatch(/^PASS mem/);
  });

  test('the oracle `criu page-server` receives the memory of a criu-ts `criu dump --page-server`; criu-ts restores it', async () => {
    const v = await mem(32);
    const dir = path.join(tmp, 'to-oracle');
    fs.mkdirSync(dir);
    const port = await freePort();
    const pidfile = path.join(tmp, 'oracle-ps.pid');
    const ps = oracle(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, '-o', 'ps.log', '-v4', '-d', '--pidfile', pidfile]);
    expect(ps.status).toBe(0);
    const psPid = Number(fs.readFileSync(pidfile, 'utf8'));
    const d = criu(['dump', '-t', String(v.pid), '-D', dir, '--page-server', '--address', '127.0.0.1', '--port', String(port), '-o', 'dump.log']);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    await waitPidGone(psPid);
    const psLog = fs.readFileSync(path.join(dir, 'ps.log'), 'utf8');
    expect(psLog).not.toMatch(/Error/);
    expect(psLog).toMatch(/Session over/);
    const entries = pagemapOf(dir, v.pid);
    expect(fs.statSync(path.join(dir, `pages-${entries[0].pages_id}.img`)).size).toBeGreaterThan(32 << 20);
    await waitPidGone(v.pid);
    const r = criu(['restore', '-D', dir, '-d', '-o', 'restore.log']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await verdict(v)).toMatch(/^PASS mem/);
  });

  test('criu-ts to criu-ts: the oracle restores the combined images', async () => {
    const v = await mem(16);
    const dir = path.join(tmp, 'ours');
    fs.mkdirSync(dir);
    const port = await freePort();
    const { exited } = await ourPageServer(dir, port);
    const d = criu(['dump', '-t', String(v.pid), '-D', dir, '--page-server', '--address', '127.0.0.1', '--port', String(port)]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await exited).toBe(0);
    await waitPidGone(v.pid);
    oracleRestore(dir);
    expect(await verdict(v)).toMatch(/^PASS mem/);
  });

  test('no page server listening: the dump fails before the freeze, naming the address; the task runs on', async () => {
    const v = await mem(4);
    const port = await freePort();
    const d = criu(['dump', '-t', String(v.pid), '-D', path.join(tmp, 'refused'), '--page-server', '--address', '127.0.0.1', '--port', String(port)]);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(new RegExp(`cannot connect to the page server at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    expect(isAlive(v.pid)).toBe(true);
    expect(await verdict(v)).toMatch(/^PASS mem/);
  });

  test('--page-server without --address is a usage error', async () => {
    const d = criu(['dump', '-t', String(process.pid), '-D', path.join(tmp, 'noaddr'), '--page-server']);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/--page-server needs --address/);
  });
});
