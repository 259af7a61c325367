/**
 * The files dump against real processes and the oracle CRIU: the same fixture is dumped by
 * `criu dump --leave-running` and by collectFiles, and the records must agree.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeMessage, readImageFile, type Msg } from '@criu/images';
import { FrozenTask, Parasite, hostArch, readMaps } from '../src';
import { FileRegistry, FD_TYPE } from '../src/dump/file-registry';
import { collectFiles, mappedFileId, checkFilesSupported, checkUnixSockets, UnsupportedFileError, type FilesResult } from '../src/dump/files';
import type { TaskDumpContext } from '../src/dump/model';
import { buildIdOf, readBuildIdFromFd } from '../src/dump/files-build-id';
import { Logger } from '../src/util/log';
import { buildFixture, readLog, waitFor, killVictim, isAlive, type Victim } from './helpers/victims';

const arch = hostArch();
const CRIU = '/var/tmp/criu-oracle/bin/criu';
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-files-'));
const O_WRONLY = 0o1, O_APPEND = 0o2000, O_LARGEFILE = 0o100000, O_DIRECTORY = 0o200000;

interface Oracle { files: Msg[]; fdinfo: Msg[]; fs: Msg; mm: Msg; ttyInfo: Msg[] }

async function records(file: string): Promise<Msg[]> {
  return (await readImageFile(file)).entries.map((e) => e.message);
}

/** Closes every descriptor above 2 that the shell got from us (jest, the terminal that ran it). */
const CLOSE_INHERITED = 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null;';

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** Starts `prog args` in its own session, stdin /dev/null, stdout and stderr to one log. */
function startDetached(prog: string, args: string[] = []): Victim {
  const log = path.join(work, `${path.basename(prog)}-${Date.now()}-${Math.random().toString(36).slice(2)}.log`);
  const pid = Number(execFileSync('bash', ['-c', `${CLOSE_INHERITED} setsid ${[prog, ...args].map(quote).join(' ')} </dev/null >${quote(log)} 2>&1 & echo $!`]).toString().trim());
  return { pid, log };
}

/** Dumps `pid` with the real CRIU (the task keeps running) and reads back what we compare. */
async function oracleDump(pid: number, extra: string[] = []): Promise<Oracle> {
  const dir = fs.mkdtempSync(path.join(work, 'oracle-'));
  try {
    execFileSync(CRIU, ['dump', '--no-default-config', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4', '--leave-running', ...extra], { stdio: 'pipe' });
  } catch (e) {
    const log = fs.existsSync(path.join(dir, 'dump.log')) ? fs.readFileSync(path.join(dir, 'dump.log'), 'utf8') : '';
    throw new Error(`oracle dump failed: ${(e as Error).message}\n${log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
  }
  const fdinfoFile = fs.readdirSync(dir).find((f) => /^fdinfo-\d+\.img$/.test(f));
  const ttyFile = path.join(dir, 'tty-info.img');
  return {
    files: await records(path.join(dir, 'files.img')),
    fdinfo: await records(path.join(dir, fdinfoFile!)),
    fs: (await records(path.join(dir, `fs-${pid}.img`)))[0],
    mm: (await records(path.join(dir, `mm-${pid}.img`)))[0],
    ttyInfo: fs.existsSync(ttyFile) ? await records(ttyFile) : [],
  };
}

/** Freezes the task, injects the parasite, runs collectFiles (and mappedFileId per mapping). */
async function ourDump(pid: number, shellJob = false): Promise<{ out: FilesResult; files: FileRegistry; shmids: Map<bigint, number> }> {
  const files = new FileRegistry();
  const task = FrozenTask.freeze(pid, arch);
  try {
    const parasite = Parasite.inject(task);
    try {
      const maps = readMaps(pid);
      const ctx: TaskDumpContext = { pid, imagesDir: work, pageSize: 4096, log: new Logger(0), files, parasite, maps, shellJob };
      const out = await collectFiles(ctx);
      const shmids = new Map<bigint, number>();
      for (const m of maps) {
        if (m.inode !== 0 && m.name.startsWith('/')) shmids.set(m.start, mappedFileId(ctx, m));
      }
      return { out, files, shmids };
    } finally {
      parasite.finish();
    }
  } finally {
    task.release();
  }
}

/** Every record must encode as the message type CRIU reads it as. */
function encodesAll(res: { out: FilesResult; files: FileRegistry }): void {
  for (const e of res.files.fileEntries()) expect(encodeMessage('file_entry', e).length).toBeGreaterThan(0);
  for (const e of res.out.fdinfo) expect(encodeMessage('fdinfo_entry', e).length).toBeGreaterThan(0);
  expect(encodeMessage('fs_entry', res.out.fs).length).toBeGreaterThan(0);
  for (const e of res.out.ttyInfo) expect(encodeMessage('tty_info_entry', e).length).toBeGreaterThan(0);
}

/** A file_entry without ids: what a file is, so images with different id orders compare. */
function content(files: Msg[], id: number): Msg {
  const e = files.find((f) => f.id === id);
  if (!e) throw new Error(`no file_entry with id ${id}`);
  if (e.reg) {
    const { id: _id, ...rest } = e.reg as Msg;
    return { type: e.type, reg: rest };
  }
  if (e.tty) {
    const { id: _id, regf_id, ...rest } = e.tty as Msg;
    return { type: e.type, tty: rest, regf: content(files, regf_id as number) };
  }
  return e;
}

function byFd(res: { fdinfo: Msg[] }, files: Msg[]): Map<number, { flags: unknown; type: unknown; file: Msg }> {
  return new Map(res.fdinfo.map((f) => [f.fd as number, { flags: f.flags, type: f.type, file: content(files, f.id as number) }]));
}

describe('files dump (real processes, compared with the oracle)', () => {
  const started: Victim[] = [];
  const extraPids: number[] = [];
  afterAll(() => {
    started.forEach(killVictim);
    for (const p of extraPids) if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  });

  it('regular files, an O_APPEND log, shared stdout/stderr, dup, /dev/null, cwd, a mapped file', async () => {
    const data = path.join(work, 'data.bin');
    fs.writeFileSync(data, crypto.randomBytes(10000));
    const logFile = path.join(work, 'app.log');
    const dir = fs.mkdtempSync(path.join(work, 'cwd-'));
    const v = startDetached(buildFixture('files-basic'), [data, logFile, dir]);
    started.push(v);
    const m = await waitFor('files-basic READY', () => /READY (\d+) (\d+) (\d+) (\d+)/.exec(readLog(v)) ?? undefined);
    const [dataFd, dupFd, logFd, dirFd] = m.slice(1).map(Number);

    checkFilesSupported(v.pid, false); // nothing to refuse
    const oracle = await oracleDump(v.pid);
    const ours = await ourDump(v.pid);
    encodesAll(ours);
    const files = ours.files.fileEntries();

    // Same records in the same order with the same ids as CRIU.
    expect(files).toEqual(oracle.files);
    expect(ours.out.fdinfo).toEqual(oracle.fdinfo);
    expect(ours.out.fs).toEqual(oracle.fs);
    expect(ours.out.exeFileId).toBe(oracle.mm.exe_file_id);
    for (const vma of oracle.mm.vmas as Msg[]) {
      if (Number(vma.shmid) !== 0) expect(ours.shmids.get(vma.start as bigint)).toBe(Number(vma.shmid));
    }
    // And by content, whatever the ids.
    expect(byFd(ours.out, files)).toEqual(byFd(oracle, oracle.files));

    // What the fixture set up, spelled out.
    const fd = (n: number) => ours.out.fdinfo.find((f) => f.fd === n)!;
    const reg = (n: number) => content(files, fd(n).id as number).reg as Msg;
    expect(fd(1).id).toBe(fd(2).id); // one log behind stdout and stderr
    expect(fd(dataFd).id).toBe(fd(dupFd).id); // dup shares the open file
    expect(reg(0)).toMatchObject({ name: '/dev/null', mode: 0o20666 });
    expect(reg(0).size).toBeUndefined();
    expect(reg(dataFd)).toMatchObject({ name: data, pos: 100n, size: 10000n, flags: O_LARGEFILE });
    expect(reg(dataFd).build_id).toBeUndefined(); // not an ELF file
    expect(reg(logFd)).toMatchObject({ name: logFile, pos: 6n, flags: O_WRONLY | O_APPEND | O_LARGEFILE });
    expect(reg(logFd).size).toBeUndefined(); // CRIU skips the size of write-only append files
    expect(fd(dirFd).flags).toBe(1); // FD_CLOEXEC
    expect(reg(dirFd)).toMatchObject({ name: dir, flags: O_LARGEFILE | O_DIRECTORY });
    expect(content(files, ours.out.fs.cwd_id as number).reg).toMatchObject({ name: dir, flags: 0, pos: 0n });
    expect(content(files, ours.out.fs.root_id as number).reg).toMatchObject({ name: '/' });
    expect(ours.out.fs.umask).toBe(0o22);
    const exe = content(files, ours.out.exeFileId).reg as Msg;
    expect(exe.name).toBe(buildFixture('files-basic'));
    expect((exe.build_id as number[]).length).toBe(5);
    // The shared mapping of data.bin is its own file entry (flags 0, pos 0), not fd 3's.
    const dataMap = readMaps(v.pid).find((x) => x.name === data)!;
    const mapId = ours.shmids.get(dataMap.start)!;
    expect(mapId).not.toBe(fd(dataFd).id);
    expect(content(files, mapId).reg).toMatchObject({ name: data, flags: 0, pos: 0n, size: 10000n });

    // The task carries on and finds its files as they were.
    process.kill(v.pid, 'SIGTERM');
    await waitFor('files-basic verdict', () => /PASS|FAIL/.exec(readLog(v)));
    expect(readLog(v)).toMatch(/PASS files-basic/);
  });

  // script(1) runs its command with $SHELL -c: bash execs a lone command, dash does not, so
  // the shell's part is spelled out ('exec' makes the program the session leader either way).
  it.each([
    ['a task on a pseudo-terminal it shares with its session leader', '', '; true', false],
    ['a session leader on its controlling pseudo-terminal', 'exec ', '', true],
  ])('%s: refused without --shell-job, dumped like CRIU with it', async (_what, head, tail, isLeader) => {
    const prog = head + buildFixture('files-tty');
    const out = path.join(work, `tty-${Date.now()}.out`);
    const scriptPid = Number(execFileSync('bash', ['-c', `${CLOSE_INHERITED} setsid script -qfc '${prog}${tail}' '${out}' </dev/null >/dev/null 2>&1 & echo $!`]).toString().trim());
    extraPids.push(scriptPid);
    const m = await waitFor('files-tty READY', () => /READY (\/dev\/pts\/\d+) (\d+)/.exec(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '') ?? undefined);
    const pid = Number(m[2]);
    extraPids.push(pid);

    let err: unknown;
    try { checkFilesSupported(pid, false); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UnsupportedFileError);
    expect((err as UnsupportedFileError).fd).toBe(0);
    expect((err as Error).message).toMatch(new RegExp(`^task ${pid} fd 0: ${m[1]} \\(terminal\\) needs --shell-job`));
    checkFilesSupported(pid, true);

    const oracle = await oracleDump(pid, ['--shell-job']);
    const ours = await ourDump(pid, true);
    encodesAll(ours);
    const files = ours.files.fileEntries();
    expect(files).toEqual(oracle.files);
    expect(ours.out.fdinfo).toEqual(oracle.fdinfo);
    expect(ours.out.fs).toEqual(oracle.fs);
    expect(ours.out.fdinfo.map((f) => f.type)).toEqual([FD_TYPE.TTY, FD_TYPE.TTY, FD_TYPE.TTY]);

    // tty-info: CRIU copies 19 c_cc bytes into its 19-word array and leaves the rest of the
    // array uninitialised; only those bytes are compared.
    const ccBytes = (t: Msg) => {
      const b = Buffer.alloc(76);
      (t.c_cc as number[]).forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
      return b.subarray(0, 19);
    };
    const strip = (i: Msg) => ({ ...i, termios: { ...(i.termios as Msg), c_cc: ccBytes(i.termios as Msg) }, termios_locked: { ...(i.termios_locked as Msg), c_cc: ccBytes(i.termios_locked as Msg) } });
    expect(ours.out.ttyInfo.map(strip)).toEqual(oracle.ttyInfo.map(strip));
    expect((ours.out.ttyInfo[0].termios as Msg).c_cc).toHaveLength(19);
    const leader = Number(fs.readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1].split(' ')[3]);
    expect(leader === pid).toBe(isLeader);
    expect(ours.out.ttyInfo[0]).toMatchObject({ type: 1, pty: { index: Number(m[1].split('/').pop()) }, sid: leader });

    process.kill(pid, 'SIGTERM');
    await waitFor('files-tty verdict', () => /PASS|FAIL/.exec(fs.readFileSync(out, 'utf8').split('READY')[1] ?? ''));
    expect(fs.readFileSync(out, 'utf8')).toMatch(/PASS files-tty/);
  });

  describe('refuses what it cannot dump, from /proc only, naming task and fd', () => {
    async function start(args: string[]): Promise<{ v: Victim; fd: number }> {
      const v = startDetached(buildFixture('files-unsupported'), args);
      started.push(v);
      const m = await waitFor('files-unsupported READY', () => /READY (\d+)/.exec(readLog(v)) ?? (/FAIL.*/.exec(readLog(v)) ? (() => { throw new Error(readLog(v)); })() : undefined));
      return { v, fd: Number(m[1]) };
    }

    function refusal(pid: number): UnsupportedFileError {
      try {
        checkFilesSupported(pid, true);
      } catch (e) {
        expect(e).toBeInstanceOf(UnsupportedFileError);
        return e as UnsupportedFileError;
      }
      throw new Error('checkFilesSupported accepted the task');
    }

    it('an established TCP connection (needs TCP_REPAIR)', async () => {
      const { v, fd } = await start(['tcp']);
      const e = refusal(v.pid);
      expect(e.message).toMatch(new RegExp(`^task ${v.pid} fd ${fd}: socket:\\[\\d+\\] \\(TCP socket\\) is not supported yet \\(TCP connection 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:\\d+, ESTABLISHED: established connections need TCP_REPAIR\\)$`));
      expect(e).toMatchObject({ pid: v.pid, fd, kind: 'TCP socket' });
      // Nothing was touched: the task is not traced and runs on.
      expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    });

    it('a userfaultfd, also when collectFiles meets it on a frozen task', async () => {
      const { v, fd } = await start(['userfaultfd']);
      expect(refusal(v.pid).message).toMatch(new RegExp(`^task ${v.pid} fd ${fd}: anon_inode:\\[userfaultfd\\] \\(userfaultfd\\) is not supported yet$`));
      await expect(ourDump(v.pid)).rejects.toThrow(new RegExp(`task ${v.pid} fd ${fd}: anon_inode:\\[userfaultfd\\] \\(userfaultfd\\)`));
      process.kill(v.pid, 'SIGTERM');
      await waitFor('verdict', () => /PASS/.exec(readLog(v)));
    });

    it('an eventfd is accepted now, and dumped as CRIU does', async () => {
      const { v, fd } = await start(['eventfd']);
      checkFilesSupported(v.pid, false);
      const oracle = await oracleDump(v.pid);
      const ours = await ourDump(v.pid);
      encodesAll(ours);
      expect(ours.files.fileEntries()).toEqual(oracle.files);
      expect(ours.out.fdinfo).toEqual(oracle.fdinfo);
      expect(ours.out.fdinfo.find((f) => f.fd === fd)).toMatchObject({ type: FD_TYPE.EVENTFD });
      process.kill(v.pid, 'SIGTERM');
      await waitFor('verdict', () => /PASS/.exec(readLog(v)));
    });

    it('a listening unix socket with a connection waiting to be accepted (sock_diag, before freezing)', async () => {
      const sock = path.join(work, `listen-${Date.now()}.sock`);
      const { v, fd } = await start(['unix-listen', sock]);
      checkFilesSupported(v.pid, true); // /proc alone cannot tell
      let e: unknown;
      try {
        checkUnixSockets([v.pid]);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(UnsupportedFileError);
      expect((e as Error).message).toMatch(new RegExp(`^task ${v.pid} fd ${fd}: socket:\\[\\d+\\] \\(unix socket\\) is not supported yet \\(listening on ${sock} with 1 connection\\(s\\) waiting in its accept queue\\)$`));
    });

    it('a deleted file or directory is accepted now (a ghost file); a file still linked elsewhere, a too big one, mapped or not, are not', async () => {
      const gone = path.join(work, `gone-${Date.now()}`);
      checkFilesSupported((await start(['deleted', gone])).v.pid, true);
      const linked = path.join(work, `linked-${Date.now()}`);
      let { v, fd } = await start(['deleted-linked', linked]);
      expect(refusal(v.pid).message).toBe(`task ${v.pid} fd ${fd}: ${linked} (deleted) (deleted file) is not supported yet (unlinked but still linked under another name: needs a link remap)`);
      const big = path.join(work, `big-${Date.now()}`);
      ({ v, fd } = await start(['deleted-big', big]));
      expect(refusal(v.pid).message).toBe(`task ${v.pid} fd ${fd}: ${big} (deleted) (deleted file) is too big for a ghost image (2097152 bytes, the limit is 1048576: see --ghost-limit)`);
      const mapped = path.join(work, `mapped-${Date.now()}`);
      ({ v } = await start(['deleted-map-big', mapped]));
      expect(refusal(v.pid).message).toMatch(new RegExp(`^task ${v.pid} mapping [0-9a-f]+-[0-9a-f]+: ${mapped} \\(deleted\\) \\(deleted file\\) is too big for a ghost image \\(2097152 bytes, the limit is 1048576: see --ghost-limit\\)$`));
      // A removed directory is a ghost too (CRIU dumps it as a ghost_file_entry without data).
      const dir = path.join(work, `dir-${Date.now()}`);
      checkFilesSupported((await start(['deleted-dir', dir])).v.pid, true);
    });
  });
});

describe('file ids shared between tasks, build-ids', () => {
  const pids: number[] = [];
  afterAll(() => pids.forEach((p) => { if (isAlive(p)) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }));

  it('two tasks that inherited one open log get one id (kcmp across tasks)', async () => {
    const prog = buildFixture('files-unsupported');
    const log = path.join(work, `shared-${Date.now()}.log`);
    const pidFile = `${log}.pids`;
    execFileSync('bash', ['-c', `${CLOSE_INHERITED} exec </dev/null >${quote(log)} 2>&1; setsid ${quote(prog)} pipe & echo $! >>${quote(pidFile)}; setsid ${quote(prog)} pipe & echo $! >>${quote(pidFile)}`]);
    const [a, b] = fs.readFileSync(pidFile, 'utf8').trim().split('\n').map(Number);
    pids.push(a, b);
    await waitFor('both READY', () => (fs.readFileSync(log, 'utf8').match(/READY/g) ?? []).length === 2);
    const reg = new FileRegistry();
    const st = fs.statSync(log, { bigint: true });
    const make = (name: string) => (id: number): Msg => ({ id, flags: 1, pos: 0n, fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 }, name, mode: Number(st.mode) });
    const genOf = (pid: number, fd: number) => `${st.dev}:${st.ino}:${fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1').match(/pos:\s*(\d+)/)![1]}`;
    const first = reg.internOpenFile(a, 1, genOf(a, 1), FD_TYPE.REG, make(log));
    expect(first.created).toBe(true);
    expect(reg.internOpenFile(a, 2, genOf(a, 2), FD_TYPE.REG, make(log))).toEqual({ id: first.id, created: false });
    expect(reg.internOpenFile(b, 1, genOf(b, 1), FD_TYPE.REG, make(log))).toEqual({ id: first.id, created: false });
    // Another open of the same file is another open file description: a new id.
    const fd = fs.openSync(log, 'r');
    try {
      const other = reg.internOpenFile(process.pid, fd, `${st.dev}:${st.ino}:0`, FD_TYPE.REG, make(log));
      expect(other.created).toBe(true);
      expect(other.id).not.toBe(first.id);
    } finally {
      fs.closeSync(fd);
    }
    expect(reg.fileEntries()).toHaveLength(2);
  });

  it('reads the GNU build-id the way readelf shows it, and nothing from non-ELF data', () => {
    const lib = '/usr/lib/x86_64-linux-gnu/libc.so.6';
    const hex = /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', fs.existsSync(lib) ? lib : process.execPath]).toString())![1];
    const fd = fs.openSync(fs.existsSync(lib) ? lib : process.execPath, 'r');
    try {
      const words = readBuildIdFromFd(fd, fs.fstatSync(fd, { bigint: true }).size)!;
      const bytes = Buffer.alloc(words.length * 4);
      words.forEach((w, i) => (os.endianness() === 'LE' ? bytes.writeUInt32LE(w, i * 4) : bytes.writeUInt32BE(w, i * 4)));
      expect(bytes.toString('hex').slice(0, hex.length)).toBe(hex);
    } finally {
      fs.closeSync(fd);
    }
    // The first 64 KiB decide only when they hold every note: a copy of the library whose notes
    // are moved past them (program headers pointing there) is read to its first MiB, as CRIU does.
    const img = fs.readFileSync(fs.existsSync(lib) ? lib : process.execPath).subarray(0, 1 << 20);
    const full = buildIdOf(img)!;
    const moved = Buffer.from(img);
    const phoff = Number(moved.readBigUInt64LE(32)), phnum = moved.readUInt16LE(56);
    for (let i = 0; i < phnum; i++) {
      const ph = phoff + i * 56;
      if (moved.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
      const off = Number(moved.readBigUInt64LE(ph + 8)), sz = Number(moved.readBigUInt64LE(ph + 32));
      const to = (100 << 10) + i * 4096;
      img.copy(moved, to, off, off + sz);
      moved.fill(0, off, off + sz);
      moved.writeBigUInt64LE(BigInt(to), ph + 8);
    }
    const tmp = path.join(os.tmpdir(), `criu-ts-buildid-${process.pid}`);
    fs.writeFileSync(tmp, moved);
    const tfd = fs.openSync(tmp, 'r');
    try {
      expect(buildIdOf(moved)).toEqual(full);
      expect(readBuildIdFromFd(tfd, BigInt(moved.length))).toEqual(full);
    } finally {
      fs.closeSync(tfd);
      fs.rmSync(tmp, { force: true });
    }
    expect(buildIdOf(Buffer.from('not an elf file at all'))).toBeUndefined();
    expect(buildIdOf(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]))).toBeUndefined(); // truncated header
  });
});
