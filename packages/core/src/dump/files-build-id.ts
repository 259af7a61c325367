/**
 * The GNU build-id of an ELF file, as CRIU stores it in reg_file_entry.build_id: the note's
 * bytes copied into an array of u32 (host byte order), the last word zero-padded. CRIU looks
 * at the first MiB of the file only, at PT_NOTE segments, and takes the first
 * NT_GNU_BUILD_ID note of 1..512 bytes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const BUILD_ID_MAP_SIZE = 1 << 20;
const NT_GNU_BUILD_ID = 3;
const PT_NOTE = 4;
const HOST_LE = os.endianness() === 'LE';

/** What is read first: the ELF header, program headers and notes of a usual file are in it. */
const PREFIX_SIZE = 64 << 10;

/**
 * Reads the start of the file through `fd` (pread: the file position is not touched). The first
 * 64 KiB usually decide (this runs for every mapped and open file, while the task is frozen);
 * the whole first MiB is read whenever they might not give the same answer.
 */
export function readBuildIdFromFd(fd: number, size: bigint): number[] | undefined {
  if (size < 5n) return undefined;
  const len = Number(size < BigInt(BUILD_ID_MAP_SIZE) ? size : BigInt(BUILD_ID_MAP_SIZE));
  const head = readPrefix(fd, Math.min(len, PREFIX_SIZE));
  if (head.length < 4 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  if (head.length === len) return buildIdOf(head);
  const words = buildIdOf(head);
  if (words && notesWithin(head)) return words;
  return buildIdOf(readPrefix(fd, len));
}

function readPrefix(fd: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, got);
    if (n <= 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * True when the program headers and every PT_NOTE segment lie inside `img` (with room for a
 * note header): buildIdOf() then reads the same bytes from it as from a longer prefix.
 */
function notesWithin(img: Buffer): boolean {
  const elf = elfView(img);
  if (!elf) return false;
  if (elf.phoff + elf.phnum * elf.phentsize > img.length) return false;
  for (let i = 0; i < elf.phnum; i++) {
    const ph = elf.phoff + i * elf.phentsize;
    if (elf.u32(ph) !== PT_NOTE) continue;
    const { off, filesz } = elf.segment(ph);
    if (off + filesz > img.length - 12) return false;
  }
  return true;
}

/** Readers for the ELF header and program headers of `img` (either class and byte order). */
function elfView(img: Buffer) {
  const is64 = img[4] === 2;
  const le = img[5] !== 2;
  if (img.length < (is64 ? 64 : 52)) return undefined;
  const u16 = (o: number) => (le ? img.readUInt16LE(o) : img.readUInt16BE(o));
  const u32 = (o: number) => (le ? img.readUInt32LE(o) : img.readUInt32BE(o));
  const word = (o: number) => (is64 ? Number(le ? img.readBigUInt64LE(o) : img.readBigUInt64BE(o)) : u32(o));
  return {
    u32,
    phoff: word(is64 ? 32 : 28),
    phnum: u16(is64 ? 56 : 44),
    phentsize: is64 ? 56 : 32,
    /** p_offset and p_filesz of the program header at `ph`. */
    segment: (ph: number) => ({ off: word(is64 ? ph + 8 : ph + 4), filesz: word(is64 ? ph + 32 : ph + 16) }),
  };
}

/** The build-id words of an ELF image (its first bytes), or undefined if it has none. */
export function buildIdOf(img: Buffer): number[] | undefined {
  if (img.length < 5 || img[0] !== 0x7f || img[1] !== 0x45 || img[2] !== 0x4c || img[3] !== 0x46) return undefined;
  if (img[4] !== 1 && img[4] !== 2) return undefined;
  const elf = elfView(img);
  if (!elf) return undefined;
  const { u32, phoff, phnum, phentsize } = elf;
  if (phnum === 0 || phoff <= 0) return undefined;
  const nhdr = 12;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + phentsize > img.length) break;
    if (u32(ph) !== PT_NOTE) continue;
    const { off, filesz } = elf.segment(ph);
    if (off <= 0) continue;
    const end = Math.min(off + filesz, img.length - nhdr);
    let n = off;
    while (n <= end && n + nhdr <= img.length && u32(n + 8) !== NT_GNU_BUILD_ID) {
      n += nhdr + align4(u32(n)) + align4(u32(n + 4));
    }
    if (n > end || n + nhdr > img.length) continue;
    const descsz = u32(n + 4);
    if (descsz <= 0 || descsz > 512) return undefined;
    const desc = n + nhdr + align4(u32(n));
    if (desc + descsz > img.length) return undefined;
    const padded = Buffer.alloc(align4(descsz));
    img.copy(padded, 0, desc, desc + descsz);
    const words: number[] = [];
    for (let o = 0; o < padded.length; o += 4) words.push(HOST_LE ? padded.readUInt32LE(o) : padded.readUInt32BE(o));
    return words;
  }
  return undefined;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
