import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile } from '@criu/images';
import { dump, restore } from '../src';
import { readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const { dir: tmp, started } = testWorkspace('threads');

async function start(name: string): Promise<Victim> {
  const v = await startTestprog(name);
  started.push(v);
  await new Promise((r) => setTimeout(r, 200));
  return v;
}

const tasks = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);

describe('multi-threaded tasks', () => {
  it('criu-ts dumps all threads (one core image each) and the oracle restores them', async () => {
    requireOracle();
    const v = await start('threads4');
    const tids = tasks(v.pid);
    expect(tids.length).toBe(4);
    const dir = path.join(tmp, 'oracle');
    await dump({ pid: v.pid, imagesDir: dir });
    const tree = await readImageFile(path.join(dir, 'pstree.img'));
    expect((tree.entries[0].message.threads as number[]).slice().sort((a, b) => a - b)).toEqual(tids);
    for (const t of tids) expect(fs.existsSync(path.join(dir, `core-${t}.img`))).toBe(true);
    await waitPidGone(v.pid);
    const atDump = readLog(v).length;
    oracleRestore(dir);
    await waitFor('output after restore', () => readLog(v).length > atDump + 20);
    expect(tasks(v.pid)).toEqual(tids);
    expect(await verdict(v)).toMatch(/^PASS threads4/);
  });

  it('criu-ts restores every thread with its TID, twice over', async () => {
    const v = await start('threads4');
    const tids = tasks(v.pid);
    for (let round = 1; round <= 2; round++) {
      const dir = path.join(tmp, `ours-${round}`);
      await dump({ pid: v.pid, imagesDir: dir });
      await waitPidGone(v.pid);
      const atDump = readLog(v).length;
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
      await waitFor('output after restore', () => readLog(v).length > atDump + 20);
      expect(tasks(v.pid)).toEqual(tids);
    }
    expect(await verdict(v)).toMatch(/^PASS threads4/);
  });
});

describe('scheduling policies', () => {
  const schedOf = async (dir: string, tid: number) => {
    const tc = (await readImageFile(path.join(dir, `core-${tid}.img`))).entries[0].message.thread_core as Record<string, unknown>;
    return { nice: Number(tc.sched_nice), policy: Number(tc.sched_policy), prio: tc.sched_prio === undefined ? undefined : Number(tc.sched_prio) };
  };

  it('criu-ts records policy, priority and nice of every thread as the oracle does, and restores them', async () => {
    requireOracle();
    const v = await start('sched');
    const kid = Number(fs.readFileSync(`/proc/${v.pid}/task/${v.pid}/children`, 'latin1').trim());
    const tids = [...tasks(v.pid), kid];
    const dir = path.join(tmp, 'sched-ours');
    await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true });
    const odir = path.join(tmp, 'sched-oracle');
    fs.mkdirSync(odir);
    expect(oracle(['dump', '-t', String(v.pid), '-D', odir, '-o', 'dump.log', '-v4']).status).toBe(0);
    const ours = await Promise.all(tids.map((t) => schedOf(dir, t)));
    expect(ours).toEqual(await Promise.all(tids.map((t) => schedOf(odir, t))));
    // main (nice 2), BATCH nice 5, IDLE, FIFO 10, RR 20, the child BATCH nice 7 (in any TID order).
    const key = (x: { nice: number; policy: number; prio?: number }) => `${x.policy}/${x.prio}/${x.nice}`;
    expect(ours.map(key).sort()).toEqual([
      { nice: 2, policy: 0, prio: undefined }, { nice: 5, policy: 3, prio: undefined }, { nice: 0, policy: 5, prio: undefined },
      { nice: 0, policy: 1, prio: 10 }, { nice: 0, policy: 2, prio: 20 }, { nice: 7, policy: 3, prio: undefined },
    ].map(key).sort());
    await waitPidGone(v.pid);
    await restore({ imagesDir: dir });
    expect(await verdict(v, 15_000)).toMatch(/^PASS sched\b/);
  });
});
