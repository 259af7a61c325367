/**
 * vDSO proxy stubs for ppc64 (ELFv2), in two steps. Each forwarded symbol becomes
 *   mflr r0 ; bl trampoline ; .quad target
 * and one shared trampoline, placed in the proxy's free tail,
 *   mflr r12 ; mtlr r0 ; ld r12,0(r12) ; mtctr r12 ; bctr
 * reads the target from the word after the `bl` (its return address), gives the caller's LR back
 * and branches with r12 = target, as the ELFv2 global entry expects. r0 and r12 are volatile
 * across calls, so clobbering them at a function's entry is safe.
 */
const MFLR_R0 = 0x7c0802a6, BL = 0x48000001, MFLR_R12 = 0x7d8802a6, MTLR_R0 = 0x7c0803a6;
const LD_R12_0_R12 = 0xe98c0000, MTCTR_R12 = 0x7d8903a6, BCTR = 0x4e800420;
const LI_R0 = 0x38000000, SC = 0x44000002, BLR = 0x4e800020;
const STUB_SIZE = 16;
const BL_RANGE = 1n << 25n; // a 26-bit signed byte displacement

function words(...w: number[]): Buffer {
  const b = Buffer.alloc(w.length * 4);
  w.forEach((x, i) => b.writeUInt32LE(x >>> 0, i * 4));
  return b;
}

export const vdsoProxy = {
  // Everything that reads the vvar/data page or the timebase frequency; the signal trampolines
  // (__kernel_sigtramp*) only make the rt_sigreturn syscall and stay as they are.
  symbols: ['__kernel_clock_gettime', '__kernel_clock_getres', '__kernel_gettimeofday', '__kernel_time', '__kernel_getcpu',
    '__kernel_get_tbfreq', '__kernel_get_syscall_map', '__kernel_sync_dicache', '__kernel_getrandom'] as const,
  stubSize: STUB_SIZE,
  trampoline: words(MFLR_R12, MTLR_R0, LD_R12_0_R12, MTCTR_R12, BCTR),
  // getrandom came to the powerpc vDSO in 6.12: on an older kernel it is the plain syscall.
  fallbacks: { __kernel_getrandom: 'getrandom' } as Readonly<Record<string, string>>,
  /** `li r0,nr; sc; blr`: vDSO functions report errors as `sc` does (CR0.SO and a positive errno). */
  syscallStub(nr: number): Buffer {
    if (nr > 0x7fff) throw new Error(`syscall ${nr} does not fit li`);
    return words(LI_R0 | nr, SC, BLR);
  },
  stub(at: bigint, trampoline: bigint | undefined, target: bigint): Buffer {
    if (trampoline === undefined) throw new Error('the ppc64 vDSO stub needs the trampoline');
    const disp = trampoline - (at + 4n);
    if (disp < -BL_RANGE || disp >= BL_RANGE) throw new Error(`the trampoline at 0x${trampoline.toString(16)} is out of bl range of 0x${at.toString(16)}`);
    const b = Buffer.alloc(STUB_SIZE);
    words(MFLR_R0, BL | Number(BigInt.asUintN(26, disp) & 0x3fffffcn)).copy(b, 0);
    b.writeBigUInt64LE(target, 8);
    return b;
  },
};

/** `tw 31,0,0`: traps with nip on itself. */
const TRAP = 0x7fe00008;

/**
 * Where code can leave a vDSO: every bclr/bcctr (opcode 19, XO 16 or 528: blr, bctr and their
 * conditional and linking forms) and every sc/scv (opcode 17: the signal trampolines' rt_sigreturn
 * and the syscall fallbacks). Other branches are relative and stay inside the self-contained image.
 */
export const vdsoExits = {
  breakpoint: words(TRAP),
  exits(code: Buffer): number[] {
    const out: number[] = [];
    for (let at = 0; at + 4 <= code.length; at += 4) {
      const insn = code.readUInt32LE(at);
      const op = insn >>> 26;
      const xo = (insn >>> 1) & 0x3ff;
      if (op === 17 || (op === 19 && (xo === 16 || xo === 528))) out.push(at);
    }
    return out;
  },
};
