import * as fs from 'node:fs';
import { decodeMessage, encodeMessage } from '@criu/images';
import { ENDIAN, PPC_FEATURE, PPC_FEATURE2, cpuinfoEntry, cpuinfoMissing, hwcapNames, imageCpu, type Ppc64Cpu } from '../src/cpuinfo';
import { ppc64 } from '../src/infect';

/** The uapi header the tables mirror (Debian: linux-libc-dev-ppc64el-cross). */
const HEADER = '/usr/powerpc64le-linux-gnu/include/asm/cputable.h';

/** AT_HWCAP/AT_HWCAP2 of the VM's CPU models (../shared/ppc64-vm/results/facts-POWER*.txt). */
const HWCAP = 0xdc0065c2n;
const CPU: Record<'POWER8' | 'POWER9' | 'POWER10', Ppc64Cpu> = {
  POWER8: { endian: ENDIAN.LITTLEENDIAN, hwcap: HWCAP, hwcap2: 0xbe000000n },
  POWER9: { endian: ENDIAN.LITTLEENDIAN, hwcap: HWCAP, hwcap2: 0xbef00000n },
  POWER10: { endian: ENDIAN.LITTLEENDIAN, hwcap: HWCAP, hwcap2: 0xbef60000n },
};
/** cpuinfo.img as it is written and read back. */
const roundTrip = (cpu: Ppc64Cpu) => decodeMessage('cpuinfo_entry', encodeMessage('cpuinfo_entry', cpuinfoEntry(cpu))) as Record<string, unknown>;

describe('the HWCAP tables match the kernel uapi header', () => {
  const text = fs.readFileSync(HEADER, 'utf8').replace(/\\\n/g, ' ');
  const defined = new Map<string, number>();
  for (const m of text.matchAll(/^#define\s+(PPC_FEATURE2?_\w+)\s+(0x[0-9a-fA-F]+)/gm)) defined.set(m[1], Number(m[2]));

  it('the header defines the bits (the test reads something)', () => {
    expect(defined.size).toBeGreaterThan(40);
    expect(defined.get('PPC_FEATURE2_SCV')).toBe(0x00100000);
  });

  it('every PPC_FEATURE_* / PPC_FEATURE2_* of the header is in the tables with its value, and nothing else', () => {
    const ours = new Map([...PPC_FEATURE, ...PPC_FEATURE2].map((r) => [r.macro, r.bit]));
    expect(Object.fromEntries([...ours].sort())).toEqual(Object.fromEntries([...defined].sort()));
  });

  it('HWCAP macros are PPC_FEATURE_*, HWCAP2 macros PPC_FEATURE2_*; bits and names are unique', () => {
    for (const [table, prefix] of [[PPC_FEATURE, /^PPC_FEATURE_/], [PPC_FEATURE2, /^PPC_FEATURE2_/]] as const) {
      for (const r of table) expect(r.macro).toMatch(prefix);
      expect(new Set(table.map((r) => r.bit)).size).toBe(table.length);
    }
    const names = [...PPC_FEATURE, ...PPC_FEATURE2].map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('names of HWCAP bits (as glibc LD_SHOW_AUXV=1 prints them)', () => {
  it('the VM CPUs', () => {
    // facts-POWER10.txt: "true_le archpmu vsx arch_2_06 dfp ic_snoop smt mmu fpu altivec ppc64 ppc32"
    expect(hwcapNames(0, HWCAP).reverse()).toEqual('true_le archpmu vsx arch_2_06 dfp ic_snoop smt mmu fpu altivec ppc64 ppc32'.split(' '));
    expect(hwcapNames(1, CPU.POWER10.hwcap2).reverse()).toEqual('mma arch_3_1 scv darn ieee128 arch_3_00 vcrypto tar isel ebb dscr arch_2_07'.split(' '));
  });
  it('bits the kernel does not define', () => {
    expect(hwcapNames(0, 0x24)).toEqual(['hwcap bit 5', 'hwcap bit 2']);
    expect(hwcapNames(1, 0x1)).toEqual(['hwcap2 bit 0']);
  });
});

describe('cpuinfo.img record', () => {
  it('cpuinfo_entry.ppc64_entry[0] = { endian, hwcap: [AT_HWCAP, AT_HWCAP2] }, encoded as CRIU does', () => {
    const bytes = encodeMessage('cpuinfo_entry', cpuinfoEntry(CPU.POWER9));
    // field 2 (ppc64_entry) { field 1 endian = 1; field 2 hwcap (unpacked varints) }
    expect(bytes.toString('hex')).toBe('120e080110c2cb81e00d108080c0f70b');
    expect(imageCpu(roundTrip(CPU.POWER9))).toEqual(CPU.POWER9);
  });
  it('an x86 record is refused as another architecture', () => {
    expect(() => cpuinfoMissing({ x86_entry: [{ vendor_id: 1 }], ppc64_entry: [] }, CPU.POWER9)).toThrow(/no ppc64 record .*x86_entry/);
  });
});

describe('cpuinfoMissing: what this CPU lacks of the image\'s', () => {
  it.each([
    ['POWER8', 'POWER8'], ['POWER8', 'POWER9'], ['POWER8', 'POWER10'], ['POWER9', 'POWER9'], ['POWER9', 'POWER10'], ['POWER10', 'POWER10'],
  ] as const)('%s image on %s: nothing', (from, to) => {
    expect(cpuinfoMissing(roundTrip(CPU[from]), CPU[to])).toEqual([]);
  });
  it('POWER9 image on POWER8: arch_3_00, ieee128, darn, scv', () => {
    expect(cpuinfoMissing(roundTrip(CPU.POWER9), CPU.POWER8)).toEqual(['arch_3_00', 'ieee128', 'darn', 'scv']);
  });
  it('POWER10 image on POWER9: arch_3_1, mma; on POWER8 all six', () => {
    expect(cpuinfoMissing(roundTrip(CPU.POWER10), CPU.POWER9)).toEqual(['arch_3_1', 'mma']);
    expect(cpuinfoMissing(roundTrip(CPU.POWER10), CPU.POWER8)).toEqual(['arch_3_00', 'ieee128', 'darn', 'scv', 'arch_3_1', 'mma']);
  });
  it('an HWCAP (not HWCAP2) bit is named too, and HTM as CRIU checks it', () => {
    const img = { ...CPU.POWER8, hwcap: HWCAP | 0x00001000n /* arch_2_05 */, hwcap2: CPU.POWER8.hwcap2 | 0x40000000n /* htm */ };
    expect(cpuinfoMissing(roundTrip(img), CPU.POWER10)).toEqual(['arch_2_05', 'htm']);
  });
  it('byte order must match', () => {
    expect(cpuinfoMissing(roundTrip({ ...CPU.POWER9, endian: ENDIAN.BIGENDIAN }), CPU.POWER9)).toEqual(['big-endian byte order (this machine is little-endian)']);
  });
  it("CRIU's minimum: the image's CPU must have had ppc64, fpu, mmu, vsx and arch_2_07", () => {
    const old = { endian: ENDIAN.LITTLEENDIAN, hwcap: 0x80000000n | 0x40000000n | 0x08000000n | 0x04000000n, hwcap2: 0n }; // a POWER5-ish CPU
    expect(cpuinfoMissing(roundTrip(old), CPU.POWER9)).toEqual([
      'vsx (required, but absent from the image\'s CPU)', 'arch_2_07 (required, but absent from the image\'s CPU)',
    ]);
  });
  it('the arch object carries both hooks', () => {
    expect(typeof ppc64.cpuinfo).toBe('function');
    expect(typeof ppc64.cpuinfoMissing).toBe('function');
  });
});
