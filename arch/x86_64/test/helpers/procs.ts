/** Builds the C fixtures of this package and runs them detached from Node (never child_process-owned). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-x86-'));

/** Compiles test/fixtures/<name>.c (non-PIE, so code addresses are the same in every run). */
export function buildFixture(name: string): string {
  const out = path.join(buildDir, name);
  if (!fs.existsSync(out)) execFileSync('cc', ['-O1', '-no-pie', '-Wall', '-o', out, path.join(__dirname, '..', 'fixtures', `${name}.c`)]);
  return out;
}

export interface Proc { pid: number; log: string }

export function startDetached(prog: string, args: string[] = []): Proc {
  const log = path.join(buildDir, `${path.basename(prog)}-${Date.now()}-${Math.random().toString(36).slice(2)}.log`);
  const quoted = [prog, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const pid = Number(execFileSync('sh', ['-c', `setsid ${quoted} </dev/null >${log} 2>&1 & echo $!`]).toString().trim());
  return { pid, log };
}

export function readLog(p: Proc): string {
  return fs.existsSync(p.log) ? fs.readFileSync(p.log, 'utf8') : '';
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | null, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function isAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}

export function killProc(p: Proc | undefined): void {
  if (p && isAlive(p.pid)) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** The syscall number a task is blocked in (first field of /proc/PID/syscall), or undefined if running. */
export function blockedSyscall(pid: number): number | undefined {
  try {
    const f = fs.readFileSync(`/proc/${pid}/syscall`, 'latin1').trim().split(' ')[0];
    return /^\d+$/.test(f) ? Number(f) : undefined;
  } catch {
    return undefined;
  }
}

/** Address of a global symbol of a non-PIE fixture. */
export function symbol(exe: string, name: string): bigint {
  const line = execFileSync('nm', [exe]).toString().split('\n').find((l) => l.endsWith(` ${name}`));
  if (!line) throw new Error(`${exe} has no symbol ${name}`);
  return BigInt(`0x${line.split(' ')[0]}`);
}
