/**
 * The vDSO at dump time: threads caught inside it are moved out first (a restore against
 * another kernel's vDSO keeps the dumped code but not its data pages, so no thread may resume in
 * the middle of it), and proxies left by an earlier criu-ts restore are recognized.
 */
import { sys } from '@criu/sys';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { MapsEntry } from '../proc/maps.js';
import type { Logger } from '../util/log.js';
import { PROXY_MARK_SIZE, readProxyMark } from '../vdso/proxy.js';
import { readVdsoImage } from '../vdso/elf.js';

/** Enough for any vDSO function (a few hundred instructions), small enough to stay quick. */
const MAX_STEPS = 20_000;
/** Runs to an exit: a vDSO call passes a handful (inner returns) before it leaves. */
const MAX_RUNS = 200;
/** A run that reaches no exit by then (a thread blocked in a fallback syscall) is interrupted. */
const RUN_MS = 2_000;

export interface VdsoStepResult { tid: number; steps: number; runs: number; left: boolean }

/**
 * Moves every thread whose instruction pointer is inside the vDSO out of it: run at full speed
 * to a breakpoint on each way out where the arch can place them (a single-stepped seqlock reader
 * may retry forever when the clock is updated between each of its slow steps), single-stepped
 * otherwise. A thread still inside at the bound stays where it is (a restore then needs the same vDSO).
 */
export function stepOutOfVdso(threads: FrozenTask[], maps: MapsEntry[], log: Logger): VdsoStepResult[] {
  const vdso = maps.find((m) => m.name === '[vdso]');
  if (!vdso) return [];
  const inside = (ip: bigint) => ip >= vdso.start && ip < vdso.end;
  const caught = threads.filter((t) => inside(t.arch.ip(t.savedRegs)));
  if (!caught.length) return [];
  const exits = exitsOf(caught[0], vdso, log);
  const out: VdsoStepResult[] = [];
  for (const t of caught) {
    const { steps, runs } = t.stepWhile(inside, MAX_STEPS, exits);
    const left = !inside(t.arch.ip(t.savedRegs));
    const how = `${runs} run(s) to a way out, ${steps} single step(s)`;
    log.info(`thread ${t.pid} was inside the vDSO: ${left ? `stepped out (${how})` : `still inside after ${how} (it can be restored only where the vDSO is the same)`}`);
    out.push({ tid: t.pid, steps, runs, left });
  }
  return out;
}

/** The vDSO's ways out as addresses, when the arch can find them (see Arch.vdsoExits). */
function exitsOf(t: FrozenTask, vdso: MapsEntry, log: Logger): { addrs: bigint[]; breakpoint: Buffer; maxRuns: number; runMs: number } | undefined {
  const arch = t.arch.vdsoExits;
  if (!arch) return undefined;
  const image = sys.readMemory(t.pid, vdso.start, Number(vdso.end - vdso.start));
  let code: Array<{ offset: number; size: number }>;
  try {
    code = readVdsoImage(image).code;
  } catch (e) {
    log.warn(`the vDSO's code sections are unreadable (${(e as Error).message}): threads inside are single-stepped`);
    return undefined;
  }
  const addrs = code.flatMap((c) => arch.exits(image.subarray(c.offset, c.offset + c.size)).map((o) => vdso.start + BigInt(c.offset + o)));
  if (!addrs.length) return undefined;
  return { addrs, breakpoint: arch.breakpoint, maxRuns: MAX_RUNS, runMs: RUN_MS };
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
