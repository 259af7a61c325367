/**
 * ppc64 general-purpose registers: struct pt_regs as the NT_PRSTATUS regset carries it
 * (arch/powerpc/include/uapi/asm/ptrace.h). The regset is ELF_NGREG (48) 64-bit slots = 384
 * bytes: the 44 pt_regs fields below, then padding. Index of each slot, in kernel order.
 *
 * What SETREGSET does with them (arch/powerpc/kernel/ptrace/ptrace-view.c gpr_set): gpr0-31 and
 * nip are written as given; only the MSR bits a debugger may change (single-step/branch trace,
 * MSR_DEBUGCHANGE) are taken from msr; orig_gpr3, ctr, link, xer, ccr are written; softe is
 * ignored; trap is written (its low flag bit kept); dar, dsisr and result are ignored.
 */
export const PT = Object.freeze({
  nip: 32, msr: 33, orig_gpr3: 34, ctr: 35, link: 36, xer: 37, ccr: 38, softe: 39, trap: 40,
  dar: 41, dsisr: 42, result: 43,
});
export type PtName = keyof typeof PT;
/** A general-purpose register r0..r31, or one of the named pt_regs slots. */
export type RegName = PtName | `r${number}`;

/** ELF_NGREG on ppc64. */
export const ELF_NGREG = 48;
/** Size of the NT_PRSTATUS regset (the kernel pads pt_regs' 44 slots to ELF_NGREG). */
export const GP_REGS_SIZE = ELF_NGREG * 8;

/** CR0.SO (summary overflow) in the 32-bit condition register: `sc` signals an error with it. */
export const CR0_SO = 0x10000000n;

/** pt_regs.trap values (the interrupt vector that entered the kernel). */
export const TRAP = Object.freeze({ SYSCALL: 0xc00, PROGRAM: 0x700, SCV: 0x3000 });

export function regIndex(name: RegName): number {
  if (Object.prototype.hasOwnProperty.call(PT, name)) return PT[name as PtName];
  const m = /^r(\d{1,2})$/.exec(name);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= 31)) throw new RangeError(`no ppc64 register named ${name}`);
  return n;
}

function checkSize(regs: Buffer, index: number): void {
  if (regs.length < (index + 1) * 8) throw new RangeError(`register set of ${regs.length} bytes has no slot ${index}`);
}

/** The register's 64-bit value (pt_regs is native-endian: little-endian on ppc64le). */
export function getReg(regs: Buffer, name: RegName): bigint {
  const i = regIndex(name);
  checkSize(regs, i);
  return regs.readBigUInt64LE(i * 8);
}
export function setReg(regs: Buffer, name: RegName, value: bigint): void {
  const i = regIndex(name);
  checkSize(regs, i);
  regs.writeBigUInt64LE(BigInt.asUintN(64, value), i * 8);
}

/** gpr[n]. */
export function gpr(regs: Buffer, n: number): bigint {
  return getReg(regs, `r${n}`);
}
