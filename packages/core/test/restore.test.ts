import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { dump, restore as restoreTask, Logger, RestoreError, RESTORE_STEPS } from '../src';
import { isAlive, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, testprog, verdict } from './helpers/testprogs';
import { runRestorer } from './reliability-helpers';

const { dir: tmp, started } = testWorkspace('restore');

async function start(name: string, args: string[] = []): Promise<Victim> {
  const v = await startTestprog(name, args);
  started.push(v);
  return v;
}

/**
 * Every restore helper our restores launched (from their logs, logged as soon as its pid is known,
 * before the start-helper step): none may outlive its restore. Before its exec the pid runs bash
 * or setsid with the helper's path on the command line, so that counts too.
 */
const helperPids = new Set<number>();
const logger = new Logger(3, undefined, (line) => {
  const m = /restore helper (\d+) (launched|started)/.exec(line);
  if (m) helperPids.add(Number(m[1]));
});
function helpers(): number[] {
  return [...helperPids].filter((p) => {
    try {
      if (/^\S+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${p}/stat`, 'latin1'))) return false; // dead, not yet reaped
      return fs.readFileSync(`/proc/${p}/cmdline`, 'latin1').includes('restore-helper');
    } catch {
      return false;
    }
  });
}
const restore = (o: Parameters<typeof restoreTask>[0]) => restoreTask({ logger, ...o });

async function dumpAndWait(v: Victim, dir: string): Promise<void> {
  await dump({ pid: v.pid, imagesDir: dir });
  await waitPidGone(v.pid);
}

function fileioArgs(name: string): string[] {
  const input = path.join(tmp, `${name}.in`);
  fs.writeFileSync(input, Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 251)));
  return [input, path.join(tmp, `${name}.log`)];
}

describe('restore on x86_64 of what criu-ts dumped', () => {
  it('the counter continues, twice over (dump, restore, dump again, restore again)', async () => {
    const v = await start('counter');
    for (let round = 1; round <= 2; round++) {
      await waitFor('a few ticks', () => readLog(v).split('\n').length > 3 * round);
      const dir = path.join(tmp, `counter-${round}`);
      await dumpAndWait(v, dir);
      const atDump = readLog(v).length;
      const res = await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
      expect(res.pid).toBe(v.pid);
      await waitFor('output after restore', () => readLog(v).length > atDump + 10);
      expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).not.toMatch(/restore-helper/);
    }
    expect(await verdict(v)).toMatch(/^PASS counter/);
    expect(helpers()).toEqual([]);
  });

  it('64 MiB keeps its checksum; its anonymous memory comes in through userfaultfd, which the task does not keep', async () => {
    const v = await start('mem64');
    const dir = path.join(tmp, 'mem64');
    await dumpAndWait(v, dir);
    await restoreTask({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    const copied = /(\d+) pages of anonymous memory copied in through userfaultfd/.exec(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8'));
    expect(Number(copied?.[1] ?? 0) * 4096).toBeGreaterThanOrEqual(64 << 20);
    // No userfaultfd descriptor, and no vma still registered ("um" in VmFlags).
    expect(fs.readdirSync(`/proc/${v.pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${v.pid}/fd/${fd}`))).not.toContain('anon_inode:[userfaultfd]');
    expect(fs.readFileSync(`/proc/${v.pid}/smaps`, 'latin1').split('\n').filter((l) => l.startsWith('VmFlags:') && / um( |$)/.test(l))).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await verdict(v)).toMatch(/^PASS mem64/);
  });

  it('restored right after dump() returns, while the old PID is still a zombie: the bounded wait for a dying PID lets it through', async () => {
    // The counter's parent becomes `sleep 4`, which never reaps it: after the dump kills the
    // counter, its PID stays taken (a zombie) for a few seconds, whatever init does.
    const sh = startDetached('bash', ['-c', `${testprog('counter')} & exec sleep 4`]);
    started.push(sh);
    const ready = await waitFor('counter READY', () => /READY counter (\d+)/.exec(readLog(sh)) ?? undefined, 10_000);
    const v: Victim = { pid: Number(ready[1]), log: sh.log };
    started.push(v);
    await waitFor('a few ticks', () => readLog(v).split('\n').length > 4);
    const dir = path.join(tmp, 'dying-pid');
    await dump({ pid: v.pid, imagesDir: dir });
    // No waitPidGone: the PID is still there, as a zombie, when the restore starts.
    expect(fs.readFileSync(`/proc/${v.pid}/stat`, 'latin1')).toMatch(/\) Z /);
    const atDump = readLog(v).length;
    const res = await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, pidWaitMs: 15_000 });
    expect(res.pid).toBe(v.pid);
    await waitFor('output after restore', () => readLog(v).length > atDump + 10);
    expect(await verdict(v)).toMatch(/^PASS counter/);
    expect(helpers()).toEqual([]);
  });

  it('an open file keeps its offset and an O_APPEND log keeps growing', async () => {
    const args = fileioArgs('fileio');
    const v = await start('fileio', args);
    await waitFor('some lines', () => fs.readFileSync(args[1], 'utf8').split('\n').length > 5);
    const dir = path.join(tmp, 'fileio');
    await dumpAndWait(v, dir);
    const lines = fs.readFileSync(args[1], 'utf8').split('\n').length;
    await restore({ imagesDir: dir });
    await waitFor('log to grow', () => fs.readFileSync(args[1], 'utf8').split('\n').length > lines + 3);
    expect(await verdict(v)).toMatch(/^PASS fileio/);
  });
});

describe('credentials', () => {
  it("a task running as nobody comes back as nobody, without the restorer's capabilities", async () => {
    const v = startDetached('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', testprog('counter')]);
    started.push(v);
    await waitFor('READY', () => /READY counter/.test(readLog(v)));
    const statusBefore = fs.readFileSync(`/proc/${v.pid}/status`, 'latin1');
    const dir = path.join(tmp, 'nobody');
    await dumpAndWait(v, dir);
    const atDump = readLog(v).length;
    await restore({ imagesDir: dir });
    await waitFor('output after restore', () => readLog(v).length > atDump + 5);
    const status = fs.readFileSync(`/proc/${v.pid}/status`, 'latin1');
    for (const k of ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      const line = (t: string) => t.split('\n').find((l) => l.startsWith(`${k}:`));
      expect(line(status)).toBe(line(statusBefore));
    }
    expect(status).toMatch(/Uid:\s+65534\s+65534\s+65534\s+65534/);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('a restorer without CAP_SETUID/CAP_SETGID is refused a task of other ids, and leaves nothing behind', async () => {
    const v = startDetached('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', testprog('counter')]);
    started.push(v);
    await waitFor('READY', () => /READY counter/.test(readLog(v)));
    const dir = path.join(tmp, 'nobody-nosetid');
    await dumpAndWait(v, dir);
    // Root, but unable to change ids: both capabilities gone from its bounding (so effective) set.
    const r = await runRestorer(dir, ['setpriv', '--inh-caps=-setuid,-setgid', '--bounding-set=-setuid,-setgid']);
    const m = /^error (.*)$/m.exec(r.out);
    if (!m) throw new Error(`expected a refusal, got: ${r.out}`);
    const err = JSON.parse(m[1]);
    expect(err).toMatchObject({ name: 'RestoreError', step: 'task-state', file: `core-${v.pid}.img`, field: 'thread_core.creds', pid: v.pid });
    expect(err.message).toMatch(/other user\/group ids \(uid 65534 gid 65534\) and the restorer cannot change ids \(no CAP_SETUID\/CAP_SETGID\)/);
    expect(err.hint).toMatch(/CAP_SETUID and CAP_SETGID/);
    expect(r.code).toBe(1);
    await waitPidGone(v.pid);
    const launched = [...fs.readFileSync(path.join(dir, 'restore.log'), 'utf8').matchAll(/restore helper (\d+) launched/g)].map((x) => Number(x[1]));
    expect(launched).toHaveLength(1);
    for (const p of launched) helperPids.add(p);
    await waitFor('no restore helper left', () => helpers().length === 0, 3000).catch(() => undefined);
    expect(helpers()).toEqual([]);
    // The images were fine: a restorer that may change ids brings the task back as nobody.
    const atDump = readLog(v).length;
    await restore({ imagesDir: dir });
    await waitFor('output after restore', () => readLog(v).length > atDump + 5);
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/Uid:\s+65534\s+65534\s+65534\s+65534/);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('refuses an image that would give the task a capability the restorer lacks', async () => {
    // This machine's root lacks CAP_SYS_RESOURCE (24): an image claiming it must not be restored.
    const capEff = BigInt('0x' + /CapEff:\s+([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'latin1'))![1]);
    const missing = [...Array(41).keys()].find((c) => !(capEff & (1n << BigInt(c))));
    if (missing === undefined) throw new Error('this test needs a restorer that lacks some capability');
    const v = await start('counter');
    const dir = path.join(tmp, 'caps');
    await dumpAndWait(v, dir);
    const coreFile = path.join(dir, `core-${v.pid}.img`);
    const img = await readImageFile(coreFile);
    const creds = (img.entries[0].message.thread_core as Msg).creds as Msg;
    const eff = creds.cap_eff as number[];
    eff[missing >> 5] = (eff[missing >> 5] | (1 << (missing & 31))) >>> 0;
    await writeImageFile(coreFile, 'CORE', [{ message: img.entries[0].message }]);
    const err = await restore({ imagesDir: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.message).toMatch(/capabilities the restorer lacks/);
    expect(err.file).toBe(`core-${v.pid}.img`);
    await waitPidGone(v.pid);
    expect(helpers()).toEqual([]);
  });
});

describe('restore of images the oracle CRIU wrote', () => {
  beforeAll(() => requireOracle());

  it.each(['counter', 'mem64'])('%s', async (name) => {
    const v = await start(name);
    const dir = path.join(tmp, `oracle-${name}`);
    fs.mkdirSync(dir, { recursive: true });
    const r = oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4']);
    expect(r.status).toBe(0);
    await waitPidGone(v.pid);
    const atDump = readLog(v).length;
    await restore({ imagesDir: dir });
    await waitFor('output after restore', () => readLog(v).length > atDump);
    expect(await verdict(v)).toMatch(new RegExp(`^PASS ${name}`));
  });
});

describe('a failed restore leaves nothing running and says why', () => {
  it('PID taken: the dumped task is still alive', async () => {
    const v = await start('counter');
    const dir = path.join(tmp, 'taken');
    await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true });
    const err = await restore({ imagesDir: dir, pidWaitMs: 200 }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.message).toMatch(new RegExp(`PID ${v.pid} is in use`));
    expect(err.hint).toMatch(new RegExp(`PID is taken; stop process ${v.pid}`));
    expect(err.pid).toBe(v.pid);
    expect(isAlive(v.pid)).toBe(true);
    expect(helpers()).toEqual([]);
  });

  it('a pages image cut short is refused before anything is created, naming the file', async () => {
    const v = await start('mem64');
    const dir = path.join(tmp, 'cut');
    await dumpAndWait(v, dir);
    const pages = path.join(dir, 'pages-1.img');
    fs.truncateSync(pages, Math.floor(fs.statSync(pages).size / 2));
    const err = await restore({ imagesDir: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.file).toBe('pages-1.img');
    expect(fs.existsSync(`/proc/${v.pid}`)).toBe(false);
    expect(helpers()).toEqual([]);
  });

  it('a file that disappeared: the error names it and the half-built task is killed', async () => {
    const args = fileioArgs('gone');
    const v = await start('fileio', args);
    const dir = path.join(tmp, 'gone');
    await dumpAndWait(v, dir);
    fs.rmSync(args[0]);
    const err = await restore({ imagesDir: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.message).toContain(args[0]);
    // The task being rebuilt is named.
    expect(err.pid).toBe(v.pid);
    expect(err.message).toMatch(new RegExp(`^restore of task ${v.pid} failed at step "(map-vmas|files)"`));
    await waitPidGone(v.pid);
    expect(helpers()).toEqual([]);
  });

  it.each(RESTORE_STEPS)('fault at %s', async (step) => {
    const dir = path.join(tmp, 'counter-1'); // the first test's images: its task was killed there
    const pid = Number(fs.readdirSync(dir).find((f) => /^core-\d+\.img$/.test(f))!.match(/\d+/)![0]);
    await waitPidGone(pid);
    const before = new Set(helperPids);
    const err = await restore({ imagesDir: dir, faultAt: step }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.step).toBe(step);
    // Steps entered per task name it (the others name it only for a failure inside one).
    const perTask = !['read-images', 'check-pid', 'start-helper', 'clone', 'jump', 'finish'].includes(step);
    expect(err.pid).toBe(perTask ? pid : undefined);
    // This restore's helper was seen (launched at the start, whatever the step), and is gone.
    expect([...helperPids].filter((p) => !before.has(p))).toHaveLength(1);
    await waitPidGone(pid);
    // SIGKILL takes effect asynchronously: a helper still there after 3 s was left behind.
    await waitFor('no restore helper left', () => helpers().length === 0, 3000).catch(() => undefined);
    expect(helpers()).toEqual([]);
  });
});
