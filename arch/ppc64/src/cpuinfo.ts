// CPU features of a ppc64 machine as CRIU records them in cpuinfo.img (cpuinfo_entry.ppc64_entry:
// endianness + AT_HWCAP, AT_HWCAP2), and the check a restore makes against them.
import * as os from 'node:os';
import { AT, readAuxv } from '@criu/sys';

/** cpuinfo_ppc64_entry.endianness */
export const ENDIAN = { BIGENDIAN: 0, LITTLEENDIAN: 1 } as const;

/** One HWCAP/HWCAP2 bit: its uapi macro (asm/cputable.h), value, and the name glibc shows (LD_SHOW_AUXV=1). */
export interface HwcapBit {
  readonly macro: string;
  readonly bit: number;
  readonly name: string;
}

const bits = (rows: ReadonlyArray<readonly [string, number, string]>): readonly HwcapBit[] =>
  rows.map(([macro, bit, name]) => ({ macro, bit, name }));

/** AT_HWCAP bits (the kernel's PPC_FEATURE_*). */
export const PPC_FEATURE: readonly HwcapBit[] = bits([
  ['PPC_FEATURE_32', 0x80000000, 'ppc32'],
  ['PPC_FEATURE_64', 0x40000000, 'ppc64'],
  ['PPC_FEATURE_601_INSTR', 0x20000000, 'ppc601'],
  ['PPC_FEATURE_HAS_ALTIVEC', 0x10000000, 'altivec'],
  ['PPC_FEATURE_HAS_FPU', 0x08000000, 'fpu'],
  ['PPC_FEATURE_HAS_MMU', 0x04000000, 'mmu'],
  ['PPC_FEATURE_HAS_4xxMAC', 0x02000000, '4xxmac'],
  ['PPC_FEATURE_UNIFIED_CACHE', 0x01000000, 'ucache'],
  ['PPC_FEATURE_HAS_SPE', 0x00800000, 'spe'],
  ['PPC_FEATURE_HAS_EFP_SINGLE', 0x00400000, 'efpsingle'],
  ['PPC_FEATURE_HAS_EFP_DOUBLE', 0x00200000, 'efpdouble'],
  ['PPC_FEATURE_NO_TB', 0x00100000, 'notb'],
  ['PPC_FEATURE_POWER4', 0x00080000, 'power4'],
  ['PPC_FEATURE_POWER5', 0x00040000, 'power5'],
  ['PPC_FEATURE_POWER5_PLUS', 0x00020000, 'power5+'],
  ['PPC_FEATURE_CELL', 0x00010000, 'cellbe'],
  ['PPC_FEATURE_BOOKE', 0x00008000, 'booke'],
  ['PPC_FEATURE_SMT', 0x00004000, 'smt'],
  ['PPC_FEATURE_ICACHE_SNOOP', 0x00002000, 'ic_snoop'],
  ['PPC_FEATURE_ARCH_2_05', 0x00001000, 'arch_2_05'],
  ['PPC_FEATURE_PA6T', 0x00000800, 'pa6t'],
  ['PPC_FEATURE_HAS_DFP', 0x00000400, 'dfp'],
  ['PPC_FEATURE_POWER6_EXT', 0x00000200, 'power6x'],
  ['PPC_FEATURE_ARCH_2_06', 0x00000100, 'arch_2_06'],
  ['PPC_FEATURE_HAS_VSX', 0x00000080, 'vsx'],
  ['PPC_FEATURE_PSERIES_PERFMON_COMPAT', 0x00000040, 'archpmu'],
  ['PPC_FEATURE_TRUE_LE', 0x00000002, 'true_le'],
  ['PPC_FEATURE_PPC_LE', 0x00000001, 'ppcle'],
]);

/** AT_HWCAP2 bits (the kernel's PPC_FEATURE2_*). */
export const PPC_FEATURE2: readonly HwcapBit[] = bits([
  ['PPC_FEATURE2_ARCH_2_07', 0x80000000, 'arch_2_07'],
  ['PPC_FEATURE2_HTM', 0x40000000, 'htm'],
  ['PPC_FEATURE2_DSCR', 0x20000000, 'dscr'],
  ['PPC_FEATURE2_EBB', 0x10000000, 'ebb'],
  ['PPC_FEATURE2_ISEL', 0x08000000, 'isel'],
  ['PPC_FEATURE2_TAR', 0x04000000, 'tar'],
  ['PPC_FEATURE2_VEC_CRYPTO', 0x02000000, 'vcrypto'],
  ['PPC_FEATURE2_HTM_NOSC', 0x01000000, 'htm-nosc'],
  ['PPC_FEATURE2_ARCH_3_00', 0x00800000, 'arch_3_00'],
  ['PPC_FEATURE2_HAS_IEEE128', 0x00400000, 'ieee128'],
  ['PPC_FEATURE2_DARN', 0x00200000, 'darn'],
  ['PPC_FEATURE2_SCV', 0x00100000, 'scv'],
  ['PPC_FEATURE2_HTM_NO_SUSPEND', 0x00080000, 'htm-no-suspend'],
  ['PPC_FEATURE2_ARCH_3_1', 0x00040000, 'arch_3_1'],
  ['PPC_FEATURE2_MMA', 0x00020000, 'mma'],
]);

/** What CRIU requires of every image's CPU (criu/arch/ppc64/cpu.c): a 64-bit POWER8 or later with FPU, MMU and VSX. */
const REQUIRED: ReadonlyArray<{ word: 0 | 1; bit: number }> = [
  { word: 0, bit: 0x40000000 }, // PPC_FEATURE_64
  { word: 0, bit: 0x08000000 }, // PPC_FEATURE_HAS_FPU
  { word: 0, bit: 0x04000000 }, // PPC_FEATURE_HAS_MMU
  { word: 0, bit: 0x00000080 }, // PPC_FEATURE_HAS_VSX
  { word: 1, bit: 0x80000000 }, // PPC_FEATURE2_ARCH_2_07
];

/** The name of one bit of HWCAP (word 0) or HWCAP2 (word 1); bits the kernel does not define are "hwcap2 bit N". */
export function hwcapBitName(word: 0 | 1, bit: number): string {
  const row = (word === 0 ? PPC_FEATURE : PPC_FEATURE2).find((r) => r.bit === bit);
  return row ? row.name : `hwcap${word === 0 ? '' : '2'} bit ${Math.log2(bit)}`;
}

/** The names of the bits set in `value`, from the most significant down. */
export function hwcapNames(word: 0 | 1, value: bigint | number): string[] {
  const v = BigInt(value);
  const out: string[] = [];
  for (let i = 31; i >= 0; i--) if ((v >> BigInt(i)) & 1n) out.push(hwcapBitName(word, 2 ** i));
  if (v >> 32n) out.push(`hwcap${word === 0 ? '' : '2'} bits above 31 (0x${(v >> 32n).toString(16)}00000000)`);
  return out;
}

export interface Ppc64Cpu {
  endian: number;
  hwcap: bigint;
  hwcap2: bigint;
}

/** This machine: its endianness and AT_HWCAP/AT_HWCAP2 (as CRIU's compel_cpuid: getauxval). */
export function hostCpu(): Ppc64Cpu {
  const auxv = readAuxv('self');
  const hwcap = auxv.get(AT.HWCAP) ?? 0n;
  const hwcap2 = auxv.get(AT.HWCAP2) ?? 0n;
  if (hwcap === 0n || hwcap2 === 0n) {
    throw new Error(`can't read the CPU features: AT_HWCAP 0x${hwcap.toString(16)}, AT_HWCAP2 0x${hwcap2.toString(16)} in /proc/self/auxv`);
  }
  return { endian: os.endianness() === 'LE' ? ENDIAN.LITTLEENDIAN : ENDIAN.BIGENDIAN, hwcap, hwcap2 };
}

/** cpuinfo_entry for a CPU (default: this one), as dump writes it to cpuinfo.img. */
export function cpuinfoEntry(cpu: Ppc64Cpu = hostCpu()): Record<string, unknown> {
  return { ppc64_entry: [{ endian: cpu.endian, hwcap: [cpu.hwcap, cpu.hwcap2] }] };
}

/** The ppc64 record of a decoded cpuinfo_entry; throws if there is none. */
export function imageCpu(image: Record<string, unknown>): Ppc64Cpu {
  const entries = image.ppc64_entry as Array<{ endian?: number; hwcap?: Array<bigint | number> }> | undefined;
  if (!entries || entries.length === 0) {
    const other = Object.keys(image).filter((k) => Array.isArray(image[k]) && (image[k] as unknown[]).length > 0);
    throw new Error(`cpuinfo.img has no ppc64 record${other.length ? ` (it has ${other.join(', ')}: dumped on another architecture)` : ''}`);
  }
  const e = entries[0];
  const hw = e.hwcap ?? [];
  return { endian: Number(e.endian ?? ENDIAN.BIGENDIAN), hwcap: BigInt(hw[0] ?? 0), hwcap2: BigInt(hw[1] ?? 0) };
}

const endianName = (e: number) => (e === ENDIAN.LITTLEENDIAN ? 'little-endian' : 'big-endian');

/**
 * Why `cpu` (default: this machine) cannot run a task dumped on the image's CPU: [] when it can.
 * As CRIU: the byte order must match and the image's CPU must have had ppc64, fpu, mmu, vsx and
 * arch_2_07. Stricter than CRIU (which compares only true_le, htm, dscr, ebb, isel, tar and
 * vcrypto): every HWCAP/HWCAP2 bit the image's CPU had and this one lacks is named, since glibc
 * and JITs pick code paths (scv, darn, ISA 3.0/3.1 instructions) from them at start-up.
 */
export function cpuinfoMissing(image: Record<string, unknown>, cpu: Ppc64Cpu = hostCpu()): string[] {
  const img = imageCpu(image);
  const out: string[] = [];
  if (img.endian !== cpu.endian) out.push(`${endianName(img.endian)} byte order (this machine is ${endianName(cpu.endian)})`);
  for (const r of REQUIRED) {
    const have = r.word === 0 ? img.hwcap : img.hwcap2;
    if ((have & BigInt(r.bit)) === 0n) out.push(`${hwcapBitName(r.word, r.bit)} (required, but absent from the image's CPU)`);
  }
  out.push(...hwcapNames(0, img.hwcap & ~cpu.hwcap), ...hwcapNames(1, img.hwcap2 & ~cpu.hwcap2));
  return out;
}
