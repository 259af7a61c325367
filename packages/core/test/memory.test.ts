/**
 * Memory dump on real processes: vma records (compared with CRIU 4.1's mm image of the same
 * program), page selection (PAGEMAP_SCAN and the pagemap fallback) and page transfer (parasite
 * vmsplice+splice and process_vm_readv), verified from the images alone.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { PagesReader, pageRuns, readImageFile, writeImageFile, PE_LAZY, PE_PRESENT, type Msg } from '@criu/images';
import { FrozenTask, Parasite, hostArch, readMaps, readSmapsVmFlags, type MapsEntry } from '../src';
import { FileRegistry, FD_TYPE } from '../src/dump/file-registry';
import type { TaskDumpContext } from '../src/dump/model';
import { silentLogger } from '../src/util/log';
import { collectVmas, VmaError, VMA, MAP, MADV } from '../src/dump/vmas';
import { dumpMemory, MemoryDumpError, type TransferMethod } from '../src/dump/memory';
import { PagemapScanner, PAGE_IS, type ScanMethod } from '../src/dump/mem-scan';
import { mappedShmemId } from '../src/dump/shmem';
import { fileImagesOf } from '../src/dump/files-images';
import { buildFixture, startDetached, readLog, waitFor, killVictim, isAlive, lastCounter, type Victim } from './helpers/victims';

const arch = hostArch();
const ps = sys.pageSize();
const RAND_SIZE = 64 << 20;
const ZERO_EVERY = 997;
const FILE_PAGES = 16;
const ORACLE = '/var/tmp/criu-oracle/bin/criu';

interface MemVictim extends Victim { rand: bigint; none: bigint; fpriv: bigint; fshr: bigint; madv: bigint; shanon: bigint }

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-mem-'));
const dataFile = path.join(work, 'data.bin');
const started: Victim[] = [];

async function startMemVictim(extra: string[] = []): Promise<MemVictim> {
  const v = startDetached(buildFixture('mem-victim'), [dataFile, ...extra]);
  started.push(v);
  const m = await waitFor('mem-victim READY', () => /READY rand=(\S+) none=(\S+) fpriv=(\S+) fshr=(\S+) madv=(\S+) shanon=(\S+)/.exec(readLog(v)) ?? undefined, 15000);
  const addr = (s: string): bigint => (s === '(nil)' ? 0n : BigInt(s));
  return { ...v, rand: addr(m[1]), none: addr(m[2]), fpriv: addr(m[3]), fshr: addr(m[4]), madv: addr(m[5]), shanon: addr(m[6]) };
}

async function expectPass(v: Victim): Promise<void> {
  const before = lastCounter(v);
  await waitFor('counter to advance', () => lastCounter(v) > before + 2);
  process.kill(v.pid, 'SIGTERM');
  await waitFor('verdict', () => /PASS|FAIL/.exec(readLog(v)), 10000);
  expect(readLog(v)).toMatch(/PASS counter=/);
  await waitFor('exit', () => !isAlive(v.pid));
}

/** File ids by path, as the dump engine's registry hands them out. */
function pathFileIds(): { reg: FileRegistry; fileId: (m: MapsEntry) => number; pathOf: Map<number, string> } {
  const reg = new FileRegistry();
  const pathOf = new Map<number, string>();
  const fileId = (m: MapsEntry): number => {
    const id = reg.intern(`path:${m.name}`, FD_TYPE.REG, (i) => ({ id: i, flags: 0, pos: 0n, name: m.name }));
    pathOf.set(id, m.name);
    return id;
  };
  return { reg, fileId, pathOf };
}

function makeCtx(pid: number, imagesDir: string, parasite: Parasite, maps: MapsEntry[], files: FileRegistry): TaskDumpContext {
  return { pid, imagesDir, pageSize: ps, log: silentLogger, files, parasite, maps, shellJob: false };
}

/** Page numbers (address / page size) covered by pagemap runs, with their flags. */
function pageSet(entries: Msg[]): Map<bigint, number> {
  const out = new Map<bigint, number>();
  for (const r of pageRuns(entries, ps)) for (let i = 0; i < r.nrPages; i++) out.set(r.vaddr / BigInt(ps) + BigInt(i), r.flags);
  return out;
}

const pg = (addr: bigint, i = 0): bigint => addr / BigInt(ps) + BigInt(i);

interface DumpOutcome { dir: string; pagemap: Msg[]; vmas: Msg[]; stats: Awaited<ReturnType<typeof dumpMemory>>['stats']; vdso: MapsEntry; vvar: MapsEntry[] }

/**
 * Freezes the victim, collects its vmas, injects the parasite, dumps memory into a new dir and
 * checks, while the task is still frozen, that every dumped page equals the task's memory.
 * Returns with the task released.
 */
async function dumpAndVerify(v: MemVictim, method: TransferMethod, scan: ScanMethod): Promise<DumpOutcome> {
  const dir = fs.mkdtempSync(path.join(work, `dump-${method}-${scan}-`));
  const mapsBefore = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
  const task = FrozenTask.freeze(v.pid, arch);
  let out: DumpOutcome | undefined;
  try {
    const maps = readMaps(v.pid);
    const { reg, fileId } = pathFileIds();
    const vmas = collectVmas(v.pid, maps, readSmapsVmFlags(v.pid), fileId);
    // While the parasite runs, the kernel rewrites the task's rseq area (cpu_id) on every return
    // to user space, so those bytes may differ between the dump and the comparison below.
    const rseq = sys.ptrace.getRseqConfiguration(v.pid);
    const parasite = Parasite.inject(task);
    try {
      const ctx = makeCtx(v.pid, dir, parasite, maps, reg);
      await expect(dumpMemory(ctx, vmas, { pagesId: -1 })).rejects.toThrow(MemoryDumpError);
      const mapsWithParasite = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
      const res = await dumpMemory(ctx, vmas, { pagesId: 1, method, scan });
      // Protections put back: the PROT_NONE region is PROT_NONE again.
      expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(mapsWithParasite);
      await writeImageFile(path.join(dir, `pagemap-${v.pid}.img`), 'PAGEMAP', res.pagemap.map((m) => ({ message: m })));

      // From the images alone: pagemap + pages-1.img.
      const img = await readImageFile(path.join(dir, `pagemap-${v.pid}.img`));
      expect(img.entries[0].type).toBe('pagemap_head');
      expect(img.entries[0].message.pages_id).toBe(1);
      const runs = pageRuns(img.entries, ps);
      for (let i = 1; i < runs.length; i++) expect(runs[i].vaddr).toBeGreaterThanOrEqual(runs[i - 1].vaddr + BigInt(runs[i - 1].nrPages * ps));
      const total = runs.reduce((s, r) => s + r.nrPages, 0);
      const reader = await PagesReader.open(path.join(dir, 'pages-1.img'));
      const mem = fs.openSync(`/proc/${v.pid}/mem`, 'r');
      try {
        expect(reader.size).toBe(total * ps);
        expect(res.stats.pagesWritten).toBe(total);
        expect(res.stats.bytesWritten).toBe(total * ps);
        const live = Buffer.alloc(1 << 20);
        for (const r of runs) {
          expect(r.flags & PE_PRESENT).toBe(PE_PRESENT);
          let done = 0;
          for await (const chunk of reader.chunks(r.offset!, r.nrPages * ps, live.length)) {
            const n = fs.readSync(mem, live, 0, chunk.length, r.vaddr + BigInt(done));
            expect(n).toBe(chunk.length);
            const rel = rseq.rseqAbiPointer - (r.vaddr + BigInt(done));
            if (rseq.rseqAbiPointer !== 0n && rel >= 0n && rel < BigInt(n)) {
              const at = Number(rel), end = Math.min(n, at + rseq.rseqAbiSize);
              live.copy(chunk, at, at, end); // ignore the kernel-maintained rseq fields
            }
            if (!chunk.equals(live.subarray(0, n))) throw new Error(`page data differs in run at 0x${r.vaddr.toString(16)} (+${done})`);
            done += chunk.length;
          }
        }
      } finally {
        fs.closeSync(mem);
        await reader.close();
      }
      const vdso = maps.find((m) => m.name === '[vdso]')!;
      const vvar = maps.filter((m) => m.name.startsWith('[vvar'));
      out = { dir, pagemap: img.entries.map((e) => e.message), vmas, stats: res.stats, vdso, vvar };
    } finally {
      parasite.finish();
    }
  } finally {
    task.release();
  }
  expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(mapsBefore);
  return out!;
}

/** What must (and must not) be in the dump of a mem-victim. */
function checkSelection(v: MemVictim, o: DumpOutcome): void {
  const pages = pageSet(o.pagemap);
  const lazy = PE_PRESENT | PE_LAZY;
  const randPages = RAND_SIZE / ps;
  let zeros = 0;
  for (let i = 0; i < randPages; i++) {
    const f = pages.get(pg(v.rand, i));
    if (i % ZERO_EVERY === 0) {
      zeros++;
      if (f !== undefined) throw new Error(`zero page ${i} of the random region was dumped`);
    } else if (f !== lazy) {
      throw new Error(`page ${i} of the random region: flags ${f}`);
    }
  }
  expect(o.stats.pagesSkippedZero).toBeGreaterThanOrEqual(zeros);
  // Private file mapping: only the written page.
  for (let i = 0; i < FILE_PAGES; i++) expect(pages.get(pg(v.fpriv, i))).toBe(i === 3 ? PE_PRESENT : undefined);
  expect(o.stats.pagesSkippedFile).toBeGreaterThanOrEqual(FILE_PAGES - 1);
  expect(pages.has(pg(v.fshr))).toBe(false); // shared file mapping: the file holds it
  for (let i = 0; i < 4; i++) expect(pages.get(pg(v.none, i))).toBe(lazy); // PROT_NONE, data
  for (let i = 0; i < 8; i++) expect(pages.get(pg(v.madv, i))).toBe(lazy); // DONTDUMP too, as CRIU
  for (let a = o.vdso.start; a < o.vdso.end; a += BigInt(ps)) expect(pages.get(pg(a))).toBe(PE_PRESENT);
  for (const vv of o.vvar) for (let a = vv.start; a < vv.end; a += BigInt(ps)) expect(pages.has(pg(a))).toBe(false);
  expect(o.stats.pagesScanned).toBeGreaterThan(randPages);
}

async function pagesImageBytes(o: DumpOutcome, vaddr: bigint, len: number): Promise<Buffer> {
  const run = pageRuns(o.pagemap, ps).find((r) => r.vaddr <= vaddr && vaddr + BigInt(len) <= r.vaddr + BigInt(r.nrPages * ps))!;
  const reader = await PagesReader.open(path.join(o.dir, 'pages-1.img'));
  try {
    return await reader.read(run.offset! + Number(vaddr - run.vaddr), len);
  } finally {
    await reader.close();
  }
}

beforeAll(() => {
  fs.writeFileSync(dataFile, crypto.randomBytes(FILE_PAGES * ps));
  buildFixture('mem-victim');
});
afterAll(() => {
  started.forEach(killVictim);
  fs.rmSync(work, { recursive: true, force: true });
});

describe('dumpMemory on a real process', () => {
  const combos: Array<[TransferMethod, ScanMethod]> = [['parasite', 'ioctl'], ['vm_readv', 'pagemap'], ['parasite', 'pagemap'], ['vm_readv', 'ioctl']];
  it.each(combos)('transfer %s, scan %s: pages match the task, zero and file pages skipped, task intact', async (method, scan) => {
    const v = await startMemVictim();
    const o = await dumpAndVerify(v, method, scan);
    expect(o.stats.scan).toBe(scan);
    checkSelection(v, o);
    // The PROT_NONE region's data, read back from the image.
    const none = await pagesImageBytes(o, v.none, 4 * ps);
    for (let i = 0; i < none.length; i++) if (none[i] !== ((i * 13 + 5) & 0xff)) throw new Error(`PROT_NONE byte ${i}`);
    // The modified file page holds the modification; page 1 of the random region is zeros.
    const fp = await pagesImageBytes(o, v.fpriv + 3n * BigInt(ps), ps);
    expect(fp.subarray(100, 300).every((b) => b === 0xab)).toBe(true);
    expect((await pagesImageBytes(o, v.rand + BigInt(ps), ps)).every((b) => b === 0)).toBe(true);
    if (method === 'parasite') {
      expect(o.stats.pipeBufs).toBeGreaterThanOrEqual(Math.ceil(o.stats.bytesWritten / Number(fs.readFileSync('/proc/sys/fs/pipe-max-size', 'latin1'))));
    }
    await expectPass(v);
  });

  it('a small pipe and a small readv buffer give the same image', async () => {
    const v = await startMemVictim();
    const a = await dumpSmall(v, 'parasite');
    const b = await dumpSmall(v, 'vm_readv');
    expect(a.stats.pipeBufs).toBeGreaterThan(100);
    expect(b.stats.pipeBufs).toBeGreaterThan(100);
    expect(b.pagemap.filter((m) => isInRand(v, m))).toEqual(a.pagemap.filter((m) => isInRand(v, m)));
    await expectPass(v);
  });
});

describe('deferred copy (the dump kills the task)', () => {
  it('pages held in pipes and drained later give the same image as a direct copy', async () => {
    const v = await startMemVictim();
    const a = await dumpSmall(v, 'parasite', { pipes: 40 });
    const b = await dumpSmall(v, 'vm_readv');
    const randPages = async (o: DumpOutcome): Promise<Buffer> => {
      const fd = fs.openSync(path.join(o.dir, 'pages-1.img'), 'r');
      try {
        const parts: Buffer[] = [];
        for (const r of pageRuns(o.pagemap, ps)) {
          if (r.vaddr < v.rand || r.vaddr >= v.rand + BigInt(RAND_SIZE)) continue;
          const buf = Buffer.alloc(r.nrPages * ps);
          expect(fs.readSync(fd, buf, 0, buf.length, r.offset!)).toBe(buf.length);
          parts.push(buf);
        }
        return Buffer.concat(parts);
      } finally {
        fs.closeSync(fd);
      }
    };
    expect(a.pagemap.filter((m) => isInRand(v, m))).toEqual(b.pagemap.filter((m) => isInRand(v, m)));
    const [pa, pb] = [await randPages(a), await randPages(b)];
    expect(pa.length).toBeGreaterThan(RAND_SIZE / 2);
    expect(pa.equals(pb)).toBe(true);
    await expectPass(v);
  });
});

function isInRand(v: MemVictim, m: Msg): boolean {
  return m.vaddr !== undefined && BigInt(m.vaddr as bigint) >= v.rand && BigInt(m.vaddr as bigint) < v.rand + BigInt(RAND_SIZE);
}

async function dumpSmall(v: MemVictim, method: TransferMethod, defer?: { pipes: number }): Promise<DumpOutcome> {
  const dir = fs.mkdtempSync(path.join(work, `small-${method}-`));
  const task = FrozenTask.freeze(v.pid, arch);
  try {
    const maps = readMaps(v.pid);
    const { reg, fileId } = pathFileIds();
    const vmas = collectVmas(v.pid, maps, readSmapsVmFlags(v.pid), fileId);
    const parasite = Parasite.inject(task);
    try {
      const res = await dumpMemory(makeCtx(v.pid, dir, parasite, maps, reg), vmas, { pagesId: 1, method, pipeBytes: 64 << 10, chunkBytes: 100 << 10, defer });
      if (defer) {
        expect(res.deferred).toBeDefined();
        expect(defer.pipes).toBe(0); // the budget was used up; the rest was copied at once
        await res.deferred!.drain();
      } else expect(res.deferred).toBeUndefined();
      const pagemap = res.pagemap;
      // Same bytes for the random region whichever way they travelled.
      const reader = await PagesReader.open(path.join(dir, 'pages-1.img'));
      try {
        expect(reader.size).toBe(res.stats.bytesWritten);
      } finally {
        await reader.close();
      }
      return { dir, pagemap, vmas, stats: res.stats, vdso: maps.find((m) => m.name === '[vdso]')!, vvar: [] };
    } finally {
      parasite.finish();
    }
  } finally {
    task.release();
  }
}

describe('PagemapScanner', () => {
  it('the ioctl and the pagemap fallback see the same pages', async () => {
    const v = await startMemVictim();
    const maps = readMaps(v.pid);
    const a = new PagemapScanner(v.pid, ps, 'ioctl');
    const b = new PagemapScanner(v.pid, ps, 'pagemap');
    try {
      const priv = maps.filter((m) => m.perms[3] === 'p' && !m.name.startsWith('[v'));
      const norm = (runs: ReturnType<PagemapScanner['scan']>): string[] => runs.map((r) => `${r.start.toString(16)}+${r.nrPages}:${r.categories & (PAGE_IS.PRESENT | PAGE_IS.PFNZERO | PAGE_IS.FILE)}`);
      const randRuns = a.scan(v.rand, v.rand + BigInt(RAND_SIZE));
      expect(randRuns.filter((r) => r.categories & PAGE_IS.PFNZERO).reduce((s, r) => s + r.nrPages, 0)).toBe(Math.ceil(RAND_SIZE / ps / ZERO_EVERY));
      // The task runs: compare only regions it does not touch any more.
      for (const m of priv.filter((x) => x.start === v.rand || x.start === v.fpriv || x.start === v.none)) {
        expect(norm(b.scan(m.start, m.end))).toEqual(norm(a.scan(m.start, m.end)));
      }
      expect(a.method).toBe('ioctl');
    } finally {
      a.close();
      b.close();
    }
    killVictim(v);
  });

  it('names the task when pagemap cannot be opened', () => {
    expect(() => new PagemapScanner(2 ** 22 + 17, ps, 'ioctl')).toThrow(/task 4194321: open pagemap/);
  });
});

describe('collectVmas', () => {
  it('matches the vma records CRIU 4.1 writes for the same process', async () => {
    const v = await startMemVictim();
    const dir = fs.mkdtempSync(path.join(work, 'oracle-'));
    execFileSync(ORACLE, ['dump', '--no-default-config', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4', '--leave-running'], { stdio: 'ignore' });
    const mm = await readImageFile(path.join(dir, `mm-${v.pid}.img`));
    const theirs = mm.entries[0].message.vmas as Msg[];
    const files = await readImageFile(path.join(dir, 'files.img'));
    const theirPath = new Map<number, string>();
    for (const e of files.entries) if (e.message.reg) theirPath.set(Number(e.message.id), String((e.message.reg as Msg).name));

    const { fileId, pathOf } = pathFileIds();
    const ours = collectVmas(v.pid, readMaps(v.pid), readSmapsVmFlags(v.pid), fileId);
    expect(ours.map((e) => `${(e.start as bigint).toString(16)}-${(e.end as bigint).toString(16)}`)).toEqual(theirs.map((e) => `${(e.start as bigint).toString(16)}-${(e.end as bigint).toString(16)}`));
    ours.forEach((o, i) => {
      const t = theirs[i];
      const where = `vma ${(o.start as bigint).toString(16)}`;
      for (const k of ['start', 'end', 'pgoff', 'prot', 'flags', 'status', 'fd', 'madv', 'fdflags']) {
        // We also record MADV_WIPEONFORK, which CRIU 4.1 drops; otherwise the records are CRIU's.
        let mine = o[k];
        if (k === 'madv' && typeof mine === 'bigint') {
          mine &= ~(1n << BigInt(MADV.WIPEONFORK));
          if (mine === 0n && t[k] === undefined) mine = undefined;
        }
        expect({ where, k, v: mine }).toEqual({ where, k, v: t[k] });
      }
      const status = Number(o.status);
      if (status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED)) expect({ where, path: pathOf.get(Number(o.shmid)) }).toEqual({ where, path: theirPath.get(Number(t.shmid)) });
      else expect({ where, shmid: o.shmid }).toEqual({ where, shmid: t.shmid });
    });
    // Spot checks of what the comparison covers.
    const at = (a: bigint): Msg => ours.find((e) => e.start === a)!;
    expect(at(v.none).prot).toBe(0);
    expect(at(v.madv).madv).toBe(1n << BigInt(MADV.DONTFORK));
    expect(at(v.fshr).flags).toBe(MAP.SHARED);
    expect(ours.some((e) => Number(e.status) & VMA.AREA_VVAR)).toBe(true);

    // And the same pages selected as CRIU's pagemap for the regions the task no longer touches.
    const theirPagemap = (await readImageFile(path.join(dir, `pagemap-${v.pid}.img`))).entries.map((e) => e.message);
    const o = await dumpAndVerify(v, 'parasite', 'ioctl');
    const mine = pageSet(o.pagemap);
    const theirSet = pageSet(theirPagemap);
    const regions: Array<[bigint, number]> = [[v.rand, RAND_SIZE / ps], [v.fpriv, FILE_PAGES], [v.none, 4], [v.madv, 8], [v.fshr, 1], [o.vdso.start, Number((o.vdso.end - o.vdso.start) / BigInt(ps))]];
    for (const [start, n] of regions) {
      for (let i = 0; i < n; i++) {
        const p = pg(start, i);
        if (mine.get(p) !== theirSet.get(p)) throw new Error(`page 0x${(p * BigInt(ps)).toString(16)}: ours ${mine.get(p)}, CRIU ${theirSet.get(p)}`);
      }
    }
    await expectPass(v);
  });

  it('records shared anonymous memory as CRIU 4.1 does: a memfd vma, the object saved once', async () => {
    const v = await startMemVictim(['shanon']);
    const key = v.shanon;
    // Without object ids (a caller that cannot save objects) it is refused, naming the mapping.
    let err: unknown;
    try {
      collectVmas(v.pid, readMaps(v.pid), readSmapsVmFlags(v.pid), pathFileIds().fileId);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmaError);
    expect((err as VmaError).mapping).toContain(key.toString(16));

    const theirDir = fs.mkdtempSync(path.join(work, 'oracle-shanon-'));
    execFileSync(ORACLE, ['dump', '--no-default-config', '-t', String(v.pid), '-D', theirDir, '-o', 'dump.log', '-v4', '--leave-running'], { stdio: 'ignore' });
    const theirVma = ((await readImageFile(path.join(theirDir, `mm-${v.pid}.img`))).entries[0].message.vmas as Msg[]).find((e) => e.start === key)!;
    const theirFiles = (await readImageFile(path.join(theirDir, 'files.img'))).entries.map((e) => e.message);
    const theirInodes = (await readImageFile(path.join(theirDir, 'memfd.img'))).entries.map((e) => e.message);

    const dir = fs.mkdtempSync(path.join(work, 'shanon-'));
    const maps = readMaps(v.pid);
    const { reg, fileId } = pathFileIds();
    const ctx = makeCtx(v.pid, dir, undefined as unknown as Parasite, maps, reg);
    const ours = collectVmas(v.pid, maps, readSmapsVmFlags(v.pid), fileId, (m) => mappedShmemId(ctx, m));
    await fileImagesOf(reg).flush(dir);
    const mine = ours.find((e) => e.start === key)!;
    expect(Number(mine.status)).toBe(VMA.AREA_REGULAR | VMA.FILE_SHARED | VMA.AREA_MEMFD);
    expect(Number(mine.flags)).toBe(MAP.SHARED);
    for (const k of ['start', 'end', 'pgoff', 'prot', 'flags', 'status', 'fd', 'fdflags']) expect({ k, v: mine[k] }).toEqual({ k, v: theirVma[k] });

    // shmid names a MEMFD file whose inode record is CRIU's (its shmid is the object's inode).
    const inodeOf = (files: Msg[], inodes: Msg[], id: number): Msg => {
      const f = files.find((e) => Number(e.id) === id)!;
      expect(Number(f.type)).toBe(FD_TYPE.MEMFD);
      return inodes.find((i) => Number(i.inode_id) === Number((f.memfd as Msg).inode_id))!;
    };
    const myInodes = (await readImageFile(path.join(dir, 'memfd.img'))).entries.map((e) => e.message);
    const myInode = inodeOf(reg.fileEntries(), myInodes, Number(mine.shmid));
    const theirInode = inodeOf(theirFiles, theirInodes, Number(theirVma.shmid));
    const ino = maps.find((m) => m.start === key)!.inode;
    expect(Number(myInode.shmid)).toBe(ino);
    for (const k of ['name', 'uid', 'gid', 'size', 'shmid', 'seals', 'mode']) expect({ k, v: myInode[k] }).toEqual({ k, v: theirInode[k] });
    expect(myInode.size).toBe(BigInt(2 * ps));

    // Its contents: both pages, 0x5a, in pagemap-shmem-<ino>.img (offsets in the object).
    const pm = (await readImageFile(path.join(dir, `pagemap-shmem-${ino}.img`))).entries.map((e) => e.message);
    const theirPm = (await readImageFile(path.join(theirDir, `pagemap-shmem-${ino}.img`))).entries.map((e) => e.message);
    expect(pm.slice(1)).toEqual(theirPm.slice(1));
    expect(pm.slice(1)).toEqual([{ vaddr: 0n, nr_pages: 2, flags: PE_PRESENT }]);
    const pages = fs.readFileSync(path.join(dir, `pages-${pm[0].pages_id}.img`));
    expect(pages.equals(Buffer.alloc(2 * ps, 0x5a))).toBe(true);

    // Asked again (another task mapping it), the same file id and no second copy.
    const before = fs.readdirSync(dir).length;
    expect(mappedShmemId({ ...ctx, maps }, maps.find((m) => m.start === key)!)).toBe(Number(mine.shmid));
    expect(fs.readdirSync(dir).length).toBe(before);
    await expectPass(v);
  });

  it('refuses mappings it cannot describe, and missing VmFlags', async () => {
    const v = await startMemVictim();
    const maps = readMaps(v.pid);
    const { fileId } = pathFileIds();
    const flags = readSmapsVmFlags(v.pid);
    const hugetlb = new Map(flags);
    hugetlb.set(v.rand, new Set([...flags.get(v.rand)!, 'ht']));
    expect(() => collectVmas(v.pid, maps, hugetlb, fileId)).toThrow(/hugetlb/);
    const io = new Map(flags);
    io.set(v.rand, new Set([...flags.get(v.rand)!, 'io']));
    expect(() => collectVmas(v.pid, maps, io, fileId)).toThrow(/VM_IO/);
    expect(() => collectVmas(v.pid, maps, new Map(), fileId)).toThrow(VmaError);
    killVictim(v);
  });
});
