import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readImageFile, pageRuns } from '@criu/images';
import { dump, DumpError, DUMP_STEPS, INCOMPLETE_MARKER, readMaps } from '../src';
import { isAlive, lastCounter, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { critDecode, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, testprog, verdict } from './helpers/testprogs';

const { dir: tmp, started } = testWorkspace('dump');

async function start(name: string, args: string[] = []): Promise<Victim> {
  const v = await startTestprog(name, args);
  started.push(v);
  return v;
}

function counterOf(v: Victim, re = /^(\d+)$/gm): number {
  let last = -1;
  for (const m of readLog(v).matchAll(re)) last = Number(m[1]);
  return last;
}

describe('dump on x86_64: images that the oracle CRIU restores', () => {
  beforeAll(() => requireOracle());

  it('a counter continues from where it was', async () => {
    const v = await start('counter');
    await waitFor('a few ticks', () => lastCounter(v) >= 0 || /count/.test(readLog(v)));
    const dir = path.join(tmp, 'counter');
    const res = await dump({ pid: v.pid, imagesDir: dir });
    expect(res.stats.pagesWritten).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(dir, INCOMPLETE_MARKER))).toBe(false);
    const atDump = readLog(v).length;
    await waitPidGone(v.pid);
    oracleRestore(dir);
    await waitFor('output after restore', () => readLog(v).length > atDump + 20);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });

  it('our images decode with crit, and pages-1.img holds exactly the pages the pagemap counts', async () => {
    const dir = path.join(tmp, 'counter');
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.img') && !f.startsWith('pages-'))) {
      const j = critDecode(path.join(dir, f));
      expect(j.entries.length).toBeGreaterThan(0);
    }
    const pm = fs.readdirSync(dir).find((f) => f.startsWith('pagemap-'))!;
    const { entries } = await readImageFile(path.join(dir, pm));
    const pages = pageRuns(entries, 4096).reduce((n, r) => n + r.nrPages, 0);
    expect(fs.statSync(path.join(dir, 'pages-1.img')).size).toBe(pages * 4096);
  });

  it('a 256 MiB region keeps its checksum', async () => {
    const v = await start('mem', ['256']);
    const dir = path.join(tmp, 'mem256');
    const res = await dump({ pid: v.pid, imagesDir: dir });
    expect(res.stats.pagesWritten * 4096).toBeGreaterThanOrEqual(256 << 20);
    await waitPidGone(v.pid);
    oracleRestore(dir);
    await new Promise((r) => setTimeout(r, 300));
    expect(await verdict(v)).toMatch(/^PASS mem\b/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a 64 MiB region keeps its checksum', async () => {
    const v = await start('mem64');
    const dir = path.join(tmp, 'mem64');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    oracleRestore(dir);
    await new Promise((r) => setTimeout(r, 300));
    expect(await verdict(v)).toMatch(/^PASS mem64/);
  });

  it('an open file keeps its offset and an O_APPEND log keeps growing', async () => {
    const input = path.join(tmp, 'input.bin');
    fs.writeFileSync(input, Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 251)));
    const logFile = path.join(tmp, 'fileio.log');
    const v = await start('fileio', [input, logFile]);
    await waitFor('some lines', () => fs.readFileSync(logFile, 'utf8').split('\n').length > 5);
    const dir = path.join(tmp, 'fileio');
    await dump({ pid: v.pid, imagesDir: dir });
    const lines = fs.readFileSync(logFile, 'utf8').split('\n').length;
    await waitPidGone(v.pid);
    oracleRestore(dir);
    await waitFor('log to grow after restore', () => fs.readFileSync(logFile, 'utf8').split('\n').length > lines + 3);
    expect(await verdict(v)).toMatch(/^PASS fileio/);
  });

  it('--leave-running leaves the task running; the default kills it', async () => {
    const v = await start('counter');
    await dump({ pid: v.pid, imagesDir: path.join(tmp, 'leave'), leaveRunning: true });
    const before = counterOf(v, /(\d+)/g);
    await waitFor('counter to advance after a leave-running dump', () => counterOf(v, /(\d+)/g) > before);
    await dump({ pid: v.pid, imagesDir: path.join(tmp, 'kill') });
    await waitFor('the task to die', () => !isAlive(v.pid));
  });
});

describe('personality', () => {
  it('one CRIU\'s image format cannot record (hex digits a-f) is refused at check-task; the task runs on', async () => {
    // ADDR_LIMIT_3GB | STICKY_TIMEOUTS: /proc/PID/personality reads 0c000000, which CRIU's atoi keeps as 0.
    const v = startDetached('setarch', [os.machine(), '--3gb', '--sticky-timeouts', testprog('counter')]);
    started.push(v);
    await waitFor('counter READY', () => /READY counter/.test(readLog(v)), 10_000);
    expect(fs.readFileSync(`/proc/${v.pid}/personality`, 'latin1').trim()).toBe('0c000000');
    const err = await dump({ pid: v.pid, imagesDir: path.join(tmp, 'pers-af') }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect(err.step).toBe('check-task');
    expect(err.message).toContain(`task ${v.pid} has personality 0x0c000000, which CRIU's image format cannot record`);
    const before = readLog(v).length;
    await waitFor('the task to keep running', () => readLog(v).length > before);
    expect(await verdict(v)).toMatch(/^PASS counter/);
  });
});

/**
 * The programs each fault runs on: the counter (a counter and its shadow copy), and mem with
 * 16 MiB whose checksums it re-verifies every ~100 ms and on SIGTERM (memory intact).
 */
const FAULT_PROGRAMS: Array<[string, string[]]> = [['counter', []], ['mem', ['16']]];
const sigBlk = (pid: number) => /^SigBlk:\s+([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];

describe('a dump that fails at any step leaves the task running as before', () => {
  // 'finish' fails on entry, before the tasks are killed or released (dump.ts step()).
  it.each(DUMP_STEPS.flatMap((s) => FAULT_PROGRAMS.map(([name, args]) => [s, name, args] as const)))('fault at %s: %s', async (step, name, args) => {
    const v = await start(name, [...args]);
    const maps = readMaps(v.pid).map((m) => `${m.start}-${m.end} ${m.perms}`).join('\n');
    const blocked = sigBlk(v.pid);
    expect(blocked).toMatch(/^[0-9a-f]{16}$/);
    const dir = path.join(tmp, `fault-${step}-${name}`);
    const err = await dump({ pid: v.pid, imagesDir: dir, faultAt: step }).catch((e) => e);
    expect(err).toBeInstanceOf(DumpError);
    expect(err.step).toBe(step);
    expect(isAlive(v.pid)).toBe(true);
    expect(readMaps(v.pid).map((m) => `${m.start}-${m.end} ${m.perms}`).join('\n')).toBe(maps); // no parasite left
    expect(fs.readFileSync(`/proc/${v.pid}/status`, 'latin1')).toMatch(/TracerPid:\s+0\n/);
    expect(sigBlk(v.pid)).toBe(blocked);
    const before = readLog(v).length;
    await waitFor('the task to keep running', () => readLog(v).length > before);
    if (fs.existsSync(dir) && DUMP_STEPS.indexOf(step) >= DUMP_STEPS.indexOf('prepare-dir')) {
      expect(fs.existsSync(path.join(dir, INCOMPLETE_MARKER))).toBe(true);
    }
    expect(await verdict(v)).toMatch(new RegExp(`^PASS ${name}\\b`));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
