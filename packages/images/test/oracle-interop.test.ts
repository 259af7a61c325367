// Interop with the real CRIU ("oracle"): for every image file it writes when dumping each test
// program, our decoder must produce exactly crit's JSON (same values, same text), our encoder
// must give back the original bytes, and crit must read what our encoder writes.
import * as fs from 'fs';
import * as path from 'path';
import { decodeImage, encodeImage, imageInfo, ImageFormatError, parseCritJson, stringifyCritJson } from '../src/index';
import {
  critDecodeFiles,
  critEncodeFiles,
  type CritDecoded,
  isDead,
  OracleDumpError,
  type OracleDump,
  oracleDump,
  pageSize,
  removeOracleDumps,
  scratchDir,
  TEST_PROGRAMS,
  type TestProgram,
} from './helpers/oracle-dumps';

/** bigints that fit a double become numbers, so a value compares equal however it was typed */
function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
}

/** Where two texts first differ, with a little context, for readable failures. */
function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `at ${i}: ours ${JSON.stringify(a.slice(Math.max(0, i - 60), i + 60))} vs crit ${JSON.stringify(b.slice(Math.max(0, i - 60), i + 60))}`;
}

const isRawPages = (f: string) => /^pages-\d+\.img$/.test(f);

const dumps = new Map<TestProgram, OracleDump>();
/** crit's decode of every oracle file, by absolute path */
let crit: Record<string, CritDecoded> = {};

beforeAll(async () => {
  // Sequential dumps: four criu runs at once only compete for two cores.
  for (const p of TEST_PROGRAMS) dumps.set(p, await oracleDump(p));
  crit = critDecodeFiles([...dumps.values()].flatMap((d) => d.files.map((f) => path.join(d.dir, f))));
}, 120000);

afterAll(() => removeOracleDumps());

/** Non-raw image files of a dump with their bytes and crit's decode. */
function structuredImages(program: TestProgram): { file: string; full: string; bytes: Buffer; crit: CritDecoded }[] {
  const d = dumps.get(program)!;
  return d.files
    .filter((f) => !isRawPages(f))
    .map((f) => {
      const full = path.join(d.dir, f);
      return { file: f, full, bytes: fs.readFileSync(full), crit: crit[full] };
    });
}

describe.each(TEST_PROGRAMS)('oracle images of %s', (program) => {
  test('the oracle wrote the images a dump of this program must have, and the program is dead', () => {
    const d = dumps.get(program)!;
    expect(d.pids.filter((p) => !isDead(p))).toEqual([]);
    const must = ['inventory.img', 'pstree.img', 'files.img', 'stats-dump', 'pages-1.img'];
    for (const pid of d.pids) must.push(`core-${pid}.img`, `mm-${pid}.img`, `pagemap-${pid}.img`, `ids-${pid}.img`, `fs-${pid}.img`);
    if (program === 'tree') must.push('pipes-data.img');
    expect(d.files).toEqual(expect.arrayContaining(must));
    if (program === 'threads4') {
      // one core image per thread
      expect(d.files.filter((f) => /^core-\d+\.img$/.test(f))).toHaveLength(4);
    }
    if (program === 'tree') {
      expect(d.pids).toHaveLength(3);
      // the writer keeps records unread in the pipe: the image carries them as payload
      const pipes = parseCritJson(crit[path.join(d.dir, 'pipes-data.img')].plain!) as { entries: { bytes: number; extra?: string }[] };
      expect(pipes.entries.some((e) => e.bytes > 0 && typeof e.extra === 'string' && e.extra.length > 0)).toBe(true);
    }
  });

  test('crit decodes every image except raw pages', () => {
    for (const { file, crit: c } of structuredImages(program)) {
      expect({ file, error: c.error }).toEqual({ file, error: undefined });
    }
  });

  test.each([false, true])('decodeImage equals crit decode (pretty=%s): values and exact text', (pretty) => {
    const mismatches: string[] = [];
    for (const { file, bytes, crit: c } of structuredImages(program)) {
      const critText = pretty ? c.pretty! : c.plain!;
      const ours = decodeImage(bytes, { file, pretty });
      try {
        expect(normalize(ours)).toEqual(normalize(parseCritJson(critText)));
      } catch (err) {
        mismatches.push(`${file}: values differ\n${(err as Error).message.slice(0, 2000)}`);
        continue;
      }
      const text = stringifyCritJson(ours, pretty);
      if (text !== critText) mismatches.push(`${file}: text differs ${firstDifference(text, critText)}`);
    }
    expect(mismatches).toEqual([]);
  });

  test('decode -> encode gives back the same bytes (plain and pretty JSON)', () => {
    const mismatches: string[] = [];
    for (const { file, bytes } of structuredImages(program)) {
      for (const pretty of [false, true]) {
        const again = encodeImage(decodeImage(bytes, { file, pretty }));
        if (!Buffer.from(again).equals(bytes)) mismatches.push(`${file} (pretty=${pretty}): ${again.length} bytes vs ${bytes.length}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  test("encoding crit's own JSON text gives the original bytes, as crit encode does", () => {
    const dir = scratchDir(`${program}-critjson`);
    const jsonFiles: { file: string; json: string; bytes: Buffer; text: string }[] = [];
    for (const { file, bytes, crit: c } of structuredImages(program)) {
      for (const [kind, text] of [['plain', c.plain!], ['pretty', c.pretty!]] as const) {
        const json = path.join(dir, `${file}.${kind}.json`);
        fs.writeFileSync(json, text);
        jsonFiles.push({ file: `${file} (${kind})`, json, bytes, text });
      }
    }
    const critBytes = critEncodeFiles(jsonFiles.map((j) => j.json));
    const mismatches: string[] = [];
    for (const j of jsonFiles) {
      const ours = Buffer.from(encodeImage(parseCritJson(j.text) as Parameters<typeof encodeImage>[0]));
      if (!ours.equals(j.bytes)) mismatches.push(`${j.file}: ours ${ours.length} bytes vs original ${j.bytes.length}`);
      const theirs = critBytes[j.json];
      if (!theirs.bytes) mismatches.push(`${j.file}: crit encode failed: ${theirs.error?.message}`);
      else if (!theirs.bytes.equals(ours)) mismatches.push(`${j.file}: crit encode wrote ${theirs.bytes.length} bytes, ours ${ours.length}`);
    }
    expect(mismatches).toEqual([]);
  });

  test('crit decodes what our encoder writes to the same JSON', () => {
    const dir = scratchDir(`${program}-ours`);
    const written: { file: string; out: string; c: CritDecoded }[] = [];
    for (const { file, bytes, crit: c } of structuredImages(program)) {
      // encode from pretty JSON: the path with the most conversions (hex strings, flag names)
      const out = path.join(dir, file);
      fs.writeFileSync(out, encodeImage(decodeImage(bytes, { file, pretty: true })));
      written.push({ file, out, c });
    }
    const again = critDecodeFiles(written.map((w) => w.out));
    const mismatches: string[] = [];
    for (const w of written) {
      const r = again[w.out];
      if (r.error) mismatches.push(`${w.file}: crit refused our image: ${r.error.message}`);
      else if (r.plain !== w.c.plain || r.pretty !== w.c.pretty) mismatches.push(`${w.file}: crit decodes ours differently`);
    }
    expect(mismatches).toEqual([]);
  });

  test('imageInfo agrees with crit info, and counts entries right where crit info cannot', () => {
    const mismatches: string[] = [];
    for (const { file, bytes, crit: c } of structuredImages(program)) {
      const ours = imageInfo(bytes, { file });
      const img = JSON.parse(c.plain!) as { magic: string; entries: Record<string, unknown>[] };
      const hasPayload = img.entries.some((e) => 'extra' in e);
      // crit info walks length-prefixed records only, so raw payload after an entry
      // (pipes-data, sk-queues, ...) breaks it; there the decoded entry count is the truth.
      const expected = hasPayload ? { magic: img.magic, count: img.entries.length } : c.info!;
      if (!hasPayload && c.infoError) mismatches.push(`${file}: crit info failed: ${c.infoError.message}`);
      if (ours.magic !== expected.magic || ours.count !== expected.count) {
        mismatches.push(`${file}: ours ${JSON.stringify(ours)} vs ${JSON.stringify(expected)}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  test('raw pages images are refused like crit does, and hold exactly the pages the pagemaps count', () => {
    const d = dumps.get(program)!;
    const pagesFiles = d.files.filter(isRawPages);
    expect(pagesFiles.length).toBeGreaterThanOrEqual(d.pids.length);
    // pages_id -> pages counted present by the pagemap that names it
    const counted = new Map<number, number>();
    for (const f of d.files.filter((x) => /^pagemap-\d+\.img$/.test(x))) {
      const img = decodeImage(fs.readFileSync(path.join(d.dir, f)), { file: f }) as { entries: Record<string, unknown>[] };
      const [head, ...entries] = img.entries;
      let pages = 0;
      for (const e of entries) if ((Number(e.flags) & 4) !== 0) pages += Number(e.nr_pages);
      counted.set(Number(head.pages_id), pages);
    }
    for (const f of pagesFiles) {
      const full = path.join(d.dir, f);
      expect({ f, kind: crit[full].error?.kind }).toEqual({ f, kind: 'magic' });
      const head = Buffer.alloc(4096);
      const fd = fs.openSync(full, 'r');
      const n = fs.readSync(fd, head, 0, head.length, 0);
      fs.closeSync(fd);
      let thrown: unknown;
      try {
        decodeImage(head.subarray(0, n), { file: f });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ImageFormatError);
      expect((thrown as ImageFormatError).file).toBe(f);
      const id = Number(/^pages-(\d+)\.img$/.exec(f)![1]);
      expect({ f, size: fs.statSync(full).size }).toEqual({ f, size: counted.get(id)! * pageSize() });
    }
    if (program === 'mem64') {
      // the 64 MiB pattern is all non-zero, so every page of it is dumped
      expect(fs.statSync(path.join(d.dir, 'pages-1.img')).size).toBeGreaterThanOrEqual(64 << 20);
    }
  });
});

test('a failing oracle dump rejects with OracleDumpError and leaves no process behind', async () => {
  let thrown: unknown;
  try {
    await oracleDump('tree', { extraArgs: ['--no-such-option'], fresh: true });
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(OracleDumpError);
  const e = thrown as OracleDumpError;
  expect(e.status).toBe(1);
  expect(e.stderr).toContain('no-such-option');
  expect(e.pids).toHaveLength(3);
  expect(e.pids.filter((p) => !isDead(p))).toEqual([]);
});
