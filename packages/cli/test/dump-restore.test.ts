// `criu dump` and `criu restore` through the built executable (bin/criu.cjs -> dist), on real
// detached test programs; the oracle CRIU restores what we dump.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DUMP_STEPS } from '@criu/core';
import { oracle, oracleRestore, requireOracle, waitPidGone } from '../../core/test/helpers/oracle';
import { startTestprog, testprog, verdict } from '../../core/test/helpers/testprogs';
import { isAlive, killVictim, lastCounter, readLog, startDetached, waitFor, type Victim } from '../../core/test/helpers/victims';

const BIN = path.join(__dirname, '../bin/criu.cjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cli-'));
const started: Victim[] = [];

function criu(args: string[], cwd = tmp) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function counter(): Promise<Victim> {
  const v = await startTestprog('counter');
  started.push(v);
  await waitFor('the counter to tick', () => lastCounter(v) >= 2, 10_000);
  return v;
}

const noStackTrace = (s: string) => expect(s).not.toMatch(/\n\s+at /);
const logLine = /^\(\d{2,}\.\d{6}\) /;

beforeAll(() => {
  if (!fs.existsSync(path.join(__dirname, '../dist/index.cjs'))) throw new Error('packages/cli is not built: run `pnpm exec tsup` (turbo builds before testing)');
  requireOracle();
});
afterAll(() => {
  started.forEach(killVictim);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('criu dump', () => {
  test('kills the task and writes images the oracle CRIU restores; the counter goes on', async () => {
    const v = await counter();
    const dir = path.join(tmp, 'dump-kill');
    const r = criu(['dump', '-t', String(v.pid), '-D', dir]);
    expect(r).toMatchObject({ status: 0, stdout: '', stderr: '' });
    expect(fs.existsSync(path.join(dir, `core-${v.pid}.img`))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'criu-ts.incomplete'))).toBe(false);
    await waitPidGone(v.pid);
    const before = lastCounter(v);
    oracleRestore(dir);
    await waitFor('the counter after restore', () => lastCounter(v) >= before + 3, 10_000);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('--leave-running (and -R) keep the task running', async () => {
    for (const flag of ['--leave-running', '-R']) {
      const v = await counter();
      const dir = path.join(tmp, `dump-leave${flag}`);
      const r = criu(['dump', '-t', String(v.pid), '-D', dir, flag]);
      expect({ flag, status: r.status, stderr: r.stderr }).toEqual({ flag, status: 0, stderr: '' });
      expect(fs.existsSync(path.join(dir, 'pages-1.img'))).toBe(true);
      const after = lastCounter(v);
      await waitFor('the counter to keep going', () => lastCounter(v) >= after + 3, 10_000);
      expect(isAlive(v.pid)).toBe(true);
      expect(await verdict(v)).toMatch(/^PASS counter/);
    }
  });

  test('a PID that does not exist: exit 1, one clear error line and a hint, no stack trace', () => {
    const r = criu(['dump', '-t', '999999999', '-D', path.join(tmp, 'nopid')]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^Error \(criu-ts\): dump of task 999999999 failed at step "check-task": no such process/);
    expect(lines[1]).toBe('Hint: check the PID');
    expect(lines).toHaveLength(2);
    noStackTrace(r.stderr);
  });

  test('command-line mistakes: no -t, a bad PID, an option we do not have; exit 1 and the task untouched', async () => {
    expect(criu(['dump', '-D', tmp])).toMatchObject({ status: 1, stderr: expect.stringContaining('no pid specified (-t option)') });
    expect(criu(['dump', '-t', 'abc'])).toMatchObject({ status: 1, stderr: expect.stringContaining("expects a number, got 'abc'") });
    const v = await counter();
    const r = criu(['dump', '-t', String(v.pid), '-D', path.join(tmp, 'stopped'), '--leave-stopped']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('option --leave-stopped is not supported by criu-ts dump yet');
    const now = lastCounter(v);
    await waitFor('the counter to keep going', () => lastCounter(v) >= now + 2, 10_000);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('-o LOG is relative to the images dir (or -W), truncated, with timestamped lines; -v3 prints steps', async () => {
    const v = await counter();
    const dir = path.join(tmp, 'dump-log');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'dump.log'), 'stale content\n'.repeat(100));
    // relative -D: from the current directory, like CRIU
    const r = criu(['dump', '-t', String(v.pid), '-D', 'dump-log', '-o', 'dump.log', '-v3', '--leave-running']);
    expect(r.status).toBe(0);
    const log = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
    expect(log).not.toContain('stale');
    const lines = log.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(5);
    for (const l of lines) expect(l).toMatch(logLine);
    expect(log).toContain('Dumping finished successfully');
    expect(r.stderr).toContain(`criu: dump step 1/${DUMP_STEPS.length}: check-task`);
    expect(r.stderr).toContain(`criu: dump step ${DUMP_STEPS.length}/${DUMP_STEPS.length}: finish`);
    expect(fs.existsSync(path.join(tmp, 'dump.log'))).toBe(false);

    // -W: the log goes to the work dir; an absolute -o goes where it says
    const work = path.join(tmp, 'work');
    fs.mkdirSync(work);
    expect(criu(['dump', '-t', String(v.pid), '-D', path.join(tmp, 'dump-w'), '-W', work, '-o', 'w.log', '-v4', '-R', '--tcp-established']).status).toBe(0);
    expect(fs.readFileSync(path.join(work, 'w.log'), 'utf8').split('\n')[0]).toMatch(logLine);
    // an option that only permits what the engine refuses anyway: accepted, with a warning
    expect(fs.readFileSync(path.join(work, 'w.log'), 'utf8')).toMatch(/\) Warn: option --tcp-established has no effect in criu-ts dump; ignored\n/);
    // a new log file is private, as CRIU creates it
    expect(fs.statSync(path.join(work, 'w.log')).mode & 0o777).toBe(0o600);
    const abs = path.join(tmp, 'abs.log');
    expect(criu(['dump', '-t', String(v.pid), '-D', path.join(tmp, 'dump-abs'), '-o', abs, '-vv', '-R']).status).toBe(0);
    expect(fs.readFileSync(abs, 'utf8')).toMatch(/dump step \d+\/\d+: freeze/);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('--pidfile F: accepted; a plain dump writes no pid file, as the oracle CRIU writes none', async () => {
    const v = await counter();
    const ours = path.join(tmp, 'dump-pidfile');
    const r = criu(['dump', '-t', String(v.pid), '-D', ours, '-o', 'dump.log', '--pidfile', 'dump.pid', '-R']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(fs.readFileSync(path.join(ours, 'dump.log'), 'utf8')).toMatch(/\) Warn: option --pidfile has no effect in criu-ts dump; ignored\n/);
    expect(fs.existsSync(path.join(ours, `core-${v.pid}.img`))).toBe(true);
    const theirs = path.join(tmp, 'dump-pidfile-oracle');
    fs.mkdirSync(theirs);
    expect(oracle(['dump', '-t', String(v.pid), '-D', theirs, '-o', 'dump.log', '--pidfile', 'dump.pid', '--leave-running']).status).toBe(0);
    for (const dir of [ours, theirs, tmp]) expect(fs.existsSync(path.join(dir, 'dump.pid'))).toBe(false);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('a failed dump with -o: the error on stderr names the log, which has it too; the task runs on', async () => {
    const v = await counter();
    const dir = path.join(tmp, 'dump-fault');
    const r = spawnSync(process.execPath, [BIN, 'dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log'], {
      encoding: 'utf8',
      env: { ...process.env, CRIU_TS_FAULT_STEP: 'memory' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^Error \(criu-ts\): dump of task \d+ failed at step "memory": injected fault/);
    expect(r.stderr).toContain(`See ${path.join(dir, 'dump.log')} for details`);
    noStackTrace(r.stderr);
    expect(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8')).toMatch(/^\(\d+\.\d{6}\) Error: dump of task \d+ failed at step "memory"/m);
    const now = lastCounter(v);
    await waitFor('the counter to keep going', () => lastCounter(v) >= now + 2, 10_000);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('without -o the log goes to stderr at the chosen level; CRIU_TS_DEBUG=1 adds the stack', () => {
    const r = criu(['dump', '-t', '999999999', '-D', path.join(tmp, 'nopid2'), '-v4']);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')[0]).toMatch(/^\(\d+\.\d{6}\) Version: 4\.1 \(criu-ts /);
    expect(r.stderr).toContain('dump step 1/');
    // the failure itself is printed once, as the summary
    expect(r.stderr.match(/failed at step/g)).toHaveLength(1);
    const d = spawnSync(process.execPath, [BIN, 'dump', '-t', '999999999', '-D', path.join(tmp, 'nopid3')], { encoding: 'utf8', env: { ...process.env, CRIU_TS_DEBUG: '1' } });
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/\n\s+at /);
  });

  test('--ghost-limit: a deleted file bigger than the limit is refused (8K), a bigger limit (1M) dumps it', async () => {
    const work = fs.mkdtempSync(path.join(tmp, 'ghost-'));
    const v = await startTestprog('ghost', [work]);
    started.push(v);
    const small = criu(['dump', '-t', String(v.pid), '-D', path.join(work, 'small'), '--ghost-limit', '8K']);
    expect(small.status).toBe(1);
    expect(small.stderr).toContain(`task ${v.pid} fd 3: ${work}/ghost.dat (deleted) (deleted file) is too big for a ghost image (10500 bytes, the limit is 8192: see --ghost-limit)`);
    expect(criu(['dump', '-t', String(v.pid), '-D', path.join(work, 'bad'), '--ghost-limit', '8Q']).stderr).toMatch(/invalid --ghost-limit '8Q'/);
    const ok = criu(['dump', '-t', String(v.pid), '-D', path.join(work, 'big'), '--ghost-limit', '1M', '-R']);
    expect(ok).toMatchObject({ status: 0, stderr: '' });
    expect(fs.existsSync(path.join(work, 'big', 'ghost-file-2.img'))).toBe(true);
    expect(await verdict(v)).toMatch(/^PASS ghost/);
  });
});

describe('criu restore', () => {
  test('an images dir that does not exist or an option we do not have: exit 1 with a message', () => {
    const r = criu(['restore', '-D', path.join(tmp, 'no-such-dir'), '-d']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`can't change directory to ${path.join(tmp, 'no-such-dir')}`);
    const s = criu(['restore', '-D', tmp, '--restore-sibling']);
    expect(s.status).toBe(1);
    expect(s.stderr).toContain('option --restore-sibling is not supported by criu-ts restore yet');
  });

  test('our dump, then our restore -d --pidfile: the counter continues where it was', async () => {
    const v = await counter();
    const dir = path.join(tmp, 'ours');
    expect(criu(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4']).status).toBe(0);
    await waitPidGone(v.pid);
    const before = lastCounter(v);
    const r = criu(['restore', '-D', dir, '-d', '--pidfile', 'restore.pid', '-o', 'restore.log', '-v4']);
    expect(r.status).toBe(0);
    // -v4: step progress on stderr, nothing else
    expect(r.stderr).toMatch(/^criu: restore step 1\/\d+: /);
    for (const l of r.stderr.trimEnd().split('\n')) expect(l).toMatch(/^criu: restore step \d+\/\d+: [a-z-]+$/);
    expect(fs.readFileSync(path.join(dir, 'restore.pid'), 'utf8').trim()).toBe(String(v.pid));
    expect(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8')).toContain('Restore finished successfully');
    await waitFor('the counter after restore', () => lastCounter(v) >= before + 3, 10_000);
    const after = readLog(v).split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
    expect(after[after.indexOf(before) + 1]).toBe(before + 1);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  test('--force-vdso-proxy: the dumped vDSO becomes a proxy of the running one (same kernel), vdsotime passes; a second dump recognises the proxy', async () => {
    const v = await startTestprog('vdsotime');
    started.push(v);
    await new Promise((r) => setTimeout(r, 200));
    const dir = path.join(tmp, 'vdso-proxy');
    expect(criu(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4']).status).toBe(0);
    await waitPidGone(v.pid);
    const r = criu(['restore', '-D', dir, '-d', '--force-vdso-proxy', '-o', 'restore.log', '-v3']);
    expect({ status: r.status, stderr: r.stderr.split('\n').filter((l) => !/^criu: restore step /.test(l)).join('\n') }).toEqual({ status: 0, stderr: '' });
    const log = fs.readFileSync(path.join(dir, 'restore.log'), 'utf8');
    expect(log).toMatch(new RegExp(`task ${v.pid}: a proxy was asked for: the dumped vDSO at 0x[0-9a-f]+ becomes a proxy of the running one`));
    expect(log).toMatch(/vDSO proxy forwards [1-9]\d* symbols/);
    expect(log).not.toMatch(/the running vDSO is the dumped one: moved/);
    // The restored task runs with the proxy, and a dump of it says so.
    const again = path.join(tmp, 'vdso-proxy-again');
    expect(criu(['dump', '-t', String(v.pid), '-D', again, '-R', '-o', 'dump.log', '-v4']).status).toBe(0);
    expect(fs.readFileSync(path.join(again, 'dump.log'), 'utf8')).toMatch(new RegExp(`task ${v.pid}: 0x[0-9a-f]+-0x[0-9a-f]+ is a vDSO proxy from an earlier restore`));
    expect(await verdict(v)).toMatch(/^PASS vdsotime/);
  });

  test('restore without -d stays until the restored task exits, then exits 0 (as CRIU)', async () => {
    const v = await counter();
    const dir = path.join(tmp, 'ours-wait');
    expect(criu(['dump', '-t', String(v.pid), '-D', dir]).status).toBe(0);
    await waitPidGone(v.pid);
    const before = lastCounter(v);
    const child = spawn(process.execPath, [BIN, 'restore', '-D', dir, '-o', 'restore.log'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let exited: number | null | undefined;
    const done = new Promise<void>((resolve) => child.on('exit', (code) => { exited = code; resolve(); }));
    await waitFor('the counter after restore', () => lastCounter(v) >= before + 5 || exited !== undefined, 20_000);
    expect({ exited, stderr }).toEqual({ exited: undefined, stderr: '' });
    expect(await verdict(v)).toMatch(/^PASS counter/);
    await done;
    expect({ exited, stderr }).toEqual({ exited: 0, stderr: '' });
  });

  test('a directory without images: exit 1, the engine error in one line, no stack trace', () => {
    const dir = path.join(tmp, 'empty');
    fs.mkdirSync(dir);
    const r = criu(['restore', '-D', dir, '-d', '-o', 'restore.log']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^Error \(criu-ts\): restore failed at step "[a-z-]+": .*inventory\.img/);
    expect(r.stderr).toContain(`See ${path.join(dir, 'restore.log')} for details`);
    noStackTrace(r.stderr);
  });
});

describe('an external network namespace: criu dump --external net[INODE]:KEY, criu restore --inherit-fd fd[N]:KEY', () => {
  test('the task comes back in the namespace whose descriptor the restore was given', async () => {
    // counter in a network namespace of its own (unshare execs it: the root task is the counter).
    const v = startDetached('unshare', ['-n', testprog('counter')]);
    started.push(v);
    await waitFor('the counter to tick', () => lastCounter(v) >= 2, 10_000);
    const link = fs.readlinkSync(`/proc/${v.pid}/ns/net`);
    expect(link).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    const ino = /\[(\d+)\]/.exec(link)![1];
    // Held open here, the namespace outlives the dumped task.
    const nsFd = fs.openSync(`/proc/${v.pid}/ns/net`, 'r');
    try {
      const dir = path.join(tmp, 'extnet');
      const refused = criu(['dump', '-t', String(v.pid), '-D', path.join(tmp, 'extnet-refused')]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`network namespace \\(net:\\[${ino}\\]\\) is not the dumper's[^]*--external net\\[${ino}\\]:KEY`));
      expect(isAlive(v.pid)).toBe(true);
      expect(criu(['dump', '-t', String(v.pid), '-D', dir, '--external', `net[${ino}]:extNet`])).toMatchObject({ status: 0, stderr: '' });
      await waitPidGone(v.pid);
      const netns = fs.readdirSync(dir).filter((f) => /^netns-\d+\.img$/.test(f));
      expect(netns).toEqual(['netns-9.img']);
      // Without the descriptor: refused naming the image and its key, nothing restored.
      const missing = criu(['restore', '-D', dir, '-d', '-o', 'restore-missing.log']);
      expect(missing.status).toBe(1);
      expect(missing.stderr).toMatch(/external \(key 'extNet'\).*file netns-9\.img, record 0, field ext_key/);
      const before = lastCounter(v);
      const r = spawnSync(process.execPath, [BIN, 'restore', '-D', dir, '-d', '-o', 'restore.log', '--inherit-fd', 'fd[3]:extNet'], { cwd: tmp, encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe', nsFd] });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
      expect(fs.readlinkSync(`/proc/${v.pid}/ns/net`)).toBe(link);
      await waitFor('the counter after restore', () => lastCounter(v) >= before + 3, 10_000);
      expect(await verdict(v)).toMatch(/^PASS counter/);
    } finally {
      fs.closeSync(nsFd);
    }
  });
});
