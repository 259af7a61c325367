/**
 * CRIU's page server wire format (page-xfer.c). Every message starts with a 24-byte
 * page_server_iov in the host's byte order: u32 cmd, u32 nr_pages, u64 vaddr, u64 dst_id.
 *
 * - cmd: the low 16 bits are the command, the high 16 bits PE_* flags (PS_IOV_ADD_F only).
 * - dst_id: (image id << 8) | image type; type 1 = pagemap-<id>.img, 2 = pagemap-shmem-<id>.img.
 *   PS_IOV_GET (lazy pages) carries the plain pid instead.
 *
 * Replies: PS_IOV_OPEN2 gets one byte (1 = the receiver has a parent pagemap), PS_IOV_PARENT
 * and the flushes an int32. An ADD with PE_PRESENT is followed by nr_pages pages of data; a GET
 * is answered by an ADD_F header (nr_pages 0 = not found) and the data.
 */
export const PS_IOV = {
  ADD: 1,
  HOLE: 2,
  OPEN: 3,
  OPEN2: 4,
  PARENT: 5,
  ADD_F: 6,
  GET: 7,
  FLUSH: 0x1023,
  FLUSH_N_CLOSE: 0x1024,
} as const;

export const PS_CMD_BITS = 16;
export const PS_CMD_MASK = (1 << PS_CMD_BITS) - 1;
export const PS_TYPE_BITS = 8n;
export const PS_TYPE_MASK = (1n << PS_TYPE_BITS) - 1n;
export const PS_TYPE = { PID: 1, SHMEM: 2 } as const;
export const PSI_SIZE = 24;

/** CRIU's default page server port. */
export const PS_DEFAULT_PORT = 27;

export interface Psi {
  cmd: number;
  nrPages: number;
  vaddr: bigint;
  dstId: bigint;
}

const LE = new Uint16Array(new Uint8Array([1, 0]).buffer)[0] === 1;

export function encodePsi(p: Psi): Buffer {
  const b = Buffer.alloc(PSI_SIZE);
  if (LE) {
    b.writeUInt32LE(p.cmd >>> 0, 0);
    b.writeUInt32LE(p.nrPages >>> 0, 4);
    b.writeBigUInt64LE(p.vaddr, 8);
    b.writeBigUInt64LE(p.dstId, 16);
  } else {
    b.writeUInt32BE(p.cmd >>> 0, 0);
    b.writeUInt32BE(p.nrPages >>> 0, 4);
    b.writeBigUInt64BE(p.vaddr, 8);
    b.writeBigUInt64BE(p.dstId, 16);
  }
  return b;
}

export function decodePsi(b: Buffer, off = 0): Psi {
  return LE
    ? { cmd: b.readUInt32LE(off), nrPages: b.readUInt32LE(off + 4), vaddr: b.readBigUInt64LE(off + 8), dstId: b.readBigUInt64LE(off + 16) }
    : { cmd: b.readUInt32BE(off), nrPages: b.readUInt32BE(off + 4), vaddr: b.readBigUInt64BE(off + 8), dstId: b.readBigUInt64BE(off + 16) };
}

export const encodeCmd = (cmd: number, flags: number): number => ((flags << PS_CMD_BITS) | cmd) >>> 0;
export const cmdOf = (raw: number): number => raw & PS_CMD_MASK;
export const flagsOf = (raw: number): number => raw >>> PS_CMD_BITS;

export const encodeDst = (type: number, id: number): bigint => (BigInt(id) << PS_TYPE_BITS) | BigInt(type);
export const dstType = (dst: bigint): number => Number(dst & PS_TYPE_MASK);
export const dstIdOf = (dst: bigint): number => Number(dst >> PS_TYPE_BITS);

/** The image a dst_id names, as the receiver writes it. */
export function pagemapFileOf(dst: bigint): string {
  const type = dstType(dst);
  const id = dstIdOf(dst);
  if (type === PS_TYPE.PID) return `pagemap-${id}.img`;
  if (type === PS_TYPE.SHMEM) return `pagemap-shmem-${id}.img`;
  throw new PageServerError(`unknown image type ${type} in dst_id 0x${dst.toString(16)}`);
}

export function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeInt32LE(v);
  else b.writeInt32BE(v);
  return b;
}

export function readInt32(b: Buffer): number {
  return LE ? b.readInt32LE(0) : b.readInt32BE(0);
}

export class PageServerError extends Error {
  override readonly name = 'PageServerError';
}
