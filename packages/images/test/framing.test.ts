// Header and record framing: what is accepted, and the ImageFormatError for each way it can be broken.
import { decodeImage, decodeImageEntries, encodeImageEntries, encodeMessage, imageInfo, ImageFormatError, headerBytes, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, magicByName } from '../src/index';

const u32 = (...vs: number[]): Buffer => {
  const b = Buffer.alloc(4 * vs.length);
  vs.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  return b;
};
const rec = (body: Uint8Array): Buffer => Buffer.concat([u32(body.length), body]);
const fs = (cwd: number, root: number, umask?: number) => encodeMessage('fs_entry', umask === undefined ? { cwd_id: cwd, root_id: root } : { cwd_id: cwd, root_id: root, umask });
const FS = magicByName('FS')!.value;

function err(fn: () => unknown): ImageFormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ImageFormatError);
    return e as ImageFormatError;
  }
  throw new Error('expected an ImageFormatError');
}

describe('headers', () => {
  test('common header: IMG_COMMON then the type magic', () => {
    const img = encodeImageEntries('FS', [{ message: { cwd_id: 1, root_id: 2, umask: 0o22 } }]);
    expect(img.subarray(0, 8)).toEqual(u32(IMG_COMMON_MAGIC, FS));
    expect(decodeImageEntries(img).header).toBe('common');
  });

  test('inventory has only its own magic, stats and irmap-cache the service magic', () => {
    expect(headerBytes('INVENTORY')).toEqual(u32(0x58313116));
    expect(headerBytes('STATS')).toEqual(u32(IMG_SERVICE_MAGIC, 0x57093306));
    expect(headerBytes('IRMAP_CACHE')).toEqual(u32(IMG_SERVICE_MAGIC, 0x57004059));
  });

  test('an old image with only the type magic is read, like crit does', () => {
    const img = Buffer.concat([u32(FS), rec(fs(1, 2))]);
    const d = decodeImageEntries(img);
    expect(d).toMatchObject({ magic: 'FS', header: 'single', entries: [{ message: { cwd_id: 1, root_id: 2 } }] });
  });

  test('empty image and a lone common magic are truncated headers', () => {
    expect(err(() => decodeImage(Buffer.alloc(0), { file: 'fs-1.img' }))).toMatchObject({ code: 'TRUNCATED_HEADER', file: 'fs-1.img', offset: 0 });
    expect(err(() => decodeImage(u32(IMG_COMMON_MAGIC))).code).toBe('TRUNCATED_HEADER');
    expect(err(() => decodeImage(Buffer.from([1, 2]))).message).toMatch(/<buffer>, offset 0: .*shorter than its 4-byte magic/);
  });

  test('unknown magic, raw pages image, magic without a handler', () => {
    const e = err(() => decodeImage(u32(IMG_COMMON_MAGIC, 0x12345678), { file: 'x.img' }));
    expect(e).toMatchObject({ code: 'UNKNOWN_MAGIC', offset: 4 });
    expect(e.message).toContain('0x12345678');
    expect(err(() => decodeImage(Buffer.alloc(4096), { file: '/d/pages-1.img' })).code).toBe('RAW_IMAGE');
    expect(err(() => decodeImage(Buffer.alloc(4096))).code).toBe('UNKNOWN_MAGIC');
    expect(err(() => decodeImage(u32(IMG_COMMON_MAGIC, magicByName('KDAT')!.value))).code).toBe('NO_HANDLER');
  });
});

describe('records', () => {
  const head = u32(IMG_COMMON_MAGIC, FS);

  test('u32 little-endian length + protobuf payload, entries in order', () => {
    const img = Buffer.concat([head, rec(fs(1, 2)), rec(fs(3, 4, 18))]);
    expect(encodeImageEntries('FS', [{ message: { cwd_id: 1, root_id: 2 } }, { message: { cwd_id: 3, root_id: 4, umask: 18 } }])).toEqual(img);
    const d = decodeImageEntries(img);
    expect(d.entries.map((e) => [e.index, e.offset, e.type, e.message])).toEqual([
      [0, 8, 'fs_entry', { cwd_id: 1, root_id: 2 }],
      [1, 8 + 4 + fs(1, 2).length, 'fs_entry', { cwd_id: 3, root_id: 4, umask: 18 }],
    ]);
    expect(imageInfo(img)).toEqual({ magic: 'FS', count: 2 });
  });

  test('zero-length record is a message with every field absent (refused here: fs_entry has required fields)', () => {
    const e = err(() => decodeImage(Buffer.concat([head, u32(0)]), { file: 'fs-7.img' }));
    expect(e).toMatchObject({ code: 'MISSING_REQUIRED', file: 'fs-7.img', recordIndex: 0, field: 'cwd_id' });
  });

  test('a partial length prefix is a truncated record', () => {
    const e = err(() => decodeImage(Buffer.concat([head, rec(fs(1, 2)), Buffer.from([5, 0])]), { file: 'f' }));
    expect(e).toMatchObject({ code: 'TRUNCATED_RECORD', recordIndex: 1, offset: 8 + 4 + fs(1, 2).length });
  });

  test('a length beyond the end of the file', () => {
    const e = err(() => decodeImage(Buffer.concat([head, u32(100), fs(1, 2)])));
    expect(e).toMatchObject({ code: 'TRUNCATED_RECORD', recordIndex: 0, offset: 8 });
    expect(e.message).toMatch(/record length 100 goes beyond the end of the file/);
  });

  test('an absurd length is refused before any allocation', () => {
    const big = Buffer.concat([head, u32(0xfffffff0)]);
    expect(err(() => decodeImage(big)).code).toBe('RECORD_TOO_LONG');
    expect(err(() => decodeImageEntries(Buffer.concat([head, u32(2000), Buffer.alloc(2000)]), { maxRecordSize: 1000 })).code).toBe('RECORD_TOO_LONG');
  });

  test('protobuf garbage is a decode failure with the offset inside the file', () => {
    // field 1 varint that never ends
    const body = Buffer.from([0x08, 0xff, 0xff, 0xff]);
    const e = err(() => decodeImage(Buffer.concat([head, rec(body)]), { file: 'fs-1.img' }));
    expect(e).toMatchObject({ code: 'DECODE_FAILED', file: 'fs-1.img', recordIndex: 0 });
    expect(e.offset).toBeGreaterThanOrEqual(12);
    expect(e.message).toMatch(/^fs-1\.img, record 0, offset \d+: fs_entry: truncated varint/);
    // wire type 7 does not exist
    expect(err(() => decodeImage(Buffer.concat([head, rec(Buffer.from([0x0f]))]))).code).toBe('DECODE_FAILED');
    // invalid UTF-8 in a string field (utsns_entry.nodename), as python-protobuf refuses it
    const uts = Buffer.concat([u32(IMG_COMMON_MAGIC, magicByName('UTSNS')!.value), rec(Buffer.from([0x0a, 0x02, 0xff, 0xfe, 0x12, 0x01, 0x61]))]);
    expect(err(() => decodeImage(uts)).message).toMatch(/not valid UTF-8/);
  });

  test('unknown fields are skipped; unknown enum values are dropped like python-protobuf does', () => {
    const body = Buffer.concat([fs(1, 2), Buffer.from([0xa0, 0x06, 0x05])]); // field 100 varint
    expect(decodeImageEntries(Buffer.concat([head, rec(body)])).entries[0].message).toEqual({ cwd_id: 1, root_id: 2 });
    // inventory_entry.lsmtype (enum, field 6) = 99 is not a known value
    const inv = Buffer.concat([u32(0x58313116), rec(Buffer.from([0x08, 0x02, 0x30, 99]))]);
    expect(decodeImageEntries(inv).entries[0].message).toEqual({ img_version: 2 });
  });

  test('pagemap: first record is pagemap_head, the rest pagemap_entry; info does not count the head', () => {
    const img = encodeImageEntries('PAGEMAP', [
      { message: { pages_id: 3 } },
      { message: { vaddr: 0x400000n, nr_pages: 2, flags: 4 } },
      { message: { vaddr: 0x7fff0000n, nr_pages: 1, flags: 6 } },
    ]);
    const d = decodeImageEntries(img);
    expect(d.entries.map((e) => e.type)).toEqual(['pagemap_head', 'pagemap_entry', 'pagemap_entry']);
    expect(imageInfo(img)).toEqual({ magic: 'PAGEMAP', count: 2 });
    expect(decodeImage(img, { pretty: true }).entries[2]).toEqual({ vaddr: '0x7fff0000', nr_pages: 1, flags: 'PE_LAZY | PE_PRESENT' });
    expect(err(() => encodeImageEntries('PAGEMAP', [{ type: 'pagemap_entry', message: { vaddr: 1n, nr_pages: 1 } }])).message).toMatch(/must be a pagemap_head/);
  });

  test('64-bit values survive exactly (rlimit infinity)', () => {
    const inf = (1n << 64n) - 1n;
    const img = encodeImageEntries('RLIMIT', [{ message: { cur: inf, max: inf } }]);
    expect(decodeImageEntries(img).entries[0].message).toEqual({ cur: inf, max: inf });
    expect(decodeImage(img).entries[0]).toEqual({ cur: inf, max: inf });
  });
});
