import { vdsoProxy, vdsoExits } from '../src/vdso';
import { assemble } from './helpers/cross';

const word = (b: Buffer, i: number) => b.readUInt32LE(i * 4);

describe('ppc64 vDSO proxy code', () => {
  it('the shared trampoline: mflr r12; mtlr r0; ld r12,0(r12); mtctr r12; bctr', () => {
    const t = vdsoProxy.trampoline;
    expect(t.length).toBe(20);
    expect([0, 1, 2, 3, 4].map((i) => word(t, i))).toEqual([0x7d8802a6, 0x7c0803a6, 0xe98c0000, 0x7d8903a6, 0x4e800420]);
  });

  it('a stub: mflr r0; bl to the trampoline (forwards and backwards); the 8-byte target', () => {
    const at = 0x7fff12340100n, target = 0x7fffabcd0a00n;
    for (const tramp of [at + 0x1f00n, at - 0x80n]) {
      const s = vdsoProxy.stub(at, tramp, target);
      expect(s.length).toBe(vdsoProxy.stubSize);
      expect(word(s, 0)).toBe(0x7c0802a6);
      const bl = word(s, 1);
      expect(bl >>> 26).toBe(18); // I-form branch
      expect(bl & 3).toBe(1); // AA = 0, LK = 1
      const disp = BigInt(((bl & 0x3fffffc) << 6) >> 6); // sign-extend the 26-bit field
      expect(at + 4n + disp).toBe(tramp);
      expect(s.readBigUInt64LE(8)).toBe(target);
    }
  });

  it('refuses a trampoline out of bl range, or none', () => {
    expect(() => vdsoProxy.stub(0x10000000n, 0x10000000n + (1n << 26n), 0n)).toThrow(/out of bl range/);
    expect(() => vdsoProxy.stub(0x10000000n, undefined, 0n)).toThrow(/needs the trampoline/);
  });

  it('a syscall stub for a symbol the running vDSO lacks: li r0,nr; sc; blr', () => {
    const s = vdsoProxy.syscallStub(359);
    expect([0, 1, 2].map((i) => word(s, i))).toEqual([0x38000000 + 359, 0x44000002, 0x4e800020]);
    expect(vdsoProxy.fallbacks.__kernel_getrandom).toBe('getrandom');
  });

  it('forwards the time functions but not the signal trampolines', () => {
    expect(vdsoProxy.symbols).toContain('__kernel_clock_gettime');
    expect(vdsoProxy.symbols.some((s) => s.includes('sigtramp'))).toBe(false);
  });
});

describe('ppc64 vDSO ways out (checked against the cross assembler)', () => {
  it('finds returns, branches to LR/CTR (any form) and sc/scv; not relative branches or other code', () => {
    const lines = [
      ['mflr 0', false], ['blr', true], ['bctr', true], ['beqlr', true], ['bnectr cr1', true], ['bctrl', true], ['blrl', true],
      ['sc', true], ['scv 0', true], ['b .+8', false], ['bl .+8', false], ['bne .-4', false], ['bcl 20,31,.+4', false],
      ['addi 3,3,1', false], ['ld 0,16(1)', false], ['mftb 5', false], ['trap', false],
    ] as const;
    const code = assemble('exits', lines.map(([l]) => l).join('\n\t'));
    expect(code.length).toBe(lines.length * 4);
    expect(vdsoExits.exits(code)).toEqual(lines.flatMap(([, exit], i) => (exit ? [i * 4] : [])));
  });

  it('the breakpoint is `trap` (tw 31,0,0), one instruction wide', () => {
    expect(vdsoExits.breakpoint.equals(assemble('bp', 'trap'))).toBe(true);
  });
});
