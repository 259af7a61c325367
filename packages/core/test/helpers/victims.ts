/** Builds small C test programs and runs them detached from Node (never child_process-owned). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const buildDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-core-'));

export function buildFixture(name: string): string {
  const out = path.join(buildDir, name);
  if (!fs.existsSync(out)) execFileSync('cc', ['-O1', '-o', out, path.join(__dirname, '..', 'fixtures', `${name}.c`)]);
  return out;
}

export interface Victim { pid: number; log: string }

/** Starts `prog args` in its own session with stdout to a log file; returns its PID. */
export function startDetached(prog: string, args: string[] = []): Victim {
  const log = path.join(buildDir, `${path.basename(prog)}-${Date.now()}-${Math.random().toString(36).slice(2)}.log`);
  const quoted = [prog, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // Close whatever descriptors the test runner leaked beyond stdio (e.g. a pipe of the calling
  // shell): the program must own exactly what it opens.
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const pid = Number(execFileSync('bash', ['-c', `${closeInherited}; setsid ${quoted} </dev/null >${log} 2>&1 & echo $!`]).toString().trim());
  return { pid, log };
}

export function readLog(v: Victim): string {
  return fs.existsSync(v.log) ? fs.readFileSync(v.log, 'utf8') : '';
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
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
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Kills a PID we started, if it is still there. */
export function killVictim(v: Victim | undefined): void {
  if (v && isAlive(v.pid)) {
    try { process.kill(v.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

export function lastCounter(v: Victim): number {
  const nums = readLog(v).split('\n').filter((l) => /^\d+$/.test(l));
  return nums.length ? Number(nums[nums.length - 1]) : -1;
}
