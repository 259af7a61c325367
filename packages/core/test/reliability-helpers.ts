/**
 * Shared by the reliability tests: a dumper in a separate node process (so it can be SIGKILLed),
 * and checks of a victim's health.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '../../..');

/**
 * A CommonJS prelude that lets plain node load the TypeScript sources (swc, as jest does), so the
 * child never runs a stale dist/.
 */
const PRELUDE = `
const Module = require('module');
const path = require('path');
const fs = require('fs');
const root = process.env.CRIU_TS_ROOT;
const { transformSync } = require(require.resolve('@swc/core', { paths: [path.join(root, 'packages/core')] }));
const aliases = {
  '@criu/sys': 'packages/sys/src/index.ts',
  '@criu/images': 'packages/images/src/index.ts',
  '@criu/core': 'packages/core/src/index.ts',
  '@criu/arch-x86_64': 'arch/x86_64/src/index.ts',
  '@criu/arch-ppc64': 'arch/ppc64/src/index.ts',
};
const resolve = Module._resolveFilename;
Module._resolveFilename = function (req, parent, ...rest) {
  if (aliases[req]) return path.join(root, aliases[req]);
  if (req.startsWith('.') && req.endsWith('.js') && parent && parent.filename && parent.filename.endsWith('.ts')) {
    const ts = path.resolve(path.dirname(parent.filename), req.slice(0, -3) + '.ts');
    if (fs.existsSync(ts)) return ts;
  }
  return resolve.call(this, req, parent, ...rest);
};
require.extensions['.ts'] = (m, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename, jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' },
  });
  m._compile(code, filename);
};
`;

/**
 * The dumper process. argv: pid, imagesDir, mode. Modes:
 *   none             dump to the end
 *   step:<name>      SIGKILL itself when step <name> begins
 *   delay:<name>:<us> a killer thread SIGKILLs the process <us> µs after step <name> began
 *                    (the main thread is then anywhere, e.g. blocked in a ptrace loop)
 *   access           prints "access <json>": ptraceAccessProblem(pid) as this user sees it
 *   pause:<name>:<ms> holds the task (blocks) for <ms> ms when step <name> begins, then goes on
 *   trackmem         dump to the end with trackMem (memory changes tracked from here on)
 * Prints "step <name> <ms since start>" per step, then "done" or "error <message>".
 */
const DUMPER = `${PRELUDE}
const { Worker } = require('worker_threads');
const [pid, dir, mode] = process.argv.slice(2);
const [kind, stepName, usArg] = mode.split(':');
const shared = new Int32Array(new SharedArrayBuffer(8));
let killer;
if (kind === 'delay') {
  killer = new Worker(\`
    const { workerData } = require('worker_threads');
    const a = workerData.shared;
    Atomics.wait(a, 0, 0);
    const end = process.hrtime.bigint() + BigInt(workerData.us) * 1000n;
    while (process.hrtime.bigint() < end) { /* spin: sub-millisecond precision */ }
    process.kill(process.pid, 'SIGKILL');
  \`, { eval: true, workerData: { shared, us: Number(usArg) } });
}
const { dump } = require(path.join(root, 'packages/core/src/index.ts'));
if (kind === 'access') {
  const { ptraceAccessProblem } = require(path.join(root, 'packages/core/src/infect/frozen-task.ts'));
  fs.writeSync(1, 'access ' + JSON.stringify(ptraceAccessProblem(Number(pid)) ?? null) + '\\n');
  process.exit(0);
}
const go = () => dump({
  pid: Number(pid), imagesDir: dir, leaveRunning: true, trackMem: kind === 'trackmem',
  onProgress: (p) => {
    fs.writeSync(1, 'step ' + p.step + ' ' + performance.now().toFixed(3) + '\\n');
    if (kind === 'step' && p.step === stepName) process.kill(process.pid, 'SIGKILL');
    if (kind === 'pause' && p.step === stepName) Atomics.wait(shared, 1, 0, Number(usArg));
    if (kind === 'delay' && p.step === stepName) { Atomics.store(shared, 0, 1); Atomics.notify(shared, 0); }
  },
}).then(() => fs.writeSync(1, 'done\\n'), (e) => { fs.writeSync(1, 'error ' + e.message + '\\n'); process.exitCode = 1; })
  .finally(() => killer && killer.terminate());
if (killer) killer.once('online', go); else go();
`;

/**
 * The soak: argv prog, cycles, work dir. The process makes itself a child subreaper, so the test
 * program (started detached through bash, as everywhere) and every restored copy of it become its
 * children once their launcher exits: killing one at the end of a dump then reaps it at once (we
 * are its tracer and its parent) and its PID is free for the restore, instead of staying taken
 * until init reaps the zombie. Prints "sample <json>" lines and "soak done <ms>".
 */
const SOAK = `${PRELUDE}
const { execFileSync } = require('child_process');
const { sys } = require(path.join(root, 'packages/sys/src/index.ts'));
const { dump, restore } = require(path.join(root, 'packages/core/src/index.ts'));
const [prog, cyclesArg, work] = process.argv.slice(2);
const cycles = Number(cyclesArg);
sys.syscall('prctl', 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0, 0, 0);
const log = path.join(work, 'victim.log');
const closeInherited = 'for f in /proc/$$/fd/*; do f=\${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
const pid = Number(execFileSync('bash', ['-c', closeInherited + "; setsid '" + prog + "' </dev/null >" + log + ' 2>&1 & echo $!']).toString().trim());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const lines = () => fs.readFileSync(log, 'latin1').split('\\n').length;
(async () => {
  for (let t = 0; !/READY/.test(fs.readFileSync(log, 'latin1')); t++) { if (t > 500) throw new Error('no READY'); await sleep(10); }
  const dir = path.join(work, 'images');
  const t0 = Date.now();
  const sample = (i) => {
    global.gc(); global.gc();
    const m = process.memoryUsage();
    fs.writeSync(1, 'sample ' + JSON.stringify({ i, fds: fs.readdirSync('/proc/self/fd').length, heap: m.heapUsed, external: m.external, rss: m.rss, ms: Date.now() - t0 }) + '\\n');
  };
  for (let i = 0; i < cycles; i++) {
    fs.rmSync(dir, { recursive: true, force: true });
    const before = lines();
    await dump({ pid, imagesDir: dir });
    const r = await restore({ imagesDir: dir });
    if (r.pid !== pid) throw new Error('restored as ' + r.pid);
    if (i % 10 === 9) { // the restored task runs: its counter goes on
      for (let t = 0; lines() <= before; t++) { if (t > 300) throw new Error('cycle ' + i + ': no output after restore'); await sleep(5); }
    }
    if (i === 0 || i % 20 === 19) sample(i);
  }
  process.kill(pid, 'SIGTERM');
  for (let t = 0; !/PASS|FAIL/.test(fs.readFileSync(log, 'latin1')); t++) { if (t > 1000) break; await sleep(10); }
  try { sys.waitpid(pid); } catch {}
  fs.writeSync(1, 'verdict ' + (/^(PASS|FAIL).*$/m.exec(fs.readFileSync(log, 'latin1')) || ['none'])[0] + '\\n');
  fs.writeSync(1, 'soak done ' + (Date.now() - t0) + '\\n');
})().catch((e) => { fs.writeSync(1, 'error ' + (e && e.stack || e) + '\\n'); process.exitCode = 1; });
`;

/**
 * A restore in a process of its own (e.g. with capabilities dropped). argv: imagesDir. Logs to
 * restore.log there; prints "restored <pid>" or "error <json of the RestoreError's fields>".
 */
const RESTORER = `${PRELUDE}
const { restore } = require(path.join(root, 'packages/core/src/index.ts'));
const [dir] = process.argv.slice(2);
restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 }).then(
  (r) => fs.writeSync(1, 'restored ' + r.pid + '\\n'),
  (e) => {
    fs.writeSync(1, 'error ' + JSON.stringify({ name: e.name, message: e.message, step: e.step, file: e.file, field: e.field, pid: e.pid, hint: e.hint }) + '\\n');
    process.exitCode = 1;
  });
`;

let scriptDir: string | undefined;

function script(name: string, text: string): string {
  if (!scriptDir) {
    scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-reliability-'));
    fs.chmodSync(scriptDir, 0o755); // a dumper run as another user (setpriv) reads it too
  }
  const file = path.join(scriptDir, name);
  if (!fs.existsSync(file)) fs.writeFileSync(file, text, { mode: 0o644 });
  return file;
}

const dumperScript = () => script('dumper.cjs', DUMPER);

/** Runs the soak in its own node (with --expose-gc) and returns its output. */
export function runSoak(prog: string, cycles: number, work: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', script('soak.cjs', SOAK), prog, String(cycles), work], {
      env: { ...process.env, CRIU_TS_ROOT: repoRoot },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

export interface DumperRun { code: number | null; signal: NodeJS.Signals | null; out: string; ms: number }

/** How long each step of a finished run took (ms), from its "step" lines. */
export function stepDurations(out: string): Map<string, number> {
  const steps = [...out.matchAll(/^step (\S+) ([\d.]+)$/gm)].map((m) => ({ name: m[1], at: Number(m[2]) }));
  const d = new Map<string, number>();
  steps.forEach((s, i) => { if (i + 1 < steps.length) d.set(s.name, steps[i + 1].at - s.at); });
  return d;
}

/** Runs the dumper process to its end (or its death); never ptraces it. */
export function runDumper(pid: number, dir: string, mode = 'none', o: { wrapper?: string[]; onOutput?: (out: string, child: number) => void } = {}): Promise<DumperRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const argv = [...(o.wrapper ?? []), process.execPath, dumperScript(), String(pid), dir, mode];
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, CRIU_TS_ROOT: repoRoot },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; o.onOutput?.(out, child.pid!); });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, ms: Date.now() - t0 }));
  });
}

/** Runs a restore of `dir` in its own node, under `wrapper` (e.g. setpriv dropping capabilities). */
export function runRestorer(dir: string, wrapper: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const argv = [...wrapper, process.execPath, script('restorer.cjs', RESTORER), dir];
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, CRIU_TS_ROOT: repoRoot }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Fields of /proc/PID/status as a map. */
export function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/status`, 'latin1').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Resolves once the task has been scheduled again (voluntary context switches grow). */
export async function waitProgress(pid: number, timeoutMs = 5000): Promise<void> {
  const first = Number(procStatus(pid).voluntary_ctxt_switches);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const st = procStatus(pid);
    if (Number(st.voluntary_ctxt_switches) > first + 1) return;
    if (Date.now() > end) throw new Error(`task ${pid} made no progress in ${timeoutMs} ms (State: ${st.State}, TracerPid: ${st.TracerPid})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Mappings of `pid` that look like a parasite left behind (anonymous rwx, unnamed). */
export function leftoverParasites(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n').filter((l) => /^\S+ rwxp 00000000 00:00 0\s*$/.test(l));
}
