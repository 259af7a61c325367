/**
 * Proves the test programs of tools/testprogs themselves right, before any test trusts them
 * to judge criu-ts: each must PASS on SIGTERM when left alone, and PASS after the oracle CRIU
 * dumped and restored it. Their checks must also be able to fail: the madvise program run in
 * full fails after an oracle round trip, because CRIU 4.1 loses MADV_WIPEONFORK (see below).
 *
 * Runs are concurrent (a small pool for the oracle round trips) so the file stays well under
 * 90 s; each `it` awaits its own run.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OWN_SUITE, PROGRAMS, type TestProgram } from './helpers/programs';
import { ORACLE_CRIU, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';
import { readLog, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';

const { dir: tmp, started } = testWorkspace('testprogs');

/**
 * Arguments for the oracle run that differ from the manifest's, with the reason.
 * madvise: CRIU 4.1 does not record VM_WIPEONFORK ("wf" in smaps VmFlags) in VmaEntry.madv
 * at dump time, so its restore brings the region back without the flag. The oracle run leaves
 * that one region out; every other flag is checked. (The full program is run through the
 * oracle too, below, and must fail on exactly that flag.)
 */
const ORACLE_ARGS: Record<string, (work: string) => string[]> = {
  madvise: () => ['nowipe'],
  // CRIU 4.1 restores a connection a listener accepted without the listener's name (getsockname
  // of the accepted end, getpeername of the client): the oracle run leaves those two names out.
  unixnamed: (work) => [work, 'noacceptname'],
  // CRIU 4.1 does not restore the personality (and records it as the hex digits of
  // /proc/PID/personality read as decimal, which criu-ts's restore reads back: suite.test.ts).
  robust: () => ['nopers'],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runCriu(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(ORACLE_CRIU, ['--no-default-config', ...args], { timeout: 60_000 }, (err, _out, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr });
    });
  });
}

function logTail(v: Victim): string {
  return readLog(v).split('\n').slice(-6).join('\n');
}

/** Start, settle, SIGTERM: the last line, plus the log's tail if it is not a PASS. */
async function plainRun(p: TestProgram, work: string): Promise<string> {
  p.setup?.(work);
  const v = await startTestprog(p.name, p.args?.(work) ?? [], p.readyPid);
  started.push(v);
  await sleep(Math.max(p.settleMs ?? 0, 300));
  const line = await verdict(v, 15_000);
  return line.startsWith('PASS') ? line : `${line}\n--- log ---\n${logTail(v)}`;
}

/** Start, settle, oracle dump, wait for the PID to go, oracle restore, SIGTERM. */
async function oracleRun(p: TestProgram, work: string, args: string[]): Promise<string> {
  p.setup?.(work);
  const v = await startTestprog(p.name, args, p.readyPid);
  started.push(v);
  await sleep(Math.max(p.settleMs ?? 0, 300));
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  const d = await runCriu(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4', ...(p.oracleOptions ?? [])]);
  if (d.code !== 0) {
    const log = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
    const known = p.oracleDumpFails?.exec(log);
    // A dump the oracle cannot do on this kernel: it must fail that way and leave the task running.
    if (known) return `KNOWN ORACLE FAILURE ${p.name}: ${known[0]}; then ${await verdict(v, 15_000)}`;
    return `oracle dump failed (${d.code}): ${log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`;
  }
  if (p.oracleDumpFails) return `oracle dump of ${p.name} succeeded: ${p.oracleDumpFails} is no longer a known failure (update programs.ts)`;
  await waitPidGone(v.pid);
  oracleRestore(dir, [...(p.oracleOptions ?? []), ...(p.readyPid ? ['--pidfile', 'restored.pid'] : [])]);
  // A root in a pid namespace of its own comes back with another pid on the host.
  if (p.readyPid) v.pid = Number(fs.readFileSync(path.join(dir, 'restored.pid'), 'utf8'));
  const line = await verdict(v, 15_000);
  return line.startsWith('PASS') ? line : `${line}\n--- log ---\n${logTail(v)}`;
}

/** A tiny promise pool: at most `limit` jobs at a time, results in a map by key. */
function pool(limit: number, jobs: [string, () => Promise<string>][]): Map<string, Promise<string>> {
  const out = new Map<string, Promise<string>>();
  const queue: (() => void)[] = [];
  let running = 0;
  const next = () => {
    if (running < limit && queue.length) {
      running++;
      queue.shift()!();
    }
  };
  for (const [key, job] of jobs) {
    out.set(key, new Promise<string>((resolve) => {
      queue.push(() => {
        job()
          .catch((e: unknown) => `error: ${e instanceof Error ? e.message : String(e)}`)
          .then((r) => {
            running--;
            resolve(r);
            next();
          });
      });
    }));
  }
  for (let i = 0; i < limit; i++) next();
  return out;
}

function workDir(kind: string, name: string): string {
  const d = path.join(tmp, kind, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

let plain: Map<string, Promise<string>>;
let viaOracle: Map<string, Promise<string>>;

beforeAll(() => {
  requireOracle();
  // Plain runs mostly sleep: all at once. Oracle round trips: a few at a time (2 cores).
  plain = pool(PROGRAMS.length, PROGRAMS.map((p) => [p.name, () => plainRun(p, workDir('plain', p.name))]));
  const oracleJobs: [string, () => Promise<string>][] = PROGRAMS.map((p) => [
    p.name,
    () => {
      const work = workDir('oracle', p.name);
      return oracleRun(p, work, ORACLE_ARGS[p.name]?.(work) ?? p.args?.(work) ?? []);
    },
  ]);
  oracleJobs.push(['madvise-full', () => oracleRun({ name: 'madvise' }, workDir('oracle', 'madvise-full'), [])]);
  oracleJobs.push(['unixnamed-full', () => { const w = workDir('oracle', 'unixnamed-full'); return oracleRun({ name: 'unixnamed' }, w, [w]); }]);
  viaOracle = pool(5, oracleJobs);
});

describe('the manifest', () => {
  it('lists every program of tools/testprogs exactly once (or names the suite of its own)', () => {
    const dir = path.resolve(__dirname, '../../../tools/testprogs');
    const sources = fs.readdirSync(dir).filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2)).sort();
    expect([...PROGRAMS.map((p) => p.name), ...Object.keys(OWN_SUITE)].sort()).toEqual(sources);
    for (const suite of Object.values(OWN_SUITE)) expect(fs.existsSync(path.resolve(__dirname, '..', suite))).toBe(true);
    expect(sources.length).toBeGreaterThanOrEqual(20);
  });
});

describe('each test program PASSes on SIGTERM when left alone', () => {
  it.each(PROGRAMS.map((p) => p.name))('%s', async (name) => {
    expect(await plain.get(name)).toMatch(new RegExp(`^PASS ${name}(\\s|$)`));
  });
});

describe('each test program PASSes after an oracle dump and restore', () => {
  it.each(PROGRAMS.filter((p) => !p.oracleDumpFails).map((p) => p.name))('%s', async (name) => {
    expect(await viaOracle.get(name)).toMatch(new RegExp(`^PASS ${name}(\\s|$)`));
  });

  // inet sockets: CRIU 4.1's dump fails on this kernel (programs.ts ORACLE_INET_FAILURE).
  it.each(PROGRAMS.filter((p) => p.oracleDumpFails).map((p) => p.name))('%s: the oracle dump fails as known, and the task runs on', async (name) => {
    expect(await viaOracle.get(name)).toMatch(new RegExp(`^KNOWN ORACLE FAILURE ${name}: .*; then PASS ${name}(\\s|$)`));
  });

  it('madvise in full detects that CRIU 4.1 drops MADV_WIPEONFORK (its checks can fail)', async () => {
    expect(await viaOracle.get('madvise-full')).toMatch(/^FAIL madvise wipe: VmFlags .* lacks 'wf'/);
  });

  it('unixnamed in full detects that CRIU 4.1 loses the name of an accepted connection', async () => {
    expect(await viaOracle.get('unixnamed-full')).toMatch(/^FAIL unixnamed names of the accepted connection: local 0, peer of the client 0/);
  });
});
