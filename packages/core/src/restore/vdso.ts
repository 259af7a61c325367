/**
 * The vDSO of a restored task. When the running kernel's vDSO is byte for byte the dumped one,
 * the running vDSO and its vvar pages are moved to the dumped addresses (the kernel follows the
 * move). Otherwise, or when asked to, the dumped vDSO becomes a proxy: its code comes back at its
 * old address from the pages image (programs hold pointers into it) with each symbol forwarding
 * to the running vDSO, which stays mapped elsewhere with its vvar pages.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { MapsEntry } from '../proc/maps.js';
import type { Logger } from '../util/log.js';
import { buildVdsoProxy, VdsoProxyError } from '../vdso/proxy.js';
import { RestoreError } from './errors.js';
import type { TaskImages } from './images-in.js';
import { findFreeRange } from './scratch.js';

const VMA_AREA_VDSO = 1 << 3, VMA_AREA_VVAR = 1 << 12;
const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
const PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20;

export interface VdsoVma { start: bigint; end: bigint; status: number }
export type VdsoMode = 'auto' | 'proxy';

/** A proxy to finish once the task's memory is filled: the dumped vDSO at `vma`, forwarding to `runtime`. */
export interface VdsoProxyPlan { vma: VdsoVma; runtime: bigint; vvarStart: bigint }

export interface VdsoContext {
  arch: Arch;
  img: TaskImages;
  pageSize: number;
  mode: VdsoMode;
  log: Logger;
}

/** Puts the vDSO in place, or prepares a proxy (mapped, to be filled like any anonymous mapping). */
export function placeVdso(task: FrozenTask, childMaps: MapsEntry[], vmas: VdsoVma[], ctx: VdsoContext): VdsoProxyPlan | undefined {
  const vdso = childMaps.find((m) => m.name === '[vdso]');
  const vvars = childMaps.filter((m) => m.name === '[vvar]' || m.name === '[vvar_vclock]').sort((a, b) => (a.start < b.start ? -1 : 1));
  const tVdso = vmas.find((v) => v.status & VMA_AREA_VDSO);
  const tVvar = vmas.find((v) => v.status & VMA_AREA_VVAR);
  const mmFile = `mm-${ctx.img.pid}.img`;
  if (!tVdso) {
    if (vdso) task.syscall('munmap', vdso.start, vdso.end - vdso.start);
    for (const v of vvars) task.syscall('munmap', v.start, v.end - v.start);
    return undefined;
  }
  if (!vdso) throw new RestoreError('vdso', 'the running kernel maps no vDSO but the image has one', { file: mmFile });
  const vvarSize = vvars.reduce((n, v) => n + (v.end - v.start), 0n);
  const dumped = dumpedBytes(ctx.img, tVdso, ctx.pageSize);
  const running = sys.readMemory(task.pid, vdso.start, Number(vdso.end - vdso.start));
  const same = dumped ? dumped.equals(running) : vdso.end - vdso.start === tVdso.end - tVdso.start;
  const sameVvar = !tVvar || tVvar.end - tVvar.start === vvarSize;
  if (same && sameVvar && ctx.mode !== 'proxy') {
    moveInPlace(task, vdso, vvars, tVdso, tVvar, [...childMaps, ...vmas], ctx.pageSize);
    ctx.log.info(`task ${task.pid}: the running vDSO is the dumped one: moved to 0x${tVdso.start.toString(16)}`);
    return undefined;
  }
  const why = ctx.mode === 'proxy' ? 'a proxy was asked for' : `the running kernel's vDSO differs from the dumped one (${vdso.end - vdso.start} bytes, vvar ${vvarSize}; dumped ${tVdso.end - tVdso.start}, vvar ${tVvar ? tVvar.end - tVvar.start : 0n})`;
  if (!dumped) throw new RestoreError('vdso', `${why}, and the pages image lacks the dumped vDSO's code to build a proxy from`, { file: mmFile });
  // A thread dumped inside the vDSO would resume in code whose data pages are gone.
  const cores = [{ tid: ctx.img.pid, core: ctx.img.core }, ...ctx.img.threadCores];
  for (const { tid, core } of cores) {
    const ip = ctx.arch.threadInfoIp(core[ctx.arch.image.threadInfoField] as Record<string, unknown>);
    if (ip >= tVdso.start && ip < tVdso.end) {
      throw new RestoreError('vdso', `${why}, but thread ${tid} was dumped inside the vDSO (at 0x${ip.toString(16)}): it can resume only where the vDSO is the dumped one`, { file: `core-${tid}.img` });
    }
  }
  // The running vDSO and its vvar pages move together (the code finds its data at a fixed
  // distance), to a range no dumped mapping needs.
  const pieces = [...vvars, vdso].sort((a, b) => (a.start < b.start ? -1 : 1));
  const lo = pieces[0].start, hi = pieces[pieces.length - 1].end;
  const clash = vmas.some((v) => v.start < hi && v.end > lo);
  let delta = 0n;
  if (clash) {
    const to = findFreeRange([...childMaps, ...vmas], Number(hi - lo), ctx.pageSize);
    delta = to - lo;
    for (const p of pieces) task.syscall('mremap', p.start, p.end - p.start, p.end - p.start, MREMAP_MAYMOVE | MREMAP_FIXED, p.start + delta);
  }
  task.syscall('mmap', tVdso.start, tVdso.end - tVdso.start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  const runtime = vdso.start + delta;
  ctx.log.info(`task ${task.pid}: ${why}: the dumped vDSO at 0x${tVdso.start.toString(16)} becomes a proxy of the running one at 0x${runtime.toString(16)}`);
  return { vma: tVdso, runtime, vvarStart: lo + delta };
}

/** Patches the filled proxy so its symbols forward to the running vDSO. */
export function installVdsoProxy(task: FrozenTask, plan: VdsoProxyPlan, ctx: VdsoContext): void {
  const size = Number(plan.vma.end - plan.vma.start);
  const old = sys.readMemory(task.pid, plan.vma.start, size);
  const running = sys.readMemory(task.pid, plan.runtime, runtimeSize(task.pid, plan.runtime));
  let patches;
  try {
    patches = buildVdsoProxy(ctx.arch.vdsoProxy, old, plan.vma.start, running, plan.runtime, plan.vvarStart, (name) => ctx.arch.sysno(name));
  } catch (e) {
    if (e instanceof VdsoProxyError) throw new RestoreError('vdso', `cannot proxy the dumped vDSO: ${e.message}`, { file: `mm-${ctx.img.pid}.img` });
    throw e;
  }
  for (const p of patches) {
    sys.writeMemory(task.pid, plan.vma.start + BigInt(p.offset), p.bytes);
    ctx.log.debug(`task ${task.pid}: vDSO proxy +0x${p.offset.toString(16)}: ${p.what}`);
  }
  ctx.log.info(`task ${task.pid}: vDSO proxy forwards ${patches.filter((p) => p.what.includes('->')).length} symbols`);
}

function runtimeSize(pid: number, start: bigint): number {
  const line = fs.readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n').find((l) => l.endsWith('[vdso]') && BigInt(`0x${l.split('-')[0]}`) === start);
  if (!line) throw new RestoreError('vdso', `the running vDSO is no longer at 0x${start.toString(16)}`);
  const [a, b] = line.split(' ')[0].split('-');
  return Number(BigInt(`0x${b}`) - BigInt(`0x${a}`));
}

/** The dumped vDSO's bytes from the pages image (undefined when any page is missing). */
function dumpedBytes(img: TaskImages, v: VdsoVma, pageSize: number): Buffer | undefined {
  const out = Buffer.alloc(Number(v.end - v.start));
  let fd: number | undefined;
  try {
    for (let a = v.start; a < v.end; a += BigInt(pageSize)) {
      const run = img.pages.runs.find((r) => r.offset !== undefined && a >= r.vaddr && a < r.vaddr + BigInt(r.nrPages * pageSize));
      if (!run) return undefined;
      fd ??= fs.openSync(img.pages.file, 'r');
      const got = fs.readSync(fd, out, Number(a - v.start), pageSize, run.offset! + Number(a - run.vaddr));
      if (got !== pageSize) return undefined;
    }
    return out;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Moves the running vDSO (and its vvar pages) to the dumped addresses. `taken`: every range in
 * use now or later (the task's mappings and the dumped vmas).
 */
function moveInPlace(task: FrozenTask, vdso: MapsEntry, vvars: MapsEntry[], tVdso: VdsoVma, tVvar: VdsoVma | undefined, taken: ReadonlyArray<{ start: bigint; end: bigint }>, pageSize: number): void {
  const moves: Array<{ from: bigint; size: bigint; to: bigint }> = [{ from: vdso.start, size: vdso.end - vdso.start, to: tVdso.start }];
  if (tVvar) {
    let to = tVvar.start;
    for (const v of vvars) {
      moves.push({ from: v.start, size: v.end - v.start, to });
      to += v.end - v.start;
    }
  } else {
    for (const v of vvars) task.syscall('munmap', v.start, v.end - v.start);
  }
  // Address-space randomisation may have put one piece where another must go (the helper's
  // vvar where the dumped vDSO was): then all of them step aside first, together, to a range
  // nothing uses, and go to their places from there.
  if (moves.some((m) => m.from !== m.to && moves.some((o) => o !== m && o.from < m.to + m.size && o.from + o.size > m.to))) {
    const lo = moves.reduce((a, m) => (m.from < a ? m.from : a), moves[0].from);
    const hi = moves.reduce((a, m) => (m.from + m.size > a ? m.from + m.size : a), 0n);
    const aside = findFreeRange(taken, Number(hi - lo), pageSize);
    for (const m of moves) {
      const to = aside + (m.from - lo);
      task.syscall('mremap', m.from, m.size, m.size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
      m.from = to;
    }
  }
  for (const m of moves) {
    if (m.from !== m.to) task.syscall('mremap', m.from, m.size, m.size, MREMAP_MAYMOVE | MREMAP_FIXED, m.to);
  }
}
