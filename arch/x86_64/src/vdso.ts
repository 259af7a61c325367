/**
 * vDSO proxy stubs for x86_64: each forwarded symbol starts with `movabs $target, %rax; jmp *%rax`
 * (rax is a scratch register at a call's entry), so no shared trampoline is needed.
 */
const STUB_SIZE = 12;

export const vdsoProxy = {
  // The time functions read the kernel's vvar pages; getrandom reads its generation counter there.
  symbols: ['__vdso_clock_gettime', '__vdso_gettimeofday', '__vdso_time', '__vdso_getcpu', '__vdso_clock_getres', '__vdso_getrandom'] as const,
  stubSize: STUB_SIZE,
  trampoline: undefined,
  // getrandom came to the vDSO in 6.11: on an older kernel it is the plain syscall.
  fallbacks: { __vdso_getrandom: 'getrandom' } as Readonly<Record<string, string>>,
  /** `mov $nr, %eax; syscall; ret`: the arguments are already where the syscall wants them but the
   * fourth (rcx), which getrandom does not take. */
  syscallStub(nr: number): Buffer {
    const b = Buffer.from([0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    b.writeUInt32LE(nr, 1);
    return b;
  },
  stub(_at: bigint, _trampoline: bigint | undefined, target: bigint): Buffer {
    const b = Buffer.alloc(STUB_SIZE);
    b[0] = 0x48; b[1] = 0xb8; // movabs imm64, %rax
    b.writeBigUInt64LE(target, 2);
    b[10] = 0xff; b[11] = 0xe0; // jmp *%rax
    return b;
  },
};
