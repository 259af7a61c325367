import { decodeMessage, encodeMessage } from '@criu/images';
import { CR0_SO, ELF_NGREG, GP_REGS_SIZE, getReg, setReg } from '../src/regs';
import {
  FP_REGS_SIZE, VMX_REGS_SIZE, VSX_REGS_SIZE, fixupSyscallRestart, fpstateEntry, gpregsBytes, gpregsEntry, vrstateEntry, vsxstateEntry,
} from '../src/thread-info';

function regs(trap: bigint, r3: bigint, so: boolean): Buffer {
  const b = Buffer.alloc(GP_REGS_SIZE);
  for (let i = 0; i < ELF_NGREG; i++) b.writeBigUInt64LE(0x100n + BigInt(i), i * 8);
  setReg(b, 'nip', 0x10000a48n);
  setReg(b, 'orig_gpr3', 7n);
  setReg(b, 'trap', trap);
  setReg(b, 'r3', r3);
  setReg(b, 'ccr', so ? CR0_SO | 0x24000000n : 0x24000000n);
  return b;
}

describe('syscall-restart fix-up of the dumped registers', () => {
  it.each([512n, 513n, 514n])('sc with CR0.SO and errno %d: re-execute (r3 = orig_gpr3, nip - 4)', (errno) => {
    const saved = regs(0xc00n, errno, true);
    const copy = Buffer.from(saved);
    const r = fixupSyscallRestart(saved);
    expect(saved.equals(copy)).toBe(true);
    expect(getReg(r, 'r3')).toBe(7n);
    expect(getReg(r, 'nip')).toBe(0x10000a44n);
    expect(getReg(r, 'trap')).toBe(0n);
  });

  it.each([512n, 513n, 514n])('scv with r3 = -%d: re-execute', (errno) => {
    const r = fixupSyscallRestart(regs(0x3000n, -errno, false));
    expect(getReg(r, 'r3')).toBe(7n);
    expect(getReg(r, 'nip')).toBe(0x10000a44n);
  });

  it('ERESTART_RESTARTBLOCK becomes EINTR: positive with CR0.SO for sc, negative for scv', () => {
    const sc = fixupSyscallRestart(regs(0xc00n, 516n, true));
    expect(getReg(sc, 'r3')).toBe(4n);
    expect(getReg(sc, 'ccr') & CR0_SO).toBe(CR0_SO);
    expect(getReg(sc, 'nip')).toBe(0x10000a48n);
    const scv = fixupSyscallRestart(regs(0x3000n, -516n, false));
    expect(BigInt.asIntN(64, getReg(scv, 'r3'))).toBe(-4n);
    expect(getReg(scv, 'nip')).toBe(0x10000a48n);
  });

  it('leaves successful syscalls and non-syscall stops alone', () => {
    // sc returning 512 bytes (no CR0.SO) is a success, not -ERESTARTSYS.
    const ok = fixupSyscallRestart(regs(0xc00n, 512n, false));
    expect(getReg(ok, 'r3')).toBe(512n);
    expect(getReg(ok, 'nip')).toBe(0x10000a48n);
    expect(getReg(ok, 'trap')).toBe(0n);
    // scv returning +512 is a success too.
    expect(getReg(fixupSyscallRestart(regs(0x3000n, 512n, false)), 'nip')).toBe(0x10000a48n);
    // A stop at an interrupt (decrementer 0x900) is not a syscall: untouched, trap kept.
    const irq = regs(0x900n, 512n, true);
    expect(fixupSyscallRestart(irq).equals(irq)).toBe(true);
    // The low flag bits of trap do not hide a syscall.
    expect(getReg(fixupSyscallRestart(regs(0xc10n, 512n, true)), 'r3')).toBe(7n);
  });
});

describe('thread_info_ppc64 entries', () => {
  it('gpregs round-trip through user_ppc64_regs_entry and the image codec', () => {
    const r = regs(0xc00n, 3n, false);
    const e = gpregsEntry(r);
    expect((e.gpr as bigint[]).length).toBe(32);
    expect(e.nip).toBe(0x10000a48n);
    const back = decodeMessage('user_ppc64_regs_entry', encodeMessage('user_ppc64_regs_entry', e));
    expect(back).toEqual(e);
    // Slots the entry has no field for (softe, dar, dsisr, result, padding) come back as 0.
    const bytes = gpregsBytes(back);
    for (let i = 0; i < 39; i++) expect(bytes.readBigUInt64LE(i * 8)).toBe(r.readBigUInt64LE(i * 8));
    expect(getReg(bytes, 'trap')).toBe(0xc00n);
    expect(getReg(bytes, 'softe')).toBe(0n);
    expect(() => gpregsEntry(Buffer.alloc(352))).toThrow(RangeError);
  });

  it('FP, VMX and VSX regsets map to fpregs (33), vrregs (66) + vrsave, vsxregs (32)', () => {
    const fp = Buffer.alloc(FP_REGS_SIZE);
    fp.writeBigUInt64LE(0x3ff8000000000000n, 14 * 8);
    fp.writeBigUInt64LE(0xdeadn, 32 * 8); // FPSCR
    expect(fpstateEntry(fp).fpregs).toHaveLength(33);
    expect((fpstateEntry(fp).fpregs as bigint[])[32]).toBe(0xdeadn);
    const vmx = Buffer.alloc(VMX_REGS_SIZE);
    for (let i = 0; i < 16; i++) vmx[20 * 16 + i] = 0xa0 + i;
    vmx.writeUInt32LE(0x10000, 32 * 16 + 12); // VSCR word (NJ bit)
    vmx.writeUInt32LE(0x5a5, 33 * 16);
    const vr = vrstateEntry(vmx);
    expect(vr.vrregs).toHaveLength(66);
    expect((vr.vrregs as bigint[])[40]).toBe(0xa7a6a5a4a3a2a1a0n);
    expect((vr.vrregs as bigint[])[65]).toBe(0x10000n << 32n);
    expect(vr.vrsave).toBe(0x5a5);
    const vsx = Buffer.alloc(VSX_REGS_SIZE);
    vsx.writeBigUInt64LE(0x1122334455667788n, 14 * 8);
    expect((vsxstateEntry(vsx).vsxregs as bigint[])[14]).toBe(0x1122334455667788n);
    const ti = { clear_tid_addr: 0x7fff0000n, gpregs: gpregsEntry(regs(0n, 0n, false)), fpstate: fpstateEntry(fp), vrstate: vr, vsxstate: vsxstateEntry(vsx) };
    expect(decodeMessage('thread_info_ppc64', encodeMessage('thread_info_ppc64', ti))).toEqual(ti);
    expect(() => fpstateEntry(Buffer.alloc(256))).toThrow(RangeError);
  });
});
