// The page server in CRIU's wire format, both ways with the oracle CRIU 4.1 on 127.0.0.1:
// the memory goes over TCP, the other images stay in the dump's -D, and criu-ts restores the
// combined images; the `mem` program then passes its checksum.
import { spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { critDecode, oracle, oracleRestore, requireOracle, waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, testprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, readLog, startDetached, waitFor, type Victim } from '../../core/test/helpers/victims';
import { BIN, freePort, startDaemon, stopDaemons, type Daemon } from './helpers/daemon';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-ps-'));
const started: Victim[] = [];
const servers: ChildProcess[] = [];

function criu(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Our page server in the background; resolves once it listens (--status-fd), with its exit. */
function ourPageServer(dir: string, port: number): Promise<Daemon> {
  return startDaemon(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, '-o', 'ps.log', '-v4'], servers);
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
  stopDaemons(servers);
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

  test('iterations into the oracle `criu page-server --prev-images-dir`: a criu-ts pre-dump then dump send PE_PARENT holes; the oracle restores the chain', async () => {
    const v = await startTestprog('memdirty', ['16']);
    started.push(v);
    const src = path.join(tmp, 'chain-to-oracle-src');
    const dst = path.join(tmp, 'chain-to-oracle');
    const written: number[] = [];
    for (const [n, kind] of [[1, 'pre-dump'], [2, 'dump']] as const) {
      const prev = n > 1 ? ['--prev-images-dir', `../${n - 1}`] : [];
      const dir = path.join(dst, String(n));
      fs.mkdirSync(dir, { recursive: true });
      const port = await freePort();
      const pidfile = path.join(tmp, `oracle-chain-ps${n}.pid`);
      expect(oracle(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, ...prev, '-o', 'ps.log', '-v4', '-d', '--pidfile', pidfile]).status).toBe(0);
      const d = criu([kind, '-t', String(v.pid), '-D', path.join(src, String(n)), '--track-mem', ...prev, '--page-server', '--address', '127.0.0.1', '--port', String(port), '--display-stats']);
      expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
      written.push(Number(/Memory pages written: (\d+)/.exec(d.stdout)?.[1]));
      await waitPidGone(Number(fs.readFileSync(pidfile, 'utf8')));
      const psLog = fs.readFileSync(path.join(dir, 'ps.log'), 'utf8');
      expect(psLog).not.toMatch(/Error/);
      expect(psLog).toMatch(/Session over/);
      if (n === 1) {
        process.kill(v.pid, 'SIGUSR1');
        await waitFor('DIRTIED 0', () => /^DIRTIED 0 /m.test(readLog(v)), 10_000);
      }
    }
    // The oracle stored the second iteration's unchanged pages as holes into its parent.
    expect(fs.readlinkSync(path.join(dst, '2', 'parent'))).toBe('../1');
    const pm = pagemapOf(path.join(dst, '2'), v.pid);
    const count = (flag: number) => pm.slice(1).filter((e) => Number(e.flags) & flag).reduce((s, e) => s + Number(e.nr_pages), 0);
    expect(count(4 /* PE_PRESENT */)).toBe(written[1]);
    expect(count(1 /* PE_PARENT */)).toBeGreaterThan(written[1]);
    expect(written[1] * 4).toBeLessThan(written[0]);
    for (const f of fs.readdirSync(path.join(src, '2'))) if (f.endsWith('.img') && !f.startsWith('criu-ts.')) fs.copyFileSync(path.join(src, '2', f), path.join(dst, '2', f));
    await waitPidGone(v.pid);
    oracleRestore(path.join(dst, '2'));
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });

  test('an oracle dump after a criu-ts pre-dump, both into criu-ts page servers: OPEN2 reports the parent; criu-ts restores the chain', async () => {
    const v = await startTestprog('memdirty', ['8']);
    started.push(v);
    const src = path.join(tmp, 'oracle-last-src');
    const dst = path.join(tmp, 'oracle-last');
    for (const n of [1, 2]) {
      const dir = path.join(dst, String(n));
      fs.mkdirSync(dir, { recursive: true });
      fs.mkdirSync(path.join(src, String(n)), { recursive: true });
      const port = await freePort();
      const prev = n > 1 ? ['--prev-images-dir', '../1'] : [];
      const { exited } = await startDaemon(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, ...prev, '-o', 'ps.log', '-v4'], servers);
      const ps = ['--page-server', '--address', '127.0.0.1', '--port', String(port)];
      if (n === 1) {
        // Without --track-mem: our tracking (a userfaultfd left in the task, on this kernel) is a file the oracle cannot dump.
        expect(criu(['pre-dump', '-t', String(v.pid), '-D', path.join(src, '1'), ...ps])).toMatchObject({ status: 0, stderr: '' });
      } else {
        // Nor can it track memory without soft-dirty: it sends every page, under the parent link.
        const logFile = path.join(src, '2', 'dump.log');
        const d = oracle(['dump', '-t', String(v.pid), '-D', path.join(src, '2'), ...prev, ...ps, '-o', 'dump.log', '-v4'], logFile);
        expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
      }
      expect(await exited).toBe(0);
      if (n === 1) {
        process.kill(v.pid, 'SIGUSR1');
        await waitFor('DIRTIED 0', () => /^DIRTIED 0 /m.test(readLog(v)), 10_000);
      }
    }
    expect(fs.readFileSync(path.join(dst, '2', 'ps.log'), 'utf8')).toMatch(new RegExp(`page-server: open pagemap-${v.pid}\\.img -> pages-\\d+\\.img, the parent has it`));
    expect(fs.readlinkSync(path.join(dst, '2', 'parent'))).toBe('../1');
    for (const f of fs.readdirSync(path.join(src, '2'))) if (f.endsWith('.img')) fs.copyFileSync(path.join(src, '2', f), path.join(dst, '2', f));
    await waitPidGone(v.pid);
    const r = criu(['restore', '-D', path.join(dst, '2'), '-d', '-o', 'restore.log']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
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

  test('migration between two network namespaces over a veth pair: pre-dump, pre-dump, dump over the page server in the other, restore there', async () => {
    // Project-made names and addresses (a /30 from the benchmarking range), removed afterwards.
    const tag = `cts${process.pid % 100000}`;
    const [nsA, nsB, vA, vB] = [`${tag}a`, `${tag}b`, `${tag}va`, `${tag}vb`];
    const [ipA, ipB] = ['198.18.77.1', '198.18.77.2'];
    const ip = (...args: string[]) => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    };
    ip('netns', 'add', nsA);
    try {
      ip('netns', 'add', nsB);
      try {
        ip('link', 'add', vA, 'netns', nsA, 'type', 'veth', 'peer', 'name', vB, 'netns', nsB);
        ip('-n', nsA, 'addr', 'add', `${ipA}/30`, 'dev', vA);
        ip('-n', nsB, 'addr', 'add', `${ipB}/30`, 'dev', vB);
        for (const [ns, dev] of [[nsA, vA], [nsB, vB]]) { ip('-n', ns, 'link', 'set', 'lo', 'up'); ip('-n', ns, 'link', 'set', dev, 'up'); }

        // The task lives in A (the dumper must share its network namespace: the parasite's control
        // socket). memdirty rewrites a known 5% of its 32 MiB on each SIGUSR1 and checks every page at the end.
        const v = startDetached('ip', ['netns', 'exec', nsA, testprog('memdirty'), '32']);
        started.push(v);
        await waitFor('memdirty READY', () => /READY memdirty /.test(readLog(v)), 10_000);
        const src = path.join(tmp, 'netns-src');
        const dst = path.join(tmp, 'netns-dst');
        fs.mkdirSync(dst);
        const port = 27027;
        const written: number[] = [];
        // Each iteration: a page server in B receiving into dst/N (parent ../N-1), the (pre-)dump in A.
        const iteration = async (n: number, kind: 'pre-dump' | 'dump') => {
          const prev = n > 1 ? ['--prev-images-dir', `../${n - 1}`] : [];
          fs.mkdirSync(path.join(dst, String(n)));
          const { exited } = await startDaemon(['page-server', '--address', ipB, '--port', String(port), '-D', path.join(dst, String(n)), ...prev, '-o', 'ps.log', '-v4'], servers, ['ip', 'netns', 'exec', nsB]);
          const d = spawnSync('ip', ['netns', 'exec', nsA, process.execPath, BIN, kind, '-t', String(v.pid), '-D', path.join(src, String(n)), '--track-mem', ...prev,
            '--page-server', '--address', ipB, '--port', String(port), '--display-stats'], { encoding: 'utf8', timeout: 120_000 });
          expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
          expect(await exited).toBe(0);
          written.push(Number(/Memory pages written: (\d+)/.exec(d.stdout)?.[1]));
          // The receiver's own count: pages that crossed the veth, holes left in its parent.
          const done = /page-server: done, (\d+) pages received in \d+ pagemap\(s\), (\d+) left in the parent/.exec(fs.readFileSync(path.join(dst, String(n), 'ps.log'), 'utf8'));
          expect(done).not.toBeNull();
          return { received: Number(done![1]), parent: Number(done![2]) };
        };
        const dirty = async (round: number) => {
          process.kill(v.pid, 'SIGUSR1');
          await waitFor(`DIRTIED ${round}`, () => new RegExp(`^DIRTIED ${round} `, 'm').test(readLog(v)), 10_000);
        };
        const it1 = await iteration(1, 'pre-dump');
        expect(isAlive(v.pid)).toBe(true);
        await dirty(0);
        const it2 = await iteration(2, 'pre-dump');
        await dirty(1);
        const it3 = await iteration(3, 'dump');
        expect(written[0]).toBeGreaterThan((32 << 20) / 4096);
        expect(it1).toEqual({ received: written[0], parent: 0 });
        // The later iterations sent only what changed: the rest went as PE_PARENT holes.
        for (const [i, it] of [it2, it3].entries()) {
          expect(it.received).toBe(written[i + 1]);
          expect(it.received * 4).toBeLessThan(written[0]);
          expect(it.parent).toBeGreaterThan(it.received);
        }
        expect(fs.readlinkSync(path.join(dst, '3', 'parent'))).toBe('../2');
        const pm = pagemapOf(path.join(dst, '3'), v.pid).slice(1);
        expect(pm.some((e) => Number(e.flags) & 1 /* PE_PARENT */)).toBe(true);
        // The memory crossed the veth; the rest of the images travel as a migration tool would copy them.
        expect(fs.readdirSync(path.join(src, '3')).filter((f) => /^(pages|pagemap)-/.test(f))).toEqual([]);
        for (const f of fs.readdirSync(path.join(src, '3'))) if (f.endsWith('.img') && !f.startsWith('criu-ts.')) fs.copyFileSync(path.join(src, '3', f), path.join(dst, '3', f));
        await waitPidGone(v.pid);
        const r = spawnSync('ip', ['netns', 'exec', nsB, process.execPath, BIN, 'restore', '-D', path.join(dst, '3'), '-d', '-o', 'restore.log'], { encoding: 'utf8', timeout: 120_000 });
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
        // It now runs in B, and every page holds what it wrote last (from dst/3, dst/2 or dst/1).
        expect(fs.readlinkSync(`/proc/${v.pid}/ns/net`)).toBe(spawnSync('ip', ['netns', 'exec', nsB, 'readlink', '/proc/self/ns/net'], { encoding: 'utf8' }).stdout.trim());
        expect(await verdict(v, 20_000)).toBe('PASS memdirty');
      } finally {
        spawnSync('ip', ['netns', 'del', nsB]);
      }
    } finally {
      spawnSync('ip', ['netns', 'del', nsA]);
    }
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
