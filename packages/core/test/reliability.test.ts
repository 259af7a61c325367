/**
 * Reliability and safety of dump: the dumper SIGKILLed at chosen and random points, a full disk,
 * two dumps of one task at once, permissions of the images and of the caller, and what errors
 * say. Every victim is a test program started detached; the dumper under test runs in a separate
 * node process where it has to die.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, DumpError, FrozenTask, hostArch, InfectError, INCOMPLETE_MARKER } from '../src';
import { killVictim, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { startTestprog, testprog, verdict } from './helpers/testprogs';
import { leftoverParasites, procStatus, runDumper, stepDurations, waitProgress } from './reliability-helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-reliability-'));
fs.chmodSync(tmp, 0o755);
const started: Victim[] = [];
const mounts: string[] = [];
afterAll(() => {
  started.forEach(killVictim);
  for (const m of mounts) {
    try { execFileSync('umount', ['-l', m]); } catch { /* already gone */ }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function start(name: string, args: string[] = []): Promise<Victim> {
  const v = await startTestprog(name, args);
  started.push(v);
  return v;
}

/** The task runs on as before: alive, not stopped, not traced, scheduled again. */
async function expectUnharmed(v: Victim, what: string): Promise<void> {
  const st = procStatus(v.pid);
  if (!/^[RSD]/.test(st.State) || st.TracerPid !== '0') throw new Error(`${what}: task ${v.pid} is ${st.State}, TracerPid ${st.TracerPid}`);
  await waitProgress(v.pid);
}

describe('the dumper killed with SIGKILL', () => {
  // The points where the dumper dies: the start of each step after the freeze (the task is
  // then frozen, parked between injected syscalls, or running the parasite), and random moments
  // inside the steps where the parasite works (fds handed over, memory vmspliced).
  const atSteps = ['freeze', 'collect-proc', 'infect', 'task-state', 'files', 'vmas', 'memory', 'registers', 'cure', 'write-images', 'finish'];
  let seed = 0x2545f491;
  const random = (n: number) => {
    seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
    return seed % Math.max(1, Math.floor(n));
  };

  it('20 trials: the task is never left stopped or killed; its memory holds (mem64 checksum)', async () => {
    const v = await start('mem64');
    // How long the parasite's steps last here, from a clean dump, to aim the random kills inside
    // them (an injected syscall is a window nobody can close: docs/how-it-works.md, "When the dumper dies").
    const clean = await runDumper(v.pid, path.join(tmp, 'kill-calibrate'), 'none');
    expect(clean.out).toMatch(/done/);
    const took = stepDurations(clean.out);
    const inside = [
      ...Array.from({ length: 6 }, () => `delay:memory:${random(took.get('memory')! * 800)}`),
      ...Array.from({ length: 3 }, () => `delay:files:${random(took.get('files')! * 800)}`),
    ];
    const report: string[] = [`memory step ${took.get('memory')!.toFixed(1)} ms, files step ${took.get('files')!.toFixed(1)} ms`];
    for (const mode of [...atSteps.map((s) => `step:${s}`), ...inside]) {
      const dir = path.join(tmp, `kill-${mode.replace(/:/g, '-')}`);
      const r = await runDumper(v.pid, dir, mode);
      expect(r.signal).toBe('SIGKILL');
      await expectUnharmed(v, mode);
      // The dump did not finish: its directory still says so (restore refuses it).
      if (fs.existsSync(dir)) expect(fs.existsSync(path.join(dir, INCOMPLETE_MARKER))).toBe(true);
      report.push(`${mode}: ${procStatus(v.pid).State}, ${leftoverParasites(v.pid).length} parasite area(s) left`);
    }
    console.log(`after each dumper kill the task ran on:\n${report.join('\n')}`);
    // A clean dump still works on the survivor, and its 64 MiB checksum held all along.
    const r = await runDumper(v.pid, path.join(tmp, 'kill-after'), 'none');
    expect(r.out).toMatch(/done/);
    await expectUnharmed(v, 'a dump after the kills');
    expect(await verdict(v)).toMatch(/^PASS mem64/);
  }, 120_000);
});

describe('disk full', () => {
  it('a dump into an 8 MiB tmpfs fails with ENOSPC at the memory step, and the task is unharmed', async () => {
    const mnt = path.join(tmp, 'small');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
    mounts.push(mnt);
    const v = await start('mem64');
    const mapsBefore = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
    const err = await dump({ pid: v.pid, imagesDir: path.join(mnt, 'img') }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    console.log(`disk full: ${err.message}`);
    expect(err.message).toMatch(/ENOSPC|no space/i);
    expect(err.step).toBe('memory');
    expect(err.taskResumed).not.toBe(false);
    expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(mapsBefore); // no parasite left
    await expectUnharmed(v, 'disk full');
    expect(await verdict(v)).toMatch(/^PASS mem64/);
  });
});

describe('two dumps of one task at once', () => {
  it('the second is refused, naming the process that holds the task', async () => {
    const v = await start('counter');
    let holder = 0;
    const first = runDumper(v.pid, path.join(tmp, 'first'), 'pause:task-state:1500', {
      onOutput: (out, child) => { if (/step task-state/.test(out)) holder = child; },
    });
    await waitFor('the first dump to hold the task', () => holder !== 0, 10_000);
    // Through dump(): the check before freezing sees the tracer.
    const err = await dump({ pid: v.pid, imagesDir: path.join(tmp, 'second') }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect(err.message).toMatch(new RegExp(`traced by process ${holder}`));
    expect(err.hint).toMatch(/another dump/);
    // When both pass that check, PTRACE_SEIZE decides: the loser is told who won.
    let seizeErr: unknown;
    try { FrozenTask.freeze(v.pid, hostArch()).release(); } catch (e) { seizeErr = e; }
    expect(seizeErr).toBeInstanceOf(InfectError);
    expect((seizeErr as InfectError).message).toMatch(new RegExp(`being dumped or traced by process ${holder}.*hint: wait for the other dump`));
    const r = await first;
    expect(r.out).toMatch(/done/);
    await expectUnharmed(v, 'after two dumps');
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });
});

describe('permissions', () => {
  it('the images directory is 0700 and every image 0600, pages included', async () => {
    const v = await start('counter');
    const dir = path.join(tmp, 'perms', 'images');
    const oldUmask = process.umask(0);
    try {
      await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true });
    } finally {
      process.umask(oldUmask);
    }
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const files = fs.readdirSync(dir);
    expect(files).toContain('pages-1.img');
    const modes = Object.fromEntries(files.map((f) => [f, (fs.statSync(path.join(dir, f)).mode & 0o777).toString(8)]));
    expect(Object.entries(modes).filter(([, m]) => m !== '600')).toEqual([]);
  });

  it('an existing images directory is made 0700 when empty or holding a previous dump; one holding other files keeps its mode', async () => {
    const v = await start('counter');
    const empty = path.join(tmp, 'perms-existing');
    fs.mkdirSync(empty, { mode: 0o755 });
    fs.chmodSync(empty, 0o755);
    await dump({ pid: v.pid, imagesDir: empty, leaveRunning: true, logFile: 'dump.log', logLevel: 4 });
    expect(fs.statSync(empty).mode & 0o777).toBe(0o700);
    // Dumped again into after someone opened it up: still ours (it holds our images).
    fs.chmodSync(empty, 0o755);
    await dump({ pid: v.pid, imagesDir: empty, leaveRunning: true });
    expect(fs.statSync(empty).mode & 0o777).toBe(0o700);
    // A directory with other things in it (e.g. the current one, -D's default) is not ours to chmod.
    const shared = path.join(tmp, 'perms-shared');
    fs.mkdirSync(shared, { mode: 0o755 });
    fs.chmodSync(shared, 0o755);
    fs.writeFileSync(path.join(shared, 'notes.txt'), 'not an image\n');
    await dump({ pid: v.pid, imagesDir: shared, leaveRunning: true, logFile: 'dump.log', logLevel: 2 });
    expect(fs.statSync(shared).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(shared, 'dump.log'), 'utf8')).toMatch(/holds other files and stays mode 755/);
    const images = fs.readdirSync(shared).filter((f) => f !== 'notes.txt');
    expect(images.filter((f) => (fs.statSync(path.join(shared, f)).mode & 0o777) !== 0o600)).toEqual([]);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  const asNobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

  it("a non-root caller cannot dump a root-owned task: refused, the task unharmed", async () => {
    const v = await start('counter');
    const dir = path.join(tmp, 'nobody-root');
    fs.mkdirSync(dir, { mode: 0o777 });
    fs.chmodSync(dir, 0o777);
    const r = await runDumper(v.pid, path.join(dir, 'img'), 'none', { wrapper: asNobody });
    console.log(`nobody dumping root's task: ${r.out.trim()}`);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/error .*dump of task \d+ failed at step "(check-task|check-files|freeze)"/);
    expect(r.out).toMatch(/not allowed|permission|EACCES|EPERM/i);
    // What the check before touching the task says (dump.ts should call it at check-task).
    const access = await runDumper(v.pid, dir, 'access', { wrapper: asNobody });
    const why = JSON.parse(/^access (.*)$/m.exec(access.out)![1]);
    expect(why.reason).toMatch(/not allowed to trace it: it runs as uid 0\/0\/0 gid 0\/0\/0, this process as uid 65534 gid 65534/);
    expect(why.hint).toMatch(/only its own processes/);
    const mine = await runDumper(v.pid, dir, 'access');
    expect(mine.out).toMatch(/^access null$/m);
    await expectUnharmed(v, 'refused dump');
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  /** A task of nobody's, and a directory nobody may write its images in. */
  async function nobodysTask(name: string): Promise<{ v: Victim; dir: string }> {
    const v = startDetached('setpriv', [...asNobody, testprog('counter')]);
    started.push(v);
    fs.chmodSync(path.dirname(v.log), 0o755); // the dumper (nobody) must see the path of the task's stdout
    await waitFor('READY', () => /READY counter/.test(readLog(v)));
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { mode: 0o777 });
    fs.chmodSync(dir, 0o777);
    return { v, dir };
  }

  it('a non-root caller without CAP_CHECKPOINT_RESTORE is refused before the task is touched, with a hint', async () => {
    const { v, dir } = await nobodysTask('nobody-own');
    const r = await runDumper(v.pid, path.join(dir, 'img'), 'none', { wrapper: asNobody });
    console.log(`nobody dumping its own task: ${r.out.trim().split('\n').slice(-1)[0]}`);
    expect(r.code).toBe(1);
    // Refused at the first step: the kernel would hide /proc/PID/map_files from it at the vmas step.
    expect(r.out).not.toMatch(/^step (check-files|freeze)/m);
    expect(r.out).toMatch(new RegExp(`error dump of task ${v.pid} failed at step "check-task": .*lacks CAP_CHECKPOINT_RESTORE and CAP_SYS_ADMIN.*map_files.*\\(hint: dump as root, or grant CAP_CHECKPOINT_RESTORE`));
    await expectUnharmed(v, 'own dump as nobody');
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('a non-root caller with CAP_CHECKPOINT_RESTORE dumps its own task', async () => {
    const { v, dir } = await nobodysTask('nobody-own-cr');
    const withCap = [...asNobody, '--inh-caps=+checkpoint_restore', '--ambient-caps=+checkpoint_restore'];
    const r = await runDumper(v.pid, path.join(dir, 'img'), 'none', { wrapper: withCap });
    expect(r.out).toMatch(/\ndone\n/);
    expect(fs.readdirSync(path.join(dir, 'img'))).toContain(`core-${v.pid}.img`);
    await expectUnharmed(v, 'own dump as nobody with CAP_CHECKPOINT_RESTORE');
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });
});

describe('errors carry the step, the task, the file and a hint', () => {
  it('no such process', async () => {
    const err = await dump({ pid: 2 ** 22 + 11, imagesDir: path.join(tmp, 'none') }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect(err.step).toBe('check-task');
    expect(err.pid).toBe(2 ** 22 + 11);
    expect(err.hint).toMatch(/PID/);
  });

  it('an images directory that cannot be created names it', async () => {
    const v = await start('counter');
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const err = await dump({ pid: v.pid, imagesDir: path.join(file, 'img') }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect(err.step).toBe('prepare-dir');
    expect(err.message).toMatch(/a-file/);
    await expectUnharmed(v, 'prepare-dir failure');
  });

  it('a kernel feature this kernel lacks: --track-mem with the missing tracking method forced is refused, naming the feature', async () => {
    const { detectMemTrack } = await import('../src/dump/mem-track');
    const sup = detectMemTrack();
    const missing = sup.softDirty !== 'ok' ? 'soft-dirty' : sup.uffdWp !== 'ok' ? 'uffd-wp' : undefined;
    if (!missing) throw new Error('this test needs a kernel lacking soft-dirty or uffd-wp');
    const v = await start('counter');
    const r = await runDumper(v.pid, path.join(tmp, 'no-track'), 'trackmem', { wrapper: ['env', `CRIU_TS_MEM_TRACK=${missing}`] });
    console.log(`--track-mem with ${missing} forced: ${r.out.trim().split('\n').slice(-1)[0]}`);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`error dump of task ${v.pid} failed at step "check-task": cannot track memory changes on this kernel: ${missing} \\(the only method CRIU_TS_MEM_TRACK allows\\): `));
    expect(r.out).toMatch(/\(hint: the kernel lacks the feature: --track-mem needs soft-dirty bits \(CONFIG_MEM_SOFT_DIRTY\) or userfaultfd write-protect/);
    if (missing === 'soft-dirty') expect(r.out).toMatch(/CONFIG_MEM_SOFT_DIRTY is off/);
    expect(r.out).not.toMatch(/^step freeze/m);
    await expectUnharmed(v, 'refused --track-mem');
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('seize of a vanished task says so', () => {
    expect(() => FrozenTask.freeze(2 ** 22 + 13, hostArch())).toThrow(/seize: no such process.*hint: check the PID/);
  });

  it('a killed dumper leaves a directory that restore refuses, saying the dump did not finish', async () => {
    const { planRestore } = await import('../src/restore/plan');
    const arch = hostArch();
    const dir = path.join(tmp, 'kill-step-memory');
    if (!fs.existsSync(dir)) throw new Error('runs after the SIGKILL trials');
    expect(() => planRestore(dir, { march: arch.image.march, threadInfoField: arch.image.threadInfoField, pageSize: 4096 }))
      .toThrow(/marked incomplete.*hint: dump again/);
  });
});
