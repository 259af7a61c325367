/**
 * thread_info_ppc64 (core-ppc64.proto) for a thread at a ptrace-stop: general-purpose registers
 * (with CRIU's syscall-restart fix-up), FP (FPR0-31 + FPSCR), VMX (VR0-31 + VSCR, VRSAVE) and
 * the VSX low doublewords of VSR0-31. Transactional memory state is refused: no kernel this
 * project runs on has TM, and CRIU's inverted TM storage is not implemented.
 */
import { sys, NT, SysError } from '@criu/sys';
import type { Msg } from '@criu/images';
import { CR0_SO, GP_REGS_SIZE, PT, TRAP, getReg, setReg } from './regs.js';
import { MSR, SIGCONTEXT, UCONTEXT, vectorUseFromValues, type VectorUse } from './sigframe.js';

const ERESTARTSYS = 512n;
const ERESTARTNOINTR = 513n;
const ERESTARTNOHAND = 514n;
const ERESTART_RESTARTBLOCK = 516n;
const EINTR = 4n;

/** NT_PRFPREG: FPR0-31 and FPSCR, 33 u64. */
export const FP_REGS_SIZE = 33 * 8;
/** NT_PPC_VMX: VR0-31 and VSCR (33 x 16 bytes), then VRSAVE in the first word of a last 16-byte slot. */
export const VMX_REGS_SIZE = 34 * 16;
/** NT_PPC_VSX: doubleword 1 of VSR0-31 (doubleword 0 is FPR0-31). */
export const VSX_REGS_SIZE = 32 * 8;

/** MSR[TS]: transaction state (suspended 1 << 33, transactional 1 << 34). */
const MSR_TS_MASK = 3n << 33n;

export class ThreadStateError extends Error {
  constructor(readonly tid: number, readonly what: string, reason: string, options?: { cause?: unknown }) {
    super(`thread ${tid}: ${what}: ${reason}`, options);
    this.name = 'ThreadStateError';
  }
}

/** The trap value without its flag bits (pt_regs.trap low bits are kernel flags). */
export function trapVector(regs: Buffer): number {
  return Number(getReg(regs, 'trap') & ~0x1fn);
}

/**
 * A copy of `regs` (NT_PRSTATUS bytes) as the thread must resume after a restore, when it was
 * stopped inside an interrupted syscall (trap 0xc00 `sc` or 0x3000 `scv`): -ERESTARTSYS,
 * -ERESTARTNOINTR and -ERESTARTNOHAND re-execute the syscall (r3 = orig_gpr3, nip back over the
 * 4-byte instruction); -ERESTART_RESTARTBLOCK becomes EINTR (`sc`: r3 = EINTR with CR0.SO still
 * set; `scv`: r3 = -EINTR). The trap is then cleared, as CRIU does. `regs` itself is not changed.
 */
export function fixupSyscallRestart(regs: Buffer): Buffer {
  const r = Buffer.from(regs);
  const trap = trapVector(r);
  if (trap !== TRAP.SYSCALL && trap !== TRAP.SCV) return r;
  const r3 = getReg(r, 'r3');
  let err = 0n;
  if (trap === TRAP.SYSCALL) {
    if ((getReg(r, 'ccr') & CR0_SO) !== 0n) err = r3;
  } else {
    const v = BigInt.asIntN(64, r3);
    if (v < 0n && v >= -4095n) err = -v;
  }
  if (err === ERESTARTSYS || err === ERESTARTNOINTR || err === ERESTARTNOHAND) {
    setReg(r, 'r3', getReg(r, 'orig_gpr3'));
    setReg(r, 'nip', getReg(r, 'nip') - 4n);
  } else if (err === ERESTART_RESTARTBLOCK) {
    setReg(r, 'r3', trap === TRAP.SYSCALL ? EINTR : -EINTR);
  }
  setReg(r, 'trap', 0n);
  return r;
}

/** user_ppc64_regs_entry from NT_PRSTATUS bytes (no fix-up). */
export function gpregsEntry(regs: Buffer): Msg {
  if (regs.length !== GP_REGS_SIZE) throw new RangeError(`NT_PRSTATUS of ppc64 is ${GP_REGS_SIZE} bytes, got ${regs.length}`);
  const gpr: bigint[] = [];
  for (let i = 0; i < 32; i++) gpr.push(getReg(regs, `r${i}`));
  return {
    gpr,
    nip: getReg(regs, 'nip'),
    msr: getReg(regs, 'msr'),
    orig_gpr3: getReg(regs, 'orig_gpr3'),
    ctr: getReg(regs, 'ctr'),
    link: getReg(regs, 'link'),
    xer: getReg(regs, 'xer'),
    ccr: getReg(regs, 'ccr'),
    trap: getReg(regs, 'trap'),
  };
}

/** NT_PRSTATUS bytes from a user_ppc64_regs_entry (the inverse of gpregsEntry; other slots 0). */
export function gpregsBytes(gp: Msg): Buffer {
  const b = Buffer.alloc(GP_REGS_SIZE);
  const gpr = gp.gpr as unknown[];
  if (!Array.isArray(gpr) || gpr.length !== 32) throw new TypeError('gpr: expected 32 registers');
  gpr.forEach((v, i) => setReg(b, `r${i}`, toBig(v, `gpr[${i}]`)));
  for (const f of ['nip', 'msr', 'orig_gpr3', 'ctr', 'link', 'xer', 'ccr', 'trap'] as const) setReg(b, f, toBig(gp[f], f));
  return b;
}

function toBig(v: unknown, field: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new TypeError(`${field}: expected an integer, got ${typeof v}`);
}

function u64s(b: Buffer, n: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(b.readBigUInt64LE(i * 8));
  return out;
}

/** user_ppc64_fpstate_entry from NT_PRFPREG bytes. */
export function fpstateEntry(fp: Buffer): Msg {
  if (fp.length !== FP_REGS_SIZE) throw new RangeError(`NT_PRFPREG is ${FP_REGS_SIZE} bytes, got ${fp.length}`);
  return { fpregs: u64s(fp, 33) };
}

/** user_ppc64_vrstate_entry from NT_PPC_VMX bytes: 66 u64 (VR0-31, VSCR slot) and VRSAVE. */
export function vrstateEntry(vmx: Buffer): Msg {
  if (vmx.length < 33 * 16 + 4) throw new RangeError(`NT_PPC_VMX is ${VMX_REGS_SIZE} bytes, got ${vmx.length}`);
  return { vrregs: u64s(vmx, 66), vrsave: vmx.readUInt32LE(33 * 16) };
}

/** user_ppc64_vsxstate_entry from NT_PPC_VSX bytes. */
export function vsxstateEntry(vsx: Buffer): Msg {
  if (vsx.length !== VSX_REGS_SIZE) throw new RangeError(`NT_PPC_VSX is ${VSX_REGS_SIZE} bytes, got ${vsx.length}`);
  return { vsxregs: u64s(vsx, 32) };
}

function regset(tid: number, nt: number, size: number, what: string, optional: boolean): Buffer | undefined {
  try {
    return Buffer.from(sys.ptrace.getRegset(tid, nt, size));
  } catch (e) {
    // EIO/ENODEV/EINVAL: the CPU or kernel lacks the unit (CRIU skips VMX/VSX then).
    if (optional && (SysError.is(e, 'EIO') || SysError.is(e, 'ENODEV') || SysError.is(e, 'EINVAL'))) return undefined;
    throw new ThreadStateError(tid, what, (e as Error).message, { cause: e });
  }
}

export interface DumpThreadInfoOptions {
  /** set_tid_address() value of the thread (the parasite reports it); 0 when unknown. */
  clearTidAddr?: bigint;
  /** The units the kernel counts the thread as a user of (readSignalFrame); else guessed from the values. */
  vectorUse?: VectorUse;
}

/**
 * thread_info_ppc64 for thread `tid`, which must be at a ptrace-stop. `savedRegs` are the
 * NT_PRSTATUS bytes taken when it was frozen (not modified: the fix-up is made on a copy).
 */
export function dumpThreadInfo(tid: number, savedRegs: Buffer, opts: DumpThreadInfoOptions = {}): Msg {
  if (savedRegs.length !== GP_REGS_SIZE) {
    throw new ThreadStateError(tid, 'registers', `NT_PRSTATUS is ${savedRegs.length} bytes, expected ${GP_REGS_SIZE}`);
  }
  if ((getReg(savedRegs, 'msr') & MSR_TS_MASK) !== 0n) {
    throw new ThreadStateError(tid, 'registers', 'the thread is inside a hardware transaction (TM), which is not supported');
  }
  const ti: Msg = {
    clear_tid_addr: opts.clearTidAddr ?? 0n,
    gpregs: gpregsEntry(fixupSyscallRestart(savedRegs)),
  };
  ti.fpstate = fpstateEntry(regset(tid, NT.PRFPREG, FP_REGS_SIZE, 'NT_PRFPREG', false)!);
  const vmx = regset(tid, NT.PPC_VMX, VMX_REGS_SIZE, 'NT_PPC_VMX', true);
  if (vmx) {
    ti.vrstate = vrstateEntry(vmx);
    // Like CRIU: VSX only when VMX is there.
    const vsx = regset(tid, NT.PPC_VSX, VSX_REGS_SIZE, 'NT_PPC_VSX', true);
    if (vsx) ti.vsxstate = vsxstateEntry(vsx);
  }
  markVectorUse(ti, opts.vectorUse);
  return ti;
}

/**
 * Sets MSR_VEC / MSR_VSX in `ti.gpregs.msr` exactly for the units the thread uses: the kernel's
 * view when given (the MSR of a signal frame it built for the thread: used_vr / used_vsr), else
 * guessed from the state (unlike a never-used unit's: sigframe.ts vectorUseFromValues). The live
 * MSR cannot tell (the kernel drops the bits whenever it saves the unit), and CRIU's restore loads
 * VMX/VSX from the image only when the image's MSR has them, so a CRIU restore of our images gets
 * the same units. Our restore goes by these bits too (sigframe.ts vectorUse).
 */
export function markVectorUse(ti: Msg, kernel?: VectorUse): void {
  const gp = ti.gpregs as Msg;
  const use = kernel ?? vectorUseFromValues(ti);
  let msr = BigInt(gp.msr as bigint) & ~(MSR.VEC | MSR.VSX);
  if (use.vmx && ti.vrstate) msr |= MSR.VEC;
  if (use.vsx && ti.vsxstate) msr |= MSR.VSX;
  gp.msr = msr;
}

/** The frame's MSR: `uc` is the ucontext a SA_SIGINFO handler gets (r5 at its entry). */
const FRAME_MSR = UCONTEXT.mcontext + SIGCONTEXT.gpRegs + PT.msr * 8;

/**
 * The kernel's view of a thread's vector units, from a signal frame it built for the thread: it
 * sets MSR_VEC / MSR_VSX there exactly when the thread has used VMX / VSX (used_vr / used_vsr).
 * Core delivers the signal to a handler at `handlerOffset` into the syscall trap code (its trap).
 */
export const signalFrameProbe = {
  handlerOffset: 4,
  // Delivering a signal clears FPSCR (handle_rt_signal64). Only FP: writing the VMX or VSX regset
  // would itself mark the thread as a user of the unit.
  preserve: [{ note: NT.PRFPREG, size: FP_REGS_SIZE }],
  read(regsAtHandler: Buffer, readMemory: (addr: bigint, len: number) => Buffer): VectorUse {
    const msr = readMemory(getReg(regsAtHandler, 'r5') + BigInt(FRAME_MSR), 8).readBigUInt64LE(0);
    return { vmx: (msr & MSR.VEC) !== 0n, vsx: (msr & MSR.VSX) !== 0n };
  },
};
