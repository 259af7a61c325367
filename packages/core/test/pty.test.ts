/**
 * Pseudo-terminal pairs held inside the dumped tree (tools/testprogs/ptypair.c): the records
 * are CRIU's, queued data is refused at dump, a taken index is replaced at restore, and a
 * terminal from outside the tree is still refused at restore. The plain round trips (criu-ts
 * and oracle images) are in suite.test.ts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sys, TTY_IOCTL } from '@criu/sys';
import { dump, restore } from '../src';
import { buildFixture, isAlive, killVictim, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { critDecode, oracle, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(120_000);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-pty-'));
const started: Victim[] = [];
const held: number[] = [];
const extraPids: number[] = [];
afterAll(() => {
  started.forEach(killVictim);
  for (const p of extraPids) if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  for (const fd of held) fs.closeSync(fd);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(args: string[] = []): Promise<Victim> {
  const v = await startTestprog('ptypair', args);
  started.push(v);
  return v;
}

type Rec = Record<string, unknown>;
const decode = (dir: string, img: string) => critDecode(path.join(dir, img)).entries as Rec[];
const childOf = (v: Victim) => Number(/child (\d+) on/.exec(readLog(v))![1]);
/** The echoer: the child's child, the terminal's foreground group. */
const echoerOf = (child: number) => Number(fs.readFileSync(`/proc/${child}/task/${child}/children`, 'latin1').trim().split(' ')[0]);
const ptsOf = (v: Victim) => Number(/on \/dev\/pts\/(\d+)/.exec(readLog(v))![1]);

/** CRIU leaves c_cc words past the 19 bytes uninitialised: compare those bytes only. */
function ccBytes(t: Rec): string {
  const b = Buffer.alloc((t.c_cc as number[]).length * 4);
  (t.c_cc as number[]).forEach((w, i) => (os.endianness() === 'LE' ? b.writeUInt32LE(w >>> 0, i * 4) : b.writeUInt32BE(w >>> 0, i * 4)));
  return b.subarray(0, 19).toString('hex');
}
const infoView = (i: Rec) => ({ ...i, termios: { ...(i.termios as Rec), c_cc: ccBytes(i.termios as Rec) }, termios_locked: { ...(i.termios_locked as Rec), c_cc: ccBytes(i.termios_locked as Rec) } });

/** The tty files of files.img with the reg_file_entry each names, ids left out (they differ in numbering only). */
function ttyFiles(dir: string): Rec[] {
  const files = decode(dir, 'files.img');
  const byId = new Map(files.map((f) => [Number(f.id), f]));
  return files.filter((f) => f.type === 'TTY').map((f) => {
    const tty = f.tty as Rec;
    const reg = byId.get(Number(tty.regf_id))!.reg as Rec;
    return { tty_info_id: tty.tty_info_id, flags: tty.flags, fown: tty.fown, reg: { ...reg, id: undefined } };
  });
}

describe('a pty pair inside the tree', () => {
  beforeAll(() => requireOracle());

  it('is dumped with the records CRIU writes (a tty file and a tty_info per side, the session on the master), and the oracle\'s images restore with the foreground group', async () => {
    // fg: the terminal's foreground group is the child's child (the echoer), not the leader's.
    const v = await start(['fg']);
    const child = childOf(v);
    const theirs = path.join(tmp, 'oracle');
    fs.mkdirSync(theirs);
    const r = oracle(['dump', '-t', String(v.pid), '-D', theirs, '-o', 'dump.log', '-v4', '--leave-running']);
    expect(r.status).toBe(0);
    const ours = path.join(tmp, 'ours');
    await dump({ pid: v.pid, imagesDir: ours, leaveRunning: true });

    expect(ttyFiles(ours)).toEqual(ttyFiles(theirs));
    const info = decode(ours, 'tty-info.img');
    expect(info.map(infoView)).toEqual(decode(theirs, 'tty-info.img').map(infoView));
    const index = ptsOf(v);
    // Master (id index*2+1) first: the parent's fd 3; it reports the child's session and the
    // echoer's foreground group.
    expect(info.map((i) => i.id)).toEqual([index * 2 + 1, index * 2]);
    expect(echoerOf(child)).toBeGreaterThan(0);
    expect(info[0]).toMatchObject({ type: 'PTY', sid: child, pgrp: echoerOf(child), pty: { index }, winsize: { ws_row: 37, ws_col: 101, ws_xpixel: 640, ws_ypixel: 480 } });
    // The slave was first met in the parent, whose ctty it is not.
    expect(info[1]).toMatchObject({ sid: 0, pgrp: 0, pty: { index } });
    for (const pid of [v.pid, child]) {
      const n = pid === v.pid ? 2 : 3; // fdinfo-<files_id>: the parent's files are id 2 in both dumps
      expect(decode(ours, `fdinfo-${n}.img`)).toEqual(decode(theirs, `fdinfo-${n}.img`));
    }
    // The oracle's images, restored by criu-ts: TIOCSCTTY in the leader before it makes the
    // echoer (which inherits the terminal), TIOCSPGRP once the echoer's group exists.
    // Echoer first: it would report the hangup of its terminal into the shared log.
    for (const pid of [echoerOf(child), child, v.pid]) process.kill(pid, 'SIGKILL');
    await waitPidGone(v.pid);
    await restore({ imagesDir: theirs, logFile: 'restore.log', logLevel: 4 });
    expect(await verdict(v, 15_000)).toMatch(/^PASS ptypair/);
  });

  it('with data queued is refused at dump, naming task, fd and pty; the task runs on', async () => {
    const v = await start(['queued']);
    const dir = path.join(tmp, 'queued');
    await expect(dump({ pid: v.pid, imagesDir: dir })).rejects.toThrow(
      new RegExp(`task ${v.pid} fd 3: terminal: pty ${ptsOf(v)}: 2 byte\\(s\\) written to its slave side are not read yet`));
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    expect(await verdict(v, 15_000)).toMatch(/^PASS ptypair/);
  });

  it('comes back under another index when the dumped one is taken, with its session and terminal state', async () => {
    const v = await start();
    const index = ptsOf(v);
    const dir = path.join(tmp, 'taken');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    // Take the index (devpts hands out the lowest free one: open until we get it).
    for (let i = 0; i <= index + 64; i++) {
      const fd = fs.openSync('/dev/ptmx', fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      held.push(fd);
      const b = Buffer.alloc(4);
      sys.syscall('ioctl', fd, TTY_IOCTL.TIOCGPTN, b);
      const got = os.endianness() === 'LE' ? b.readUInt32LE(0) : b.readUInt32BE(0);
      if (got >= index) break;
    }
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expect(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8')).toMatch(new RegExp(`pty ${index} is taken: restored as pty \\d+`));
    const link = fs.readlinkSync(`/proc/${childOf(v)}/fd/3`);
    expect(link).toMatch(/^\/dev\/pts\/\d+$/);
    expect(link).not.toBe(`/dev/pts/${index}`);
    expect(await verdict(v, 15_000)).toMatch(/^PASS ptypair/);
  });
});

describe('pty modes a program sets on its pair', () => {
  // A python3 program: a master in packet mode with the slave locked after opening it, and an
  // exclusive slave. After a criu-ts round trip a dump of the restored task must record the same.
  const PROGRAM = [
    'import fcntl, os, struct, sys, time',
    'GPTN, SPTLCK, PKT, EXCL = (int(a) for a in sys.argv[1:5])',
    'm = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)',
    'fcntl.ioctl(m, SPTLCK, struct.pack("i", 0))',
    'n = struct.unpack("I", fcntl.ioctl(m, GPTN, b"\\0" * 4))[0]',
    's = os.open("/dev/pts/%d" % n, os.O_RDWR | os.O_NOCTTY)',
    'fcntl.ioctl(m, PKT, struct.pack("i", 1))',
    'fcntl.ioctl(s, EXCL)',
    'fcntl.ioctl(m, SPTLCK, struct.pack("i", 1))',
    'print("READY", n, flush=True)',
    'while True: time.sleep(0.2)',
  ].join('\n');

  it('packet mode, the slave lock and exclusive mode come back', async () => {
    const t = TTY_IOCTL;
    const v = startDetached('python3', ['-c', PROGRAM, String(t.TIOCGPTN), String(t.TIOCSPTLCK), String(t.TIOCPKT), String(t.TIOCEXCL)]);
    started.push(v);
    await waitFor('python READY', () => /READY \d+/.test(readLog(v)), 10_000);
    const first = path.join(tmp, 'modes-1');
    await dump({ pid: v.pid, imagesDir: first });
    const before = decode(first, 'tty-info.img');
    expect(before.map((i) => [i.packet_mode, i.locked, i.exclusive])).toEqual([[true, true, false], [false, false, true]]);
    await waitPidGone(v.pid);
    await restore({ imagesDir: first, logFile: 'restore.log', logLevel: 4 });
    const second = path.join(tmp, 'modes-2');
    await dump({ pid: v.pid, imagesDir: second, leaveRunning: true });
    const after = decode(second, 'tty-info.img');
    const strip = (i: Rec) => ({ ...infoView(i), id: Number(i.id) & 1, pty: undefined, rdev: undefined });
    expect(after.map(strip)).toEqual(before.map(strip));
    // Locked: a new open of the slave fails.
    const index = Number((after[0].pty as Rec).index);
    expect(() => fs.openSync(`/dev/pts/${index}`, fs.constants.O_RDWR | fs.constants.O_NOCTTY)).toThrow(/EIO/);
    process.kill(v.pid, 'SIGKILL');
  });
});

describe('/dev/tty of a session whose terminal is a pty inside the tree', () => {
  it('is refused by the oracle CRIU 4.1 ("ctty inheritance"), and dumped and restored by criu-ts: it reaches the new pty', async () => {
    const v = await start(['fg', 'devtty']);
    const child = childOf(v);
    const echoer = echoerOf(child);
    const theirs = path.join(tmp, 'devtty-oracle');
    fs.mkdirSync(theirs);
    expect(oracle(['dump', '-t', String(v.pid), '-D', theirs, '-o', 'dump.log', '-v4', '--leave-running']).status).not.toBe(0);
    expect(fs.readFileSync(path.join(theirs, 'dump.log'), 'utf8')).toMatch(/ctty inheritance detected/);
    for (let round = 1; round <= 2; round++) {
      const dir = path.join(tmp, `devtty-${round}`);
      await dump({ pid: v.pid, imagesDir: dir });
      if (round === 1) {
        // The record CRIU writes for /dev/tty: type CTTY, id 2012, the session, no pty index.
        const info = decode(dir, 'tty-info.img').find((i) => i.type === 'CTTY')!;
        expect(info).toMatchObject({ id: 2012, sid: child, pgrp: echoer, rdev: (5 << 8) | 0, winsize: { ws_row: 37, ws_col: 101 } });
        expect(info.pty).toBeUndefined();
      }
      await waitPidGone(v.pid);
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
      expect(fs.readlinkSync(`/proc/${child}/fd/4`)).toBe('/dev/tty');
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS ptypair/);
  });

  it('is still refused at dump when the terminal is outside the tree', async () => {
    const v = await start(['devtty']);
    const child = childOf(v);
    // The child alone: its terminal's master stays in its parent.
    await expect(dump({ pid: child, imagesDir: path.join(tmp, 'devtty-child') })).rejects.toThrow(
      new RegExp(`task ${child} fd 3: /dev/pts/\\d+ \\(terminal\\) needs --shell-job`));
    await expect(dump({ pid: child, imagesDir: path.join(tmp, 'devtty-child-sj'), shellJob: true })).rejects.toThrow(
      new RegExp(`task ${child} fd 4: /dev/tty \\(controlling terminal /dev/tty\\) is not supported yet \\(only when`));
    expect(await verdict(v, 15_000)).toMatch(/^PASS ptypair/);
  });
});

describe('a terminal from outside the tree (--shell-job)', () => {
  it('is dumped with --shell-job, and its restore is refused naming the pty, before anything is created', async () => {
    const closeInherited = 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null;';
    const out = path.join(tmp, 'script.out');
    const scriptPid = Number(execFileSync('bash', ['-c', `${closeInherited} setsid script -qfc '${buildFixture('files-tty')}' '${out}' </dev/null >/dev/null 2>&1 & echo $!`]).toString().trim());
    extraPids.push(scriptPid);
    const m = await waitFor('files-tty READY', () => /READY \/dev\/pts\/(\d+) (\d+)/.exec(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '') ?? undefined);
    const pid = Number(m[2]);
    extraPids.push(pid);
    const dir = path.join(tmp, 'shelljob');
    await expect(dump({ pid, imagesDir: path.join(tmp, 'shelljob-refused'), leaveRunning: true })).rejects.toThrow(/needs --shell-job/);
    await dump({ pid, imagesDir: dir, shellJob: true, leaveRunning: true });
    await expect(restore({ imagesDir: dir, shellJob: true })).rejects.toThrow(
      new RegExp(`restoring terminals is not supported yet: pty ${m[1]}'s master is not in the dump`));
    expect(isAlive(pid)).toBe(true); // the dumped task, left running, is untouched
  });
});
