// `criu swrk 3` through the built executable, spoken to as runc does: a SOCK_SEQPACKET
// socketpair, the server end as fd 3, one criu_req / criu_resp per datagram. Real detached test
// programs are dumped and restored; the oracle CRIU's `criu swrk` answers the same requests and
// the answers are compared where it is cheap.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Msg } from '@criu/images';
import { SwrkClient } from '../src/swrk/client';
import { REQ, runcVersionNumber } from '../src/swrk/protocol';
import { ORACLE_CRIU, requireOracle, waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, lastCounter, waitFor, type Victim } from '../../core/test/helpers/victims';

const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-swrk-'));
const started: Victim[] = [];
const clients: SwrkClient[] = [];
const openFds: number[] = [];

/** Our `criu swrk 3`. */
function ours(): SwrkClient {
  const c = SwrkClient.start({ command: process.execPath, args: [BIN] });
  clients.push(c);
  return c;
}

/** The oracle's `criu swrk 3`. */
function oracle(): SwrkClient {
  const c = SwrkClient.start({ command: ORACLE_CRIU });
  clients.push(c);
  return c;
}

/** A directory and a descriptor of it in this process (the RPC client), as runc passes images_dir_fd. */
function dirFd(name: string): { dir: string; fd: number } {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  openFds.push(fd);
  return { dir, fd };
}

async function counter(): Promise<Victim> {
  const v = await startTestprog('counter');
  started.push(v);
  await waitFor('the counter to tick', () => lastCounter(v) >= 2, 10_000);
  return v;
}

/** One request on a fresh swrk process: the final response, the notifications seen, the exit. */
async function once(start: () => SwrkClient, req: Msg, notify?: (script: string) => boolean) {
  const c = start();
  const seen: Msg[] = [];
  const resp = await c.call(req, notify, seen);
  const exit = await c.exited();
  return { resp, seen, exit, stderr: c.stderr, client: c };
}

const scripts = (seen: Msg[]) => seen.map((n) => (n.pid ? `${n.script}(${n.pid})` : n.script));

beforeAll(() => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
  requireOracle();
});
afterAll(() => {
  clients.forEach((c) => {
    c.kill();
    c.close();
  });
  started.forEach(killVictim);
  openFds.forEach((fd) => fs.closeSync(fd));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('criu swrk: queries', () => {
  test('VERSION: 4.1 named criu-ts, which runc accepts (>= 3.0); the same shape as the oracle answer', async () => {
    const o = await once(oracle, { type: REQ.VERSION });
    const r = await once(ours, { type: REQ.VERSION });
    expect(r.exit).toEqual({ code: 0, signal: null });
    expect(r.resp).toEqual({ type: REQ.VERSION, success: true, version: { major_number: 4, minor_number: 1, name: expect.stringMatching(/^criu-ts /) } });
    expect(runcVersionNumber(r.resp.version as never)).toBe(40100);
    expect(runcVersionNumber(r.resp.version as never)).toBeGreaterThanOrEqual(30000);
    // The oracle's answer decodes the same way: same type, success, version fields.
    expect(o.exit.code).toBe(0);
    expect(Object.keys(o.resp).sort()).toEqual(Object.keys(r.resp).sort());
    expect(o.resp).toMatchObject({ type: REQ.VERSION, success: true, version: { major_number: 4, minor_number: 1 } });
  });

  test('FEATURE_CHECK: all three features answered, honestly false; the oracle answers the same fields', async () => {
    const req = { type: REQ.FEATURE_CHECK, features: { mem_track: true, lazy_pages: true, pidfd_store: true } };
    const o = await once(oracle, req);
    const r = await once(ours, req);
    expect(r.exit.code).toBe(0);
    expect(r.resp).toEqual({ type: REQ.FEATURE_CHECK, success: true, features: { mem_track: true, lazy_pages: false, pidfd_store: false } });
    expect(o.resp).toMatchObject({ type: REQ.FEATURE_CHECK, success: true });
    expect(Object.keys(o.resp.features as Msg).sort()).toEqual(['lazy_pages', 'mem_track', 'pidfd_store']);
  });

  test('keep_open: VERSION, FEATURE_CHECK and CPUINFO_CHECK on one process, then CHECK ends it (exit 0)', async () => {
    const c = ours();
    expect(await c.call({ type: REQ.VERSION, keep_open: true })).toMatchObject({ type: REQ.VERSION, success: true });
    expect(await c.call({ type: REQ.FEATURE_CHECK, keep_open: true, features: {} })).toMatchObject({ type: REQ.FEATURE_CHECK, success: true });
    // x86_64 records no CPU features in criu-ts: a clear ENOTSUP answer, and the loop goes on.
    const cpu = await c.call({ type: REQ.CPUINFO_CHECK, keep_open: true, opts: { images_dir_fd: -1, images_dir: tmp } });
    expect(cpu).toMatchObject({ type: REQ.CPUINFO_CHECK, success: false, cr_errno: 95 });
    expect(cpu.cr_errmsg).toMatch(/cpuinfo check is not supported on x86_64/);
    expect(await c.call({ type: REQ.CHECK })).toEqual({ type: REQ.CHECK, success: true });
    expect(await c.exited()).toEqual({ code: 0, signal: null });
    expect(await c.receiveOrEof()).toBeNull();
  });

  test('CPUINFO_DUMP: "not supported on this arch" with ENOTSUP; the oracle answers the same type', async () => {
    const { fd } = dirFd('cpuinfo');
    const req = { type: REQ.CPUINFO_DUMP, opts: { images_dir_fd: fd } };
    const r = await once(ours, req);
    expect(r.resp).toMatchObject({ type: REQ.CPUINFO_DUMP, success: false, cr_errno: 95, cr_errmsg: expect.stringMatching(/not supported on x86_64/) });
    expect(r.exit.code).toBe(0);
    const o = await once(oracle, req);
    expect(o.resp).toMatchObject({ type: REQ.CPUINFO_DUMP });
  });
});

describe('criu swrk: dump and restore', () => {
  test('PRE_DUMP (track_mem) then DUMP with parent_img: the dump writes the changed pages only; RESTORE passes', async () => {
    const v = await startTestprog('memdirty', ['16']);
    started.push(v);
    const p1 = dirFd('pd-1');
    const pre = await once(ours, { type: REQ.PRE_DUMP, opts: { images_dir_fd: p1.fd, pid: v.pid, track_mem: true, log_file: 'pre.log' } });
    expect(pre.resp).toEqual({ type: REQ.PRE_DUMP, success: true });
    expect(isAlive(v.pid)).toBe(true);
    process.kill(v.pid, 'SIGUSR1');
    await waitFor('DIRTIED 0', () => /^DIRTIED 0 /m.test(fs.readFileSync(v.log, 'utf8')), 10_000);
    const p2 = dirFd('pd-2');
    const d = await once(ours, { type: REQ.DUMP, opts: { images_dir_fd: p2.fd, pid: v.pid, track_mem: true, parent_img: '../pd-1', log_file: 'dump.log' } });
    expect(d.resp).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(fs.readlinkSync(path.join(p2.dir, 'parent'))).toBe('../pd-1');
    expect(fs.statSync(path.join(p2.dir, 'pages-1.img')).size).toBeLessThan(fs.statSync(path.join(p1.dir, 'pages-1.img')).size / 4);
    await waitPidGone(v.pid);
    const r = await once(ours, { type: REQ.RESTORE, opts: { images_dir_fd: p2.fd, log_file: 'restore.log' } });
    expect(r.resp).toMatchObject({ type: REQ.RESTORE, success: true });
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });

  test('DUMP leave_running, DUMP that kills, RESTORE: the counter goes on and PASSes; NOTIFY round trips in order', async () => {
    const v = await counter();
    const images = dirFd('dr-images');
    const work = dirFd('dr-work');

    // 1: leave_running, images_dir_fd, notify_scripts, log in the images dir
    const d1 = await once(ours, { type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: v.pid, leave_running: true, log_level: 4, log_file: 'dump.log', notify_scripts: true, shell_job: false } });
    expect(d1.resp).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(scripts(d1.seen)).toEqual(['pre-dump', 'query-ext-files', 'post-dump']);
    expect(d1.exit).toEqual({ code: 0, signal: null });
    expect(fs.readFileSync(path.join(images.dir, 'dump.log'), 'utf8')).toMatch(/Version: 4\.1 \(criu-ts [^)]+\), RPC[\s\S]*Dumping finished successfully/);
    expect(fs.existsSync(path.join(images.dir, `core-${v.pid}.img`))).toBe(true);
    const after = lastCounter(v);
    await waitFor('the counter to keep going', () => lastCounter(v) >= after + 2, 10_000);

    // 2: kills it; images_dir by path this time, the log in work_dir_fd
    const d2 = await once(ours, { type: REQ.DUMP, opts: { images_dir_fd: -1, images_dir: images.dir, work_dir_fd: work.fd, pid: v.pid, log_level: 4, log_file: 'dump2.log' } });
    expect(d2.resp).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(d2.seen).toEqual([]);
    expect(d2.exit.code).toBe(0);
    expect(fs.readFileSync(path.join(work.dir, 'dump2.log'), 'utf8')).toMatch(/Dumping finished successfully/);
    expect(fs.existsSync(path.join(images.dir, 'dump2.log'))).toBe(false);
    await waitPidGone(v.pid);
    const before = lastCounter(v);

    // 3: restore (forced detached), notify post-restore carries the pid
    const r = await once(ours, { type: REQ.RESTORE, opts: { images_dir_fd: images.fd, log_level: 4, log_file: 'restore.log', notify_scripts: true, rst_sibling: true } });
    expect(r.resp).toEqual({ type: REQ.RESTORE, success: true, restore: { pid: v.pid } });
    expect(scripts(r.seen)).toEqual(['pre-restore', `post-restore(${v.pid})`, 'pre-resume', 'post-resume']);
    expect(r.exit).toEqual({ code: 0, signal: null });
    const log = fs.readFileSync(path.join(images.dir, 'restore.log'), 'utf8');
    expect(log).toMatch(/Warn: option rst_sibling has no effect in criu-ts/);
    expect(log).toMatch(/Restore finished successfully/);
    await waitFor('the counter after restore', () => lastCounter(v) >= before + 3, 10_000);
    expect(isAlive(v.pid)).toBe(true); // swrk has exited; the restored task lives on
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('the oracle sends the same NOTIFY scripts for the same DUMP and RESTORE', async () => {
    const v = await counter();
    const images = dirFd('oracle-notify');
    const d = await once(oracle, { type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: v.pid, log_level: 4, log_file: 'dump.log', notify_scripts: true } });
    expect(d.resp).toMatchObject({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(scripts(d.seen)).toEqual(['pre-dump', 'query-ext-files', 'post-dump']);
    await waitPidGone(v.pid);
    const r = await once(oracle, { type: REQ.RESTORE, opts: { images_dir_fd: images.fd, log_level: 4, log_file: 'restore.log', notify_scripts: true, rst_sibling: true } });
    expect(r.resp).toMatchObject({ type: REQ.RESTORE, success: true, restore: { pid: v.pid } });
    expect(scripts(r.seen)).toEqual(['pre-restore', `post-restore(${v.pid})`, 'pre-resume', 'post-resume']);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('a client that reports a pre-dump script error: no dump, the task untouched, success=false', async () => {
    const v = await counter();
    const images = dirFd('notify-fail');
    const r = await once(ours, { type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: v.pid, notify_scripts: true, log_file: 'dump.log' } }, (s) => s !== 'pre-dump');
    expect(scripts(r.seen)).toEqual(['pre-dump']);
    expect(r.resp).toMatchObject({ type: REQ.DUMP, success: false, cr_errmsg: expect.stringMatching(/RPC client reported script error \(pre-dump\)/) });
    expect(r.exit.code).toBe(1);
    expect(fs.existsSync(path.join(images.dir, `core-${v.pid}.img`))).toBe(false);
    expect(fs.readFileSync(path.join(images.dir, 'dump.log'), 'utf8')).toMatch(/Error: RPC client reported script error/);
    const n = lastCounter(v);
    await waitFor('the counter to keep going', () => lastCounter(v) >= n + 2, 10_000);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('DUMP of a PID that does not exist: success=false, cr_errno ESRCH, exit 1, as the oracle answers', async () => {
    const images = dirFd('nopid');
    const req = { type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: 999999999, log_file: 'dump.log' } };
    const r = await once(ours, req);
    const o = await once(oracle, req);
    expect(r.resp).toMatchObject({ type: REQ.DUMP, success: false, dump: { restored: false }, cr_errno: 3, cr_errmsg: expect.stringMatching(/no such process/) });
    expect(o.resp).toMatchObject({ type: REQ.DUMP, success: false, dump: { restored: false }, cr_errno: 3 });
    expect(r.exit.code).toBe(1);
    expect(o.exit.code).toBe(1);
  });

  test('RESTORE from a directory without images: success=false, restore.pid -1, exit 1', async () => {
    const images = dirFd('empty');
    const r = await once(ours, { type: REQ.RESTORE, opts: { images_dir_fd: images.fd, log_file: 'restore.log' } });
    expect(r.resp).toMatchObject({ type: REQ.RESTORE, success: false, restore: { pid: -1 }, cr_errmsg: expect.stringMatching(/restore failed/) });
    expect(r.exit.code).toBe(1);
  });
});

describe('criu swrk: what it refuses', () => {
  test.each([
    ['a malformed external resource', { external: ['mnt[]:x'] }, /external resource 'mnt\[\]:x' has an empty/],
    ['a relative cg_root', { cg_root: [{ ctrl: 'pids', path: 'x' }] }, /cg_root pids:x: the path must be absolute/],
    ['an inherit_fd that is not open in swrk', { inherit_fd: [{ key: 'pipe:[1]', fd: 999 }] }, /inherit_fd pipe:\[1\]: descriptor 999 is not open in criu swrk/],
    ['empty_ns other than the network namespace', { empty_ns: 0x20000000 }, /empty_ns 0x20000000 is not supported/],
    ['join_ns', { join_ns: [{ ns: 'ipc', ns_file: '/proc/1/ns/ipc' }] }, /join_ns is not supported/],
    ['tcp_established', { tcp_established: true }, /established TCP connections/],
    ['a page server', { ps: { address: '127.0.0.1', port: 1234 } }, /page server/],
    ['a log file in a subdirectory', { log_file: 'sub/dump.log' }, /No subdirs are allowed in log_file name/],
  ])('DUMP with %s: a clear error (EBADRQC), the task untouched, exit 1', async (_what, extra, message) => {
    const v = await counter();
    const images = dirFd(`refuse-${started.length}`);
    const r = await once(ours, { type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: v.pid, leave_running: true, ...extra } });
    expect(r.resp).toMatchObject({ type: REQ.DUMP, success: false, cr_errno: 56 });
    expect(r.resp.cr_errmsg).toMatch(message);
    expect(r.exit.code).toBe(1);
    expect(fs.existsSync(path.join(images.dir, `core-${v.pid}.img`))).toBe(false);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('options that ask for nothing (false, 0, []) and those without effect are accepted, the latter with a warning', async () => {
    const v = await counter();
    const images = dirFd('accepted');
    const r = await once(ours, {
      type: REQ.DUMP,
      opts: {
        images_dir_fd: images.fd, pid: v.pid, leave_running: true, log_file: 'dump.log', root: '/',
        tcp_established: false, lazy_pages: false, external: [], ext_mnt: [], manage_cgroups: true, file_locks: true, orphan_pts_master: true,
        // what runc sends for a plain container: accepted (the namespaces are the engine's business)
        empty_ns: 0x40000000, config_file: path.join(tmp, 'no-such-runc.conf'), freeze_cgroup: '/sys/fs/cgroup/freezer/x',
      },
    });
    expect(r.resp).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    const log = fs.readFileSync(path.join(images.dir, 'dump.log'), 'utf8');
    expect(log).toMatch(/Warn: option orphan_pts_master has no effect in criu-ts/);
    expect(log).toMatch(/Warn: option file_locks has no effect in criu-ts/);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('CRIU_TS_RPC_TRACE=FILE: every request and response as one JSON line, in order, notifications included', async () => {
    const v = await counter();
    const images = dirFd('traced');
    const trace = path.join(tmp, 'rpc-trace.jsonl');
    const c = SwrkClient.start({ command: process.execPath, args: [BIN], env: { ...process.env, CRIU_TS_RPC_TRACE: trace } });
    clients.push(c);
    const resp = await c.call({ type: REQ.DUMP, opts: { images_dir_fd: images.fd, pid: v.pid, leave_running: true, log_file: 'dump.log', notify_scripts: true, external: ['net[1]:k'] } });
    expect(resp).toMatchObject({ success: true });
    await c.exited();
    const lines = fs.readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { dir: string; msg: Msg });
    expect(lines.map((l) => `${l.dir} ${l.msg.type}${(l.msg.notify as Msg | undefined)?.script ? ` ${(l.msg.notify as Msg).script}` : ''}`)).toEqual(['req 1', 'resp 6 pre-dump', 'req 6', 'resp 6 query-ext-files', 'req 6', 'resp 6 post-dump', 'req 6', 'resp 1']);
    expect((lines[0].msg.opts as Msg).external).toEqual(['net[1]:k']);
    expect(lines[7].msg).toEqual({ type: REQ.DUMP, success: true, dump: { restored: false } });
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('a malformed criu_req (garbage bytes): an error response, then a clean exit 1', async () => {
    const c = ours();
    c.send(Buffer.from('garbage bytes, not protobuf'));
    const { resp } = await c.receive();
    expect(resp).toMatchObject({ type: REQ.EMPTY, success: false, cr_errno: 74, cr_errmsg: expect.stringMatching(/^malformed criu_req/) });
    expect(await c.exited()).toEqual({ code: 1, signal: null });
    expect(c.stderr).toMatch(/malformed criu_req/);
    expect(c.stderr).not.toMatch(/\n\s+at /);
  });

  test('a request type that is not one (EMPTY, a stray NOTIFY): "Invalid req", exit 1', async () => {
    for (const type of [REQ.EMPTY, REQ.NOTIFY]) {
      const r = await once(ours, { type, notify_success: true });
      expect(r.resp).toMatchObject({ type: REQ.EMPTY, success: false, cr_errmsg: expect.stringMatching(/^Invalid req/) });
      expect(r.exit.code).toBe(1);
    }
  });

  test('keep_open on a DUMP (CRIU allows it on queries only): an error response, not silence', async () => {
    const images = dirFd('keepopen');
    const r = await once(ours, { type: REQ.DUMP, keep_open: true, opts: { images_dir_fd: images.fd, pid: 999999999 } });
    expect(r.resp).toMatchObject({ type: REQ.DUMP, success: false, cr_errno: 56, cr_errmsg: expect.stringMatching(/keep_open is not allowed with DUMP/) });
    expect(r.exit.code).toBe(1);
  });

  test('SINGLE_PRE_DUMP, PAGE_SERVER: not supported, said so (ENOTSUP)', async () => {
    const images = dirFd('predump');
    for (const type of [REQ.SINGLE_PRE_DUMP, REQ.PAGE_SERVER]) {
      const r = await once(ours, { type, opts: { images_dir_fd: images.fd, pid: 999999999 } });
      expect(r.resp).toMatchObject({ type, success: false, cr_errno: 95 });
      expect(r.exit.code).toBe(1);
    }
  });

  test('WAIT_PID of a task that is not its child: success=false, as the oracle answers', async () => {
    const r = await once(ours, { type: REQ.WAIT_PID, pid: 1 });
    const o = await once(oracle, { type: REQ.WAIT_PID, pid: 1 });
    expect(r.resp).toMatchObject({ type: REQ.WAIT_PID, success: false, cr_errno: 10 });
    expect(o.resp).toMatchObject({ type: REQ.WAIT_PID, success: false });
    expect(r.exit.code).toBe(0);
  });

  test('the client hangs up without a request: exit 1', async () => {
    const c = ours();
    c.close();
    expect((await c.exited()).code).toBe(1);
  });

  test('swrk on something that is not a SEQPACKET socket: exit 1, one clear line', async () => {
    const { spawnSync } = await import('child_process');
    const r = spawnSync(process.execPath, [BIN, 'swrk', '0'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/swrk: descriptor 0 is not a socket/);
    const r2 = spawnSync(process.execPath, [BIN, 'swrk', 'x'], { encoding: 'utf8' });
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/expected a socket descriptor number/);
  });
});
