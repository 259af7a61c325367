// Reading and writing C integers in host byte order (ppc64 big-endian is a future host).
import os from 'node:os';

const LE = os.endianness() === 'LE';

export function writeU64(buf: Buffer, value: bigint, offset: number): void {
  const v = BigInt.asUintN(64, value);
  if (LE) buf.writeBigUInt64LE(v, offset);
  else buf.writeBigUInt64BE(v, offset);
}
export function readU64(buf: Buffer, offset: number): bigint {
  return LE ? buf.readBigUInt64LE(offset) : buf.readBigUInt64BE(offset);
}
export function readI64(buf: Buffer, offset: number): bigint {
  return LE ? buf.readBigInt64LE(offset) : buf.readBigInt64BE(offset);
}
export function writeU32(buf: Buffer, value: number, offset: number): void {
  if (LE) buf.writeUInt32LE(value >>> 0, offset);
  else buf.writeUInt32BE(value >>> 0, offset);
}
export function readU32(buf: Buffer, offset: number): number {
  return LE ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}
export function writeI32(buf: Buffer, value: number, offset: number): void {
  if (LE) buf.writeInt32LE(value | 0, offset);
  else buf.writeInt32BE(value | 0, offset);
}
export function readI32(buf: Buffer, offset: number): number {
  return LE ? buf.readInt32LE(offset) : buf.readInt32BE(offset);
}
export function readU16(buf: Buffer, offset: number): number {
  return LE ? buf.readUInt16LE(offset) : buf.readUInt16BE(offset);
}

/** A Buffer whose memory does not live in Node's shared pool (its address is passed to the kernel). */
export function cbuf(size: number): Buffer {
  return Buffer.alloc(size);
}
