// Cgroup membership across dump and restore: a test program is put into cgroups this test makes
// under its own (pids on cgroup v1 when mounted, and the cgroup2 hierarchy), dumped, and must
// come back in them; CRIU's soft mode re-creates a missing cgroup, none refuses it,
// --cgroup-root moves it, and the oracle's `criu dump --manage-cgroups` restores the same way.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, type Msg } from '@criu/images';
import { cgroupMounts, dump, restore, RestoreError, taskCgroups } from '../src';
import { isAlive, killVictim, readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const { dir: tmp, started } = testWorkspace('cgroups');

/** The hierarchies used: v1 pids when mounted, and cgroup2 when mounted. */
const mounts = cgroupMounts();
const own = taskCgroups('self');
const used = [mounts.find((m) => !m.v2 && m.cnames.includes('pids')), mounts.find((m) => m.v2)].filter((m): m is NonNullable<typeof m> => m !== undefined && own.has(m.name));

const tag = `criu-ts-cgtest-${process.pid}`;
/** Every cgroup directory this file may create (removed after, deepest first). */
const made: string[] = [];
/** The host directory of cgroup `rel` (below our own cgroup) in hierarchy `m`. */
function dirIn(m: (typeof used)[number], rel: string): { cg: string; dir: string } {
  const cg = path.posix.join(own.get(m.name)!, rel);
  return { cg, dir: path.join(m.mountPoint, path.posix.relative(m.root, cg)) };
}
function mkCgroup(rel: string): void {
  for (const m of used) {
    const { dir } = dirIn(m, rel);
    fs.mkdirSync(dir, { recursive: true });
    made.push(dir);
  }
}
async function rmCgroup(dir: string): Promise<void> {
  await waitFor(`${dir} to empty`, () => {
    try {
      fs.rmdirSync(dir);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT';
    }
  }, 10_000);
}
afterAll(async () => {
  started.forEach(killVictim);
  for (const d of [...made].reverse().sort((a, b) => b.length - a.length)) await rmCgroup(d).catch(() => undefined);
});

function enter(pid: number, rel: string): void {
  for (const m of used) fs.writeFileSync(path.join(dirIn(m, rel).dir, 'cgroup.procs'), `${pid}`);
}
function expectIn(pid: number, rel: string): void {
  const now = taskCgroups(pid);
  for (const m of used) expect(`${m.name || 'cgroup2'}:${now.get(m.name)}`).toBe(`${m.name || 'cgroup2'}:${dirIn(m, rel).cg}`);
}

async function start(rel: string): Promise<Victim> {
  const v = await startTestprog('counter');
  started.push(v);
  enter(v.pid, rel);
  expectIn(v.pid, rel);
  return v;
}

async function ticksAfter(v: Victim): Promise<void> {
  const at = readLog(v).length;
  await waitFor('output after restore', () => readLog(v).length > at + 4);
}

beforeAll(() => {
  if (!used.length) throw new Error('no cgroup hierarchy to test with (neither v1 pids nor cgroup2 is mounted)');
});

describe('cgroups', () => {
  it('cgroup.img records the set; the restored task is back in a cgroup that was removed meanwhile (soft)', async () => {
    mkCgroup(`${tag}-a`);
    const v = await start(`${tag}-a`);
    const dir = path.join(tmp, 'a');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const cg = (await readImageFile(path.join(dir, 'cgroup.img'))).entries[0].message as Msg;
    const core = (await readImageFile(path.join(dir, `core-${v.pid}.img`))).entries[0].message as Msg;
    const setId = Number((core.thread_core as Msg).cg_set);
    expect(setId).toBeGreaterThan(1);
    const set = (cg.sets as Msg[]).find((s) => Number(s.id) === setId)!;
    for (const m of used) expect((set.ctls as Msg[]).find((c) => c.name === m.name)?.path).toBe(dirIn(m, `${tag}-a`).cg);
    // Gone before the restore: soft mode makes it again.
    for (const m of used) await rmCgroup(dirIn(m, `${tag}-a`).dir);
    const r = await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expectIn(r.pid, `${tag}-a`);
    await ticksAfter(v);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('mode none: a missing cgroup fails the restore, nothing is left alive and nothing is created', async () => {
    mkCgroup(`${tag}-b`);
    const v = await start(`${tag}-b`);
    const dir = path.join(tmp, 'b');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    for (const m of used) await rmCgroup(dirIn(m, `${tag}-b`).dir);
    const err = await restore({ imagesDir: dir, manageCgroups: 'none' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as Error).message).toMatch(/cgroup .*criu-ts-cgtest-\d+-b does not exist \(cgroup mode none/);
    await waitPidGone(v.pid);
    for (const m of used) expect(fs.existsSync(dirIn(m, `${tag}-b`).dir)).toBe(false);
  });

  it('a failed restore removes the cgroups it created (soft)', async () => {
    mkCgroup(`${tag}-c/inner`);
    const v = await start(`${tag}-c/inner`);
    const dir = path.join(tmp, 'c');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    for (const m of used) {
      await rmCgroup(dirIn(m, `${tag}-c/inner`).dir);
      await rmCgroup(dirIn(m, `${tag}-c`).dir);
    }
    const err = await restore({ imagesDir: dir, faultAt: 'fill-memory' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreError);
    await waitPidGone(v.pid);
    for (const m of used) expect(fs.existsSync(dirIn(m, `${tag}-c`).dir)).toBe(false);
  });

  it('--cgroup-root puts the restored task below another cgroup', async () => {
    mkCgroup(`${tag}-d`);
    mkCgroup(`${tag}-newroot`);
    const v = await start(`${tag}-d`);
    const dir = path.join(tmp, 'd');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const roots = used.map((m) => ({ controller: m.name, path: dirIn(m, `${tag}-newroot`).cg }));
    const r = await restore({ imagesDir: dir, cgroupRoots: roots });
    expectIn(r.pid, `${tag}-newroot`);
    await ticksAfter(v);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it("the oracle restores criu-ts's cgroup.img into the same cgroups, re-created", async () => {
    requireOracle();
    mkCgroup(`${tag}-f`);
    const v = await start(`${tag}-f`);
    const dir = path.join(tmp, 'f');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    for (const m of used) await rmCgroup(dirIn(m, `${tag}-f`).dir);
    oracleRestore(dir);
    expectIn(v.pid, `${tag}-f`);
    await ticksAfter(v);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it("restores the oracle's `criu dump --manage-cgroups` into the same cgroups", async () => {
    requireOracle();
    mkCgroup(`${tag}-e`);
    const v = await start(`${tag}-e`);
    const dir = path.join(tmp, 'e');
    fs.mkdirSync(dir);
    const d = oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4', '--manage-cgroups'], path.join(dir, 'dump.log'));
    expect(d.status).toBe(0);
    await waitPidGone(v.pid);
    const r = await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    expect(isAlive(r.pid)).toBe(true);
    expectIn(r.pid, `${tag}-e`);
    await ticksAfter(v);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });
});
