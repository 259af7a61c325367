// Protobuf wire format primitives: a bounds-checked reader and a growable writer.
// 32-bit values travel as JS numbers, 64-bit values as BigInt.

export class WireError extends Error {
  constructor(
    message: string,
    /** Offset of the problem relative to the start of the decoded buffer. */
    readonly at: number,
  ) {
    super(message);
  }
}

export const WT_VARINT = 0;
export const WT_FIXED64 = 1;
export const WT_LEN = 2;
export const WT_START_GROUP = 3;
export const WT_END_GROUP = 4;
export const WT_FIXED32 = 5;

const U64_MASK = (1n << 64n) - 1n;

export class WireReader {
  pos: number;
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    public end = buf.length,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  private need(n: number): void {
    if (this.end - this.pos < n) throw new WireError(`truncated: need ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  /** Varint as two 32-bit halves [lo, hi] (low 64 bits kept, like protobuf does). */
  varintParts(): [number, number] {
    let lo = 0;
    let hi = 0;
    const start = this.pos;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint', start);
      const b = this.buf[this.pos++];
      if (i < 4) lo |= (b & 0x7f) << (i * 7);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (i * 7 - 32);
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
    }
    throw new WireError('varint longer than 10 bytes', start);
  }

  /** Varint truncated to its low 32 bits, unsigned. */
  varint32(): number {
    // Most varints (tags, small numbers) are one byte.
    if (this.pos < this.end && this.buf[this.pos] < 0x80) return this.buf[this.pos++];
    return this.varintParts()[0];
  }

  varint64(): bigint {
    if (this.pos < this.end && this.buf[this.pos] < 0x80) return BigInt(this.buf[this.pos++]);
    const [lo, hi] = this.varintParts();
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  fixed32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  sfixed32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  fixed64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  sfixed64(): bigint {
    this.need(8);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  float(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Length prefix of a length-delimited field, checked against the bytes left. */
  lengthPrefix(): number {
    const at = this.pos;
    const [lo, hi] = this.varintParts();
    if (hi !== 0 || lo > this.end - this.pos) throw new WireError(`length-delimited field of ${hi ? 'over 4 GiB' : lo} bytes exceeds the ${this.end - this.pos} bytes left`, at);
    return lo;
  }

  bytes(): Uint8Array {
    const n = this.lengthPrefix();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Skip one field value of the given wire type (groups are skipped iteratively). */
  skip(wireType: number, fieldNo: number): void {
    switch (wireType) {
      case WT_VARINT:
        this.varintParts();
        return;
      case WT_FIXED64:
        this.need(8);
        this.pos += 8;
        return;
      case WT_LEN:
        this.pos += this.lengthPrefix();
        return;
      case WT_FIXED32:
        this.need(4);
        this.pos += 4;
        return;
      case WT_START_GROUP: {
        const open: number[] = [fieldNo];
        while (open.length) {
          const tagAt = this.pos;
          const tag = this.varint32();
          const wt = tag & 7;
          const no = tag >>> 3;
          if (wt === WT_END_GROUP) {
            if (open.pop() !== no) throw new WireError('mismatched end-group tag', tagAt);
          } else if (wt === WT_START_GROUP) {
            if (open.length > 1000) throw new WireError('groups nested too deeply', tagAt);
            open.push(no);
          } else this.skip(wt, no);
        }
        return;
      }
      case WT_END_GROUP:
        throw new WireError('unexpected end-group tag', this.pos);
      default:
        throw new WireError(`invalid wire type ${wireType}`, this.pos);
    }
  }
}

export class WireWriter {
  private buf: Uint8Array;
  private view: DataView;
  len = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Unsigned varint of a non-negative number below 2^32. */
  uvarint32(v: number): void {
    this.ensure(5);
    v >>>= 0;
    while (v > 0x7f) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
  }

  /** Varint of any 64-bit value (negative values are written as their 64-bit two's complement). */
  varint64(v: bigint): void {
    this.ensure(10);
    let u = v & U64_MASK;
    while (u > 0x7fn) {
      this.buf[this.len++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.len++] = Number(u);
  }

  /** int32/enum encoding: negative values take 10 bytes (sign-extended to 64 bits). */
  int32(v: number): void {
    if (v >= 0) this.uvarint32(v);
    else this.varint64(BigInt(v));
  }

  tag(fieldNo: number, wireType: number): void {
    this.uvarint32(((fieldNo << 3) | wireType) >>> 0);
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }

  sfixed32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.len, v, true);
    this.len += 4;
  }

  fixed64(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.len, BigInt.asUintN(64, v), true);
    this.len += 8;
  }

  float(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.len, v, true);
    this.len += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.len, v, true);
    this.len += 8;
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  /** Length prefix + bytes. */
  lengthDelimited(bytes: Uint8Array): void {
    this.uvarint32(bytes.length);
    this.raw(bytes);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

export function zigzag32(v: number): number {
  return ((v << 1) ^ (v >> 31)) >>> 0;
}
export function unzigzag32(u: number): number {
  return (u >>> 1) ^ -(u & 1);
}
export function zigzag64(v: bigint): bigint {
  return BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
}
export function unzigzag64(u: bigint): bigint {
  return (u >> 1n) ^ -(u & 1n);
}
