/**
 * Sockets beyond socketpairs against real processes: what the dump refuses (an established TCP
 * connection, a listener with a connection waiting to be accepted) is refused by dump() before
 * anything is frozen, naming task, fd and the socket, and the task runs on; the unix_sk_entry
 * records of named sockets are those the oracle CRIU writes.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { dump, restore, RestoreError } from '../src';
import { AF_INET, IPPROTO_TCP, inetDiag, inetDiagRefusal } from '../src/dump/files-inet';
import { buildFixture, isAlive, killVictim, readLog, startDetached, waitFor } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(60_000);
const { dir: work, started } = testWorkspace('sockets');

async function refusedDump(pid: number): Promise<Error> {
  const dir = fs.mkdtempSync(path.join(work, 'images-'));
  try {
    await dump({ pid, imagesDir: dir });
  } catch (e) {
    return e as Error;
  }
  throw new Error('the dump succeeded');
}

describe('refused at dump time, the task runs on', () => {
  it('an established TCP connection (needs TCP_REPAIR): task, fd and both ends named', async () => {
    const v = startDetached(buildFixture('files-unsupported'), ['tcp']);
    started.push(v);
    const fd = Number((await waitFor('READY', () => /READY (\d+)/.exec(readLog(v)) ?? undefined))[1]);
    const e = await refusedDump(v.pid);
    expect(e.message).toMatch(new RegExp(
      `task ${v.pid} fd ${fd}: socket:\\[\\d+\\] \\(TCP socket\\) is not supported yet \\(TCP connection 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:\\d+, ESTABLISHED: established connections need TCP_REPAIR\\)`));
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    process.kill(v.pid, 'SIGTERM');
    await waitFor('verdict', () => /PASS/.exec(readLog(v)));
  });

  it('a named listener with a connection waiting in its accept queue', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'unixnamed-'));
    const v = await startTestprog('unixnamed', [dir]);
    started.push(v);
    // A client the program never accepts (it accepts only after SIGTERM).
    const client = net.connect(path.join(dir, 'listen.sock'));
    await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
    try {
      const e = await refusedDump(v.pid);
      expect(e.message).toMatch(new RegExp(
        `task ${v.pid} fd \\d+: socket:\\[\\d+\\] \\(unix socket\\) is not supported yet \\(listening on ${dir}/listen\\.sock with 1 connection\\(s\\) waiting in its accept queue\\)`));
      expect(isAlive(v.pid)).toBe(true);
      expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    } finally {
      client.destroy();
      killVictim(v);
    }
  });

  it('a unix socket whose peer is in no dumped task', async () => {
    const sock = path.join(work, `outside-${Date.now()}.sock`);
    let accepted = false;
    const server = net.createServer(() => { accepted = true; });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const v = startDetached(buildFixture('files-unsupported'), ['unix-connect', sock]);
      started.push(v);
      const fd = Number((await waitFor('READY', () => /READY (\d+)/.exec(readLog(v)) ?? undefined))[1]);
      // Until this process accepts it, the other end has no inode (see the next test).
      await waitFor('accepted', () => accepted);
      const e = await refusedDump(v.pid);
      expect(e.message).toMatch(new RegExp(`task ${v.pid} fd ${fd}: socket:\\[\\d+\\] \\(unix socket\\) is not supported yet \\(its peer socket:\\[\\d+\\] is in no dumped task\\)`));
      process.kill(v.pid, 'SIGTERM');
      await waitFor('verdict', () => /PASS/.exec(readLog(v)));
    } finally {
      server.close();
    }
  });

  it('a unix socket connected to a listener in no dumped task that has not accepted it yet', async () => {
    const sock = path.join(work, `pending-${Date.now()}.sock`);
    // A listener that never accepts (its own client already waits in its queue), in another process.
    const holder = startDetached(buildFixture('files-unsupported'), ['unix-listen', sock]);
    started.push(holder);
    await waitFor('holder READY', () => /READY (\d+)/.exec(readLog(holder)));
    const v = startDetached(buildFixture('files-unsupported'), ['unix-connect', sock]);
    started.push(v);
    const ready = await waitFor('READY', () => /READY (\d+)/.exec(readLog(v)) ?? /FAIL.*/.exec(readLog(v)) ?? undefined);
    expect(ready[0]).toMatch(/^READY/);
    const e = await refusedDump(v.pid);
    expect(e.message).toMatch(new RegExp(`task ${v.pid} fd ${ready[1]}: socket:\\[\\d+\\] \\(unix socket\\) is not supported yet \\(connected to a listener that has not accepted the connection yet: its other end is in no dumped task\\)`));
    process.kill(v.pid, 'SIGTERM');
    await waitFor('verdict', () => /PASS/.exec(readLog(v)));
  });

  it('a descriptor in flight (SCM_RIGHTS queued on a socket), met once the task is frozen', async () => {
    const v = startDetached(buildFixture('files-unsupported'), ['scm']);
    started.push(v);
    const fd = Number((await waitFor('READY', () => /READY (\d+)/.exec(readLog(v)) ?? undefined))[1]);
    const e = await refusedDump(v.pid);
    expect(e.message).toMatch(new RegExp(`task ${v.pid} fd ${fd}: socket:\\[\\d+\\] \\(unix socket\\) is not supported yet \\(descriptors in flight: SCM_RIGHTS queued on it\\)`));
    await new Promise((r) => setTimeout(r, 100));
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/State:\s+S/);
    process.kill(v.pid, 'SIGTERM');
    await waitFor('verdict', () => /PASS/.exec(readLog(v)));
  });
});

describe('unix_sk_entry of named sockets as the oracle CRIU writes them', () => {
  beforeAll(() => requireOracle());

  it('unixnamed: the same records (but inodes), the same queued packets', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'unixnamed-'));
    const v = await startTestprog('unixnamed', [dir]);
    started.push(v);
    const theirs = path.join(work, `oracle-${v.pid}`), ours = path.join(work, `ours-${v.pid}`);
    fs.mkdirSync(theirs);
    const r = oracle(['dump', '-t', String(v.pid), '-D', theirs, '-o', 'dump.log', '-v4', '--leave-running']);
    expect(r.status).toBe(0);
    await dump({ pid: v.pid, imagesDir: ours, leaveRunning: true });
    const usk = async (d: string) => (await readImageFile(path.join(d, 'files.img'))).entries.map((e) => e.message).filter((m) => m.usk);
    const a = await usk(theirs), b = await usk(ours);
    // Both dumps saw the very same sockets: even inodes and peers agree.
    expect(b).toEqual(a);
    expect(a.map((f) => (f.usk as Msg).state)).toEqual([10, 1, 1, 10, 7, 7, 7]);
    const queues = async (d: string) => (await readImageFile(path.join(d, 'sk-queues.img'))).entries.map((e) => [e.message, Buffer.from((e.extra as { data: Uint8Array }).data).toString()]);
    expect(await queues(ours)).toEqual(await queues(theirs));
    expect(await verdict(v, 15_000)).toMatch(/^PASS unixnamed/);
  });

  it('unixnamed: the oracle CRIU restores what criu-ts dumped (a stale socket file at each path)', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'unixnamed-'));
    // CRIU 4.1's restore loses the accepted connection's names (testprogs-oracle.test.ts).
    const v = await startTestprog('unixnamed', [dir, 'noacceptname']);
    started.push(v);
    const images = path.join(work, `to-oracle-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: images });
    await waitPidGone(v.pid);
    expect(fs.lstatSync(path.join(dir, 'listen.sock')).isSocket()).toBe(true);
    oracleRestore(images);
    expect(await verdict(v, 15_000)).toMatch(/^PASS unixnamed \(names of the accepted connection not checked\)/);
  });
});

describe('bad socket records: a RestoreError naming file and field, nothing left behind', () => {
  /** Rewrites files.img of `dir` with `edit` applied to each file_entry; returns a function undoing it. */
  async function editFiles(dir: string, edit: (f: Msg) => void): Promise<() => void> {
    const file = path.join(dir, 'files.img');
    const saved = fs.readFileSync(file);
    const img = await readImageFile(file);
    for (const e of img.entries) edit(e.message);
    await writeImageFile(file, img.magic, img.entries.map((e) => ({ message: e.message })));
    return () => fs.writeFileSync(file, saved);
  }

  async function refusedRestore(dir: string, pid: number): Promise<RestoreError> {
    const err = await restore({ imagesDir: dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    await waitPidGone(pid);
    return err as RestoreError;
  }

  it('an established TCP socket in the image (inet_sk_entry.state); the right images restore after', async () => {
    const v = await startTestprog('inetlisten');
    started.push(v);
    const dir = path.join(work, `bad-inet-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const undo = await editFiles(dir, (f) => { if (f.isk && (f.isk as Msg).proto === 6) (f.isk as Msg).state = 1; });
    const err = await refusedRestore(dir, v.pid);
    expect(err.message).toMatch(/inet socket \d+ \(file \d+\): state 1 is not supported yet/);
    expect(err.message).toMatch(/established TCP connections need TCP_REPAIR/);
    expect(err).toMatchObject({ file: 'files.img', field: 'isk.state' });
    // Every port the failed restore bound is free again: the real images restore.
    undo();
    await restore({ imagesDir: dir });
    expect(await verdict(v, 15_000)).toMatch(/^PASS inetlisten/);
  });

  it('a relative unix socket name (unix_sk_entry.name), and a non-socket file at a bound path', async () => {
    const tmp = fs.mkdtempSync(path.join(work, 'unixnamed-'));
    const v = await startTestprog('unixnamed', [tmp]);
    started.push(v);
    const dir = path.join(work, `bad-unix-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const undo = await editFiles(dir, (f) => {
      const u = f.usk as Msg | undefined;
      if (u && Number(u.state) === 10 && (u.name as Uint8Array)[0] === 0x2f) u.name = Buffer.from('listen.sock\0');
    });
    let err = await refusedRestore(dir, v.pid);
    expect(err.message).toMatch(/unix socket \d+ \(file \d+\): the relative name listen\.sock is not supported yet/);
    expect(err).toMatchObject({ file: 'files.img', field: 'usk.name' });
    undo();
    // A regular file where the datagram socket was bound is not removed.
    const dgram = path.join(tmp, 'dgram.sock');
    fs.unlinkSync(dgram);
    fs.writeFileSync(dgram, 'not a socket');
    err = await refusedRestore(dir, v.pid);
    expect(err.message).toMatch(new RegExp(`${dgram} exists and is not a socket`));
    expect(err.hint).toMatch(/move it away/);
    expect(fs.readFileSync(dgram, 'utf8')).toBe('not a socket');
    fs.unlinkSync(dgram);
    await restore({ imagesDir: dir });
    expect(await verdict(v, 15_000)).toMatch(/^PASS unixnamed/);
  });
});

describe('inet_diag, as read once the task is frozen', () => {
  const inodeOf = (fd: number) => Number(/^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`))![1]);
  const fdOf = (h: unknown) => (h as { _handle: { fd: number } })._handle.fd;

  it('a listener (port, address, backlog) passes; an established connection is refused', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 11 }, resolve));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
      const l = inetDiag(AF_INET, IPPROTO_TCP, inodeOf(fdOf(server)));
      expect(l).toMatchObject({ state: 10, sport: port, dport: 0, wqueue: 11, src: [0x0100007f] });
      expect(inetDiagRefusal(l, IPPROTO_TCP)).toBeUndefined();
      const c = inetDiag(AF_INET, IPPROTO_TCP, inodeOf(fdOf(client)));
      expect(c).toMatchObject({ state: 1, dport: port, dst: [0x0100007f] });
      expect(inetDiagRefusal(c, IPPROTO_TCP)).toBe('is not supported yet (state 1: established connections need TCP_REPAIR)');
    } finally {
      client.destroy();
      server.close();
    }
  });
});
