/**
 * The x86_64 signal frame that rt_sigreturn(2) consumes, built from a thread_info_x86 record:
 * the way a restored thread gets all its registers, FPU and AVX/AVX-512 state back at once.
 *
 * Layout (frameAddr = address of pretcode):
 *   +0    pretcode            8
 *   +8    struct ucontext     304  (uc_flags, uc_link, uc_stack, uc_mcontext, uc_sigmask)
 *   +312  siginfo             128
 *   +fp   XSAVE area          xstate_size + 4 (FP_XSTATE_MAGIC2), fp 64-byte aligned
 * rt_sigreturn takes the frame at rsp - 8 (it runs as if the handler had just returned through
 * pretcode), so the syscall must be made with rsp = frameAddr + 8.
 */
import { sys } from '@criu/sys';
import type { Msg } from '@criu/images';
import { XSAVE_FIELDS, userDescBytes, userDescEmpty } from './thread-info.js';
import { FXSAVE_SIZE, XSAVE_HEADER_SIZE, XFEATURE, xsaveLayout, type XsaveLayout } from './xsave-layout.js';

export const UC_FP_XSTATE = 0x1n;
export const UC_SIGCONTEXT_SS = 0x2n;
export const UC_STRICT_RESTORE_SS = 0x4n;
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;
export const FP_XSTATE_MAGIC1 = 0x46505853;
export const FP_XSTATE_MAGIC2 = 0x46505845;
export const FP_XSTATE_MAGIC2_SIZE = 4;

/** sizeof(struct rt_sigframe) on x86_64, and offsets inside it. */
export const RT_SIGFRAME_SIZE = 440;
export const RT_SIGFRAME = Object.freeze({
  pretcode: 0,
  uc: 8,
  ucFlags: 8,
  ucLink: 16,
  ucStack: 24,
  ucMcontext: 48,
  ucSigmask: 304,
  info: 312,
});
/** struct sigcontext offsets (relative to uc_mcontext). */
export const SIGCONTEXT = Object.freeze({
  r8: 0, r9: 8, r10: 16, r11: 24, r12: 32, r13: 40, r14: 48, r15: 56, rdi: 64, rsi: 72, rbp: 80,
  rbx: 88, rdx: 96, rax: 104, rcx: 112, rsp: 120, rip: 128, eflags: 136,
  cs: 144, gs: 146, fs: 148, ss: 150, err: 152, trapno: 160, oldmask: 168, cr2: 176, fpstate: 184,
  size: 256,
});

/** x86 arch_prctl codes for the registers a sigframe cannot carry. */
export const ARCH_SET_GS = 0x1001;
export const ARCH_SET_FS = 0x1002;
export const ARCH_GET_XCOMP_PERM = 0x1022;

/** Building a signal frame failed (bad record, bad placement, a CPU that cannot take the state). */
export class SigframeError extends Error {
  constructor(reason: string) {
    super(`rt_sigframe: ${reason}`);
    this.name = 'SigframeError';
  }
}

export interface SigaltstackState { sp: bigint; size: bigint; flags: number }

export interface BuildSigframeOptions {
  /** Where the frame will live in the task (address of pretcode); 8-byte aligned. */
  frameAddr: bigint;
  /** uc_stack: the altstack rt_sigreturn installs. Default: disabled. */
  sigaltstack?: SigaltstackState;
  /** XSAVE layout; default: this machine's. */
  layout?: XsaveLayout;
  /** User XSAVE features the restoring kernel allows; default: ARCH_GET_XCOMP_PERM of this process. */
  permittedFeatures?: bigint;
  /** pretcode value (unused by rt_sigreturn itself). */
  pretcode?: bigint;
}

export interface SigframeLayout {
  /** Bytes to write at frameAddr. */
  size: number;
  /** Offset of the XSAVE area from frameAddr (64-byte aligned in the task). */
  fpstateOffset: number;
  /** xstate_size: the XSAVE area without the trailing magic2. */
  xstateSize: number;
  /** XSAVE features the frame carries (sw_reserved.xfeatures). */
  xfeatures: bigint;
  /** The rsp to call rt_sigreturn with. */
  rsp: bigint;
}

/** The rsp to make rt_sigreturn with for a frame at `frameAddr`: the kernel reads the frame at rsp - 8. */
export function sigreturnRsp(frameAddr: bigint): bigint {
  return frameAddr + 8n;
}

let permittedCache: bigint | undefined;

/** The XSAVE user features this kernel lets a process use (ARCH_GET_XCOMP_PERM). */
export function permittedXfeatures(): bigint {
  if (permittedCache === undefined) {
    const out = Buffer.alloc(8);
    try {
      sys.syscall('arch_prctl', ARCH_GET_XCOMP_PERM, out);
      permittedCache = out.readBigUInt64LE(0);
    } catch {
      // Kernels before 5.16 have no XCOMP_PERM: trust the CPU's list.
      permittedCache = xsaveLayout().supported;
    }
  }
  return permittedCache;
}

const align = (v: bigint, a: bigint) => (v + a - 1n) & ~(a - 1n);

function big(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new SigframeError(`${what}: expected an integer, got ${v === undefined ? 'nothing' : typeof v}`);
}
function num(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  throw new SigframeError(`${what}: expected an integer, got ${v === undefined ? 'nothing' : typeof v}`);
}
function arr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new SigframeError(`${what}: expected an array`);
  return v;
}
function obj(v: unknown, what: string): Msg {
  if (!v || typeof v !== 'object') throw new SigframeError(`${what}: missing`);
  return v as Msg;
}

/** Which extended components of the record go into the frame, and the resulting layout. */
export function sigframeLayout(ti: Msg, opts: Pick<BuildSigframeOptions, 'frameAddr' | 'layout' | 'permittedFeatures'>): SigframeLayout {
  if (opts.frameAddr % 8n !== 0n || opts.frameAddr <= 0n) throw new SigframeError(`frame address 0x${opts.frameAddr.toString(16)} is not 8-byte aligned`);
  const fpregs = obj(ti.fpregs, 'thread_info.fpregs');
  const xsave = fpregs.xsave as Msg | undefined;
  const fpAddr = align(opts.frameAddr + BigInt(RT_SIGFRAME_SIZE), 64n);
  const fpstateOffset = Number(fpAddr - opts.frameAddr);
  let xfeatures = (1n << BigInt(XFEATURE.FP)) | (1n << BigInt(XFEATURE.SSE));
  let xstateSize = FXSAVE_SIZE;
  if (xsave) {
    const layout = opts.layout ?? xsaveLayout();
    const permitted = opts.permittedFeatures ?? permittedXfeatures();
    const bv = big(xsave.xstate_bv, 'xsave.xstate_bv');
    xstateSize = FXSAVE_SIZE + XSAVE_HEADER_SIZE;
    for (const f of XSAVE_FIELDS) {
      const data = arr(xsave[f.field], `xsave.${f.field}`);
      const bit = 1n << BigInt(f.feature);
      if (data.length === 0) {
        if (bv & bit) throw new SigframeError(`xstate_bv has feature ${f.feature} (${f.field}) but the record holds no data for it`);
        continue;
      }
      if (data.length * f.width !== f.bytes) throw new SigframeError(`xsave.${f.field} has ${data.length} elements, expected ${f.bytes / f.width}`);
      const comp = layout.components.get(f.feature);
      if (!comp || !(permitted & bit)) {
        if (bv & bit) throw new SigframeError(`this CPU/kernel cannot restore XSAVE feature ${f.feature} (${f.field}), which the thread uses`);
        continue; // in its init state: nothing is lost by leaving it out
      }
      xfeatures |= bit;
      xstateSize = Math.max(xstateSize, comp.offset + comp.size);
    }
  }
  const size = fpstateOffset + xstateSize + (xsave ? FP_XSTATE_MAGIC2_SIZE : 0);
  return { size, fpstateOffset, xstateSize, xfeatures, rsp: sigreturnRsp(opts.frameAddr) };
}

/** The highest 64-byte aligned frame address whose frame ends below `sp - redZone`. */
export function sigframeAddrBelow(sp: bigint, ti: Msg, opts: Omit<BuildSigframeOptions, 'frameAddr'> & { redZone?: number } = {}): bigint {
  const probe = sigframeLayout(ti, { ...opts, frameAddr: 4096n }); // 64-aligned probe: same size as the final one
  return (sp - BigInt(opts.redZone ?? 128) - BigInt(probe.size)) & ~63n;
}

/**
 * Builds the rt_sigframe plus XSAVE area for thread state `ti` (thread_info_x86) with signal mask
 * `sigmask`, to be written at `opts.frameAddr` in the task. Call rt_sigreturn with
 * rsp = sigreturnRsp(frameAddr). fs_base/gs_base are not restored by it: see stateOutsideSigframe().
 */
export function buildSigframe(ti: Msg, sigmask: bigint, opts: BuildSigframeOptions): Buffer {
  const lay = sigframeLayout(ti, opts);
  const gp = obj(ti.gpregs, 'thread_info.gpregs');
  if (gp.mode !== undefined && num(gp.mode, 'gpregs.mode') !== 1) throw new SigframeError('only native (64-bit) threads are supported');
  const fpregs = obj(ti.fpregs, 'thread_info.fpregs');
  const xsave = fpregs.xsave as Msg | undefined;
  const b = Buffer.alloc(lay.size);

  b.writeBigUInt64LE(BigInt.asUintN(64, opts.pretcode ?? 0n), RT_SIGFRAME.pretcode);
  const ss = big(gp.ss, 'gpregs.ss');
  let ucFlags = UC_SIGCONTEXT_SS;
  if (ss !== 0n) ucFlags |= UC_STRICT_RESTORE_SS; // a zero ss is left for the kernel to fix up
  if (xsave) ucFlags |= UC_FP_XSTATE;
  b.writeBigUInt64LE(ucFlags, RT_SIGFRAME.ucFlags);
  b.writeBigUInt64LE(0n, RT_SIGFRAME.ucLink);
  const sas = opts.sigaltstack ?? { sp: 0n, size: 0n, flags: SS_DISABLE };
  b.writeBigUInt64LE(BigInt.asUintN(64, sas.sp), RT_SIGFRAME.ucStack);
  b.writeUInt32LE(sas.flags >>> 0, RT_SIGFRAME.ucStack + 8); // ss_flags may hold SS_AUTODISARM (bit 31)
  b.writeBigUInt64LE(BigInt.asUintN(64, sas.size), RT_SIGFRAME.ucStack + 16);

  const mc = RT_SIGFRAME.ucMcontext;
  const put = (off: number, field: string) => b.writeBigUInt64LE(BigInt.asUintN(64, big(gp[field], `gpregs.${field}`)), mc + off);
  put(SIGCONTEXT.r8, 'r8'); put(SIGCONTEXT.r9, 'r9'); put(SIGCONTEXT.r10, 'r10'); put(SIGCONTEXT.r11, 'r11');
  put(SIGCONTEXT.r12, 'r12'); put(SIGCONTEXT.r13, 'r13'); put(SIGCONTEXT.r14, 'r14'); put(SIGCONTEXT.r15, 'r15');
  put(SIGCONTEXT.rdi, 'di'); put(SIGCONTEXT.rsi, 'si'); put(SIGCONTEXT.rbp, 'bp'); put(SIGCONTEXT.rbx, 'bx');
  put(SIGCONTEXT.rdx, 'dx'); put(SIGCONTEXT.rax, 'ax'); put(SIGCONTEXT.rcx, 'cx'); put(SIGCONTEXT.rsp, 'sp');
  put(SIGCONTEXT.rip, 'ip'); put(SIGCONTEXT.eflags, 'flags');
  b.writeUInt16LE(Number(big(gp.cs, 'gpregs.cs') & 0xffffn), mc + SIGCONTEXT.cs);
  b.writeUInt16LE(Number(big(gp.gs, 'gpregs.gs') & 0xffffn), mc + SIGCONTEXT.gs);
  b.writeUInt16LE(Number(big(gp.fs, 'gpregs.fs') & 0xffffn), mc + SIGCONTEXT.fs);
  b.writeUInt16LE(Number(ss & 0xffffn), mc + SIGCONTEXT.ss);
  b.writeBigUInt64LE(opts.frameAddr + BigInt(lay.fpstateOffset), mc + SIGCONTEXT.fpstate);
  b.writeBigUInt64LE(BigInt.asUintN(64, sigmask), RT_SIGFRAME.ucSigmask);

  // The FXSAVE part.
  const fp = lay.fpstateOffset;
  b.writeUInt16LE(num(fpregs.cwd, 'fpregs.cwd') & 0xffff, fp + 0);
  b.writeUInt16LE(num(fpregs.swd, 'fpregs.swd') & 0xffff, fp + 2);
  b.writeUInt16LE(num(fpregs.twd, 'fpregs.twd') & 0xffff, fp + 4);
  b.writeUInt16LE(num(fpregs.fop, 'fpregs.fop') & 0xffff, fp + 6);
  b.writeBigUInt64LE(BigInt.asUintN(64, big(fpregs.rip, 'fpregs.rip')), fp + 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, big(fpregs.rdp, 'fpregs.rdp')), fp + 16);
  b.writeUInt32LE(num(fpregs.mxcsr, 'fpregs.mxcsr') >>> 0, fp + 24);
  b.writeUInt32LE(num(fpregs.mxcsr_mask, 'fpregs.mxcsr_mask') >>> 0, fp + 28);
  const st = arr(fpregs.st_space, 'fpregs.st_space');
  const xmm = arr(fpregs.xmm_space, 'fpregs.xmm_space');
  if (st.length !== 32) throw new SigframeError(`fpregs.st_space has ${st.length} elements, expected 32`);
  if (xmm.length !== 64) throw new SigframeError(`fpregs.xmm_space has ${xmm.length} elements, expected 64`);
  st.forEach((v, i) => b.writeUInt32LE(num(v, 'fpregs.st_space') >>> 0, fp + 32 + i * 4));
  xmm.forEach((v, i) => b.writeUInt32LE(num(v, 'fpregs.xmm_space') >>> 0, fp + 160 + i * 4));

  if (xsave) {
    // sw_reserved: struct _fpx_sw_bytes, which tells rt_sigreturn an XSAVE area follows.
    const sw = fp + 464;
    b.writeUInt32LE(FP_XSTATE_MAGIC1, sw);
    b.writeUInt32LE(lay.xstateSize + FP_XSTATE_MAGIC2_SIZE, sw + 4);
    b.writeBigUInt64LE(lay.xfeatures, sw + 8);
    b.writeUInt32LE(lay.xstateSize, sw + 16);
    // XSAVE header: xstate_bv (only features carried), xcomp_bv = 0 (standard format).
    b.writeBigUInt64LE(big(xsave.xstate_bv, 'xsave.xstate_bv') & lay.xfeatures, fp + FXSAVE_SIZE);
    const layout = opts.layout ?? xsaveLayout();
    for (const f of XSAVE_FIELDS) {
      if (!(lay.xfeatures & (1n << BigInt(f.feature)))) continue;
      const comp = layout.components.get(f.feature)!;
      arr(xsave[f.field], `xsave.${f.field}`).forEach((v, i) => {
        if (f.width === 4) b.writeUInt32LE(num(v, `xsave.${f.field}`) >>> 0, fp + comp.offset + i * 4);
        else b.writeBigUInt64LE(BigInt.asUintN(64, big(v, `xsave.${f.field}`)), fp + comp.offset + i * 8);
      });
    }
    b.writeUInt32LE(FP_XSTATE_MAGIC2, fp + lay.xstateSize);
  }
  return b;
}

/** A register rt_sigreturn does not restore, and the arch_prctl that sets it. */
export interface ArchPrctlStep { name: 'ARCH_SET_FS' | 'ARCH_SET_GS'; code: number; value: bigint }

export interface OutsideSigframeState {
  /** arch_prctl calls to make (in the thread, before rt_sigreturn): fs_base and gs_base. */
  archPrctl: ArchPrctlStep[];
  /**
   * GDT TLS descriptors in use (struct user_desc bytes for PTRACE_SET_THREAD_AREA or a compat
   * set_thread_area; the 64-bit syscall table has none).
   */
  tls: Buffer[];
}

/** What must be set by other means than the sigframe: fs_base/gs_base and used GDT TLS entries. */
export function stateOutsideSigframe(ti: Msg): OutsideSigframeState {
  const gp = obj(ti.gpregs, 'thread_info.gpregs');
  const tls = arr(ti.tls, 'thread_info.tls') as Msg[];
  return {
    archPrctl: [
      { name: 'ARCH_SET_FS', code: ARCH_SET_FS, value: big(gp.fs_base, 'gpregs.fs_base') },
      { name: 'ARCH_SET_GS', code: ARCH_SET_GS, value: big(gp.gs_base, 'gpregs.gs_base') },
    ],
    tls: tls.filter((d) => !userDescEmpty(d)).map(userDescBytes),
  };
}
