/**
 * Turns the parasite's position-independent ELF (built by each arch package with its C
 * compiler) into a flat blob: the bytes of every PT_LOAD segment laid out at its virtual
 * offset, the relocations to patch for the address it is injected at, and the offsets of
 * named symbols. Only what a freestanding -static-pie object needs is supported: ELF64,
 * little-endian, RELATIVE relocations (the arch names its relocation type number).
 */

export interface ParasiteBlob {
  /** The memory image, PT_LOAD segments at their p_vaddr, bss zero-filled. */
  readonly bytes: Uint8Array;
  /** Offsets of 64-bit words that hold (load address + addend) once injected. */
  readonly relocs: ReadonlyArray<{ offset: number; addend: bigint }>;
  readonly symbols: ReadonlyMap<string, number>;
  readonly entry: number;
}

export class ElfBlobError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: not a usable parasite ELF: ${reason}`);
    this.name = 'ElfBlobError';
  }
}

const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const SHT_RELA = 4;
const ET_DYN = 3;

export interface ElfBlobOptions {
  /** e_machine the arch expects (EM_X86_64 = 62, EM_PPC64 = 21). */
  machine: number;
  /** The arch's RELATIVE relocation type (R_X86_64_RELATIVE = 8, R_PPC64_RELATIVE = 22). */
  relativeType: number;
  /** Relocation types that need no patching (R_*_NONE = 0). */
  ignoredTypes?: number[];
  file?: string;
}

export function elfToBlob(elf: Uint8Array, opts: ElfBlobOptions): ParasiteBlob {
  const file = opts.file ?? '<parasite>';
  const fail = (reason: string): never => { throw new ElfBlobError(file, reason); };
  if (elf.length < 64) fail('too short for an ELF header');
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (dv.getUint32(0, false) !== 0x7f454c46) fail('bad magic');
  if (elf[4] !== 2) fail('not ELF64');
  if (elf[5] !== 1) fail('not little-endian');
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => Number(dv.getBigUint64(o, true));
  if (u16(16) !== ET_DYN) fail('not a position-independent (ET_DYN) object');
  if (u16(18) !== opts.machine) fail(`e_machine ${u16(18)}, expected ${opts.machine}`);
  const entry = u64(24);
  const phoff = u64(32), shoff = u64(40);
  const phentsize = u16(54), phnum = u16(56), shentsize = u16(58), shnum = u16(60);
  const inFile = (off: number, len: number) => off >= 0 && len >= 0 && off + len <= elf.length;
  if (!inFile(phoff, phnum * phentsize) || !inFile(shoff, shnum * shentsize)) fail('headers out of range');

  let size = 0;
  const loads: Array<{ off: number; vaddr: number; filesz: number; memsz: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (u32(p) !== PT_LOAD) continue;
    const seg = { off: u64(p + 8), vaddr: u64(p + 16), filesz: u64(p + 32), memsz: u64(p + 40) };
    if (!inFile(seg.off, seg.filesz) || seg.memsz < seg.filesz) fail(`PT_LOAD ${i} out of range`);
    loads.push(seg);
    size = Math.max(size, seg.vaddr + seg.memsz);
  }
  if (loads.length === 0) fail('no PT_LOAD segment');
  if (size > 16 << 20) fail(`image of ${size} bytes is implausibly large`);
  const bytes = new Uint8Array(size);
  for (const s of loads) bytes.set(elf.subarray(s.off, s.off + s.filesz), s.vaddr);

  const relocs: Array<{ offset: number; addend: bigint }> = [];
  const symbols = new Map<string, number>();
  const ignored = new Set(opts.ignoredTypes ?? [0]);
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    const type = u32(sh + 4), off = u64(sh + 24), secSize = u64(sh + 32), link = u32(sh + 40), entsize = u64(sh + 56);
    if ((type === SHT_RELA || type === SHT_SYMTAB) && !inFile(off, secSize)) fail(`section ${i} out of range`);
    if (type === SHT_RELA) {
      if (entsize !== 24) fail(`section ${i}: RELA entry size ${entsize}`);
      for (let r = off; r < off + secSize; r += 24) {
        const rOffset = u64(r), info = dv.getBigUint64(r + 8, true), addend = dv.getBigInt64(r + 16, true);
        const rType = Number(info & 0xffffffffn);
        if (ignored.has(rType)) continue;
        if (rType !== opts.relativeType) fail(`unsupported relocation type ${rType} at 0x${rOffset.toString(16)}`);
        if (rOffset + 8 > size) fail(`relocation at 0x${rOffset.toString(16)} outside the image`);
        relocs.push({ offset: rOffset, addend });
      }
    } else if (type === SHT_SYMTAB) {
      const strSh = shoff + link * shentsize;
      if (link >= shnum) fail('symtab without a string table');
      const strOff = u64(strSh + 24), strSize = u64(strSh + 32);
      if (!inFile(strOff, strSize)) fail('string table out of range');
      for (let s = off; s + 24 <= off + secSize; s += 24) {
        const nameOff = u32(s), shndx = u16(s + 6), value = u64(s + 8);
        if (nameOff === 0 || shndx === 0 || nameOff >= strSize) continue;
        let end = strOff + nameOff;
        while (end < strOff + strSize && elf[end] !== 0) end++;
        symbols.set(Buffer.from(elf.subarray(strOff + nameOff, end)).toString('latin1'), value);
      }
    }
  }
  if (entry >= size) fail('entry point outside the image');
  return { bytes, relocs, symbols, entry };
}

/** A copy of the blob's bytes with every relocation applied for `base`. */
export function relocateBlob(blob: ParasiteBlob, base: bigint, littleEndian = true): Uint8Array {
  const out = new Uint8Array(blob.bytes);
  const dv = new DataView(out.buffer);
  for (const r of blob.relocs) dv.setBigUint64(r.offset, BigInt.asUintN(64, base + r.addend), littleEndian);
  return out;
}
