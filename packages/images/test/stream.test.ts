// Streaming reader/writer of image files and the raw pages image.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  decodeImage,
  decodeImageEntries,
  decodeImageFile,
  encodeImage,
  encodeImageEntries,
  encodeImageFile,
  ImageFormatError,
  ImageReader,
  ImageWriter,
  imageInfo,
  imageInfoFile,
  pageRuns,
  PagesReader,
  PagesWriter,
  PE_PRESENT,
  PE_PARENT,
  readImageFile,
  writeImageFile,
  type EntryInput,
} from '../src/index';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'images-stream-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

function pagemapEntries(n: number): EntryInput[] {
  const out: EntryInput[] = [{ message: { pages_id: 1 } }];
  for (let i = 0; i < n; i++) out.push({ message: { vaddr: 0x400000n + BigInt(i) * 0x2000n, nr_pages: 1 + (i % 3), flags: i % 5 === 0 ? PE_PARENT : PE_PRESENT } });
  return out;
}

describe('ImageReader', () => {
  test('reads records across chunk boundaries exactly like the in-memory decoder', async () => {
    const img = encodeImageEntries('PAGEMAP', pagemapEntries(20000));
    const file = path.join(dir, 'pagemap-1.img');
    fs.writeFileSync(file, img);
    const expected = decodeImageEntries(img).entries;
    const small = path.join(dir, 'pagemap-5.img');
    fs.writeFileSync(small, encodeImageEntries('PAGEMAP', pagemapEntries(300)));
    for (const chunkSize of [7, 4096, 1 << 20]) {
      const r = await ImageReader.open(chunkSize === 7 ? small : file, { chunkSize });
      expect(r.magic).toBe('PAGEMAP');
      const got = [];
      for await (const e of r) got.push(e);
      expect(got).toEqual(chunkSize === 7 ? expected.slice(0, 301) : expected);
    }
    const all = await readImageFile(file);
    expect(all.entries).toHaveLength(20001);
    expect(await imageInfoFile(file)).toEqual(imageInfo(img));
  });

  test('a record larger than the chunk and payloads are read whole', async () => {
    const vmas = Array.from({ length: 3000 }, (_, i) => ({ start: BigInt(i) * 4096n, end: BigInt(i + 1) * 4096n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 0x201, fd: -1n }));
    const big = Buffer.alloc(200000, 0xab);
    const mm = encodeImageEntries('MM', [{ message: { mm_start_code: 1n, mm_end_code: 2n, mm_start_data: 3n, mm_end_data: 4n, mm_start_stack: 5n, mm_start_brk: 6n, mm_brk: 7n, mm_arg_start: 8n, mm_arg_end: 9n, mm_env_start: 10n, mm_env_end: 11n, exe_file_id: 1, vmas } }]);
    const pipes = encodeImageEntries('PIPES_DATA', [{ message: { pipe_id: 1, bytes: big.length }, extra: { kind: 'bytes', data: big } }]);
    for (const [name, img] of [['mm-1.img', mm], ['pipes-data.img', pipes]] as const) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, img);
      const got = [];
      for await (const e of await ImageReader.open(file, { chunkSize: 1024 })) got.push(e);
      expect(got).toEqual(decodeImageEntries(img).entries);
    }
  });

  test('errors carry the file, record and offset; the file is closed after errors and early exits', async () => {
    const img = encodeImageEntries('PAGEMAP', pagemapEntries(100));
    const file = path.join(dir, 'pagemap-2.img');
    fs.writeFileSync(file, img.subarray(0, img.length - 3));
    const before = openFds();
    await expect(
      (async () => {
        for await (const _ of await ImageReader.open(file, { chunkSize: 64 })) void _;
      })(),
    ).rejects.toMatchObject({ name: 'ImageFormatError', code: 'TRUNCATED_RECORD', file, recordIndex: 100 });
    const r = await ImageReader.open(file);
    for await (const e of r) if (e.index === 3) break;
    expect(openFds()).toBe(before);
    await expect(ImageReader.open(path.join(dir, 'missing.img'))).rejects.toMatchObject({ code: 'IO' });
    fs.writeFileSync(path.join(dir, 'pages-9.img'), Buffer.alloc(8192));
    await expect(ImageReader.open(path.join(dir, 'pages-9.img'))).rejects.toMatchObject({ code: 'RAW_IMAGE' });
    expect(openFds()).toBe(before);
  });

  test('payloads: skip streams a 1 GiB ghost file without reading its data', async () => {
    const file = path.join(dir, 'ghost-file-1.img');
    const head = encodeImageEntries('GHOST_FILE', [{ message: { uid: 0, gid: 0, mode: 0o100600, size: 1n << 30n }, extra: { kind: 'bytes', data: Buffer.alloc(0) } }]);
    fs.writeFileSync(file, head);
    fs.truncateSync(file, head.length + 2 ** 30);
    const rssBefore = process.memoryUsage().rss;
    const got = [];
    for await (const e of await ImageReader.open(file, { payloads: 'skip' })) got.push(e);
    expect(got[0].extra).toEqual({ kind: 'bytes', offset: head.length, length: 2 ** 30 });
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MiB);
    // Loading it is refused by the in-memory limit rather than attempted.
    await expect((async () => { for await (const _ of await ImageReader.open(file, { maxPayloadSize: 64 * MiB })) void _; })()).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LONG' });
    fs.rmSync(file);
  });
});

describe('ImageWriter', () => {
  test('writes the same bytes as the in-memory encoder, with fsync', async () => {
    const entries = pagemapEntries(5000);
    const file = path.join(dir, 'pagemap-3.img');
    const w = await ImageWriter.create(file, 'PAGEMAP', { fsync: true, bufferSize: 1000 });
    for (const e of entries) await w.append(e);
    expect(w.count).toBe(5001);
    await w.close();
    expect(fs.readFileSync(file)).toEqual(encodeImageEntries('PAGEMAP', entries));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    await writeImageFile(path.join(dir, 'p2.img'), 'PAGEMAP', entries);
    expect(fs.readFileSync(path.join(dir, 'p2.img'))).toEqual(fs.readFileSync(file));
    await expect(ImageWriter.create(file, 'PAGEMAP', { exclusive: true })).rejects.toMatchObject({ code: 'IO' });
  });

  test('refuses an invalid entry without writing it, naming the record', async () => {
    const file = path.join(dir, 'fs-1.img');
    const w = await ImageWriter.create(file, 'FS');
    await w.append({ message: { cwd_id: 1, root_id: 2 } });
    await expect(w.append({ message: { cwd_id: 1 } })).rejects.toMatchObject({ code: 'MISSING_REQUIRED', recordIndex: 1, field: 'root_id', file });
    await w.close();
    expect(decodeImageEntries(fs.readFileSync(file)).entries).toHaveLength(1);
    await expect(ImageWriter.create(file, 'PAGES')).rejects.toBeInstanceOf(ImageFormatError);
  });

  test('decodeImageFile / encodeImageFile match the in-memory crit functions', async () => {
    const img = encodeImageEntries('PIPES_DATA', [{ message: { pipe_id: 1, bytes: 3 }, extra: { kind: 'bytes', data: Buffer.from('abc') } }]);
    const file = path.join(dir, 'pipes-data-2.img');
    fs.writeFileSync(file, img);
    for (const opts of [{}, { pretty: true }, { pretty: true, noPayload: true }]) expect(await decodeImageFile(file, opts)).toEqual(decodeImage(img, opts));
    const out = path.join(dir, 'pipes-data-3.img');
    await encodeImageFile(decodeImage(img, { pretty: true }), out);
    expect(fs.readFileSync(out)).toEqual(encodeImage(decodeImage(img)));
    expect(fs.readFileSync(out)).toEqual(img);
  });
});

describe('pages images', () => {
  test('streams a 1 GiB sparse pages image with bounded memory', async () => {
    const file = path.join(dir, 'pages-1.img');
    const fd = fs.openSync(file, 'w');
    const marks = [0, 4096 * 1000, 2 ** 29 + 7, 2 ** 30 - 1];
    for (const m of marks) fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, m);
    fs.closeSync(fd);
    const r = await PagesReader.open(file);
    expect(r.size).toBe(2 ** 30);
    const baseline = process.memoryUsage();
    let maxRss = 0;
    let maxAb = 0;
    let total = 0;
    const found: number[] = [];
    let n = 0;
    for await (const chunk of r.chunks(0, r.size, 4 * MiB)) {
      for (let i = chunk.indexOf(0x5a); i >= 0; i = chunk.indexOf(0x5a, i + 1)) found.push(total + i);
      total += chunk.length;
      if (++n % 16 === 0) {
        const m = process.memoryUsage();
        maxRss = Math.max(maxRss, m.rss);
        maxAb = Math.max(maxAb, m.arrayBuffers);
      }
    }
    expect(total).toBe(2 ** 30);
    expect(found).toEqual(marks);
    expect(maxRss - baseline.rss).toBeLessThan(96 * MiB);
    expect(maxAb - baseline.arrayBuffers).toBeLessThan(32 * MiB);
    expect((await r.read(2 ** 29 + 6, 3))).toEqual(Buffer.from([0, 0x5a, 0]));
    await expect(r.read(2 ** 30 - 1, 2)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LONG' });
    await r.close();
    fs.rmSync(file);
  }, 60000);

  test('PagesWriter appends runs and copies between images chunk by chunk', async () => {
    const file = path.join(dir, 'pages-2.img');
    const w = await PagesWriter.create(file, { fsync: true });
    const page = Buffer.alloc(4096);
    const baseline = process.memoryUsage().rss;
    for (let i = 0; i < 64 * 16; i++) {
      page.writeUInt32LE(i, 0);
      const at = await w.write([page.subarray(0, 2048), page.subarray(2048)]);
      expect(at).toBe(i * 4096);
    }
    expect(process.memoryUsage().rss - baseline).toBeLessThan(64 * MiB);
    await w.close();
    const r = await PagesReader.open(file);
    expect(r.size).toBe(64 * 16 * 4096);
    expect((await r.read(4096 * 77, 4)).readUInt32LE(0)).toBe(77);
    const copy = await PagesWriter.create(path.join(dir, 'pages-3.img'));
    await copy.writeStream(r.chunks(4096, 4096 * 10, 5000));
    await copy.close();
    await r.close();
    const c = fs.readFileSync(path.join(dir, 'pages-3.img'));
    expect(c.length).toBe(40960);
    expect(c.readUInt32LE(4096 * 2)).toBe(3);
  });

  test('pageRuns maps pagemap entries to offsets in the pages image', () => {
    const img = encodeImageEntries('PAGEMAP', [
      { message: { pages_id: 1 } },
      { message: { vaddr: 0x1000n, nr_pages: 2, flags: PE_PRESENT } },
      { message: { vaddr: 0x5000n, nr_pages: 3, flags: PE_PARENT } },
      { message: { vaddr: 0x9000n, nr_pages: 1 } },
      { message: { vaddr: 0xa000n, nr_pages: 1, in_parent: true } },
      { message: { vaddr: 0xb000n, nr_pages: 4, flags: PE_PRESENT | 2 } },
    ]);
    const runs = pageRuns(decodeImageEntries(img).entries, 4096);
    expect(runs.map((r) => [r.vaddr, r.nrPages, r.flags, r.offset])).toEqual([
      [0x1000n, 2, PE_PRESENT, 0],
      [0x5000n, 3, PE_PARENT, undefined],
      [0x9000n, 1, PE_PRESENT, 8192],
      [0xa000n, 1, PE_PARENT, undefined],
      [0xb000n, 4, PE_PRESENT | 2, 12288],
    ]);
  });
});
