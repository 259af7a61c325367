/**
 * The symbols of a vDSO image (its ELF bytes as mapped), read from the dynamic symbol table.
 * Offsets are relative to the start of the mapping, whatever address the vDSO was linked at.
 */
export interface VdsoSymbol {
  name: string;
  /** Offset of the symbol's code from the start of the vDSO mapping. */
  offset: number;
  size: number;
}

export interface VdsoImage {
  symbols: Map<string, VdsoSymbol>;
  /** First byte after everything the ELF file holds (sections and headers): the mapping's tail is free. */
  fileEnd: number;
  /** The executable sections, as mapping offsets. */
  code: Array<{ offset: number; size: number }>;
}

export class VdsoElfError extends Error {
  constructor(message: string) {
    super(`vDSO image: ${message}`);
    this.name = 'VdsoElfError';
  }
}

const PT_LOAD = 1, SHT_PROGBITS = 1, SHT_DYNSYM = 11, SHT_NOBITS = 8, STT_FUNC = 2, SHF_EXECINSTR = 4n;

export function readVdsoImage(b: Buffer): VdsoImage {
  const need = (off: number, len: number, what: string) => {
    if (off < 0 || off + len > b.length) throw new VdsoElfError(`${what} at ${off} (+${len}) is outside the ${b.length} bytes`);
  };
  need(0, 64, 'ELF header');
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new VdsoElfError('no ELF magic');
  if (b[4] !== 2 || b[5] !== 1) throw new VdsoElfError('not a little-endian ELF64 file');
  const phoff = Number(b.readBigUInt64LE(32)), shoff = Number(b.readBigUInt64LE(40));
  const phentsize = b.readUInt16LE(54), phnum = b.readUInt16LE(56);
  const shentsize = b.readUInt16LE(58), shnum = b.readUInt16LE(60);
  // Link address to mapping offset, from the first loadable segment.
  let bias: bigint | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    need(p, 56, `program header ${i}`);
    if (b.readUInt32LE(p) === PT_LOAD) { bias = b.readBigUInt64LE(p + 16) - b.readBigUInt64LE(p + 8); break; }
  }
  if (bias === undefined) throw new VdsoElfError('no loadable segment');
  need(shoff, shnum * shentsize, 'section headers');
  let fileEnd = shoff + shnum * shentsize;
  const sections = Array.from({ length: shnum }, (_, i) => {
    const s = shoff + i * shentsize;
    return { type: b.readUInt32LE(s + 4), flags: b.readBigUInt64LE(s + 8), addr: b.readBigUInt64LE(s + 16), offset: Number(b.readBigUInt64LE(s + 24)), size: Number(b.readBigUInt64LE(s + 32)), link: b.readUInt32LE(s + 40), entsize: Number(b.readBigUInt64LE(s + 56)) };
  });
  for (const s of sections) if (s.type !== SHT_NOBITS) fileEnd = Math.max(fileEnd, s.offset + s.size);
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  if (!dynsym) throw new VdsoElfError('no dynamic symbol table');
  const strtab = sections[dynsym.link];
  if (!strtab) throw new VdsoElfError('the dynamic symbol table names no string table');
  need(dynsym.offset, dynsym.size, 'dynamic symbol table');
  need(strtab.offset, strtab.size, 'dynamic string table');
  const symbols = new Map<string, VdsoSymbol>();
  const entsize = dynsym.entsize || 24;
  for (let off = dynsym.offset; off + entsize <= dynsym.offset + dynsym.size; off += entsize) {
    const nameOff = b.readUInt32LE(off);
    if ((b[off + 4] & 0xf) !== STT_FUNC || b.readUInt16LE(off + 6) === 0) continue;
    const end = b.indexOf(0, strtab.offset + nameOff);
    if (nameOff >= strtab.size || end < 0) throw new VdsoElfError(`symbol name at ${nameOff} is outside the string table`);
    const name = b.toString('latin1', strtab.offset + nameOff, end);
    const offset = Number(b.readBigUInt64LE(off + 8) - bias);
    const size = Number(b.readBigUInt64LE(off + 16));
    if (offset < 0 || offset >= b.length) throw new VdsoElfError(`symbol ${name} lies outside the image (offset ${offset})`);
    symbols.set(name, { name, offset, size });
  }
  const code = sections.filter((s) => s.type === SHT_PROGBITS && (s.flags & SHF_EXECINSTR) !== 0n && s.size > 0)
    .map((s) => ({ offset: Number(s.addr - bias!), size: s.size }));
  for (const c of code) need(c.offset, c.size, 'executable section');
  return { symbols, fileEnd, code };
}
