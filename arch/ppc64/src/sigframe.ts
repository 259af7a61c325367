/**
 * The ppc64 (ELFv2, 64-bit) signal frame that rt_sigreturn(2) consumes, built from a
 * thread_info_ppc64 record: how a restored thread gets its registers, FP/VMX/VSX state, signal
 * mask and sigaltstack back in one syscall.
 *
 * The kernel's sys_rt_sigreturn (arch/powerpc/kernel/signal_64.c) reads a struct ucontext at r1
 * (the ucontext is the first member of its rt_sigframe; nothing after it is read):
 *
 *   +0     uc_flags, uc_link (0: no TM), uc_stack (ss_sp, ss_flags, ss_size)
 *   +40    uc_sigmask (64 bits), 15 unused sigset words
 *   +168   uc_mcontext = struct sigcontext:
 *            +0 _unused[4], signal, handler, oldmask, regs (pointer to gp_regs)
 *            +64  gp_regs[48]  (pt_regs order: gpr0-31, nip, msr, orig_gpr3, ctr, link, xer, ccr, ...)
 *            +448 fp_regs[33]  (FPR0-31, FPSCR)
 *            +712 v_regs       (pointer to the 16-byte aligned vector area inside vmx_reserve)
 *            +720 vmx_reserve[101]: the vector area = VR0-31 + VSCR (33 x 16 bytes), VRSAVE in the
 *                 first word of a 34th quadword, then the 32 low doublewords of VSR0-31
 *   +1696  end
 *
 * What the kernel does with it (restore_sigcontext, 64-bit): all GPRs, nip, orig_gpr3, ctr, link,
 * xer, ccr (and dar, dsisr, result) are taken as given, r13 (the TLS pointer) included; of the MSR
 * only MSR_LE is taken, and MSR_FP/VEC/VSX are cleared (the units are reloaded lazily). FPRs and
 * FPSCR are always loaded. VR0-31 + VSCR are loaded only when the frame's MSR has MSR_VEC (and
 * the thread is marked as a VMX user), else zeroed if the thread had used VMX; the low VSX
 * doublewords likewise only with MSR_VSX (else zeroed). VRSAVE is loaded whenever v_regs is set.
 *
 * Vector-unit fidelity: the frame's MSR_VEC / MSR_VSX are set for the units the thread had used
 * (the kernel's used_vr/used_vsr, visible e.g. as MSR_VEC / MSR_VSX in its next signal frame), so
 * a restored thread that never touched VMX or VSX is not turned into one that did, and one that
 * did stays one. criu-ts's dump records the kernel's view in gpregs.msr (see vectorUse); CRIU
 * forces both bits on, and then the state decides. Leaving a unit out loses no register: the
 * restored thread starts from the restore helper's never-used state, which is that same state.
 */
import type { Msg } from '@criu/images';
import { PT } from './regs.js';

/** MSR bits (arch/powerpc/include/asm/reg.h). */
export const MSR = Object.freeze({
  LE: 1n,
  FP: 1n << 13n,
  VSX: 1n << 23n,
  VEC: 1n << 25n,
  TM: 1n << 32n,
  TS_MASK: 3n << 33n,
});

/** struct ucontext (64-bit) offsets and size. */
export const UCONTEXT = Object.freeze({
  flags: 0,
  link: 8,
  stack: 16, // stack_t: ss_sp +0, ss_flags (int) +8, ss_size +16
  sigmask: 40,
  mcontext: 168,
  size: 1696,
});
/** struct sigcontext (64-bit) offsets, relative to uc_mcontext. */
export const SIGCONTEXT = Object.freeze({
  signal: 32,
  handler: 40,
  oldmask: 48,
  regs: 56,
  gpRegs: 64,
  fpRegs: 448,
  vRegs: 712,
  vmxReserve: 720,
  size: 1528,
});
/** ELF_NVRREG: VR0-31, VSCR, VRSAVE (quadwords of the vector area). */
export const ELF_NVRREG = 34;
/** ELF_NFPREG: FPR0-31 and FPSCR. */
export const ELF_NFPREG = 33;
/** Size of the frame restoreFrame() writes: exactly one struct ucontext. */
export const RT_SIGFRAME_SIZE = UCONTEXT.size;
/** Offset of the vector area from the frame (the frame is 16-byte aligned). */
export const VMX_AREA_OFFSET = (UCONTEXT.mcontext + SIGCONTEXT.vmxReserve + 15) & ~15;
/** Offset of the 32 VSX low doublewords: right after VR0-31, VSCR and the VRSAVE quadword. */
export const VSX_AREA_OFFSET = VMX_AREA_OFFSET + ELF_NVRREG * 16;

export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;

/**
 * VR0-31 and VSCR of a thread that never used VMX, as the NT_PPC_VMX regset and the image's
 * vrregs (66 u64) show them: all zero except VSCR, which exec sets to NJ (non-Java mode) with
 * `vscr.u[3] = 0x00010000` (bytes 12-15 of the VSCR quadword: the high half of vrregs[65]).
 */
export const VSCR_INIT: readonly [bigint, bigint] = Object.freeze([0n, 0x0001000000000000n]) as readonly [bigint, bigint];

/** Building a signal frame failed (a bad or unsupported record, a bad placement). */
export class SigframeError extends Error {
  constructor(reason: string) {
    super(`rt_sigframe: ${reason}`);
    this.name = 'SigframeError';
  }
}

export interface SigaltstackState { sp: bigint; size: bigint; flags: number }

export interface BuildSigframeOptions {
  /** Where the frame will live in the task; 16-byte aligned. rt_sigreturn is made with r1 = frameAddr. */
  frameAddr: bigint;
  /** uc_stack: the altstack rt_sigreturn installs. Default: disabled. */
  sigaltstack?: SigaltstackState;
}

function big(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new SigframeError(`${what}: expected an integer, got ${v === undefined ? 'nothing' : typeof v}`);
}
function obj(v: unknown, what: string): Msg {
  if (!v || typeof v !== 'object') throw new SigframeError(`${what}: missing`);
  return v as Msg;
}
function u64s(v: unknown, n: number, what: string): bigint[] {
  if (!Array.isArray(v)) throw new SigframeError(`${what}: expected ${n} values, got ${v === undefined ? 'nothing' : typeof v}`);
  if (v.length !== n) throw new SigframeError(`${what}: expected ${n} values, got ${v.length}`);
  return v.map((x, i) => BigInt.asUintN(64, big(x, `${what}[${i}]`)));
}

/** Which vector units the frame loads (MSR_VEC / MSR_VSX), decided from the dumped state. */
export interface VectorUse { vmx: boolean; vsx: boolean }

/**
 * Whether the thread's VMX and VSX state differs from a never-used unit's (see the module
 * comment). `vrregs` are the 66 u64 of user_ppc64_vrstate_entry, `vsxregs` the 32 low doublewords.
 * The dump falls back to this when the kernel's own view (a signal frame's MSR) is not to be had.
 */
export function vectorUseFromValues(ti: Msg): VectorUse {
  const vr = ti.vrstate as Msg | undefined;
  const vsx = ti.vsxstate as Msg | undefined;
  let vmxUsed = false;
  if (vr) {
    const regs = u64s(vr.vrregs, 66, 'vrstate.vrregs');
    vmxUsed = regs.slice(0, 64).some((x) => x !== 0n) || regs[64] !== VSCR_INIT[0] || regs[65] !== VSCR_INIT[1];
  }
  const vsxUsed = vsx ? u64s(vsx.vsxregs, 32, 'vsxstate.vsxregs').some((x) => x !== 0n) : false;
  return { vmx: vmxUsed, vsx: vsxUsed };
}

/**
 * The units a restored thread gets (MSR_VEC / MSR_VSX of its frame), from the image. criu-ts
 * records the kernel's view in gpregs.msr (the MSR of a signal frame taken at dump), and it is
 * taken as is; but CRIU turns both bits on for every thread with vector state, so with both on
 * the state decides: VSX when its low doublewords, the FPRs or FPSCR (which scalar VSX code
 * writes) differ from a never-used thread's, VMX when the VRs or VSCR do, or with VSX (the kernel
 * marks a VSX user as a VMX user too). A unit without state in the image is never loaded.
 */
export function vectorUse(ti: Msg): VectorUse {
  const msr = BigInt.asUintN(64, big(obj(ti.gpregs, 'thread_info_ppc64.gpregs').msr, 'gpregs.msr'));
  const hasVr = !!ti.vrstate, hasVsx = !!ti.vsxstate;
  const vec = (msr & MSR.VEC) !== 0n, vsx = (msr & MSR.VSX) !== 0n;
  if (!(vec && vsx)) return { vmx: vec && hasVr, vsx: vsx && hasVsx };
  const values = vectorUseFromValues(ti);
  const fp = ti.fpstate ? u64s((ti.fpstate as Msg).fpregs, ELF_NFPREG, 'fpstate.fpregs').some((x) => x !== 0n) : false;
  const vsxUsed = hasVsx && (values.vsx || fp);
  return { vmx: hasVr && (values.vmx || vsxUsed), vsx: vsxUsed };
}

/**
 * The rt_sigreturn frame (one struct ucontext, RT_SIGFRAME_SIZE bytes) for thread state `ti`
 * (thread_info_ppc64) with signal mask `sigmask`, to be written at `opts.frameAddr`; make
 * rt_sigreturn with r1 = frameAddr. Transactional-memory state is refused.
 */
export function buildSigframe(ti: Msg, sigmask: bigint, opts: BuildSigframeOptions): Buffer {
  const { frameAddr } = opts;
  if (frameAddr <= 0n || frameAddr % 16n !== 0n) throw new SigframeError(`frame address 0x${frameAddr.toString(16)} is not 16-byte aligned`);
  const gp = obj(ti.gpregs, 'thread_info_ppc64.gpregs');
  if (ti.tmstate !== undefined && ti.tmstate !== null) throw new SigframeError('the image holds transactional-memory state (tmstate), which is not supported');
  const msrIn = BigInt.asUintN(64, big(gp.msr, 'gpregs.msr'));
  if (msrIn & MSR.TS_MASK) throw new SigframeError('the thread was inside a hardware transaction (MSR[TS] set), which is not supported');
  for (const f of ['tfhar', 'texasr', 'tfiar'] as const) {
    if (gp[f] !== undefined && gp[f] !== null && big(gp[f], `gpregs.${f}`) !== 0n) throw new SigframeError(`gpregs.${f} is set: transactional-memory state is not supported`);
  }
  if (!(msrIn & MSR.LE)) throw new SigframeError('gpregs.msr has no MSR_LE: only little-endian (ppc64le) threads are supported');
  const gpr = u64s(gp.gpr, 32, 'gpregs.gpr');
  const fp = u64s(obj(ti.fpstate, 'thread_info_ppc64.fpstate').fpregs, ELF_NFPREG, 'fpstate.fpregs');
  const vr = ti.vrstate as Msg | undefined;
  const vrregs = vr ? u64s(vr.vrregs, 66, 'vrstate.vrregs') : undefined;
  const vrsave = vr ? Number(big(vr.vrsave, 'vrstate.vrsave') & 0xffffffffn) : 0;
  const vsxregs = ti.vsxstate ? u64s((ti.vsxstate as Msg).vsxregs, 32, 'vsxstate.vsxregs') : undefined;
  const use = vectorUse(ti);

  const b = Buffer.alloc(RT_SIGFRAME_SIZE);
  // uc_flags, uc_link: 0 (no TM context).
  const sas = opts.sigaltstack ?? { sp: 0n, size: 0n, flags: SS_DISABLE };
  b.writeBigUInt64LE(BigInt.asUintN(64, sas.sp), UCONTEXT.stack);
  b.writeUInt32LE(sas.flags >>> 0, UCONTEXT.stack + 8); // ss_flags may hold SS_AUTODISARM (bit 31)
  b.writeBigUInt64LE(BigInt.asUintN(64, sas.size), UCONTEXT.stack + 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, sigmask), UCONTEXT.sigmask);

  const mc = UCONTEXT.mcontext;
  b.writeBigUInt64LE(BigInt.asUintN(64, sigmask), mc + SIGCONTEXT.oldmask);
  b.writeBigUInt64LE(frameAddr + BigInt(mc + SIGCONTEXT.gpRegs), mc + SIGCONTEXT.regs);
  const gpOff = mc + SIGCONTEXT.gpRegs;
  const putGp = (slot: number, v: bigint) => b.writeBigUInt64LE(BigInt.asUintN(64, v), gpOff + slot * 8);
  gpr.forEach((v, i) => putGp(i, v));
  let msr = msrIn & ~(MSR.VEC | MSR.VSX);
  if (use.vmx) msr |= MSR.VEC;
  if (use.vsx) msr |= MSR.VSX;
  putGp(PT.nip, big(gp.nip, 'gpregs.nip'));
  putGp(PT.msr, msr);
  putGp(PT.orig_gpr3, big(gp.orig_gpr3, 'gpregs.orig_gpr3'));
  putGp(PT.ctr, big(gp.ctr, 'gpregs.ctr'));
  putGp(PT.link, big(gp.link, 'gpregs.link'));
  putGp(PT.xer, big(gp.xer, 'gpregs.xer'));
  putGp(PT.ccr, big(gp.ccr, 'gpregs.ccr'));
  putGp(PT.trap, big(gp.trap ?? 0n, 'gpregs.trap'));

  fp.forEach((v, i) => b.writeBigUInt64LE(v, mc + SIGCONTEXT.fpRegs + i * 8));

  // The vector area: always present (VRSAVE is read from it, and the VSX part is addressed
  // through it), filled with what the image holds.
  b.writeBigUInt64LE(frameAddr + BigInt(VMX_AREA_OFFSET), mc + SIGCONTEXT.vRegs);
  vrregs?.forEach((v, i) => b.writeBigUInt64LE(v, VMX_AREA_OFFSET + i * 8));
  b.writeUInt32LE(vrsave >>> 0, VMX_AREA_OFFSET + 33 * 16);
  vsxregs?.forEach((v, i) => b.writeBigUInt64LE(v, VSX_AREA_OFFSET + i * 8));
  return b;
}
