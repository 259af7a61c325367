import { SYSCALLS_PPC64 } from '@criu/sys';
import { CR0_SO, GP_REGS_SIZE, getReg, setReg } from './regs.js';
import { EM_PPC64, R_PPC64_RELATIVE, parasiteElfPath, restoreHelperPath } from './parasite.js';
import { buildSigframe } from './sigframe.js';
import type { Msg } from '@criu/images';
import { dumpThreadInfo, signalFrameProbe } from './thread-info.js';
import type { VectorUse } from './sigframe.js';
import { cpuinfoEntry, cpuinfoMissing } from './cpuinfo.js';
import { vdsoProxy, vdsoExits } from './vdso.js';

/** `sc`: system call (the classic vector 0xc00: errors come back as CR0.SO + positive errno). */
export const INSN_SC = 0x44000002;
/** `trap` = `tw 31,0,0`: unconditional trap, SIGTRAP with nip still at the trap. */
export const INSN_TRAP = 0x7fe00008;

/** ELFv2 minimum stack frame: back chain, CR save, LR save, TOC save (STACK_FRAME_MIN_SIZE). */
export const STACK_FRAME_MIN_SIZE = 32n;

/** `sc; trap` as one 8-byte word (little-endian instruction order) for PTRACE_POKEDATA. */
const SYSCALL_TRAP = (() => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(INSN_SC, 0);
  b.writeUInt32LE(INSN_TRAP, 4);
  return b;
})();

/**
 * trap = 0: the registers no longer look like a syscall, so when the task resumes the kernel does
 * not apply syscall-restart handling (which would rewind nip and reload r3 from orig_gpr3) to the
 * code we run. The saved registers keep their trap value, so a syscall the task was in when it was
 * frozen still restarts normally after we put them back.
 */
function notASyscall(regs: Buffer): void {
  setReg(regs, 'trap', 0n);
}

export function syscallRegs(saved: Buffer, ip: bigint, nr: number, args: readonly bigint[]): Buffer {
  if (args.length > 6) throw new RangeError(`a syscall takes at most 6 arguments, got ${args.length}`);
  const r = Buffer.from(saved);
  notASyscall(r);
  setReg(r, 'nip', ip);
  setReg(r, 'r12', ip);
  setReg(r, 'r0', BigInt(nr));
  for (let i = 0; i < 6; i++) setReg(r, `r${3 + i}`, args[i] ?? 0n);
  return r;
}

/** The kernel's -errno convention: `sc` reports failure with CR0.SO set and the errno in r3. */
export function syscallResult(regs: Buffer): bigint {
  const r3 = getReg(regs, 'r3');
  return (getReg(regs, 'ccr') & CR0_SO) !== 0n ? -r3 : BigInt.asIntN(64, r3);
}

export function callRegs(saved: Buffer, entry: bigint, sp: bigint, arg0: bigint): Buffer {
  const r = Buffer.from(saved);
  notASyscall(r);
  setReg(r, 'nip', entry);
  setReg(r, 'r12', entry); // ELFv2 global entry: the callee derives its TOC pointer from r12
  setReg(r, 'r1', (sp & ~0xfn) - STACK_FRAME_MIN_SIZE);
  setReg(r, 'r3', arg0);
  return r;
}

export const ppc64 = {
  name: 'ppc64',
  littleEndian: true,
  elf: { machine: EM_PPC64, relativeType: R_PPC64_RELATIVE },
  parasiteElfPath,
  gpRegsSize: GP_REGS_SIZE,
  syscallTrapCode: SYSCALL_TRAP,
  trapAddress: (ip: bigint) => ip + 4n, // the trap after `sc`: a ppc trap leaves nip at itself
  ip: (regs: Buffer) => getReg(regs, 'nip'),
  sp: (regs: Buffer) => getReg(regs, 'r1'),
  syscallRegs,
  syscallResult,
  callRegs,
  callResult: (regs: Buffer) => BigInt.asIntN(64, getReg(regs, 'r3')),
  image: { march: 4 /* core_entry.march PPC64 */, threadInfoField: 'ti_ppc64' },
  dumpThreadInfo: (tid: number, savedRegs: Buffer, signalFrame?: unknown): Record<string, unknown> =>
    dumpThreadInfo(tid, savedRegs, signalFrame ? { vectorUse: signalFrame as VectorUse } : {}),
  signalFrameProbe,
  // --- CPU features (cpuinfo.img: endianness + AT_HWCAP, AT_HWCAP2)
  cpuinfo: (): Record<string, unknown> => cpuinfoEntry(),
  cpuinfoMissing: (image: Record<string, unknown>): string[] => cpuinfoMissing(image),
  // --- restore
  restoreHelperPath,
  vdsoProxy,
  vdsoExits,
  threadInfoIp: (ti: Record<string, unknown>): bigint => BigInt((ti.gpregs as Msg).nip as bigint),
  /** The ucontext rt_sigreturn reads at r1 (see sigframe.ts); r1 = the frame's address. */
  restoreFrame(ti: Record<string, unknown>, sigmask: bigint, frameAddr: bigint, sigaltstack?: { sp: bigint; size: bigint; flags: number }): { frame: Buffer; sp: bigint } {
    return { frame: buildSigframe(ti as Msg, sigmask, { frameAddr, sigaltstack }), sp: frameAddr };
  },
  /** Room core reserves per frame: the 1696-byte ucontext plus alignment slack. */
  maxRestoreFrameSize: 4096,
  /** Nothing lives outside the frame: the TLS pointer is r13, a GPR. */
  preSigreturnSyscalls(ti: Record<string, unknown>): Array<{ name: string; args: bigint[] }> {
    void ti;
    return [];
  },
  /** r0 = __NR_rt_sigreturn, r1 = the frame, nip (and r12) = the `sc` word, trap = 0. */
  sigreturnRegs(saved: Buffer, ip: bigint, sp: bigint, ti?: Record<string, unknown>): Buffer {
    void ti;
    const r = syscallRegs(saved, ip, SYSCALLS_PPC64.rt_sigreturn, []);
    setReg(r, 'r1', sp);
    return r;
  },
  sysno(name: string): number {
    const nr = (SYSCALLS_PPC64 as Record<string, number>)[name];
    if (nr === undefined) throw new Error(`ppc64 has no syscall named ${name}`);
    return nr;
  },
};
