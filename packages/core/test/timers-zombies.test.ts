/**
 * POSIX timers, zombies and stopped tasks beyond the plain round trips of suite.test.ts: the
 * records written, the sequential timer-id fallback (what kernels without
 * PR_TIMER_CREATE_RESTORE_IDS get), damaged records refused with the file and field named, and
 * a --leave-running dump that leaves the zombie unreaped and the stopped child stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { dump, restore, RestoreError } from '../src';
import { parseProcTimers } from '../src/dump/posix-timers';
import { readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(60_000);
const { dir: tmp, started } = testWorkspace('timers-zombies');

async function start(name: string): Promise<Victim> {
  const v = await startTestprog(name);
  started.push(v);
  return v;
}

function stateOf(pid: number): string {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
}

async function coreOf(dir: string, pid: number): Promise<Msg> {
  return (await readImageFile(path.join(dir, `core-${pid}.img`))).entries[0].message;
}

async function editCore(dir: string, pid: number, edit: (core: Msg) => void): Promise<void> {
  const core = await coreOf(dir, pid);
  edit(core);
  await writeImageFile(path.join(dir, `core-${pid}.img`), 'CORE', [{ message: core }]);
}

/** The children of the zombie program, from its own "children zombie Z stopped S" line. */
function zombieKids(v: Victim): { zombie: number; stopped: number } {
  const m = /children zombie (\d+) stopped (\d+)/.exec(readLog(v));
  if (!m) throw new Error(`no children line in ${readLog(v)}`);
  return { zombie: Number(m[1]), stopped: Number(m[2]) };
}

describe('POSIX timers', () => {
  it('parses /proc/PID/timers records (signal, sigev_notify incl. SIGEV_THREAD_ID, clock)', () => {
    const text = 'ID: 4\nsignal: 12/000000000000002c\nnotify: signal/tid.77\nClockID: 1\nID: 0\nsignal: 0/0000000000000000\nnotify: none/pid.70\nClockID: 7\n';
    expect(parseProcTimers(text)).toEqual([
      { id: 0, signo: 0, sival: 0n, notify: 1, target: 70, clock: 7 },
      { id: 4, signo: 12, sival: 44n, notify: 4, target: 77, clock: 1 },
    ]);
    expect(() => parseProcTimers('ID: 1\nsignal: x\n')).toThrow(/cannot parse/);
  });

  it('records every timer as CRIU does and comes back with the sequential id fallback', async () => {
    const v = await start('posixtimer');
    await new Promise((r) => setTimeout(r, 200));
    const dir = path.join(tmp, 'pt-seq');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const posix = (((await coreOf(dir, v.pid)).tc as Msg).timers as Msg).posix as Msg[];
    expect(posix.map((t) => [t.it_id, t.clock_id, t.si_signo, t.it_sigev_notify])).toEqual([
      [0, 1, 37, 0], [1, 0, 12, 0], [3, 1, 12, 0], [4, 1, 12, 4], [5, 7, 0, 1],
    ]);
    expect(posix[0]).toMatchObject({ sival_ptr: 0x5eed1234n, isec: 0n, insec: 50000000n });
    expect(posix[2]).toMatchObject({ sival_ptr: 33n, isec: 0n, insec: 0n, vsec: 0n, vnsec: 0n });
    expect(posix[3]).toMatchObject({ sival_ptr: 44n, notify_thread_id: v.pid });
    expect(posix[4]).toMatchObject({ isec: 7n, insec: 0n });
    process.env.CRIU_TS_TIMER_IDS = 'sequential';
    try {
      await restore({ imagesDir: dir });
    } finally {
      delete process.env.CRIU_TS_TIMER_IDS;
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS posixtimer/);
  });

  it('an id out of reach of the sequential fallback is refused naming the record; nothing stays', async () => {
    const v = await start('posixtimer');
    const dir = path.join(tmp, 'pt-far');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    await editCore(dir, v.pid, (c) => { (((c.tc as Msg).timers as Msg).posix as Msg[])[4].it_id = 1_000_000; });
    process.env.CRIU_TS_TIMER_IDS = 'sequential';
    let err: unknown;
    try {
      err = await restore({ imagesDir: dir }).catch((e) => e);
    } finally {
      delete process.env.CRIU_TS_TIMER_IDS;
    }
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as RestoreError).message).toMatch(/posix timer 1000000 cannot be re-created with its id/);
    expect((err as RestoreError).file).toBe(`core-${v.pid}.img`);
    await waitPidGone(v.pid);
  });

  it('a damaged timer record is refused before anything is created', async () => {
    const v = await start('posixtimer');
    const dir = path.join(tmp, 'pt-bad');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    await editCore(dir, v.pid, (c) => { (((c.tc as Msg).timers as Msg).posix as Msg[])[3].notify_thread_id = 1; });
    const err = await restore({ imagesDir: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.step).toBe('read-images');
    expect(err.field).toBe('tc.timers.posix[3].notify_thread_id');
    expect(fs.existsSync(`/proc/${v.pid}`)).toBe(false);
  });
});

describe('zombies and stopped tasks', () => {
  it('records them as CRIU does; --leave-running leaves the zombie unreaped and the child stopped', async () => {
    const v = await start('zombie');
    const { zombie, stopped } = zombieKids(v);
    const dir = path.join(tmp, 'z-leave');
    await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true });
    const pstree = (await readImageFile(path.join(dir, 'pstree.img'))).entries.map((e) => e.message);
    expect(pstree.map((e) => [e.pid, e.ppid])).toEqual([[v.pid, 0], [zombie, v.pid], [stopped, v.pid]]);
    const zc = await coreOf(dir, zombie);
    expect(zc.tc).toMatchObject({ task_state: 2, exit_code: 7 << 8, comm: 'zombie' });
    expect(zc.thread_core).toBeUndefined();
    expect(fs.existsSync(path.join(dir, `mm-${zombie}.img`))).toBe(false);
    expect((await coreOf(dir, stopped)).tc).toMatchObject({ task_state: 3, stop_signo: 19 });
    expect((await coreOf(dir, v.pid)).tc).toMatchObject({ task_state: 1 });
    expect(stateOf(zombie)).toBe('Z');
    await waitFor('the child stopped again', () => stateOf(stopped) === 'T');
    expect(await verdict(v, 15_000)).toMatch(/^PASS zombie/);
  });

  it('a zombie whose exit status is not a wait status is refused naming the field', async () => {
    const v = await start('zombie');
    const { zombie } = zombieKids(v);
    const dir = path.join(tmp, 'z-bad');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    await editCore(dir, zombie, (c) => { (c.tc as Msg).exit_code = 0x7f; });
    const err = await restore({ imagesDir: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.file).toBe(`core-${zombie}.img`);
    expect(err.field).toBe('tc.exit_code');
  });

  it('a zombie killed by a signal comes back killed by it', async () => {
    const v = await start('zombie');
    const { zombie, stopped } = zombieKids(v);
    const dir = path.join(tmp, 'z-sig');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    await waitPidGone(zombie);
    await editCore(dir, zombie, (c) => { (c.tc as Msg).exit_code = 10; /* SIGUSR1 */ });
    await restore({ imagesDir: dir });
    expect(stateOf(zombie)).toBe('Z');
    expect(stateOf(stopped)).toBe('T');
    // The program wants exit 7: it reports what it got instead.
    expect(await verdict(v, 15_000)).toMatch(new RegExp(`^FAIL zombie waitpid\\(${zombie}\\) gave ${zombie} status 0xa\\b`));
  });
});
