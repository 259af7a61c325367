/**
 * Ghost files (deleted-but-open files) and file locks against the oracle CRIU 4.1: the records
 * criu-ts writes for tools/testprogs/ghost and flock are the ones CRIU writes for the same
 * running process, CRIU restores what criu-ts dumped, and damaged records are refused naming the
 * image, record and field. (criu-ts dump + restore and oracle dump + criu-ts restore of both
 * programs run in suite.test.ts.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { sys } from '@criu/sys';
import { dump, restore, Logger, RestoreError } from '../src';
import { readLog, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(60_000);
const { dir: tmp, started } = testWorkspace('ghostlocks');
beforeAll(() => requireOracle());
const logger = new Logger(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LOCK_EX = 2, LOCK_NB = 4;

async function start(name: string): Promise<{ v: Victim; work: string }> {
  const work = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const v = await startTestprog(name, [work]);
  started.push(v);
  await sleep(200);
  return { v, work };
}

function oracleDump(pid: number, dir: string, extra: string[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = oracle(['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4', ...extra], path.join(dir, 'dump.log'));
  if (r.status !== 0) throw new Error(`oracle dump failed: ${r.log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
}

async function records(file: string): Promise<Msg[]> {
  return (await readImageFile(file)).entries.map((e) => e.message);
}

/** Oracle dump (--leave-running) then criu-ts dump (leaveRunning) of one running program. */
async function bothDumps(name: string, extra: string[] = []): Promise<{ v: Victim; ours: string; theirs: string }> {
  const { v, work } = await start(name);
  const theirs = path.join(work, 'oracle');
  oracleDump(v.pid, theirs, ['--leave-running', ...extra]);
  const ours = path.join(work, 'ours');
  await dump({ pid: v.pid, imagesDir: ours, logger, leaveRunning: true });
  return { v, ours, theirs };
}

describe('ghost files (and a removed working directory, a deleted executable)', () => {
  it('remap-fpath.img, the remapped reg_file_entry records and ghost-file-N.img are CRIU\'s', async () => {
    const { v, ours, theirs } = await bothDumps('ghost');
    // Each remap with the reg_file_entry it remaps (ids may be numbered alike, but need not be).
    const remaps = async (dir: string) => {
      const files = await records(path.join(dir, 'files.img'));
      return (await records(path.join(dir, 'remap-fpath.img'))).map((r) => {
        const { id: _id, ...reg } = files.find((f) => f.id === r.orig_id)!.reg as Msg;
        return { remap_id: r.remap_id, remap_type: r.remap_type, reg };
      });
    };
    const a = await remaps(ours), b = await remaps(theirs);
    expect(a).toEqual(b);
    expect(a.map((r) => [path.basename(r.reg.name as string), r.remap_id])).toEqual([['ghostmap.dat', 1], ['ghost.dat', 2], ['ghost.dat', 2], ['cwd', 3]]);
    // The ghosts: all but the access time (reading the contents for the first dump moves it).
    const ghost = async (dir: string, id: number) => (await readImageFile(path.join(dir, `ghost-file-${id}.img`))).entries.map((e) => {
      const { atim: _a, ...m } = e.message;
      return { m, data: e.extra?.kind === 'bytes' ? Buffer.from(e.extra.data!) : undefined };
    });
    for (const id of [1, 2, 3]) expect(await ghost(ours, id)).toEqual(await ghost(theirs, id));
    expect(await ghost(ours, 3)).toEqual([{ m: expect.objectContaining({ mode: 0o40751 }), data: Buffer.alloc(0) }]);
    const small = await ghost(ours, 2);
    expect(small).toHaveLength(1);
    expect(small[0].m).toMatchObject({ mode: 0o100640 });
    expect(small[0].data).toHaveLength(10500);
    const mapped = await ghost(ours, 1);
    expect(mapped[0].m).toMatchObject({ chunks: true, size: BigInt(3 * sys.pageSize()) });
    expect(await verdict(v)).toMatch(/^PASS ghost/);
  });

  it('a deleted executable: one ghost for exe and its mappings, as CRIU writes it', async () => {
    const { v, ours, theirs } = await bothDumps('ghostexe');
    const remaps = await records(path.join(ours, 'remap-fpath.img'));
    expect(remaps).toEqual(await records(path.join(theirs, 'remap-fpath.img')));
    const mm = (await records(path.join(ours, `mm-${v.pid}.img`)))[0];
    expect(remaps).toEqual([{ orig_id: mm.exe_file_id, remap_id: 1, remap_type: 1 }]);
    const ghost = async (dir: string) => (await readImageFile(path.join(dir, 'ghost-file-1.img'))).entries.map((e) => {
      const { atim: _a, ...m } = e.message;
      return { m, data: e.extra?.kind === 'bytes' ? Buffer.from(e.extra.data!) : undefined };
    });
    expect(await ghost(ours)).toEqual(await ghost(theirs));
    expect(await verdict(v)).toMatch(/^PASS ghostexe/);
  });

  it.each(['ghost', 'ghostexe'])('criu-ts dump + oracle restore: %s', async (name) => {
    const { v } = await start(name);
    const dir = path.join(tmp, `${name}-ours-oracle-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger });
    await waitPidGone(v.pid);
    oracleRestore(dir);
    await sleep(300);
    const line = await verdict(v, 15_000);
    expect(`${line}${line.startsWith('PASS') ? '' : `\n${readLog(v)}`}`).toMatch(new RegExp(`^PASS ${name}\\b`));
  });

  it('a restore that fails after the files leaves no ghost behind; the next one works', async () => {
    const { v, work } = await start('ghost');
    const dir = path.join(tmp, `ghost-fault-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger });
    await waitPidGone(v.pid);
    for (const step of ['files', 'task-state', 'jump'] as const) {
      await expect(restore({ imagesDir: dir, logger, faultAt: step })).rejects.toThrow(`injected fault at step "${step}"`);
      expect(fs.readdirSync(work)).toEqual([]);
      await waitPidGone(v.pid);
    }
    await restore({ imagesDir: dir, logger });
    expect(fs.readdirSync(work)).toEqual([]);
    await sleep(300);
    expect(await verdict(v, 15_000)).toMatch(/^PASS ghost/);
  });

  it('refuses a remap it cannot restore, naming the record', async () => {
    const { v } = await start('ghost');
    const dir = path.join(tmp, `ghost-linked-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger, leaveRunning: true });
    const remaps = await records(path.join(dir, 'remap-fpath.img'));
    remaps[1] = { ...remaps[1], remap_type: 0 };
    await writeImageFile(path.join(dir, 'remap-fpath.img'), 'REMAP_FPATH', remaps.map((message) => ({ message })));
    const e = await restore({ imagesDir: dir, logger }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RestoreError);
    expect((e as Error).message).toMatch(/through a link remap, which is not supported yet \(file remap-fpath\.img, record 1, field remap_type\)/);
    // Refused before anything was created: the dumped task runs on untouched.
    expect(await verdict(v)).toMatch(/^PASS ghost/);
  });
});

describe('file locks', () => {
  it('filelocks.img is CRIU\'s (flock, POSIX and OFD locks, by fd)', async () => {
    const { v, ours, theirs } = await bothDumps('flock', ['--file-locks']);
    const locks = await records(path.join(ours, 'filelocks.img'));
    expect(locks).toEqual(await records(path.join(theirs, 'filelocks.img')));
    expect(locks.map((l) => [l.flag, l.type, l.fd, Number(l.start), Number(l.len)])).toEqual([
      [2, 1, 3, 0, 0], [2, 0, 4, 0, 0], [1, 1, 5, 0, 100], [1, 0, 5, 200, 100], [1, 1, 5, 1000, 0], [1, 0, 6, 0, 0], [4, 1, 7, 10, 10], [4, 0, 7, 40, 10],
    ]);
    expect(locks.every((l) => l.pid === v.pid)).toBe(true);
    // Both dumps left every lock in place.
    expect(await verdict(v)).toMatch(/^PASS flock/);
  });

  it('criu-ts dump + oracle restore (--file-locks)', async () => {
    const { v } = await start('flock');
    const dir = path.join(tmp, `flock-ours-oracle-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger });
    await waitPidGone(v.pid);
    oracleRestore(dir, ['--file-locks']);
    await sleep(300);
    const line = await verdict(v, 15_000);
    expect(`${line}${line.startsWith('PASS') ? '' : `\n${readLog(v)}`}`).toMatch(/^PASS flock/);
  });

  it('refuses a lock of an unknown kind or on a descriptor the task lacks, naming the record', async () => {
    const { v } = await start('flock');
    const dir = path.join(tmp, `flock-bad-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger, leaveRunning: true });
    const locks = await records(path.join(dir, 'filelocks.img'));
    const write = (l: Msg[]) => writeImageFile(path.join(dir, 'filelocks.img'), 'FILE_LOCKS', l.map((message) => ({ message })));
    await write(locks.map((l, i) => (i === 2 ? { ...l, flag: 8 } : l)));
    await expect(restore({ imagesDir: dir, logger })).rejects.toThrow(/lock kind 8 is not supported .*\(file filelocks\.img, record 2, field flag\)/);
    await write(locks.map((l, i) => (i === 5 ? { ...l, fd: 99 } : l)));
    await expect(restore({ imagesDir: dir, logger })).rejects.toThrow(/lock on fd 99 of task \d+, which has no such descriptor \(file filelocks\.img, record 5, field fd\)/);
    expect(await verdict(v)).toMatch(/^PASS flock/);
  });

  it('a restore fails cleanly when another process took a lock meanwhile', async () => {
    const { v, work } = await start('flock');
    const dir = path.join(tmp, `flock-taken-${v.pid}`);
    await dump({ pid: v.pid, imagesDir: dir, logger });
    await waitPidGone(v.pid);
    // This process holds flock.a (flock'ed LOCK_EX by the dumped task) now.
    const fd = fs.openSync(path.join(work, 'flock.a'), 'r');
    try {
      sys.syscall('flock', fd, LOCK_EX | LOCK_NB);
      const e = await restore({ imagesDir: dir, logger }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RestoreError);
      expect((e as Error).message).toMatch(/flock\(3, LOCK_EX\) failed with errno 11 \(file filelocks\.img, record 0\).*another process holds a conflicting lock/);
      await waitPidGone(v.pid);
    } finally {
      fs.closeSync(fd);
    }
  });
});
