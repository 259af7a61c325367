// Cgroup membership across dump and restore: a test program is put into cgroups this test makes
// under its own (pids on cgroup v1 when mounted, and the cgroup2 hierarchy), dumped, and must
// come back in them; CRIU's soft mode re-creates a missing cgroup, none refuses it,
// --cgroup-root moves it, and the oracle's `criu dump --manage-cgroups` restores the same way.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, type Msg } from '@criu/images';
import { dump, parseCgroupMode, parseCgroupRoot, restore, RestoreError } from '../src';
import { testCgroups } from './helpers/cgroups';
import { isAlive, killVictim, readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const { dir: tmp, started } = testWorkspace('cgroups');

const cg = testCgroups('cgtest');
const { used, tag, dirIn } = cg;
afterAll(() => started.forEach(killVictim));
const mkCgroup = cg.make;
const rmCgroup = cg.remove;
const expectIn = (pid: number, rel: string) => expect(cg.where(pid)).toEqual(cg.expected(rel));

async function start(rel: string): Promise<Victim> {
  const v = await startTestprog('counter');
  started.push(v);
  cg.enter(v.pid, rel);
  expectIn(v.pid, rel);
  return v;
}

async function ticksAfter(v: Victim): Promise<void> {
  const at = readLog(v).length;
  await waitFor('output after restore', () => readLog(v).length > at + 4);
}

describe('cgroups', () => {
  it('cgroup.img records the set; the restored task is back in a cgroup that was removed meanwhile (soft)', async () => {
    mkCgroup(`${tag}-a`);
    const v = await start(`${tag}-a`);
    const dir = path.join(tmp, 'a');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const cgImg = (await readImageFile(path.join(dir, 'cgroup.img'))).entries[0].message as Msg;
    const core = (await readImageFile(path.join(dir, `core-${v.pid}.img`))).entries[0].message as Msg;
    const setId = Number((core.thread_core as Msg).cg_set);
    expect(setId).toBeGreaterThan(1);
    const set = (cgImg.sets as Msg[]).find((s) => Number(s.id) === setId)!;
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

describe('cgroup options', () => {
  it('--cgroup-root [CONTROLLER:]PATH and --manage-cgroups MODE parse as CRIU reads them', () => {
    expect(parseCgroupRoot('/ct')).toEqual({ path: '/ct' });
    expect(parseCgroupRoot('cpu,cpuacct:/ct')).toEqual({ controller: 'cpu,cpuacct', path: '/ct' });
    expect(parseCgroupRoot('name=systemd:/a:b')).toEqual({ controller: 'name=systemd', path: '/a:b' });
    expect(parseCgroupMode('SOFT')).toBe('soft');
    expect(() => parseCgroupMode('sometimes')).toThrow(/unknown cgroup mode 'sometimes'/);
  });
});
