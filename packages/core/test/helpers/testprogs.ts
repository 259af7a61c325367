/** The C test programs of tools/testprogs, built once per test run. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { readLog, startDetached, waitFor, type Victim } from './victims';

const root = path.resolve(__dirname, '../../../..');
let built = false;

export function testprog(name: string): string {
  if (!built) {
    execFileSync('bash', [path.join(root, 'tools/testprogs/build.sh')], { stdio: 'inherit' });
    built = true;
  }
  return path.join(root, 'tools/testprogs/build', name);
}

/**
 * Starts a test program detached and waits for its READY line. `readyPid`: the victim is the
 * process the READY line names (programs.ts TestProgram.readyPid).
 */
export async function startTestprog(name: string, args: string[] = [], readyPid = false): Promise<Victim> {
  const v = startDetached(testprog(name), args);
  const m = await waitFor(`${name} READY`, () => new RegExp(`READY ${name} (\\d+)`).exec(readLog(v)) ?? undefined, 10_000);
  return readyPid ? { pid: Number(m[1]), log: v.log } : v;
}

/** Sends SIGTERM and waits for the program's verdict line. */
export async function verdict(v: Victim, timeoutMs = 10_000): Promise<string> {
  process.kill(v.pid, 'SIGTERM');
  const m = await waitFor('PASS/FAIL verdict', () => /^(PASS|FAIL) .*$/m.exec(readLog(v)) ?? undefined, timeoutMs);
  return m[0];
}
