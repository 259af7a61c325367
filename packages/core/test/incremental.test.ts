/**
 * Iterative dumps: pre-dumps with --track-mem, then a dump whose unchanged pages are PE_PARENT
 * holes into the chain of previous images; restore reads them back from the parents.
 * On this x86_64 host (no soft-dirty) changes are tracked with uffd-wp + PAGEMAP_SCAN.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, pageRuns, PE_PARENT, PE_PRESENT } from '@criu/images';
import { detectMemTrack, dump, DumpError, MEMTRACK_FILE, restore } from '../src';
import { isAlive, readLog, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { critDecode, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(180_000);
// x86_64 is the uffd-wp path (the must-show): taken even on a host that also has soft-dirty.
const X86 = process.arch === 'x64';
if (X86) process.env.CRIU_TS_MEM_TRACK = 'uffd-wp';
const { dir: tmp, started } = testWorkspace('incr');

const MIB = 1024;
const ps = Number(execFileSync('getconf', ['PAGESIZE']).toString());
const npages = (MIB << 20) / ps;
const dirtiedPerRound = Math.ceil(npages / 20);

async function dirty(v: Victim, round: number): Promise<void> {
  process.kill(v.pid, 'SIGUSR1');
  await waitFor(`DIRTIED ${round}`, () => new RegExp(`^DIRTIED ${round} `, 'm').test(readLog(v)), 10_000);
}

function pagemapOf(dir: string, pid: number) {
  return pageRuns(decodeImageEntries(fs.readFileSync(path.join(dir, `pagemap-${pid}.img`))).entries, ps);
}

/** The dump entry of stats-dump, as CRIU's tools read it. */
function statsDumpOf(dir: string): Record<string, number | bigint> {
  const e = decodeImageEntries(fs.readFileSync(path.join(dir, 'stats-dump'))).entries;
  expect(e).toHaveLength(1);
  return (e[0].message as { dump: Record<string, number | bigint> }).dump;
}

/** memdirty's region, from its "MEM <address> <bytes>" line. */
function regionOf(v: Victim): { start: bigint; pages: number } {
  const m = /^MEM ([0-9a-f]+) (\d+)$/m.exec(readLog(v));
  if (!m) throw new Error(`memdirty printed no MEM line:\n${readLog(v)}`);
  return { start: BigInt(`0x${m[1]}`), pages: Number(m[2]) / ps };
}

/** Indices (in the region) of the pages a pagemap saves in this image (PE_PRESENT). */
function presentInRegion(runs: ReturnType<typeof pagemapOf>, region: { start: bigint; pages: number }): number[] {
  const out: number[] = [];
  for (const r of runs) {
    if (!(r.flags & PE_PRESENT)) continue;
    for (let i = 0; i < r.nrPages; i++) {
      const p = Number((r.vaddr - region.start) / BigInt(ps)) + i;
      if (r.vaddr + BigInt(i * ps) >= region.start && p < region.pages) out.push(p);
    }
  }
  return out;
}

describe('memory change tracking', () => {
  it('has a method on this kernel (criu check --feature mem_dirty_track)', () => {
    const s = detectMemTrack();
    expect(s.method).toBeDefined();
    if (s.softDirty !== 'ok') expect(s.method).toBe('uffd-wp');
    if (X86) expect(s).toMatchObject({ method: 'uffd-wp', uffdWp: 'ok' });
  });
});

describe('three pre-dumps then a dump', () => {
  it(`${MIB} MiB: writes only the changed pages and restores the whole memory from the chain`, async () => {
    const v = await startTestprog('memdirty', [String(MIB)]);
    started.push(v);
    const region = regionOf(v);
    expect(region.pages).toBe(npages);
    const dir = (n: number) => path.join(tmp, `it${n}`);

    const first = await dump({ pid: v.pid, imagesDir: dir(1), preDump: true, trackMem: true });
    expect(isAlive(v.pid)).toBe(true);
    expect(first.stats.memTrack).toBe(detectMemTrack().method);
    if (X86) expect(first.stats.memTrack).toBe('uffd-wp');
    expect(first.stats.pagesWritten).toBeGreaterThanOrEqual(npages);
    expect(first.stats.pagesSkippedParent).toBe(0);
    expect(presentInRegion(pagemapOf(dir(1), v.pid), region)).toHaveLength(npages);
    expect(fs.existsSync(path.join(dir(1), 'pstree.img'))).toBe(false);
    expect(fs.existsSync(path.join(dir(1), MEMTRACK_FILE))).toBe(true);

    for (let n = 2; n <= 4; n++) {
      const round = n - 2;
      await dirty(v, round);
      const last = n === 4;
      const r = await dump({ pid: v.pid, imagesDir: dir(n), preDump: !last, trackMem: true, parentImagesDir: `../it${n - 1}` });
      expect(fs.readlinkSync(path.join(dir(n), 'parent'))).toBe(`../it${n - 1}`);
      if (X86) expect(r.stats.memTrack).toBe('uffd-wp');
      // Of the region, exactly the rewritten 5% (index % 20 == round); elsewhere a little of the
      // program's own (stack, libc, its generation table), not the rest of the 1 GiB.
      const inRegion = presentInRegion(pagemapOf(dir(n), v.pid), region);
      expect(inRegion).toHaveLength(dirtiedPerRound);
      expect(inRegion.every((p) => p % 20 === round)).toBe(true);
      expect(r.stats.pagesWritten).toBeGreaterThanOrEqual(dirtiedPerRound);
      expect(r.stats.pagesWritten).toBeLessThan(dirtiedPerRound + npages / 100);
      expect(r.stats.pagesSkippedParent).toBeGreaterThan(npages - dirtiedPerRound - npages / 100);
      const runs = pagemapOf(dir(n), v.pid);
      const present = runs.filter((x) => x.flags & PE_PRESENT).reduce((s, x) => s + x.nrPages, 0);
      const parent = runs.filter((x) => x.flags & PE_PARENT).reduce((s, x) => s + x.nrPages, 0);
      expect(present).toBe(r.stats.pagesWritten);
      expect(parent).toBe(r.stats.pagesSkippedParent);
      expect(fs.statSync(path.join(dir(n), 'pages-1.img')).size).toBe(present * ps);
      // stats-dump (what `crit show stats-dump` reads) says the same.
      const sd = statsDumpOf(dir(n));
      expect(Number(sd.pages_written)).toBe(present);
      expect(Number(sd.pages_skipped_parent)).toBe(parent);
      expect(Number(sd.frozen_time)).toBe(r.stats.frozenTimeUs);
      if (last) {
        // Reported, not asserted: how long the task stood frozen for the final dump.
        console.log(`${MIB} MiB memdirty, final dump (${r.stats.memTrack}): frozen ${(Number(sd.frozen_time) / 1000).toFixed(1)} ms; `
          + `${present} pages written (${inRegion.length} of the region's ${npages}), ${parent} left in the parents; first pre-dump: ${first.stats.pagesWritten} pages, frozen ${(first.stats.frozenTimeUs / 1000).toFixed(1)} ms`);
      }
      if (!last) expect(isAlive(v.pid)).toBe(true);
    }

    await waitPidGone(v.pid);
    await restore({ imagesDir: dir(4), logFile: 'restore.log', logLevel: 4 });
    // criu-ts's tracking uffd was not dumped: the restored task does not have it.
    expect(fs.existsSync(path.join(dir(4), MEMTRACK_FILE))).toBe(false); // the dump killed the task: no tracking follows
    const note = JSON.parse(fs.readFileSync(path.join(dir(3), MEMTRACK_FILE), 'utf8'));
    if (note.method === 'uffd-wp') {
      const fd = note.uffd[String(v.pid)];
      expect(fs.existsSync(`/proc/${v.pid}/fd/${fd}`)).toBe(false);
    }
    await dirty(v, 3);
    // memdirty checks every page of the region against its generation.
    expect(await verdict(v, 60_000)).toBe('PASS memdirty');
  });
});

describe('the oracle CRIU and criu-ts chains', () => {
  beforeAll(() => requireOracle());
  it('CRIU 4.1 restores a criu-ts pre-dump + pre-dump + dump chain (PE_PARENT, parent links)', async () => {
    const v = await startTestprog('memdirty', ['16']);
    started.push(v);
    const d = (n: number) => path.join(tmp, `or${n}`);
    await dump({ pid: v.pid, imagesDir: d(1), preDump: true, trackMem: true });
    await dirty(v, 0);
    await dump({ pid: v.pid, imagesDir: d(2), preDump: true, trackMem: true, parentImagesDir: '../or1' });
    await dirty(v, 1);
    const r = await dump({ pid: v.pid, imagesDir: d(3), trackMem: true, parentImagesDir: '../or2' });
    expect(r.stats.pagesSkippedParent).toBeGreaterThan(0);
    // crit reads the holes as CRIU writes them.
    const pm = critDecode(path.join(d(3), `pagemap-${v.pid}.img`)).entries as Array<{ flags?: number }>;
    expect(pm.some((e) => e.flags === PE_PARENT)).toBe(true);
    await waitPidGone(v.pid);
    oracleRestore(d(3));
    await dirty(v, 2);
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });
});

describe('--auto-dedup', () => {
  it('punches the pages saved again out of the parent images; the chain still restores', async () => {
    const v = await startTestprog('memdirty', ['16']);
    started.push(v);
    const d = (n: number) => path.join(tmp, `dd${n}`);
    await dump({ pid: v.pid, imagesDir: d(1), preDump: true, trackMem: true });
    const parentPages = path.join(d(1), 'pages-1.img');
    const before = fs.statSync(parentPages);
    await dirty(v, 0);
    const r = await dump({ pid: v.pid, imagesDir: d(2), trackMem: true, parentImagesDir: '../dd1', autoDedup: true });
    const after = fs.statSync(parentPages);
    expect(after.size).toBe(before.size);
    const freed = (before.blocks - after.blocks) * 512;
    const dirtied = Math.ceil(((16 << 20) / ps) / 20) * ps;
    expect(freed).toBeGreaterThanOrEqual(dirtied);
    expect(freed).toBeLessThanOrEqual(r.stats.pagesWritten * ps);
    await waitPidGone(v.pid);
    await restore({ imagesDir: d(2) });
    await dirty(v, 1);
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });
});

describe('tracking across plain dumps', () => {
  it('a dump without a parent leaves criu-ts\'s uffd out; with -R --track-mem it starts the next period', async () => {
    const v = await startTestprog('memdirty', ['8']);
    started.push(v);
    const d = (n: string) => path.join(tmp, `pl${n}`);
    await dump({ pid: v.pid, imagesDir: d('1'), preDump: true, trackMem: true });
    await dump({ pid: v.pid, imagesDir: d('2'), leaveRunning: true, trackMem: true });
    expect(fs.readFileSync(path.join(d('2'), `fdinfo-2.img`)).length).toBeGreaterThan(0);
    await dirty(v, 0);
    const r = await dump({ pid: v.pid, imagesDir: d('3'), trackMem: true, parentImagesDir: '../pl2' });
    expect(r.stats.pagesSkippedParent).toBeGreaterThan(r.stats.pagesWritten);
    await waitPidGone(v.pid);
    await restore({ imagesDir: d('3') });
    await dirty(v, 1);
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });
});

describe('a failed iteration', () => {
  it.each(['write-images', 'finish'] as const)('failing at %s leaves the previous images a valid parent for the retry', async (faultAt) => {
    const v = await startTestprog('memdirty', ['8']);
    started.push(v);
    const d = (n: string) => path.join(tmp, `fail-${faultAt}-${n}`);
    await dump({ pid: v.pid, imagesDir: d('1'), preDump: true, trackMem: true });
    await dirty(v, 0);
    await expect(dump({ pid: v.pid, imagesDir: d('2'), preDump: true, trackMem: true, parentImagesDir: `../fail-${faultAt}-1`, faultAt })).rejects.toThrow(DumpError);
    expect(isAlive(v.pid)).toBe(true);
    await dirty(v, 1);
    // Round 0's pages changed after the first pre-dump: they must be saved, whatever the failed try reset.
    await dump({ pid: v.pid, imagesDir: d('3'), trackMem: true, parentImagesDir: `../fail-${faultAt}-1` });
    await waitPidGone(v.pid);
    await restore({ imagesDir: d('3') });
    expect(await verdict(v, 20_000)).toBe('PASS memdirty');
  });
});

describe('bad chains', () => {
  it('refuses a missing parent directory at dump time, the task untouched', async () => {
    const v = await startTestprog('memdirty', ['4']);
    started.push(v);
    await expect(dump({ pid: v.pid, imagesDir: path.join(tmp, 'bad1'), parentImagesDir: '../nothing-here', trackMem: true })).rejects.toThrow(DumpError);
    await expect(dump({ pid: v.pid, imagesDir: path.join(tmp, 'bad1'), parentImagesDir: '../nothing-here' })).rejects.toThrow(/no previous images/);
    expect(isAlive(v.pid)).toBe(true);
    expect(await verdict(v)).toBe('PASS memdirty');
  });

  it('refuses to restore when the parent images are gone, naming the file', async () => {
    const v = await startTestprog('memdirty', ['4']);
    started.push(v);
    await dump({ pid: v.pid, imagesDir: path.join(tmp, 'gone1'), preDump: true, trackMem: true });
    await dirty(v, 0);
    await dump({ pid: v.pid, imagesDir: path.join(tmp, 'gone2'), trackMem: true, parentImagesDir: '../gone1' });
    await waitPidGone(v.pid);
    fs.rmSync(path.join(tmp, 'gone1'), { recursive: true });
    await expect(restore({ imagesDir: path.join(tmp, 'gone2') })).rejects.toThrow(/parent/);
    expect(isAlive(v.pid)).toBe(false);
  });
});
