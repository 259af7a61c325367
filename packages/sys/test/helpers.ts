// Test support: build the C tracee, start processes detached from Node (never as child_process
// children: libuv would reap their ptrace stops), read their logs, and clean up.
import { execFileSync, execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BACKEND_NAMES, SysError, WAIT, type BackendName, type Sys } from '../src/index';

export const TARGET_SOURCE = path.resolve(__dirname, '../../../tools/testprogs/sys/target.c');

/** Both backends; ffi-rs must load on x86_64 (it has a binary there), so it is never skipped on it. */
export const BACKENDS: readonly BackendName[] = BACKEND_NAMES;

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `criu-sys-${tag}-`));
}

/** Compiles tools/testprogs/sys/target.c into `dir`. */
export function buildTarget(dir: string): string {
  const exe = path.join(dir, 'target');
  execFileSync('cc', ['-O1', '-Wall', '-o', exe, TARGET_SOURCE], { stdio: 'pipe' });
  return exe;
}

export interface Started {
  pid: number;
  log: string;
}

/** Starts `argv` in its own session, reparented away from us; output goes to `log`. */
export function startDetached(argv: readonly string[], log: string): Started {
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const out = execSync(`setsid ${quoted} </dev/null >'${log}' 2>&1 & echo $!`, { shell: '/bin/sh', encoding: 'utf8' });
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`could not start ${argv.join(' ')}: ${out}`);
  return { pid, log };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `log` contains a line matching `re` (searched from byte `from`); returns the match. */
export async function waitForLog(log: string, re: RegExp, timeoutMs = 5000, from = 0): Promise<RegExpMatchArray> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(from) : '';
    const m = text.match(re);
    if (m) return m;
    if (Date.now() > end) throw new Error(`timed out waiting for ${re} in ${log}; last output:\n${text.slice(-400)}`);
    await sleep(10);
  }
}

export function logSize(log: string): number {
  return fs.statSync(log).size;
}

/** Lines with a tick number, from byte `from` on. */
export function ticks(log: string, from = 0): number[] {
  return [...fs.readFileSync(log, 'utf8').slice(from).matchAll(/^tick (\d+)/gm)].map((m) => Number(m[1]));
}

export interface TargetInfo extends Started {
  pattern: bigint;
  word: bigint;
}

/** Starts the tracee and waits for its "ready" line. */
export async function startTarget(exe: string, dir: string, name: string): Promise<TargetInfo> {
  const s = startDetached([exe], path.join(dir, `${name}.log`));
  const m = await waitForLog(s.log, /^ready pid=(\d+) pattern=(0x[0-9a-f]+) word=(0x[0-9a-f]+)$/m);
  if (Number(m[1]) !== s.pid) throw new Error(`started pid ${s.pid} but the program says ${m[1]}`);
  await waitForLog(s.log, /^tick 1 /m);
  return { ...s, pattern: BigInt(m[2]), word: BigInt(m[3]) };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').match(/\) Z /);
  } catch {
    return false;
  }
}

/** Kills a process we started and, if we trace it, reaps it so nothing is left behind. */
export function killAndReap(sys: Sys, pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return; // already gone
  }
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    try {
      const st = sys.waitpid(pid, WAIT.__WALL | WAIT.WNOHANG);
      if (st && (st.kind === 'exited' || st.kind === 'signaled')) return;
    } catch (e) {
      if (SysError.is(e, 'ECHILD')) return; // not our tracee: init reaps it
      throw e;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}
