/**
 * Process trees with a pipe (tools/testprogs/tree.c: a parent, a writer and a reader child joined
 * by a pipe that holds unread data): criu-ts dump + oracle restore, oracle dump + criu-ts restore,
 * criu-ts both ways twice over. The reader checks that its sequence has no gap (the pipe's data
 * survived), the parent that both children exit 0; the test checks the tree's shape.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readImageFile, writeImageFile } from '@criu/images';
import { sys, KCMP } from '@criu/sys';
import { dump, restore } from '../src';
import { buildFixture, killVictim, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(60_000);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-tree-'));
const started: Array<{ v: Victim; kids: number[] }> = [];
afterAll(() => {
  for (const s of started) {
    killVictim(s.v);
    for (const k of s.kids) killVictim({ pid: k, log: '' });
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

function childrenOf(pid: number): number[] {
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
}

function statOf(pid: number): { ppid: number; pgid: number; sid: number } {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
}

async function startTree(): Promise<{ v: Victim; kids: number[] }> {
  const v = await startTestprog('tree');
  const s = { v, kids: [] as number[] };
  started.push(s);
  s.kids = await waitFor('two children', () => { const k = childrenOf(v.pid); return k.length === 2 ? k : undefined; });
  await new Promise((r) => setTimeout(r, 250));
  return s;
}

async function allGone(pids: number[]): Promise<void> {
  for (const p of pids) await waitPidGone(p);
}

/** The tree came back: same pids, children of the root, one session and group. */
function expectShape(root: number, kids: number[]): void {
  expect(childrenOf(root)).toEqual(kids);
  const r = statOf(root);
  for (const k of kids) expect(statOf(k)).toEqual({ ppid: root, pgid: r.pgid, sid: r.sid });
  expect(r.sid).toBe(root);
  expect(r.pgid).toBe(root);
  // stdout/stderr of all three are one open file description (one offset), as before the dump.
  for (const k of kids) for (const fd of [1, 2]) expect(sys.kcmp(root, k, KCMP.FILE, 1, fd)).toBe(0);
  // The writer's and the reader's ends are of one pipe.
  const ends = kids.map((k) => fs.readdirSync(`/proc/${k}/fd`).map((fd) => fs.readlinkSync(`/proc/${k}/fd/${fd}`)).filter((l) => l.startsWith('pipe:')));
  expect(ends.map((e) => e.length)).toEqual([1, 1]);
  expect(ends[0][0]).toBe(ends[1][0]);
}

/** The reader's "seq N" lines go on after the restore. */
async function readerRunsOn(v: Victim, after: number): Promise<void> {
  const seqs = () => readLog(v).split('\n').filter((l) => /^seq \d+$/.test(l)).map((l) => Number(l.slice(4)));
  await waitFor('reader output after restore', () => seqs().length > after + 2, 10_000);
  const all = seqs();
  all.forEach((n, i) => expect(n).toBe(i + 1));
}

const seqCount = (v: Victim) => readLog(v).split('\n').filter((l) => /^seq \d+$/.test(l)).length;

async function pipeDataOf(dir: string): Promise<Array<{ pipe_id: number; bytes: number; data: Buffer }>> {
  const img = await readImageFile(path.join(dir, 'pipes-data.img'));
  return img.entries.map((e) => ({ pipe_id: Number(e.message.pipe_id), bytes: Number(e.message.bytes), data: (e.extra as { data: Buffer }).data }));
}

describe('process trees with a pipe', () => {
  it('criu-ts dumps the tree (pstree, per-task images, pipe + its data) and the oracle restores it', async () => {
    requireOracle();
    const { v, kids } = await startTree();
    const dir = path.join(tmp, 'to-oracle');
    fs.mkdirSync(dir);
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
    const tree = (await readImageFile(path.join(dir, 'pstree.img'))).entries.map((e) => e.message);
    expect(tree.map((t) => [t.pid, t.ppid, t.pgid, t.sid])).toEqual([[v.pid, 0, v.pid, v.pid], ...kids.map((k) => [k, v.pid, v.pid, v.pid])]);
    for (const p of [v.pid, ...kids]) {
      for (const f of [`core-${p}.img`, `mm-${p}.img`, `pagemap-${p}.img`, `ids-${p}.img`, `fs-${p}.img`]) expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    // One pages image per task, and the pipe's buffered data (whole u32 records, in sequence).
    const pagesIds = await Promise.all([v.pid, ...kids].map(async (p) => Number((await readImageFile(path.join(dir, `pagemap-${p}.img`))).entries[0].message.pages_id)));
    expect(new Set(pagesIds).size).toBe(3);
    const files = (await readImageFile(path.join(dir, 'files.img'))).entries.map((e) => e.message);
    const pipes = files.filter((f) => f.type === 2).map((f) => f.pipe as { id: number; pipe_id: number; flags: number });
    expect(pipes.map((p) => p.flags).sort()).toEqual([0, 1]);
    expect(pipes[0].pipe_id).toBe(pipes[1].pipe_id);
    const data = await pipeDataOf(dir);
    expect(data.length).toBe(1);
    expect(data[0].pipe_id).toBe(pipes[0].pipe_id);
    expect(data[0].bytes).toBeGreaterThan(0);
    expect(data[0].bytes % 4).toBe(0);
    // The log (fd 1 and 2 of all three tasks) is one open file: one id everywhere.
    const stdoutIds = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const fdinfo = (await readImageFile(path.join(dir, `fdinfo-${i + 2}.img`))).entries.map((e) => e.message);
      for (const e of fdinfo) if (e.fd === 1 || e.fd === 2) stdoutIds.add(Number(e.id));
    }
    expect(stdoutIds.size).toBe(1);

    await allGone([v.pid, ...kids]);
    const atDump = seqCount(v);
    oracleRestore(dir);
    expectShape(v.pid, kids);
    await readerRunsOn(v, atDump);
    expect(await verdict(v, 15_000)).toMatch(/^PASS tree\b/);
  });

  it('the oracle dumps the tree and criu-ts restores it', async () => {
    requireOracle();
    const { v, kids } = await startTree();
    const dir = path.join(tmp, 'from-oracle');
    fs.mkdirSync(dir);
    const r = oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4']);
    expect(r.status).toBe(0);
    await allGone([v.pid, ...kids]);
    const atDump = seqCount(v);
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expectShape(v.pid, kids);
    await readerRunsOn(v, atDump);
    expect(await verdict(v, 15_000)).toMatch(/^PASS tree\b/);
  });

  it('criu-ts dumps and restores the tree, twice over', async () => {
    const { v, kids } = await startTree();
    for (let round = 1; round <= 2; round++) {
      const dir = path.join(tmp, `ours-${round}`);
      fs.mkdirSync(dir);
      await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
      expect((await pipeDataOf(dir))[0].bytes).toBeGreaterThan(0);
      await allGone([v.pid, ...kids]);
      const atDump = seqCount(v);
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
      expectShape(v.pid, kids);
      await readerRunsOn(v, atDump);
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS tree\b/);
  });

  it('a failed dump leaves every task of the tree running, untraced', async () => {
    const { v, kids } = await startTree();
    const bad = path.join(tmp, 'fault-dump');
    fs.mkdirSync(bad);
    // The fault hits the first task's memory step, after all three were frozen and one infected.
    await expect(dump({ pid: v.pid, imagesDir: bad, faultAt: 'memory', logFile: 'dump.log', logLevel: 4 })).rejects.toThrow(/memory/);
    for (const p of [v.pid, ...kids]) expect(fs.readFileSync(`/proc/${p}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    const before = seqCount(v);
    await waitFor('the reader goes on', () => seqCount(v) > before + 1, 5000);
    expect(childrenOf(v.pid)).toEqual(kids);
    expect(await verdict(v, 15_000)).toMatch(/^PASS tree\b/);
  });

  it('a failed restore kills every task it created; the next one succeeds', async () => {
    requireOracle();
    const { v, kids } = await startTree();
    const all = [v.pid, ...kids];
    const dir = path.join(tmp, 'fault-restore');
    fs.mkdirSync(dir);
    expect(oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4']).status).toBe(0);
    await allGone(all);
    // At "jump" every task exists and is rebuilt.
    await expect(restore({ imagesDir: dir, faultAt: 'jump', logFile: 'restore-fault.log', logLevel: 4 })).rejects.toThrow(/jump/);
    await allGone(all);
    const atDump = seqCount(v);
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expectShape(v.pid, kids);
    await readerRunsOn(v, atDump);
    expect(await verdict(v, 15_000)).toMatch(/^PASS tree\b/);
  });
});

/** The ids-N.img record of each task (kernel object ids only). */
async function kobjIdsIn(dir: string, pids: number[]): Promise<Array<Record<string, number>>> {
  const out: Array<Record<string, number>> = [];
  for (const p of pids) {
    const e = (await readImageFile(path.join(dir, `ids-${p}.img`))).entries[0].message;
    out.push({ vm_id: Number(e.vm_id), files_id: Number(e.files_id), fs_id: Number(e.fs_id), sighand_id: Number(e.sighand_id) });
  }
  return out;
}

const fdinfoImages = (dir: string) => fs.readdirSync(dir).filter((f) => /^fdinfo-\d+\.img$/.test(f)).sort();

describe('processes sharing kernel objects with their parent (clone CLONE_VM / CLONE_FILES / CLONE_FS / CLONE_SIGHAND)', () => {
  async function startShare(name: 'sharefiles' | 'sharefs' | 'sharevm', args: string[] = []): Promise<{ v: Victim; kid: number }> {
    const work = fs.mkdtempSync(path.join(tmp, `${name}-`));
    const v = await startTestprog(name, name === 'sharefs' ? [work] : args);
    const kid = await waitFor('the child', () => { const k = childrenOf(v.pid); return k.length === 1 ? k[0] : undefined; });
    started.push({ v, kids: [kid] });
    return { v, kid };
  }

  it('a shared descriptor table: ids as the oracle numbers them, one fdinfo image, one table after restore', async () => {
    requireOracle();
    const { v, kid } = await startShare('sharefiles');
    const dir = path.join(tmp, 'sharefiles-ours');
    await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true, logFile: 'dump.log', logLevel: 4 });
    // What CRIU 4.1 writes for the same program (the ids are numbered per kind, from 2).
    const odir = path.join(tmp, 'sharefiles-oracle');
    fs.mkdirSync(odir);
    expect(oracle(['dump', '-t', String(v.pid), '-D', odir, '-o', 'dump.log', '-v4']).status).toBe(0);
    await allGone([v.pid, kid]);
    const ids = await kobjIdsIn(dir, [v.pid, kid]);
    expect(ids).toEqual([{ vm_id: 2, files_id: 2, fs_id: 2, sighand_id: 2 }, { vm_id: 3, files_id: 2, fs_id: 3, sighand_id: 3 }]);
    expect(ids).toEqual(await kobjIdsIn(odir, [v.pid, kid]));
    expect(fdinfoImages(dir)).toEqual(['fdinfo-2.img']);
    expect(fdinfoImages(odir)).toEqual(['fdinfo-2.img']);
    const ours = (await readImageFile(path.join(dir, 'fdinfo-2.img'))).entries.map((e) => [Number(e.message.fd), e.message.type]);
    const theirs = (await readImageFile(path.join(odir, 'fdinfo-2.img'))).entries.map((e) => [Number(e.message.fd), e.message.type]);
    expect(ours).toEqual(theirs);

    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expect(childrenOf(v.pid)).toEqual([kid]);
    expect(sys.kcmp(v.pid, kid, KCMP.FILES)).toBe(0);
    expect(sys.kcmp(v.pid, kid, KCMP.FS)).not.toBe(0);
    expect(sys.kcmp(v.pid, kid, KCMP.VM)).not.toBe(0);
    expect(await verdict(v, 15_000)).toMatch(/^PASS sharefiles\b/);
  });

  it('shared fs info (which CRIU 4.1 refuses to dump): one fs_id, one fs after restore', async () => {
    const { v, kid } = await startShare('sharefs');
    const dir = path.join(tmp, 'sharefs-ours');
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
    await allGone([v.pid, kid]);
    expect(await kobjIdsIn(dir, [v.pid, kid])).toEqual([{ vm_id: 2, files_id: 2, fs_id: 2, sighand_id: 2 }, { vm_id: 3, files_id: 3, fs_id: 2, sighand_id: 3 }]);
    expect(fdinfoImages(dir)).toEqual(['fdinfo-2.img', 'fdinfo-3.img']);
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expect(sys.kcmp(v.pid, kid, KCMP.FS)).toBe(0);
    expect(sys.kcmp(v.pid, kid, KCMP.FILES)).not.toBe(0);
    expect(await verdict(v, 15_000)).toMatch(/^PASS sharefs\b/);
  });

  it.each([
    ['vm+sighand', [], { vm_id: 2, files_id: 3, fs_id: 3, sighand_id: 2 }],
    ['vmonly', ['vmonly'], { vm_id: 2, files_id: 3, fs_id: 3, sighand_id: 3 }],
  ])('a shared address space (%s): mm, pagemap and pages once, under the parent; one mm after restore, twice over', async (mode, args, kidIds) => {
    const { v, kid } = await startShare('sharevm', args as string[]);
    // A dump that leaves them running: each task's parasite came and went in the one address space.
    const maps = (pid: number) => fs.readFileSync(`/proc/${pid}/maps`, 'latin1');
    const before = maps(v.pid);
    await dump({ pid: v.pid, imagesDir: path.join(tmp, `sharevm-${mode}-0`), leaveRunning: true });
    expect(maps(v.pid)).toBe(before);
    expect(maps(kid)).toBe(before);
    for (const p of [v.pid, kid]) expect(fs.readFileSync(`/proc/${p}/status`, 'latin1')).toMatch(/State:\s+[RS][\s\S]*TracerPid:\s+0\n/);
    for (let round = 1; round <= 2; round++) {
      const dir = path.join(tmp, `sharevm-${mode}-${round}`);
      await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
      await allGone([v.pid, kid]);
      expect(await kobjIdsIn(dir, [v.pid, kid])).toEqual([{ vm_id: 2, files_id: 2, fs_id: 2, sighand_id: 2 }, kidIds]);
      const names = fs.readdirSync(dir);
      for (const f of [`mm-${v.pid}.img`, `pagemap-${v.pid}.img`, `core-${kid}.img`, `fs-${kid}.img`]) expect(names).toContain(f);
      expect(names.filter((f) => f === `mm-${kid}.img` || f === `pagemap-${kid}.img`)).toEqual([]);
      expect(names.filter((f) => /^pages-\d+\.img$/.test(f))).toEqual(['pages-1.img']);
      // Each task keeps its own registers, mask and handlers in its core image.
      const kidCore = (await readImageFile(path.join(dir, `core-${kid}.img`))).entries[0].message as Record<string, Record<string, unknown>>;
      expect(BigInt(kidCore.tc.blk_sigset as bigint) & (1n << 0n)).toBe(1n); // SIGHUP (bit 0), blocked by the child only
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
      expect(childrenOf(v.pid)).toEqual([kid]);
      expect(sys.kcmp(v.pid, kid, KCMP.VM)).toBe(0);
      if (mode === 'vmonly') expect(sys.kcmp(v.pid, kid, KCMP.SIGHAND)).not.toBe(0);
      else expect(sys.kcmp(v.pid, kid, KCMP.SIGHAND)).toBe(0);
      expect(sys.kcmp(v.pid, kid, KCMP.FILES)).not.toBe(0);
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS sharevm\b/);
  });

  it('a failed dump of a shared address space leaves both tasks running, untraced, with no parasite left', async () => {
    const { v, kid } = await startShare('sharevm');
    const maps = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
    for (const faultAt of ['memory', 'write-images'] as const) {
      await expect(dump({ pid: v.pid, imagesDir: path.join(tmp, `sharevm-fault-${faultAt}`), faultAt })).rejects.toThrow(/injected fault/);
      expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(maps);
      for (const p of [v.pid, kid]) expect(fs.readFileSync(`/proc/${p}/status`, 'latin1')).toMatch(/State:\s+[RS][\s\S]*TracerPid:\s+0\n/);
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS sharevm\b/);
  });

  it.each([
    ['vmsibling', /task (\d+) shares its address space with task (\d+), which is not its parent \((\d+)\).*; only an address space shared with the parent can be restored/],
    ['grandchild', /task (\d+) shares its descriptor table with task (\d+), which is not its parent \((\d+)\); only a descriptor table shared with the parent can be restored/],
  ])('refused at dump, naming the tasks involved: %s; the tree runs on untraced', async (mode, why) => {
    const v = startDetached(buildFixture('share-shapes'), [mode]);
    const pids = (await waitFor('READY', () => /^READY ([\d ]+)$/m.exec(readLog(v)) ?? undefined))[1].split(' ').map(Number);
    started.push({ v, kids: pids.slice(1) });
    const dir = path.join(tmp, `shapes-${mode}`);
    const err: Error = await dump({ pid: v.pid, imagesDir: dir }).then(() => { throw new Error('the dump succeeded'); }, (e: Error) => e);
    expect(err.name).toBe('DumpError');
    const m = why.exec(err.message);
    expect(m).not.toBeNull();
    // The task that shares, the one it shares with, and its real parent.
    const named = m!.slice(1).map(Number).sort((a, b) => a - b);
    expect(named).toEqual([...pids].sort((a, b) => a - b));
    expect(fs.existsSync(path.join(dir, 'criu-ts.incomplete'))).toBe(true);
    for (const p of pids) expect(fs.readFileSync(`/proc/${p}/status`, 'latin1')).toMatch(/State:\s+[RS][\s\S]*TracerPid:\s+0\n/);
  });

  it('a vfork() child that has not exec\'d: refused at dump, naming both; nothing traced', async () => {
    const v = startDetached(buildFixture('share-shapes'), ['vfork']);
    const pids = (await waitFor('READY', () => /^READY ([\d ]+)$/m.exec(readLog(v)) ?? undefined))[1].split(' ').map(Number);
    started.push({ v, kids: pids.slice(1) });
    expect(pids[0]).toBe(v.pid);
    const dir = path.join(tmp, 'shapes-vfork');
    const err: Error = await dump({ pid: v.pid, imagesDir: dir }).then(() => { throw new Error('the dump succeeded'); }, (e: Error) => e);
    expect(err.name).toBe('DumpError');
    expect(err.message).toContain(`task ${pids[0]} is waiting for its vfork() child ${pids[1]}, which shares its address space`);
    expect(fs.readFileSync(`/proc/${pids[0]}/status`, 'latin1')).toMatch(/State:\s+D[\s\S]*TracerPid:\s+0\n/);
    expect(fs.readFileSync(`/proc/${pids[1]}/status`, 'latin1')).toMatch(/State:\s+S[\s\S]*TracerPid:\s+0\n/);
  });

  it('restore refuses a child sharing its parent\'s address space yet with an mm of its own, or only its signal handlers', async () => {
    const { v, kid } = await startShare('sharefiles');
    const dir = path.join(tmp, 'sharefiles-bad');
    await dump({ pid: v.pid, imagesDir: dir });
    await allGone([v.pid, kid]);
    const idsFile = path.join(dir, `ids-${kid}.img`);
    const good = (await readImageFile(idsFile)).entries[0].message;
    await writeImageFile(idsFile, 'IDS', [{ message: { ...good, vm_id: 2 } }]);
    await expect(restore({ imagesDir: dir })).rejects.toThrow(new RegExp(`task ${kid} shares its address space with task ${v.pid} \\(vm_id 2\\), yet has a mm-${kid}\\.img of its own.*file mm-${kid}\\.img`));
    await writeImageFile(idsFile, 'IDS', [{ message: { ...good, sighand_id: 2 } }]);
    await expect(restore({ imagesDir: dir })).rejects.toThrow(new RegExp(`task ${kid} shares its signal handlers with its parent but not its address space.*file ids-${kid}\\.img, field sighand_id`));
    // Put right, the images restore.
    await writeImageFile(idsFile, 'IDS', [{ message: good }]);
    await restore({ imagesDir: dir });
    expect(sys.kcmp(v.pid, kid, KCMP.FILES)).toBe(0);
    expect(await verdict(v, 15_000)).toMatch(/^PASS sharefiles\b/);
  });

  it('restore refuses an address space shared with a task that is not the parent (two siblings)', async () => {
    const s = await startTree();
    const dir = path.join(tmp, 'tree-vmsibling');
    await dump({ pid: s.v.pid, imagesDir: dir });
    // The two children in pstree order: b's address space becomes a's, listed before it.
    const [, a, b] = (await readImageFile(path.join(dir, 'pstree.img'))).entries.map((e) => Number(e.message.pid));
    await allGone([s.v.pid, ...s.kids]);
    // b made to share a's address space: b's own mm images go, as a dump would leave them.
    const aIds = (await readImageFile(path.join(dir, `ids-${a}.img`))).entries[0].message;
    const bFile = path.join(dir, `ids-${b}.img`);
    const bIds = (await readImageFile(bFile)).entries[0].message;
    await writeImageFile(bFile, 'IDS', [{ message: { ...bIds, vm_id: aIds.vm_id } }]);
    fs.rmSync(path.join(dir, `mm-${b}.img`));
    fs.rmSync(path.join(dir, `pagemap-${b}.img`));
    await expect(restore({ imagesDir: dir })).rejects.toThrow(new RegExp(`task ${b} shares its address space with task ${a} \\(vm_id ${aIds.vm_id}\\), which is not its parent.*file ids-${b}\\.img, field vm_id`));
    for (const p of [s.v.pid, ...s.kids]) expect(fs.existsSync(`/proc/${p}`) && !/\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'latin1'))).toBe(false);
  });
});
