import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, restore, RestoreError, RESTORE_STEPS } from '../src';
import { isAlive, killVictim, readLog, waitFor, type Victim } from './helpers/victims';
import { oracle, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-restore-'));
const started: Victim[] = [];
afterAll(() => {
  started.forEach(killVictim);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(name: string, args: string[] = []): Promise<Victim> {
  const v = await startTestprog(name, args);
  started.push(v);
  return v;
}

describe('restore on x86_64', () => {
  it('brings back what criu-ts dumped: the counter continues', async () => {
    const v = await start('counter');
    await waitFor('a few ticks', () => readLog(v).split('\n').length > 3);
    const dir = path.join(tmp, 'counter');
    await dump({ pid: v.pid, imagesDir: dir });
    const atDump = readLog(v).length;
    await waitPidGone(v.pid);
    const res = await restore({ imagesDir: dir, detach: true, logFile: 'restore.log', logLevel: 4 });
    expect(res.pid).toBe(v.pid);
    await waitFor('output after restore', () => readLog(v).length > atDump + 20);
    expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).not.toMatch(/restore-helper/);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });
});
