/**
 * A tree in pid, uts and ipc namespaces of its own (tools/testprogs/pidns: the init of a new pid
 * namespace with children, a grandchild, a second thread and a zombie), dumped by its init's host pid: the images name the
 * tasks by their pids in the namespace, as CRIU's do (compared with the oracle's), and a restore
 * creates the namespaces again (the pids there, the names, the ipc sysctls). Two rounds of
 * criu-ts, and the oracle CRIU's images restored by criu-ts and criu-ts's by the oracle.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, encodeImageEntries, type Msg } from '@criu/images';
import { dump, restore, RestoreError } from '../src';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog } from './helpers/testprogs';
import { isAlive, readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';

jest.setTimeout(120_000);
const { dir: tmp, started } = testWorkspace('pidns');

/** Starts pidns; the victim to dump and signal is the namespace's init (its host pid). */
async function startPidns(): Promise<Victim> {
  const v = await startTestprog('pidns');
  const init = Number(/READY pidns (\d+)/.exec(readLog(v))![1]);
  const victim = { pid: init, log: v.log };
  started.push(victim);
  return victim;
}

async function verdictOf(pid: number, v: Victim): Promise<string> {
  process.kill(pid, 'SIGTERM');
  const m = await waitFor('PASS/FAIL verdict', () => /^(PASS|FAIL) .*$/m.exec(readLog(v)) ?? undefined, 15_000);
  return m[0];
}

const records = (dir: string, file: string) => decodeImageEntries(fs.readFileSync(path.join(dir, file)), { file }).entries.map((e) => e.message);
const nsPidOf = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, 'latin1').match(/^NSpid:\s+(.*)$/m)![1].split(/\s+/).map(Number);

describe('a tree whose root is the init of its own pid namespace', () => {
  beforeAll(() => requireOracle());

  let oracleImages = '';
  /** The oracle CRIU's dump of a fresh pidns (its tasks are gone once it returns). */
  async function oracleDump(): Promise<Victim> {
    const v = await startPidns();
    oracleImages = fs.mkdtempSync(path.join(tmp, 'oracle-'));
    const r = oracle(['dump', '-t', String(v.pid), '-D', oracleImages, '-o', 'dump.log', '-v4']);
    expect(r.status).toBe(0);
    await waitPidGone(v.pid);
    return v;
  }

  it('the oracle CRIU dumps it; criu-ts restores its images', async () => {
    const v = await oracleDump();
    const res = await restore({ imagesDir: oracleImages, logFile: 'restore.log', logLevel: 4 });
    started.push({ pid: res.pid, log: v.log });
    expect(nsPidOf(res.pid)).toEqual([res.pid, 1]);
    expect(await verdictOf(res.pid, v)).toMatch(/^PASS pidns\b/);
  });

  it('criu-ts dumps it as CRIU does (pstree, ids, utsns, ipcns-var, inventory root_ids) and restores it, two rounds', async () => {
    if (!oracleImages) await oracleDump();
    const v = await startPidns();
    let pid = v.pid;
    for (let round = 1; round <= 2; round++) {
      const images = path.join(tmp, `ours-${round}`);
      await dump({ pid, imagesDir: images });
      await waitPidGone(pid);
      for (const f of ['ids-1.img', 'ids-2.img', 'ids-3.img', 'ids-4.img', 'utsns-11.img', 'ipcns-var-10.img']) {
        expect([f, records(images, f)]).toEqual([f, records(oracleImages, f)]);
      }
      // (CRIU leaves a zombie's thread list uninitialised: compared without it. A restore makes the
      // zombie right after its parent, so the next dump lists it before its siblings: by pid.)
      const noZombieThreads = (l: Msg[]) => l.map((e) => (e.pid === 6 ? { ...e, threads: undefined } : e)).sort((x, y) => Number(x.pid) - Number(y.pid));
      expect(noZombieThreads(records(images, 'pstree.img'))).toEqual(noZombieThreads(records(oracleImages, 'pstree.img')));
      expect(records(images, 'core-6.img')[0].tc).toMatchObject({ task_state: 2, exit_code: 7 << 8 });
      expect(records(images, 'inventory.img')[0].root_ids).toEqual(records(oracleImages, 'inventory.img')[0].root_ids);
      // D has a second thread: its tid there is 5.
      expect(records(images, 'pstree.img').map((e) => e.threads).sort((x, y) => (x as number[])[0] - (y as number[])[0])).toEqual([[1], [2], [3], [4, 5], [6]]);
      const res = await restore({ imagesDir: images, logFile: 'restore.log', logLevel: 4, pidfile: 'restored.pid' });
      started.push({ pid: res.pid, log: v.log });
      expect(fs.readFileSync(path.join(images, 'restored.pid'), 'utf8')).toBe(String(res.pid));
      expect(nsPidOf(res.pid)).toEqual([res.pid, 1]);
      expect(fs.readlinkSync(`/proc/${res.pid}/ns/pid`)).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
      pid = res.pid;
    }
    expect(await verdictOf(pid, v)).toMatch(/^PASS pidns\b/);
  });

  it('the oracle CRIU restores criu-ts\'s images of it', async () => {
    const v = await startPidns();
    const images = path.join(tmp, 'to-oracle');
    await dump({ pid: v.pid, imagesDir: images });
    await waitPidGone(v.pid);
    oracleRestore(images, ['--pidfile', 'oracle.pid']);
    const pid = Number(fs.readFileSync(path.join(images, 'oracle.pid'), 'utf8'));
    started.push({ pid, log: v.log });
    expect(nsPidOf(pid)).toEqual([pid, 1]);
    expect(await verdictOf(pid, v)).toMatch(/^PASS pidns\b/);
  });

  it('a task of the namespace that is not its init is refused by pid, and runs on untraced', async () => {
    const v = await startPidns();
    const a = Number(fs.readFileSync(`/proc/${v.pid}/task/${v.pid}/children`, 'latin1').trim().split(/\s+/)[0]);
    expect(nsPidOf(a)).toEqual([a, 2]);
    await expect(dump({ pid: a, imagesDir: path.join(tmp, 'not-init') })).rejects.toThrow(new RegExp(`task ${a}: its pid namespace \\(pid:\\[\\d+\\]\\) is not the dumper's and it is not that namespace's init \\(its pid there is 2\\)`));
    expect(fs.readFileSync(`/proc/${a}/status`, 'latin1')).toMatch(/^TracerPid:\s+0$/m);
    expect(await verdictOf(v.pid, v)).toMatch(/^PASS pidns\b/);
  });

  it('a malformed utsns image is refused naming file, record and field, before any task is created', async () => {
    const v = await startPidns();
    const images = path.join(tmp, 'bad-uts');
    await dump({ pid: v.pid, imagesDir: images });
    await waitPidGone(v.pid);
    fs.writeFileSync(path.join(images, 'utsns-11.img'), encodeImageEntries('UTSNS', [{ message: { nodename: 'n'.repeat(100), domainname: 'criu-dom' } }]));
    let err: unknown;
    try {
      await restore({ imagesDir: images, logFile: 'restore.log', logLevel: 4 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as RestoreError).opts).toMatchObject({ file: 'utsns-11.img', record: 0, field: 'nodename' });
    expect(fs.readFileSync(path.join(images, 'restore.log'), 'utf8')).not.toMatch(/is \d+ on the host/);
  });

  it('a restore failing once the namespace exists leaves no task behind', async () => {
    const v = await startPidns();
    const images = path.join(tmp, 'fault');
    await dump({ pid: v.pid, imagesDir: images });
    await waitPidGone(v.pid);
    await expect(restore({ imagesDir: images, logFile: 'restore.log', logLevel: 4, faultAt: 'registers' })).rejects.toThrow(RestoreError);
    const created = [...fs.readFileSync(path.join(images, 'restore.log'), 'utf8').matchAll(/task (\d+) is (\d+) on the host/g)].map((m) => Number(m[2]));
    expect(created).toHaveLength(4); // and the zombie
    for (const pid of created) await waitFor(`task ${pid} to die`, () => !isAlive(pid), 10_000);
    // The images still restore.
    const res = await restore({ imagesDir: images, logFile: 'restore2.log', logLevel: 4 });
    started.push({ pid: res.pid, log: v.log });
    expect(await verdictOf(res.pid, v)).toMatch(/^PASS pidns\b/);
  });
});
