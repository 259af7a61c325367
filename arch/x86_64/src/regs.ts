/**
 * x86_64 general-purpose registers: struct user_regs_struct, the NT_PRSTATUS regset.
 * Index of each 64-bit slot, in kernel order.
 */
export const GPR = Object.freeze({
  r15: 0, r14: 1, r13: 2, r12: 3, rbp: 4, rbx: 5, r11: 6, r10: 7, r9: 8, r8: 9,
  rax: 10, rcx: 11, rdx: 12, rsi: 13, rdi: 14, orig_rax: 15, rip: 16, cs: 17, eflags: 18,
  rsp: 19, ss: 20, fs_base: 21, gs_base: 22, ds: 23, es: 24, fs: 25, gs: 26,
});
export type GprName = keyof typeof GPR;
export const GP_REGS_SIZE = 27 * 8;

export function getReg(regs: Buffer, name: GprName): bigint {
  return regs.readBigUInt64LE(GPR[name] * 8);
}
export function setReg(regs: Buffer, name: GprName, value: bigint): void {
  regs.writeBigUInt64LE(BigInt.asUintN(64, value), GPR[name] * 8);
}
