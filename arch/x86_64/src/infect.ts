import { SYSCALLS_X86_64 } from '@criu/sys';
import { GP_REGS_SIZE, getReg, setReg } from './regs.js';
import { EM_X86_64, R_X86_64_RELATIVE, parasiteElfPath } from './parasite.js';
import { dumpThreadInfo } from './thread-info.js';
import { xsaveLayout } from './xsave-layout.js';
import { buildSigframe, sigreturnRsp, stateOutsideSigframe } from './sigframe.js';
import { restoreHelperPath } from './parasite.js';
import { vdsoProxy } from './vdso.js';
import type { Msg } from '@criu/images';

const EFLAGS_TF = 1n << 8n;
const EFLAGS_DF = 1n << 10n;

/** `syscall; int3`, padded with int3 to one 8-byte word for PTRACE_POKEDATA. */
const SYSCALL_TRAP = Buffer.from([0x0f, 0x05, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]);

function withoutRestart(regs: Buffer): void {
  // orig_rax = -1: the kernel must not treat our injected ip as an interrupted syscall to restart.
  setReg(regs, 'orig_rax', -1n);
  setReg(regs, 'eflags', getReg(regs, 'eflags') & ~(EFLAGS_TF | EFLAGS_DF));
}

export const x86_64 = {
  name: 'x86_64',
  littleEndian: true,
  elf: { machine: EM_X86_64, relativeType: R_X86_64_RELATIVE },
  parasiteElfPath,
  gpRegsSize: GP_REGS_SIZE,
  syscallTrapCode: SYSCALL_TRAP,
  trapAddress: (ip: bigint) => ip + 3n, // after `syscall` (2 bytes) and `int3` (1 byte)
  ip: (regs: Buffer) => getReg(regs, 'rip'),
  sp: (regs: Buffer) => getReg(regs, 'rsp'),
  syscallRegs(saved: Buffer, ip: bigint, nr: number, args: readonly bigint[]): Buffer {
    const r = Buffer.from(saved);
    withoutRestart(r);
    setReg(r, 'rip', ip);
    setReg(r, 'rax', BigInt(nr));
    const order = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'] as const;
    order.forEach((name, i) => setReg(r, name, args[i] ?? 0n));
    return r;
  },
  syscallResult: (regs: Buffer) => BigInt.asIntN(64, getReg(regs, 'rax')),
  callRegs(saved: Buffer, entry: bigint, sp: bigint, arg0: bigint): Buffer {
    const r = Buffer.from(saved);
    withoutRestart(r);
    setReg(r, 'rip', entry);
    setReg(r, 'rsp', sp & ~0xfn); // 16-byte aligned before the head's `call`
    setReg(r, 'rdi', arg0);
    return r;
  },
  callResult: (regs: Buffer) => BigInt.asIntN(64, getReg(regs, 'rax')),
  image: { march: 1 /* core_entry.march X86_64 */, threadInfoField: 'thread_info' },
  dumpThreadInfo: (tid: number, savedRegs: Buffer) => dumpThreadInfo(tid, savedRegs),
  prepareDump(): void {
    // The CPUID layout of the XSAVE area, cached: reading it costs ~0.5 ms, frozen time otherwise.
    try {
      xsaveLayout();
    } catch { /* no layout from CPUID: dumpThreadInfo says why, with the thread */ }
  },
  restoreHelperPath,
  vdsoProxy,
  threadInfoIp: (ti: Record<string, unknown>): bigint => BigInt((ti.gpregs as Msg).ip as bigint),
  restoreFrame(ti: Record<string, unknown>, sigmask: bigint, frameAddr: bigint, sigaltstack?: { sp: bigint; size: bigint; flags: number }) {
    const frame = buildSigframe(ti as Msg, sigmask, { frameAddr, sigaltstack });
    return { frame, sp: sigreturnRsp(frameAddr) };
  },
  // 440-byte frame + an XSAVE area (AVX-512 needs ~2.7 KiB) + alignment.
  maxRestoreFrameSize: 16 * 1024,
  preSigreturnSyscalls(ti: Record<string, unknown>) {
    // fs/gs base go in with the registers of the rt_sigreturn call (see sigreturnRegs).
    if (stateOutsideSigframe(ti as Msg).tls.length) throw new Error('restoring GDT TLS entries (set_thread_area) is not supported yet');
    return [];
  },
  sigreturnRegs(saved: Buffer, ip: bigint, sp: bigint, ti: Record<string, unknown>): Buffer {
    const r = x86_64.syscallRegs(saved, ip, SYSCALLS_X86_64.rt_sigreturn, []);
    setReg(r, 'rsp', sp);
    // The frame cannot carry fs/gs base; PTRACE_SETREGSET can, and rt_sigreturn leaves them.
    for (const a of stateOutsideSigframe(ti as Msg).archPrctl) setReg(r, a.code === 0x1002 ? 'fs_base' : 'gs_base', a.value);
    return r;
  },
  sysno(name: string): number {
    const nr = (SYSCALLS_X86_64 as Record<string, number>)[name];
    if (nr === undefined) throw new Error(`x86_64 has no syscall named ${name}`);
    return nr;
  },
};
