/**
 * Pseudo-terminal pairs held inside the dumped tree (tools/testprogs/ptypair.c): the records
 * are CRIU's, queued data is refused at dump, a taken index is replaced at restore. A terminal
 * from outside the tree (--shell-job) comes back as the restorer's terminal. The plain round
 * trips of ptypair (criu-ts and oracle images) are in suite.test.ts.
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
  // Terminals are pty-run (fixtures/pty-run.c): a pty whose command leads its session with the
  // slave as controlling terminal, everything written to it copied to a log, SIGUSR1 typing
  // "ping". The shell job is fixtures/shell-job.c, blocked reading its terminal.
  const coreDist = path.join(__dirname, '..', 'dist', 'index.cjs');
  let n = 0;
  interface Term { runner: Victim; log: string }
  /** A terminal running `bash -c cmd` (with job control: set -m), or `argv` itself. */
  function terminal(argv: string[]): Term {
    const log = path.join(tmp, `pty-${++n}.log`);
    const runner = startDetached(buildFixture('pty-run'), [log, ...argv]);
    started.push(runner);
    return { runner, log };
  }
  const screen = (t: Term) => (fs.existsSync(t.log) ? fs.readFileSync(t.log, 'utf8').replace(/\r/g, '') : '');
  /** The terminal's slave and the pid of the command pty-run started on it (bash or the job). */
  const head = (t: Term) => { const m = /^PTYRUN (\S+) (\d+)/.exec(screen(t))!; return { pts: m[1], leader: Number(m[2]) }; };
  /** state, ppid, pgrp, session, tty_nr, tpgid of /proc/PID/stat. */
  function stat(pid: number) {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'latin1').replace(/^.*\) /s, '').split(' ');
    return { pgrp: Number(f[2]), session: Number(f[3]), ttyNr: Number(f[4]), tpgid: Number(f[5]) };
  }
  /** tty_nr as /proc shows it for a pts (major 136, small minor: the same bits as st_rdev). */
  const ttyNr = (pts: string) => fs.statSync(pts).rdev;
  function winsize(pts: string): number[] {
    const fd = fs.openSync(pts, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    try {
      const b = Buffer.alloc(8);
      sys.syscall('ioctl', fd, TTY_IOCTL.TIOCGWINSZ, b);
      return [0, 2].map((o) => (os.endianness() === 'LE' ? b.readUInt16LE(o) : b.readUInt16BE(o)));
    } finally { fs.closeSync(fd); }
  }
  function setWinsize(pts: string, r: number, c: number): void {
    const fd = fs.openSync(pts, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    const b = Buffer.alloc(8);
    if (os.endianness() === 'LE') { b.writeUInt16LE(r, 0); b.writeUInt16LE(c, 2); } else { b.writeUInt16BE(r, 0); b.writeUInt16BE(c, 2); }
    sys.syscall('ioctl', fd, TTY_IOCTL.TIOCSWINSZ, b);
    fs.closeSync(fd);
  }

  /**
   * A shell job: bash (set -m) runs it in a group of its own, in the foreground of the terminal;
   * without job control, in bash's group; with 'leader' it is the terminal's session leader.
   */
  async function startJob(args: string[] = [], jobControl = true): Promise<{ term: Term; pid: number; pts: string }> {
    const term = args.includes('leader') ? terminal([buildFixture('shell-job'), ...args]) : terminal(['bash', '-c', `${jobControl ? 'set -m; ' : ''}'${buildFixture('shell-job')}' ${args.join(' ')}; exec sleep 1000`]);
    const m = await waitFor('shell-job READY', () => /READY (\S+) (\d+)/.exec(screen(term)) ?? undefined, 10_000);
    const pid = Number(m[2]);
    extraPids.push(pid);
    return { term, pid, pts: m[1] };
  }

  /** The restorer: criu-ts restore --shell-job (the built package: a process of its own) run by bash (set -m) on a new terminal. */
  function restorer(dir: string): Term {
    const script = path.join(tmp, 'restorer.cjs');
    fs.writeFileSync(script, [
      `const { restore } = require(${JSON.stringify(coreDist)});`,
      // Waits for the job to end, as `criu restore` without -d: bash takes its terminal back only then.
      'restore({ imagesDir: process.argv[2], shellJob: true, detach: false, logFile: "restore.log", logLevel: 4 })',
      '  .then((r) => console.log("RESTORED " + r.pid + " " + JSON.stringify(r.exit)), (e) => { console.log("RESTORE FAILED " + e.message); process.exit(1); });',
    ].join('\n'));
    return terminal(['bash', '-c', `set -m; node '${script}' '${dir}'; echo "restorer exit $?"; exec sleep 1000`]);
  }

  /** Restores `dir` from a new terminal; the job must come back there as a shell job and read "ping". */
  async function roundTrip(dir: string, pid: number, shape: 'own group' | 'leader' | 'caller\'s group' = 'own group'): Promise<void> {
    const term = restorer(dir);
    const { pts, leader: bash } = await waitFor('the restorer terminal', () => /^PTYRUN/.test(screen(term)) && head(term));
    // Restored (and its terminal set up) once it is in its new place.
    await waitFor(`task ${pid} on ${pts}`, () => { try { return fs.readlinkSync(`/proc/${pid}/fd/0`) === pts && fs.readlinkSync(`/proc/${pid}/fd/2`) === pts; } catch { return false; } }, 30_000);
    await waitFor('the restore to finish', () => /restore step 15\/15/.test(fs.existsSync(path.join(dir, 'restore.log')) ? fs.readFileSync(path.join(dir, 'restore.log'), 'utf8') : ''), 30_000);
    const st = stat(pid);
    if (shape === 'caller\'s group') {
      // Not a group leader: the restorer's group (the node process bash runs), in the foreground.
      const restorerPid = Number(fs.readFileSync(`/proc/${bash}/task/${bash}/children`, 'latin1').trim().split(' ')[0]);
      expect(st).toEqual({ session: bash, pgrp: restorerPid, ttyNr: ttyNr(pts), tpgid: restorerPid });
    } else if (shape === 'leader') {
      // A session leader makes its session again: the terminal stays the caller's (CRIU 4.1 too).
      expect(st).toMatchObject({ session: pid, pgrp: pid, ttyNr: 0 });
    } else {
      // The caller's session, its own group, the terminal's foreground, as CRIU 4.1 does.
      expect(st).toEqual({ session: bash, pgrp: pid, ttyNr: ttyNr(pts), tpgid: pid });
    }
    expect(winsize(pts)).toEqual([37, 101]); // the dumped terminal's, as CRIU applies them
    process.kill(term.runner.pid, 'SIGUSR1');
    const out = await waitFor('the job\'s verdict', () => /(PASS|FAIL) shell-job.*\n/.exec(screen(term))?.[0], 15_000);
    expect(out).toBe(`PASS shell-job ping on ${pts}\n`);
    await waitFor('the restorer to exit', () => /restorer exit \d+/.exec(screen(term))?.[0], 15_000);
    expect(screen(term)).toContain(`${out}RESTORED ${pid} {}\nrestorer exit 0\n`);
  }

  beforeAll(() => requireOracle());

  it('a shell job dumped by criu-ts comes back on the restorer\'s terminal, in its session and foreground, and reads from it', async () => {
    const { pid, pts, term } = await startJob();
    expect(stat(pid)).toEqual({ session: head(term).leader, pgrp: pid, ttyNr: ttyNr(pts), tpgid: pid });
    setWinsize(pts, 37, 101);
    const dir = path.join(tmp, 'shelljob');
    await expect(dump({ pid, imagesDir: path.join(tmp, 'shelljob-refused'), leaveRunning: true })).rejects.toThrow(/needs --shell-job/);
    await dump({ pid, imagesDir: dir, shellJob: true });
    await waitPidGone(pid);
    await roundTrip(dir, pid);
  });

  it('the oracle CRIU\'s dump of a shell job restores the same way', async () => {
    const { pid, pts } = await startJob();
    setWinsize(pts, 37, 101);
    const dir = path.join(tmp, 'shelljob-oracle');
    fs.mkdirSync(dir);
    expect(oracle(['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4', '--shell-job']).status).toBe(0);
    await waitPidGone(pid);
    await roundTrip(dir, pid);
  });

  it('a job in its shell\'s group (no job control) joins the restorer\'s group, as CRIU 4.1 does', async () => {
    const { pid, pts, term } = await startJob([], false);
    expect(stat(pid)).toEqual({ session: head(term).leader, pgrp: head(term).leader, ttyNr: ttyNr(pts), tpgid: head(term).leader });
    setWinsize(pts, 37, 101);
    const dir = path.join(tmp, 'shelljob-group');
    await dump({ pid, imagesDir: dir, shellJob: true });
    await waitPidGone(pid);
    await roundTrip(dir, pid, 'caller\'s group');
  });

  it('a job that led its session gets a session of its own again, on the restorer\'s terminal, without taking it as controlling terminal (as CRIU 4.1)', async () => {
    const { pid, pts } = await startJob(['leader']);
    expect(stat(pid)).toMatchObject({ session: pid, pgrp: pid, ttyNr: ttyNr(pts), tpgid: pid });
    setWinsize(pts, 37, 101);
    const dir = path.join(tmp, 'shelljob-leader');
    await dump({ pid, imagesDir: dir, shellJob: true });
    await waitPidGone(pid);
    await roundTrip(dir, pid, 'leader');
  });

  it('--inherit-fd tty[RDEV:DEV] names the terminal to give instead of the restorer\'s stdin', async () => {
    const { pid } = await startJob(['leader']);
    const dir = path.join(tmp, 'shelljob-inherit');
    await dump({ pid, imagesDir: dir, shellJob: true });
    const info = decode(dir, 'tty-info.img')[0];
    const key = `tty[${Number(info.rdev).toString(16)}:${Number(info.dev).toString(16)}]`;
    await waitPidGone(pid);
    // A terminal of nobody's session here: this process restores, with a descriptor of it.
    const term = terminal(['sleep', '1000']);
    const { pts } = await waitFor('the terminal', () => /^PTYRUN/.test(screen(term)) && head(term));
    const fd = fs.openSync(pts, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
    held.push(fd);
    await restore({ imagesDir: dir, shellJob: true, inheritFds: [{ key, fd }], logFile: 'restore.log', logLevel: 4 });
    expect(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8')).toContain(`the restored tasks get inherited descriptor ${fd} (${key})`);
    expect(fs.readlinkSync(`/proc/${pid}/fd/0`)).toBe(pts);
    expect(stat(pid)).toMatchObject({ session: pid, pgrp: pid, ttyNr: 0 });
    process.kill(term.runner.pid, 'SIGUSR1');
    expect(await waitFor('the job\'s verdict', () => /(PASS|FAIL) shell-job.*\n/.exec(screen(term))?.[0], 15_000)).toBe(`PASS shell-job ping on ${pts}\n`);
  });

  it('is refused before anything is created without --shell-job, or when the terminal to give is not one', async () => {
    const { pid, pts } = await startJob();
    const dir = path.join(tmp, 'shelljob-refusals');
    await dump({ pid, imagesDir: dir, shellJob: true, leaveRunning: true });
    const index = Number(/\d+$/.exec(pts)![0]);
    await expect(restore({ imagesDir: dir })).rejects.toThrow(
      new RegExp(`pty ${index}'s master is not in the dump: a terminal outside the tree is restored only with --shell-job`));
    const info = decode(dir, 'tty-info.img')[0];
    const key = `tty[${Number(info.rdev).toString(16)}:${Number(info.dev).toString(16)}]`;
    const devnull = fs.openSync('/dev/null', 'r');
    held.push(devnull);
    await expect(restore({ imagesDir: dir, shellJob: true, inheritFds: [{ key, fd: devnull }] })).rejects.toThrow(
      new RegExp(`pty ${index} is a terminal outside the tree: --shell-job gives the restored tasks the restorer's terminal, but inherited descriptor ${devnull} \\(tty\\[.*\\]\\) is not a terminal`));
    expect(stat(pid)).toMatchObject({ pgrp: pid, tpgid: pid }); // the dumped task, left running, is untouched
  });
});
