/** The oracle CRIU (../shared/oracle, installed by tools/scripts/setup.sh) for interop tests. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor } from './victims';

export const ORACLE_CRIU = process.env.CRIU_ORACLE ?? '/var/tmp/criu-oracle/bin/criu';
export const ORACLE_CRIT = process.env.CRIT_ORACLE ?? path.join(path.dirname(ORACLE_CRIU), 'crit');

export function requireOracle(): void {
  if (!fs.existsSync(ORACLE_CRIU)) throw new Error(`oracle CRIU not installed at ${ORACLE_CRIU} (run tools/scripts/setup.sh)`);
}

/** Waits until `pid` is gone (init here reaps orphaned zombies ~1.5 s late). */
export async function waitPidGone(pid: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(`pid ${pid} to be reaped`, () => !fs.existsSync(`/proc/${pid}`), timeoutMs);
}

export interface OracleRun { status: number | null; stdout: string; stderr: string; log: string }

export function oracle(args: string[], logFile?: string): OracleRun {
  const r = spawnSync(ORACLE_CRIU, ['--no-default-config', ...args], { encoding: 'utf8', timeout: 120_000 });
  const log = logFile && fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, log };
}

/** `criu restore -d` of `dir` by the oracle; throws with the tail of its log on failure. */
export function oracleRestore(dir: string, extra: string[] = []): void {
  const logFile = path.join(dir, 'oracle-restore.log');
  const r = oracle(['restore', '-D', dir, '-d', '-o', 'oracle-restore.log', '-v4', ...extra], logFile);
  if (r.status !== 0) {
    const tail = r.log.split('\n').filter((l) => /Error|error|fail/i.test(l)).slice(-15).join('\n');
    throw new Error(`oracle restore of ${dir} failed (exit ${r.status}):\n${tail}\n${r.stderr}`);
  }
}

/** crit decode of one image; returns the parsed JSON. */
export function critDecode(file: string): { magic: string; entries: unknown[] } {
  const r = spawnSync(ORACLE_CRIT, ['decode', '-i', file], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`crit decode ${file} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
