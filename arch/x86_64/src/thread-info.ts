/**
 * thread_info_x86 (core-x86.proto) for a thread at a ptrace-stop: general-purpose registers
 * (with CRIU's syscall-restart fix-up), FPU/SSE state and the extended XSAVE components, and the
 * three GDT TLS descriptors.
 */
import { sys, NT, PTRACE_X86_64, SysError } from '@criu/sys';
import type { Msg } from '@criu/images';
import { GPR, GP_REGS_SIZE, getReg, setReg, type GprName } from './regs.js';
import { FXSAVE_SIZE, XFEATURE, xsaveLayout, type XsaveLayout } from './xsave-layout.js';

/** user_x86_regs_mode */
export const USER_X86_REGS_MODE = Object.freeze({ NATIVE: 1, COMPAT: 2 });

/** First and last GDT entries of the TLS area (GDT_ENTRY_TLS_MIN..MAX on x86_64). */
export const GDT_ENTRY_TLS_MIN = 12;
export const GDT_ENTRY_TLS_ENTRIES = 3;

const ERESTARTSYS = 512n;
const ERESTARTNOINTR = 513n;
const ERESTARTNOHAND = 514n;
const ERESTART_RESTARTBLOCK = 516n;
const EINTR = 4n;

/** Size of the 32-bit (compat) NT_PRSTATUS regset: what a 64-bit tracer gets for an ia32 task. */
const COMPAT_GP_REGS_SIZE = 17 * 4;

/** Reading a thread's state failed; names the thread and the piece. */
export class ThreadStateError extends Error {
  constructor(readonly tid: number, readonly what: string, reason: string, options?: { cause?: unknown }) {
    super(`thread ${tid}: ${what}: ${reason}`, options);
    this.name = 'ThreadStateError';
  }
}

/** user_x86_regs_entry field names, in NT_PRSTATUS order (proto names differ from the kernel's). */
const GP_FIELDS: ReadonlyArray<[string, GprName]> = [
  ['r15', 'r15'], ['r14', 'r14'], ['r13', 'r13'], ['r12', 'r12'], ['bp', 'rbp'], ['bx', 'rbx'],
  ['r11', 'r11'], ['r10', 'r10'], ['r9', 'r9'], ['r8', 'r8'], ['ax', 'rax'], ['cx', 'rcx'],
  ['dx', 'rdx'], ['si', 'rsi'], ['di', 'rdi'], ['orig_ax', 'orig_rax'], ['ip', 'rip'], ['cs', 'cs'],
  ['flags', 'eflags'], ['sp', 'rsp'], ['ss', 'ss'], ['fs_base', 'fs_base'], ['gs_base', 'gs_base'],
  ['ds', 'ds'], ['es', 'es'], ['fs', 'fs'], ['gs', 'gs'],
];

/**
 * A copy of `regs` (NT_PRSTATUS bytes) as the thread must resume after a restore, when it was
 * stopped inside an interrupted syscall: -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND re-execute
 * the syscall (rax = orig_rax, rip back over the 2-byte `syscall`), -ERESTART_RESTARTBLOCK
 * becomes -EINTR. `regs` itself is not changed.
 */
export function fixupSyscallRestart(regs: Buffer): Buffer {
  const r = Buffer.from(regs);
  if (BigInt.asIntN(64, getReg(r, 'orig_rax')) < 0n) return r;
  const ret = BigInt.asIntN(32, getReg(r, 'rax')); // the kernel compares the low int, as CRIU does
  if (ret === -ERESTARTSYS || ret === -ERESTARTNOINTR || ret === -ERESTARTNOHAND) {
    setReg(r, 'rax', getReg(r, 'orig_rax'));
    setReg(r, 'rip', getReg(r, 'rip') - 2n);
  } else if (ret === -ERESTART_RESTARTBLOCK) {
    setReg(r, 'rax', -EINTR);
  }
  return r;
}

/** user_x86_regs_entry from NT_PRSTATUS bytes (no fix-up). */
export function gpregsEntry(regs: Buffer): Msg {
  if (regs.length !== GP_REGS_SIZE) throw new RangeError(`NT_PRSTATUS of x86_64 is ${GP_REGS_SIZE} bytes, got ${regs.length}`);
  const e: Msg = {};
  for (const [field, reg] of GP_FIELDS) e[field] = regs.readBigUInt64LE(GPR[reg] * 8);
  e.mode = USER_X86_REGS_MODE.NATIVE;
  return e;
}

/** NT_PRSTATUS bytes from a user_x86_regs_entry (the inverse of gpregsEntry). */
export function gpregsBytes(gp: Msg): Buffer {
  const b = Buffer.alloc(GP_REGS_SIZE);
  for (const [field, reg] of GP_FIELDS) b.writeBigUInt64LE(BigInt.asUintN(64, toBig(gp[field], field)), GPR[reg] * 8);
  return b;
}

function toBig(v: unknown, field: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new TypeError(`${field}: expected an integer, got ${typeof v}`);
}

function u32s(b: Buffer, off: number, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = b.readUInt32LE(off + i * 4);
  return out;
}
function u64s(b: Buffer, off: number, n: number): bigint[] {
  const out = new Array<bigint>(n);
  for (let i = 0; i < n; i++) out[i] = b.readBigUInt64LE(off + i * 8);
  return out;
}

/**
 * The extended components user_x86_xsave_entry has room for: its field, the element width, and
 * how many bytes of the component the field holds.
 */
export const XSAVE_FIELDS: ReadonlyArray<{ feature: number; field: string; width: 4 | 8; bytes: number }> = [
  { feature: XFEATURE.YMM, field: 'ymmh_space', width: 4, bytes: 256 },
  { feature: XFEATURE.BNDREGS, field: 'bndreg_state', width: 8, bytes: 64 },
  { feature: XFEATURE.BNDCSR, field: 'bndcsr_state', width: 8, bytes: 16 },
  { feature: XFEATURE.OPMASK, field: 'opmask_reg', width: 8, bytes: 64 },
  { feature: XFEATURE.ZMM_Hi256, field: 'zmm_upper', width: 8, bytes: 512 },
  { feature: XFEATURE.Hi16_ZMM, field: 'hi16_zmm', width: 8, bytes: 1024 },
  { feature: XFEATURE.PKRU, field: 'pkru', width: 4, bytes: 8 },
];

/** user_x86_fpregs_entry from an FXSAVE image (512 bytes) and, if given, an XSAVE area. */
export function fpregsEntry(fx: Buffer, xsave?: { area: Buffer; layout: XsaveLayout; enabled: bigint }): Msg {
  if (fx.length < FXSAVE_SIZE) throw new RangeError(`FXSAVE area is ${FXSAVE_SIZE} bytes, got ${fx.length}`);
  const e: Msg = {
    cwd: fx.readUInt16LE(0),
    swd: fx.readUInt16LE(2),
    twd: fx.readUInt16LE(4),
    fop: fx.readUInt16LE(6),
    rip: fx.readBigUInt64LE(8),
    rdp: fx.readBigUInt64LE(16),
    mxcsr: fx.readUInt32LE(24),
    mxcsr_mask: fx.readUInt32LE(28),
    st_space: u32s(fx, 32, 32),
    xmm_space: u32s(fx, 160, 64),
    // CRIU 4.x leaves `padding` empty (the bytes are the kernel's software-reserved area).
    padding: [],
  };
  if (xsave) {
    const { area, layout, enabled } = xsave;
    const x: Msg = { xstate_bv: area.readBigUInt64LE(FXSAVE_SIZE) };
    for (const f of XSAVE_FIELDS) {
      const comp = layout.components.get(f.feature);
      const on = (enabled & (1n << BigInt(f.feature))) !== 0n;
      if (!on || !comp || comp.size < f.bytes || comp.offset + f.bytes > area.length) {
        x[f.field] = [];
        continue;
      }
      x[f.field] = f.width === 4 ? u32s(area, comp.offset, f.bytes / 4) : u64s(area, comp.offset, f.bytes / 8);
    }
    e.xsave = x;
  }
  return e;
}

/** One user_desc_t from the 16-byte struct user_desc that PTRACE_GET_THREAD_AREA fills. */
export function userDescEntry(b: Buffer): Msg {
  const flags = b.readUInt32LE(12);
  return {
    entry_number: b.readUInt32LE(0),
    base_addr: b.readUInt32LE(4),
    limit: b.readUInt32LE(8),
    seg_32bit: (flags & 1) !== 0,
    contents_h: (flags & 4) !== 0,
    contents_l: (flags & 2) !== 0,
    read_exec_only: (flags & 8) !== 0,
    limit_in_pages: (flags & 16) !== 0,
    seg_not_present: (flags & 32) !== 0,
    usable: (flags & 64) !== 0,
  };
}

/** struct user_desc bytes for a user_desc_t (for PTRACE_SET_THREAD_AREA). */
export function userDescBytes(d: Msg): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(Number(d.entry_number) >>> 0, 0);
  b.writeUInt32LE(Number(d.base_addr) >>> 0, 4);
  b.writeUInt32LE(Number(d.limit) >>> 0, 8);
  const bit = (v: unknown, n: number) => (v ? 1 << n : 0);
  b.writeUInt32LE(bit(d.seg_32bit, 0) | bit(d.contents_l, 1) | bit(d.contents_h, 2) | bit(d.read_exec_only, 3)
    | bit(d.limit_in_pages, 4) | bit(d.seg_not_present, 5) | bit(d.usable, 6), 12);
  return b;
}

/** Is this descriptor the kernel's "empty" one (nothing to restore)? */
export function userDescEmpty(d: Msg): boolean {
  return !d.base_addr && !d.limit && !d.seg_32bit && !d.contents_h && !d.contents_l && !!d.read_exec_only
    && !d.limit_in_pages && !!d.seg_not_present && !d.usable;
}

/** The three GDT TLS descriptors of `tid`; [] when the kernel has no GDT TLS (no IA32 emulation). */
export function readTls(tid: number): Msg[] {
  const out: Msg[] = [];
  for (let i = 0; i < GDT_ENTRY_TLS_ENTRIES; i++) {
    const b = Buffer.alloc(16);
    try {
      sys.ptrace.request(PTRACE_X86_64.GET_THREAD_AREA, tid, GDT_ENTRY_TLS_MIN + i, b, `entry ${GDT_ENTRY_TLS_MIN + i}`);
    } catch (e) {
      if (SysError.is(e, 'EIO') || SysError.is(e, 'ENOSYS')) return [];
      throw new ThreadStateError(tid, `PTRACE_GET_THREAD_AREA(${GDT_ENTRY_TLS_MIN + i})`, (e as Error).message, { cause: e });
    }
    out.push(userDescEntry(b));
  }
  return out;
}

export interface DumpThreadInfoOptions {
  /** set_tid_address() value of the thread (the parasite reports it); 0 when unknown. */
  clearTidAddr?: bigint;
  /** XSAVE layout to use instead of asking the kernel/CPU. */
  layout?: XsaveLayout;
}

/**
 * thread_info_x86 for thread `tid`, which must be at a ptrace-stop. `savedRegs` are the
 * NT_PRSTATUS bytes taken when it was frozen (they are not modified: the restart fix-up is made
 * on a copy).
 */
export function dumpThreadInfo(tid: number, savedRegs: Buffer, opts: DumpThreadInfoOptions = {}): Msg {
  if (savedRegs.length === COMPAT_GP_REGS_SIZE) {
    throw new ThreadStateError(tid, 'registers', 'the thread runs in 32-bit compat mode, which is not supported');
  }
  if (savedRegs.length !== GP_REGS_SIZE) {
    throw new ThreadStateError(tid, 'registers', `NT_PRSTATUS is ${savedRegs.length} bytes, expected ${GP_REGS_SIZE}`);
  }
  const gpregs = gpregsEntry(fixupSyscallRestart(savedRegs));

  let fx: Buffer;
  try {
    fx = Buffer.from(sys.ptrace.getRegset(tid, NT.PRFPREG, FXSAVE_SIZE));
  } catch (e) {
    throw new ThreadStateError(tid, 'NT_PRFPREG', (e as Error).message, { cause: e });
  }
  if (fx.length !== FXSAVE_SIZE) throw new ThreadStateError(tid, 'NT_PRFPREG', `got ${fx.length} bytes, expected ${FXSAVE_SIZE}`);

  let xsave: { area: Buffer; layout: XsaveLayout; enabled: bigint } | undefined;
  let area: Buffer | undefined;
  try {
    area = Buffer.from(sys.ptrace.getRegset(tid, NT.X86_XSTATE, 64 * 1024));
  } catch (e) {
    // No XSAVE on this CPU/kernel: the FXSAVE state is all there is.
    if (!SysError.is(e, 'ENODEV') && !SysError.is(e, 'EINVAL')) {
      throw new ThreadStateError(tid, 'NT_X86_XSTATE', (e as Error).message, { cause: e });
    }
  }
  if (area && area.length >= FXSAVE_SIZE + 64) {
    const layout = opts.layout ?? xsaveLayout(tid);
    // The kernel puts XCR0 (the enabled user features) in the first word of sw_reserved.
    const xcr0 = area.readBigUInt64LE(464);
    xsave = { area, layout, enabled: xcr0 !== 0n ? xcr0 & layout.supported : layout.supported };
  }

  return {
    clear_tid_addr: opts.clearTidAddr ?? 0n,
    gpregs,
    fpregs: fpregsEntry(fx, xsave),
    tls: readTls(tid),
  };
}
