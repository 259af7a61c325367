import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile } from '@criu/images';
import { dump, restore } from '../src';
import { readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
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
