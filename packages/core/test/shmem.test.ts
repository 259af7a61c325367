/**
 * Shared anonymous memory across a process tree (tools/testprogs/shmanon): the images hold one
 * object per kernel object, saved once; restore makes one object that every task maps; images
 * in the older VMA_ANON_SHARED layout restore too; SysV shared memory is refused at dump time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { dump, restore, DumpError, RestoreError } from '../src';
import { buildFixture, isAlive, readLog, startDetached, waitFor, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const ps = sys.pageSize();
const VMA_REGULAR = 1, VMA_FILE_SHARED = 1 << 7, VMA_ANON_SHARED = 1 << 8, VMA_MEMFD = 1 << 14;
const MAP_SHARED = 1, MAP_ANONYMOUS = 0x20;
const FD_TYPE_MEMFD = 18;

const { dir: tmp, started } = testWorkspace('shmem');

async function startShmanon(): Promise<{ v: Victim; child: number }> {
  const v = await startTestprog('shmanon');
  started.push(v);
  const child = Number(/^child (\d+)$/m.exec(readLog(v))![1]);
  started.push({ pid: child, log: v.log });
  return { v, child };
}

async function dumpTree(v: Victim, child: number, dir: string): Promise<void> {
  await dump({ pid: v.pid, imagesDir: dir });
  await waitPidGone(v.pid);
  await waitPidGone(child);
}

const records = async (file: string): Promise<Msg[]> => (await readImageFile(file)).entries.map((e) => e.message);
const vmasOf = async (dir: string, pid: number): Promise<Msg[]> => (await records(path.join(dir, `mm-${pid}.img`)))[0].vmas as Msg[];

describe('shared anonymous memory in a tree', () => {
  it('one memfd object per kernel object, saved once; the child maps it from its offset; writes reach the other task after restore', async () => {
    const { v, child } = await startShmanon();
    const dir = path.join(tmp, 'tree');
    await dumpTree(v, child, dir);

    const inodes = await records(path.join(dir, 'memfd.img'));
    expect(inodes.map((i) => [i.name, i.size]).sort()).toEqual([['/dev/zero', 1n << 20n], ['/dev/zero', BigInt(3 * ps)]].sort());
    const pagemaps = fs.readdirSync(dir).filter((f) => f.startsWith('pagemap-shmem-'));
    expect(pagemaps.sort()).toEqual(inodes.map((i) => `pagemap-shmem-${i.shmid}.img`).sort());
    const files = await records(path.join(dir, 'files.img'));
    const memfdFiles = files.filter((f) => Number(f.type) === FD_TYPE_MEMFD);
    expect(memfdFiles).toHaveLength(2);

    const shared = (vs: Msg[]) => vs.filter((x) => Number(x.status) & VMA_MEMFD);
    const mine = shared(await vmasOf(dir, v.pid));
    const theirs = shared(await vmasOf(dir, child));
    expect(mine).toHaveLength(2);
    expect(theirs).toHaveLength(1);
    for (const x of [...mine, ...theirs]) {
      expect(Number(x.status)).toBe(VMA_REGULAR | VMA_FILE_SHARED | VMA_MEMFD);
      expect(Number(x.flags)).toBe(MAP_SHARED);
    }
    const big = mine.find((x) => BigInt(x.end as bigint) - BigInt(x.start as bigint) === 1n << 20n)!;
    // The child unmapped the first 128 KiB: same object, same file, its own offset.
    expect(theirs[0].shmid).toBe(big.shmid);
    expect(theirs[0].pgoff).toBe(128n << 10n);
    expect(theirs[0].end).toBe(big.end);

    const res = await restore({ imagesDir: dir });
    expect(res.pid).toBe(v.pid);
    expect(isAlive(child)).toBe(true);
    expect(await verdict(v)).toMatch(/^PASS shmanon/);
  });

  it('the oracle CRIU restores our images of it, and the sharing holds', async () => {
    requireOracle();
    const { v, child } = await startShmanon();
    const dir = path.join(tmp, 'for-oracle');
    await dumpTree(v, child, dir);
    oracleRestore(dir);
    await waitFor('the restored child', () => isAlive(child));
    expect(await verdict(v)).toMatch(/^PASS shmanon/);
  });

  it('restores images that record it as VMA_ANON_SHARED with a shmid (no memfd records)', async () => {
    const { v, child } = await startShmanon();
    const dir = path.join(tmp, 'anon-shared');
    await dumpTree(v, child, dir);
    // Rewrite to the layout where shmid names the object and its pagemap-shmem-<shmid>.img.
    const files = await records(path.join(dir, 'files.img'));
    const inodes = await records(path.join(dir, 'memfd.img'));
    const objectOf = (id: number): number => {
      const f = files.find((e) => Number(e.id) === id)!;
      return Number(inodes.find((i) => Number(i.inode_id) === Number((f.memfd as Msg).inode_id))!.shmid);
    };
    for (const pid of [v.pid, child]) {
      const file = path.join(dir, `mm-${pid}.img`);
      const mm = (await records(file))[0];
      mm.vmas = (mm.vmas as Msg[]).map((x) => {
        if (!(Number(x.status) & VMA_MEMFD)) return x;
        const { fdflags: _drop, ...rest } = x;
        void _drop;
        return { ...rest, shmid: BigInt(objectOf(Number(x.shmid))), status: VMA_REGULAR | VMA_ANON_SHARED, flags: MAP_SHARED | MAP_ANONYMOUS };
      });
      await writeImageFile(file, 'MM', [{ message: mm }]);
    }
    fs.rmSync(path.join(dir, 'memfd.img'));

    await restore({ imagesDir: dir });
    expect(isAlive(child)).toBe(true);
    const maps = fs.readFileSync(`/proc/${child}/maps`, 'latin1');
    expect(maps).toMatch(/ rw-s 00020000 .*\/memfd:\/dev\/zero/);
    expect(await verdict(v)).toMatch(/^PASS shmanon/);
  });

  it('a memfd vma whose shmid is not a memfd is refused before anything is created, naming the mm image and field', async () => {
    const { v, child } = await startShmanon();
    const dir = path.join(tmp, 'bad-shmid');
    await dumpTree(v, child, dir);
    const file = path.join(dir, `mm-${child}.img`);
    const mm = (await records(file))[0];
    const exeId = mm.exe_file_id;
    mm.vmas = (mm.vmas as Msg[]).map((x) => (Number(x.status) & VMA_MEMFD ? { ...x, shmid: exeId } : x));
    await writeImageFile(file, 'MM', [{ message: mm }]);
    let err: unknown;
    try {
      await restore({ imagesDir: dir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RestoreError);
    expect((err as RestoreError).message).toMatch(/not a memfd/);
    expect((err as RestoreError).file).toBe(`mm-${child}.img`);
    expect((err as RestoreError).field).toMatch(/^vmas\[\d+\]\.shmid$/);
    await waitPidGone(v.pid);
    expect(isAlive(child)).toBe(false);
  });
});

describe('a memfd both open and mapped', () => {
  it('comes back as one inode behind the descriptor and both mappings, by criu-ts and by the oracle', async () => {
    for (const by of ['criu-ts', 'oracle']) {
      const v = startDetached(buildFixture('memfd-map'));
      started.push(v);
      await waitFor('memfd-map READY', () => /READY \d+/.test(readLog(v)), 10_000);
      const dir = path.join(tmp, `memfd-map-${by}`);
      await dump({ pid: v.pid, imagesDir: dir });
      await waitPidGone(v.pid);
      expect((await records(path.join(dir, 'memfd.img'))).map((i) => i.name)).toEqual(['mapped']);
      if (by === 'oracle') oracleRestore(dir);
      else await restore({ imagesDir: dir });
      const maps = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1').split('\n').filter((l) => l.includes('/memfd:mapped'));
      expect(maps.map((l) => l.split(/\s+/)[1]).sort()).toEqual(['r--s', 'rw-s']);
      const inodes = new Set(maps.map((l) => l.split(/\s+/)[4]));
      inodes.add(String(fs.statSync(`/proc/${v.pid}/fd/3`).ino));
      expect(inodes.size).toBe(1);
      process.kill(v.pid, 'SIGTERM');
      await waitFor('verdict', () => /^(PASS|FAIL)$/m.exec(readLog(v)) ?? undefined, 10_000);
      expect(readLog(v)).toMatch(/^PASS$/m);
    }
  });
});

describe('SysV shared memory', () => {
  it('is refused at dump time, naming the task and the mapping; the task runs on untouched', async () => {
    const v = startDetached(buildFixture('sysv-victim'));
    started.push(v);
    const m = await waitFor('sysv-victim READY', () => /READY shm=0x([0-9a-f]+)/.exec(readLog(v)) ?? undefined, 10_000);
    let err: unknown;
    try {
      await dump({ pid: v.pid, imagesDir: path.join(tmp, 'sysv') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/SysV shared memory/);
    expect(msg).toContain(String(v.pid));
    expect(msg).toContain(m[1]);
    expect(isAlive(v.pid)).toBe(true);
    const before = readLog(v).length;
    await waitFor('counter to advance', () => readLog(v).length > before + 10);
    process.kill(v.pid, 'SIGTERM');
    await waitFor('verdict', () => /PASS|FAIL/.exec(readLog(v)) ?? undefined, 10_000);
    expect(readLog(v)).toMatch(/PASS counter=/);
  });
});
