/**
 * The vDSO at dump time: threads caught inside it are stepped out first (a restore against
 * another kernel's vDSO keeps the dumped code but not its data pages, so no thread may resume in
 * the middle of it), and proxies left by an earlier criu-ts restore are recognized.
 */
import { sys } from '@criu/sys';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { MapsEntry } from '../proc/maps.js';
import type { Logger } from '../util/log.js';
import { PROXY_MARK_SIZE, readProxyMark } from '../vdso/proxy.js';

/** Enough for any vDSO function (a few hundred instructions), small enough to stay quick. */
const MAX_STEPS = 20_000;

export interface VdsoStepResult { tid: number; steps: number; left: boolean }

/**
 * Single-steps every thread whose instruction pointer is inside the vDSO until it is out. A
 * thread still inside after MAX_STEPS stays where it is (a restore then needs the same vDSO).
 */
export function stepOutOfVdso(threads: FrozenTask[], maps: MapsEntry[], log: Logger): VdsoStepResult[] {
  const vdso = maps.find((m) => m.name === '[vdso]');
  if (!vdso) return [];
  const inside = (ip: bigint) => ip >= vdso.start && ip < vdso.end;
  const out: VdsoStepResult[] = [];
  for (const t of threads) {
    if (!inside(t.arch.ip(t.savedRegs))) continue;
    const steps = t.stepWhile(inside, MAX_STEPS);
    const left = !inside(t.arch.ip(t.savedRegs));
    log.info(`thread ${t.pid} was inside the vDSO: ${left ? `stepped out in ${steps} instructions` : `still inside after ${steps} steps (it can be restored only where the vDSO is the same)`}`);
    out.push({ tid: t.pid, steps, left });
  }
  return out;
}

/** Logs a vDSO proxy that an earlier criu-ts restore left in the task (its memory is dumped as is). */
export function noteVdsoProxies(pid: number, maps: MapsEntry[], log: Logger): void {
  for (const m of maps) {
    if (m.name !== '' || m.perms !== 'r-xp' || m.end - m.start > 1n << 20n) continue;
    let tail: Buffer;
    try { tail = sys.readMemory(pid, m.end - BigInt(PROXY_MARK_SIZE), PROXY_MARK_SIZE); } catch { continue; }
    const mark = readProxyMark(tail);
    if (mark) log.info(`task ${pid}: 0x${m.start.toString(16)}-0x${m.end.toString(16)} is a vDSO proxy from an earlier restore, forwarding to the vDSO at 0x${mark.runtimeVdso.toString(16)}`);
  }
}
