/**
 * Real programs, started as a user would start them (detached, stdout to a file), dumped,
 * killed and restored: a shell pipeline, a python3 program and a node program. Each is dumped
 * by criu-ts and, separately, by the oracle CRIU; criu-ts restores both.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, restore } from '../src';
import { killVictim, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { oracle, waitPidGone } from './helpers/oracle';
import { verdict } from './helpers/testprogs';

jest.setTimeout(120_000);
const realprogs = path.resolve(__dirname, '../../../tools/realprogs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-real-'));
const started: number[] = [];
afterAll(() => {
  started.forEach((pid) => killVictim({ pid, log: '' }));
  fs.rmSync(tmp, { recursive: true, force: true });
});

type Dumper = 'criu-ts' | 'oracle';
const DUMPERS: Dumper[] = ['criu-ts', 'oracle'];

const children = (pid: number): number[] =>
  fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
const comm = (pid: number) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
const statFields = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
const wchar = (pid: number) => Number(/wchar: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);

/** Dumps the tree under `pid` with `who`, waits for every task to vanish, restores with criu-ts. */
async function checkpointRestore(who: Dumper, pid: number, tasks: number[], name: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-${who}-`));
  if (who === 'criu-ts') {
    await dump({ pid, imagesDir: dir });
  } else {
    const r = oracle(['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4']);
    if (r.status !== 0) throw new Error(`oracle dump failed (${r.status}): ${r.stderr}`);
  }
  for (const t of tasks) await waitPidGone(t);
  await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
  return dir;
}

describe('a shell pipeline (sh -c "yes | cat | wc -c > FILE")', () => {
  it.each(DUMPERS)('dumped by %s: every stage comes back and the byte count keeps growing', async (who) => {
    const count = path.join(tmp, `pipeline-${who}.count`);
    const sh = startDetached('/bin/sh', ['-c', `yes | cat | wc -c > '${count}'`]);
    started.push(sh.pid);
    // Three children that have exec'd their programs (a child is "sh" until its exec).
    const comms = (c: number[]) => c.map((p) => { try { return comm(p); } catch { return '?'; } }).sort().join(' ');
    const stages = await waitFor('three pipeline stages', () => { const c = children(sh.pid); return c.length === 3 && comms(c) === 'cat wc yes' && c; }, 10_000);
    started.push(...stages);
    const names = Object.fromEntries(stages.map((p) => [comm(p), p]));
    expect(Object.keys(names).sort()).toEqual(['cat', 'wc', 'yes']);
    const before = stages.map((p) => statFields(p).slice(1, 4).join(' ')); // ppid pgrp session
    await checkpointRestore(who, sh.pid, [sh.pid, ...stages], 'pipeline');
    expect(children(sh.pid).sort()).toEqual([...stages].sort());
    expect(stages.map((p) => statFields(p).slice(1, 4).join(' '))).toEqual(before);
    // Bytes keep moving through the restored pipes: cat's write counter (fresh after restore) grows.
    const w0 = wchar(names.cat);
    await waitFor('cat to write more', () => wchar(names.cat) > w0 + (1 << 20), 10_000);
    const w1 = wchar(names.cat);
    process.kill(names.yes, 'SIGTERM'); // end of input: cat and wc finish, sh exits
    await waitPidGone(sh.pid);
    const total = Number(fs.readFileSync(count, 'utf8').trim());
    expect(total).toBeGreaterThanOrEqual(w1);
    expect(total % 2).toBe(0); // whole "y\n" lines: no byte lost or doubled in the pipes
  });
});

describe('a python3 program (a worker thread, a log file, SIGTERM handler)', () => {
  it.each(DUMPERS)('dumped by %s: goes on and passes its own checks', async (who) => {
    const logFile = path.join(tmp, `python-${who}.log`);
    const v = startDetached('python3', [path.join(realprogs, 'counter.py'), logFile]);
    started.push(v.pid);
    await waitFor('python READY', () => /READY python /.test(readLog(v)), 20_000);
    await checkpointRestore(who, v.pid, [v.pid], 'python');
    const n = ticks(v);
    await waitFor('python ticks after restore', () => ticks(v) > n + 2, 10_000);
    expect(await verdict(v, 15_000)).toMatch(/^PASS python \d+ *$/);
  });
});

describe('a node program (setInterval timer)', () => {
  it.each(DUMPERS)('dumped by %s: the timer keeps ticking', async (who) => {
    const v = startDetached(process.execPath, [path.join(realprogs, 'timer.js')]);
    started.push(v.pid);
    await waitFor('node READY', () => /READY node /.test(readLog(v)), 20_000);
    await checkpointRestore(who, v.pid, [v.pid], 'node');
    const n = ticks(v);
    await waitFor('node ticks after restore', () => ticks(v) > n + 2, 10_000);
    expect(await verdict(v, 15_000)).toMatch(/^PASS node \d+$/);
  });
});

function ticks(v: Victim): number {
  const nums = readLog(v).split('\n').filter((l) => /^\d+$/.test(l));
  return nums.length ? Number(nums[nums.length - 1]) : 0;
}
