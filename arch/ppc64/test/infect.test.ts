import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { SYSCALLS_PPC64 } from '@criu/sys';
import { elfToBlob } from '../../../packages/core/src/parasite/elf-blob';
import { ppc64, INSN_SC, INSN_TRAP, STACK_FRAME_MIN_SIZE, callRegs, syscallRegs, syscallResult } from '../src/infect';
import { CR0_SO, ELF_NGREG, GP_REGS_SIZE, PT, getReg, regIndex, setReg } from '../src/regs';
import { EM_PPC64, R_PPC64_RELATIVE } from '../src/parasite';
import { CROSS, assemble, crossCompile } from './helpers/cross';

/** A register set with every slot holding a distinct value, like one read from a stopped task. */
function sampleRegs(): Buffer {
  const b = Buffer.alloc(GP_REGS_SIZE);
  for (let i = 0; i < ELF_NGREG; i++) b.writeBigUInt64LE(0x1000n + BigInt(i), i * 8);
  return b;
}

describe('ppc64 instruction words (checked against the cross assembler)', () => {
  it('sc, trap and the injected syscall word', () => {
    const code = assemble('words', 'sc\n\ttrap\n\ttw 31,0,0');
    expect(code.readUInt32LE(0)).toBe(INSN_SC);
    expect(code.readUInt32LE(4)).toBe(INSN_TRAP);
    expect(code.readUInt32LE(8)).toBe(INSN_TRAP);
    expect(ppc64.syscallTrapCode.length).toBe(8);
    expect(ppc64.syscallTrapCode.equals(code.subarray(0, 8))).toBe(true);
    expect(ppc64.syscallTrapCode.readBigUInt64LE(0)).toBe(0x7fe0000844000002n);
    expect(ppc64.trapAddress(0x10000000n)).toBe(0x10000004n);
  });
});

describe('ppc64 pt_regs (checked against the kernel uapi headers)', () => {
  it('slot indexes, ELF_NGREG and the NT_PRSTATUS size', () => {
    const uapiName: Record<string, string> = {
      nip: 'PT_NIP', msr: 'PT_MSR', orig_gpr3: 'PT_ORIG_R3', ctr: 'PT_CTR', link: 'PT_LNK', xer: 'PT_XER',
      ccr: 'PT_CCR', softe: 'PT_SOFTE', trap: 'PT_TRAP', dar: 'PT_DAR', dsisr: 'PT_DSISR', result: 'PT_RESULT',
    };
    const asserts = Object.entries(PT).map(([f, i]) =>
      `_Static_assert(offsetof(struct pt_regs, ${f}) == ${i} * 8, "${f}");\n_Static_assert(${uapiName[f]} == ${i}, "${uapiName[f]}");`);
    crossCompile('ptregs', [
      '#include <stddef.h>', '#include <asm/ptrace.h>', '#include <asm/elf.h>',
      '_Static_assert(offsetof(struct pt_regs, gpr) == 0, "gpr");',
      '_Static_assert(sizeof(((struct pt_regs *)0)->gpr) == 32 * 8, "gpr size");',
      `_Static_assert(ELF_NGREG == ${ELF_NGREG}, "ELF_NGREG");`,
      `_Static_assert(sizeof(elf_gregset_t) == ${GP_REGS_SIZE}, "elf_gregset_t");`,
      `_Static_assert(sizeof(struct pt_regs) == ${Object.keys(PT).length + 32} * 8, "pt_regs size");`,
      ...asserts, '',
    ].join('\n'));
  });

  it('get/set by name; r0..r31 are gpr[n]', () => {
    const r = sampleRegs();
    expect(getReg(r, 'r0')).toBe(0x1000n);
    expect(getReg(r, 'r31')).toBe(0x1000n + 31n);
    expect(getReg(r, 'nip')).toBe(0x1000n + 32n);
    expect(getReg(r, 'result')).toBe(0x1000n + 43n);
    setReg(r, 'r1', -16n);
    expect(r.readBigUInt64LE(8)).toBe(0xfffffffffffffff0n);
    expect(() => regIndex('r32')).toThrow(RangeError);
    expect(() => regIndex('sp' as never)).toThrow(RangeError);
    expect(() => getReg(Buffer.alloc(8 * 40), 'trap')).toThrow(RangeError);
  });
});

describe('ppc64 syscall and call register encoding', () => {
  it('syscallRegs: r0 = nr, r3..r8 = args, nip = r12 = ip, trap cleared, the rest kept', () => {
    const saved = sampleRegs();
    setReg(saved, 'trap', 0xc00n);
    const copy = Buffer.from(saved);
    const r = syscallRegs(saved, 0x7fff0000n, SYSCALLS_PPC64.mmap, [0n, 65536n, 3n, 0x22n, -1n]);
    expect(saved.equals(copy)).toBe(true); // not modified in place
    expect(getReg(r, 'r0')).toBe(90n);
    expect([3, 4, 5, 6, 7, 8].map((n) => getReg(r, `r${n}`))).toEqual([0n, 65536n, 3n, 0x22n, 0xffffffffffffffffn, 0n]);
    expect(getReg(r, 'nip')).toBe(0x7fff0000n);
    expect(getReg(r, 'r12')).toBe(0x7fff0000n);
    expect(getReg(r, 'trap')).toBe(0n);
    for (const keep of ['r1', 'r2', 'r9', 'r13', 'r31', 'msr', 'orig_gpr3', 'ctr', 'link', 'xer', 'ccr'] as const) {
      expect(getReg(r, keep)).toBe(getReg(saved, keep));
    }
    expect(() => syscallRegs(saved, 0n, 1, [1n, 2n, 3n, 4n, 5n, 6n, 7n])).toThrow(RangeError);
  });

  it('syscallResult decodes CR0.SO (error: positive errno in r3) into -errno', () => {
    const r = sampleRegs();
    setReg(r, 'r3', 9n);
    setReg(r, 'ccr', CR0_SO | 0x22000000n);
    expect(syscallResult(r)).toBe(-9n);
    setReg(r, 'ccr', 0x22000000n); // other CR fields set, SO clear: a success
    expect(syscallResult(r)).toBe(9n);
    setReg(r, 'r3', 0x7fffb0000000n);
    expect(syscallResult(r)).toBe(0x7fffb0000000n);
    setReg(r, 'ccr', 0x01000000n); // SO of CR1, not CR0
    expect(syscallResult(r)).toBe(0x7fffb0000000n);
  });

  it('callRegs: nip = r12 = entry, r1 = 16-aligned sp minus the minimum frame, r3 = arg', () => {
    const saved = sampleRegs();
    setReg(saved, 'trap', 0x3000n);
    const r = callRegs(saved, 0x7f0000001214n, 0x7f0000020008n, 0x7f0000010000n);
    expect(getReg(r, 'nip')).toBe(0x7f0000001214n);
    expect(getReg(r, 'r12')).toBe(0x7f0000001214n);
    expect(getReg(r, 'r1')).toBe(0x7f0000020000n - STACK_FRAME_MIN_SIZE);
    expect(getReg(r, 'r1') % 16n).toBe(0n);
    expect(getReg(r, 'r3')).toBe(0x7f0000010000n);
    expect(getReg(r, 'trap')).toBe(0n);
    setReg(r, 'r3', -22n);
    expect(ppc64.callResult(r)).toBe(-22n);
  });

  it('sigreturnRegs runs rt_sigreturn with the frame as stack', () => {
    const r = ppc64.sigreturnRegs(sampleRegs(), 0x1000n, 0x2000n);
    expect(getReg(r, 'r0')).toBe(172n);
    expect(getReg(r, 'r1')).toBe(0x2000n);
    expect(getReg(r, 'nip')).toBe(0x1000n);
  });
});

describe('ppc64 syscall numbers (checked against the cross uapi asm/unistd.h)', () => {
  it('every syscall the infection and the parasite use', () => {
    const names = ['getpid', 'mmap', 'munmap', 'mprotect', 'close', 'rt_sigreturn', 'rt_sigaction', 'socket',
      'connect', 'sendmsg', 'recvmsg', 'vmsplice', 'prctl', 'umask', 'sigaltstack', 'getitimer', 'memfd_create'];
    for (const n of names) expect(ppc64.sysno(n)).toBe((SYSCALLS_PPC64 as Record<string, number>)[n]);
    crossCompile('sysno', ['#include <asm/unistd.h>',
      ...names.map((n) => `_Static_assert(__NR_${n} == ${ppc64.sysno(n)}, "${n}");`), ''].join('\n'));
    expect(() => ppc64.sysno('arch_prctl')).toThrow(/no syscall/);
  });
});

describe('the built parasite', () => {
  const file = ppc64.parasiteElfPath();
  const elf = fs.readFileSync(file);

  it('is an ELFv2 little-endian static PIE that core can load', () => {
    expect(elf[5]).toBe(1); // ELFDATA2LSB
    expect(elf.readUInt16LE(18)).toBe(EM_PPC64);
    expect(elf.readUInt32LE(48) & 3).toBe(2); // e_flags: ABI version 2
    const blob = elfToBlob(elf, { ...ppc64.elf, file });
    expect(ppc64.elf.relativeType).toBe(R_PPC64_RELATIVE);
    expect(blob.symbols.get('parasite_head')).toBe(blob.entry);
    expect(blob.symbols.has('parasite_main')).toBe(true);
    for (const r of blob.relocs) expect(r.offset % 8).toBe(0);
  });

  it('enters at parasite_head: TOC from r12, call, then trap', () => {
    const blob = elfToBlob(elf, { ...ppc64.elf, file });
    const w = (i: number) => Buffer.from(blob.bytes).readUInt32LE(blob.entry + i * 4);
    expect(w(0) >>> 16).toBe(0x3c4c); // addis r2,r12,...
    expect(w(1) >>> 16).toBe(0x3842); // addi r2,r2,...
    expect(w(2) >>> 26).toBe(18); // bl
    expect(w(2) & 3).toBe(1); // AA=0, LK=1
    expect(w(4)).toBe(INSN_TRAP);
  });

  it('has no floating-point or vector instructions (they would clobber the task registers)', () => {
    const dis = execFileSync(`${CROSS}objdump`, ['-d', '--no-show-raw-insn', file]).toString();
    const mnemonics = dis.split('\n').map((l) => /^\s*[0-9a-f]+:\s+(\S+)/.exec(l)?.[1]).filter((m): m is string => !!m);
    expect(mnemonics.length).toBeGreaterThan(100);
    const fpOrVector = mnemonics.filter((m) => /^(l|st)f[sd]|^f[a-z]|^(l|st)(x|v)|^x[sxv]|^v[a-z]|^m[tf](vsr|fs|vscr)/.test(m));
    expect(fpOrVector).toEqual([]);
  });
});
