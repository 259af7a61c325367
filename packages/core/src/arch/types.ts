import type { VdsoProxyCode } from '../vdso/proxy.js';

/**
 * What core asks of an architecture. Arch packages implement this structurally (they do not
 * import core); core checks them against it in host.ts. Register sets travel as the raw bytes
 * the kernel's regsets use, and the arch reads and writes the fields it knows.
 */
export interface Arch {
  /** Name as in process.arch terms of this project: 'x86_64' | 'ppc64'. */
  readonly name: string;
  readonly littleEndian: boolean;
  /** ELF facts to load the arch's parasite (see elfToBlob). */
  readonly elf: { readonly machine: number; readonly relativeType: number };
  /** Path of the arch's built parasite ELF. */
  parasiteElfPath(): string;

  /** Size of the NT_PRSTATUS regset (the general-purpose registers). */
  readonly gpRegsSize: number;
  /** Machine code, one aligned word long, that runs one syscall and then traps. */
  readonly syscallTrapCode: Buffer;
  /** The instruction pointer after the trap of syscallTrapCode placed at `ip`. */
  trapAddress(ip: bigint): bigint;
  ip(regs: Buffer): bigint;
  sp(regs: Buffer): bigint;
  /** A copy of `saved` set up to run syscall `nr` with `args` from the trap code at `ip`. */
  syscallRegs(saved: Buffer, ip: bigint, nr: number, args: readonly bigint[]): Buffer;
  /** The syscall's result after the trap, as the kernel's -errno convention. */
  syscallResult(regs: Buffer): bigint;
  /** A copy of `saved` set up to call blob code at `entry` with stack `sp` and one argument. */
  callRegs(saved: Buffer, entry: bigint, sp: bigint, arg0: bigint): Buffer;
  /** The called function's return value after its trap. */
  callResult(regs: Buffer): bigint;
  /** Syscall number by name for this arch. */
  sysno(name: string): number;

  /** How this arch's thread state appears in core-PID.img. */
  readonly image: {
    /** core_entry.march value (X86_64 = 1, PPC64 = 4). */
    readonly march: number;
    /** The core_entry field that holds thread_info_<arch> ('thread_info', 'ti_ppc64'). */
    readonly threadInfoField: string;
  };
  /**
   * thread_info_<arch> for a thread at a ptrace-stop; `savedRegs` are its NT_PRSTATUS bytes,
   * `signalFrame` what signalFrameProbe.read found for it (when the arch has one and it ran).
   */
  dumpThreadInfo(tid: number, savedRegs: Buffer, signalFrame?: unknown): Record<string, unknown>;
  /** Machine facts dumpThreadInfo needs, read and cached ahead (a dump calls it before the freeze). */
  prepareDump?(): void;
  /**
   * Per-thread state the kernel shows only in the signal frames it builds (ppc64: whether the
   * thread has used VMX / VSX). Core delivers a signal to the frozen thread with its handler at
   * `handlerOffset` into syscallTrapCode (an instruction that traps with the ip on itself), then
   * `read` takes the registers at the handler's entry and a reader of the task's memory. The
   * `preserve` register sets (those signal delivery changes) are saved before and put back after.
   */
  readonly signalFrameProbe?: { readonly handlerOffset: number; readonly preserve: ReadonlyArray<{ note: number; size: number }>; read(regsAtHandler: Buffer, readMemory: (addr: bigint, len: number) => Buffer): unknown };

  // --- CPU features (cpuinfo.img)
  /** This machine's cpuinfo_entry (ppc64: endianness + AT_HWCAP/AT_HWCAP2), or undefined if the arch records none. */
  cpuinfo?(): Record<string, unknown> | undefined;
  /** The features the image's CPU had that this machine lacks, by name ([] when it can restore it). */
  cpuinfoMissing?(image: Record<string, unknown>): string[];

  // --- restore
  /** Path of the arch's restore helper: a tiny program that becomes the restored task. */
  restoreHelperPath(): string;
  /**
   * The rt_sigreturn frame that gives a restored thread its registers, signal mask and
   * sigaltstack, to be written at `frameAddr`; `sp` is the stack pointer to enter rt_sigreturn with.
   */
  restoreFrame(threadInfo: Record<string, unknown>, sigmask: bigint, frameAddr: bigint, sigaltstack?: { sp: bigint; size: bigint; flags: number }): { frame: Buffer; sp: bigint };
  /** Upper bound of restoreFrame()'s size, to reserve room for it. */
  readonly maxRestoreFrameSize: number;
  /** Syscalls the thread must make before rt_sigreturn, for state the frame cannot carry. */
  preSigreturnSyscalls(threadInfo: Record<string, unknown>): Array<{ name: string; args: bigint[] }>;
  /** A copy of `saved` set up to run rt_sigreturn from the trap code at `ip` with stack `sp` (and any registers the frame cannot carry). */
  sigreturnRegs(saved: Buffer, ip: bigint, sp: bigint, threadInfo: Record<string, unknown>): Buffer;

  // --- vDSO
  /** The stubs that forward a dumped vDSO's symbols to the running kernel's vDSO (a proxy). */
  readonly vdsoProxy: VdsoProxyCode;
  /** The instruction pointer a thread_info_<arch> record holds. */
  threadInfoIp(threadInfo: Record<string, unknown>): bigint;
  /**
   * How a thread caught inside the vDSO runs out of it at full speed (single-stepping it can
   * starve a seqlock reader under emulation): `exits` finds, in executable code, the offsets of
   * every instruction through which control can leave it (returns, branches to a register,
   * syscalls); `breakpoint` is an instruction of the same width that traps with the instruction
   * pointer still on it. Absent where instructions cannot be told apart without decoding
   * (x86_64): such threads are single-stepped.
   */
  readonly vdsoExits?: { exits(code: Buffer): number[]; readonly breakpoint: Buffer };
}
