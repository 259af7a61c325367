// Lazy restore: `criu lazy-pages` + `criu restore --lazy-pages`. The restore maps anonymous
// memory without filling it and hands the task's userfaultfd to the daemon, which copies pages
// in on fault and in the background after the restore has returned.
import { spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { critDecode, oracle, requireOracle, waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, type Victim } from '../../core/test/helpers/victims';
import { BIN, freePort, startDaemon, stopDaemons, type Daemon } from './helpers/daemon';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-lazy-'));
const started: Victim[] = [];
const daemons: ChildProcess[] = [];

function criu(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The daemon in the background; resolves once it listens, with its exit. */
function lazyDaemon(dir: string, extra: string[] = []): Promise<Daemon> {
  return startDaemon(['lazy-pages', '-D', dir, '-o', 'lazy.log', '-v4', ...extra], daemons);
}

/** `criu lazy-pages` + `criu restore --lazy-pages` of `dir`, both succeeding; the daemon's summary. */
async function restoreLazily(dir: string, extra: string[] = []): Promise<Summary> {
  const { exited } = await lazyDaemon(dir, extra);
  const r = criu(['restore', '-D', dir, '-d', '--lazy-pages', '-o', 'restore.log']);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(await exited).toBe(0);
  return summary(dir);
}

interface Summary { tasks: number; faults: number; onFault: number; background: number; zero: number; afterResume: number; toServe: number }

function summary(dir: string): Summary {
  const log = fs.readFileSync(path.join(dir, 'lazy.log'), 'utf8');
  const m = /finished: (\d+) task\(s\), (\d+) faults, (\d+) pages on fault, (\d+) in the background, (\d+) zero pages, (\d+) after the restore returned/.exec(log);
  const s = /task \d+: \d+ range\(s\), (\d+) pages to serve/.exec(log);
  if (!m || !s) throw new Error(`no summary in lazy.log:\n${log}`);
  const [tasks, faults, onFault, background, zero, afterResume] = m.slice(1).map(Number);
  return { tasks, faults, onFault, background, zero, afterResume, toServe: Number(s[1]) };
}

beforeAll(() => requireOracle());
afterAll(() => {
  started.forEach(killVictim);
  stopDaemons(daemons);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('lazy restore', () => {
  test('1 GiB: the restore returns with most of the memory still to copy (daemon\'s counts then), the daemon serves it after; the checksum holds', async () => {
    const MIB = 1024;
    const v = await startTestprog('mem', [String(MIB)]);
    started.push(v);
    const dir = path.join(tmp, `mem${MIB}`);
    const d = criu(['dump', '-t', String(v.pid), '-D', dir]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    await waitPidGone(v.pid);
    const { exited } = await lazyDaemon(dir);
    const r = criu(['restore', '-D', dir, '-d', '--lazy-pages', '-o', 'restore.log', '-v4']);
    expect(r.status).toBe(0);
    const rlog = fs.readFileSync(path.join(dir, 'restore.log'), 'utf8');
    const left = Number(/(\d+) pages left to the lazy-pages daemon/.exec(rlog)?.[1]);
    // The restore filled none of the 1 GiB itself.
    expect(left).toBeGreaterThanOrEqual((MIB << 20) / 4096);
    // The daemon's own counts, asked for by the restore after it resumed the task and just
    // before it returns: memory is still being copied in.
    const at = /as the restore returns, the lazy-pages daemon has copied (\d+) pages; (\d+) left/.exec(rlog);
    expect(at).not.toBeNull();
    const [copiedThen, leftThen] = [Number(at![1]), Number(at![2])];
    expect(leftThen).toBeGreaterThan(0);
    expect(copiedThen + leftThen).toBe(left);
    console.log(`lazy restore of ${MIB} MiB: ${left} pages left to the daemon; when the restore returned: ${copiedThen} copied, ${leftThen} still to copy`);
    expect(await exited).toBe(0);
    const s = summary(dir);
    expect(s.tasks).toBe(1);
    expect(s.toServe).toBe(left);
    expect(s.onFault + s.background).toBe(left);
    // The background pass starts only once the restore has resumed the task.
    expect(s.background).toBeGreaterThan(0);
    expect(s.afterResume).toBeGreaterThanOrEqual(s.background);
    expect(s.afterResume).toBeGreaterThanOrEqual(leftThen);
    expect(isAlive(v.pid)).toBe(true);
    expect(await verdict(v, 60_000)).toMatch(new RegExp(`^PASS mem ${MIB} MiB`));
  });

  test('the oracle CRIU\'s dump, restored lazily by criu-ts', async () => {
    const v = await startTestprog('mem', ['64']);
    started.push(v);
    const dir = path.join(tmp, 'oracle64');
    fs.mkdirSync(dir);
    const d = oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log'], path.join(dir, 'dump.log'));
    expect(d.status).toBe(0);
    await waitPidGone(v.pid);
    const s = await restoreLazily(dir);
    expect(s.onFault + s.background).toBe(s.toServe);
    expect(s.toServe).toBeGreaterThanOrEqual((64 << 20) / 4096);
    expect(await verdict(v, 30_000)).toMatch(/^PASS mem 64 MiB/);
  });

  test('pages from a page server (PS_IOV_GET): the restore side holds no copy of the big run; the checksum holds', async () => {
    const v = await startTestprog('mem', ['64']);
    started.push(v);
    const src = path.join(tmp, 'remote-src');
    const dst = path.join(tmp, 'remote-dst');
    const d = criu(['dump', '-t', String(v.pid), '-D', src]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    await waitPidGone(v.pid);
    // The destination: every image, but the largest run of pages zeroed (holes), so its
    // contents can only come from the page server.
    fs.mkdirSync(dst);
    for (const f of fs.readdirSync(src)) if (f.endsWith('.img')) fs.copyFileSync(path.join(src, f), path.join(dst, f));
    const pm = critDecode(path.join(src, `pagemap-${v.pid}.img`)).entries as Array<Record<string, number>>;
    let off = 0;
    let big = { off: 0, len: 0 };
    for (const e of pm.slice(1)) {
      if (!(e.flags & 4)) continue;
      const len = e.nr_pages * 4096;
      if (len > big.len) big = { off, len };
      off += len;
    }
    expect(big.len).toBeGreaterThanOrEqual(64 << 20);
    const pages = path.join(dst, `pages-${pm[0].pages_id}.img`);
    const fd = fs.openSync(pages, 'r+');
    const zero = Buffer.alloc(1 << 20);
    for (let o = 0; o < big.len; o += zero.length) fs.writeSync(fd, zero, 0, Math.min(zero.length, big.len - o), big.off + o);
    fs.closeSync(fd);

    const port = await freePort();
    const { exited: psExited } = await startDaemon(['page-server', '-D', src, '--address', '127.0.0.1', '--port', String(port), '-o', 'ps.log', '-v4'], daemons);
    const s = await restoreLazily(dst, ['--page-server', '--address', '127.0.0.1', '--port', String(port)]);
    expect(await psExited).toBe(0);
    expect(s.onFault + s.background).toBe(s.toServe);
    const served = Number(/(\d+) pages served/.exec(fs.readFileSync(path.join(src, 'ps.log'), 'utf8'))?.[1]);
    expect(served).toBe(s.toServe);
    expect(await verdict(v, 30_000)).toMatch(/^PASS mem 64 MiB/);
  });

  // mprotect: a pagemap run spans a split mapping (rw | r | rw), only the rw parts are lazy;
  // mem64: pages never touched before the dump are holes the daemon answers with the zero page;
  // madvise and brk: MADV_* flags and a grown heap over lazy memory.
  test.each(['mprotect', 'mem64', 'madvise', 'brk'])('%s restored lazily passes its checks', async (name) => {
    const v = await startTestprog(name);
    started.push(v);
    const dir = path.join(tmp, `prog-${name}`);
    const d = criu(['dump', '-t', String(v.pid), '-D', dir]);
    expect({ status: d.status, stderr: d.stderr }).toEqual({ status: 0, stderr: '' });
    await waitPidGone(v.pid);
    const s = await restoreLazily(dir);
    expect(s.onFault + s.background).toBe(s.toServe);
    expect(await verdict(v, 30_000)).toMatch(new RegExp(`^PASS ${name}`));
  });

  test('a multi-threaded task is refused (clear error, the daemon is told nothing and exits)', async () => {
    const v = await startTestprog('threads4');
    started.push(v);
    const dir = path.join(tmp, 'threads4');
    const d = criu(['dump', '-t', String(v.pid), '-D', dir]);
    expect(d.status).toBe(0);
    await waitPidGone(v.pid);
    const { exited } = await lazyDaemon(dir);
    const r = criu(['restore', '-D', dir, '-d', '--lazy-pages']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/a lazy restore of a multi-threaded task \(4 threads\) is not supported yet/);
    expect(await exited).toBe(0);
    expect(fs.existsSync(`/proc/${v.pid}`)).toBe(false);
    // The same images restore eagerly.
    const e = criu(['restore', '-D', dir, '-d']);
    expect({ status: e.status, stderr: e.stderr }).toEqual({ status: 0, stderr: '' });
    expect(await verdict(v, 30_000)).toMatch(/^PASS threads4/);
  });

  test('post-copy, 1 GiB: criu dump --lazy-pages keeps the memory and serves it; criu lazy-pages --page-server fetches it for the lazy restore; the checksum holds', async () => {
    const MIB = 1024;
    const v = await startTestprog('mem', [String(MIB)]);
    started.push(v);
    const dir = path.join(tmp, 'postcopy');
    const port = await freePort();
    // The dump side: dumps, kills the task, then serves its lazy memory until the restore side is done.
    const { exited: dumpExited } = await startDaemon(['dump', '-t', String(v.pid), '-D', dir, '--lazy-pages', '--address', '127.0.0.1', '--port', String(port), '-o', 'dump.log', '-v4'], daemons);
    await waitPidGone(v.pid);
    // The images hold the pagemap, but not the lazy pages: PE_LAZY entries alone, no data.
    const pm = critDecode(path.join(dir, `pagemap-${v.pid}.img`)).entries as Array<Record<string, number>>;
    const lazyOnly = pm.slice(1).filter((e) => e.flags === 2).reduce((n, e) => n + e.nr_pages, 0);
    expect(lazyOnly).toBeGreaterThanOrEqual((MIB << 20) / 4096);
    expect(fs.statSync(path.join(dir, `pages-${pm[0].pages_id}.img`)).size).toBeLessThan(8 << 20);
    // An eager restore of them is refused, naming the pagemap.
    const eager = criu(['restore', '-D', dir, '-d']);
    expect(eager.status).toBe(1);
    expect(eager.stderr).toMatch(new RegExp(`pagemap-${v.pid}\\.img.*not in the images but on the dump side|not in the images but on the dump side.*pagemap-${v.pid}\\.img`, 's'));
    await waitPidGone(v.pid);
    // So is a daemon with no page server to fetch them from: it refuses the task, the restore fails and kills it.
    const local = await lazyDaemon(dir);
    const noPs = criu(['restore', '-D', dir, '-d', '--lazy-pages']);
    expect(noPs.status).toBe(1);
    expect(noPs.stderr).toMatch(/the lazy-pages daemon refused task \d+: .*pages left on the dump side.*--page-server/);
    expect(await local.exited).toBe(1);
    await waitPidGone(v.pid);

    const { exited } = await lazyDaemon(dir, ['--page-server', '--address', '127.0.0.1', '--port', String(port)]);
    const r = criu(['restore', '-D', dir, '-d', '--lazy-pages', '-o', 'restore.log', '-v4']);
    expect({ status: r.status, error: r.stderr.split('\n').filter((l) => !/^criu: restore step/.test(l)).join('') }).toEqual({ status: 0, error: '' });
    expect(await exited).toBe(0);
    expect(await dumpExited).toBe(0);
    const s = summary(dir);
    expect(s.toServe).toBe(lazyOnly);
    expect(s.onFault + s.background).toBe(lazyOnly);
    const served = /post-copy: (\d+) of (\d+) lazy pages served/.exec(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8'));
    expect(served && [Number(served[1]), Number(served[2])]).toEqual([lazyOnly, lazyOnly]);
    expect(await verdict(v, 60_000)).toMatch(new RegExp(`^PASS mem ${MIB} MiB`));
  });

  test('--lazy-pages with no daemon listening: exit 1 with a clear error, nothing restored', () => {
    const dir = path.join(tmp, 'nodaemon');
    fs.mkdirSync(dir);
    const r = criu(['restore', '-D', dir, '-d', '--lazy-pages']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/can't connect to the lazy-pages daemon at .*lazy-pages\.socket/);
  });
});
