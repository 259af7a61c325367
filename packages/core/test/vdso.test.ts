/**
 * The vDSO: moved in place when the running one is the dumped one, proxied otherwise (forced
 * here, one kernel being all this machine has), threads stepped out of it at dump time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys, NT } from '@criu/sys';
import { readImageFile, writeImageFile, type Msg } from '@criu/images';
import { x86_64 } from '@criu/arch-x86_64';
import { dump, restore, RestoreError, readMaps, FrozenTask, Logger, silentLogger } from '../src';
import { stepOutOfVdso } from '../src/dump/vdso';
import { placeVdso } from '../src/restore/vdso';
import { findFreeRange } from '../src/restore/scratch';
import { readVdsoImage, buildVdsoProxy, readProxyMark, PROXY_MARK_SIZE } from '../src/vdso';
import { isAlive, readLog, type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

jest.setTimeout(120_000);
const { dir: tmp, started } = testWorkspace('vdso');

function ownVdso(): { start: bigint; bytes: Buffer } {
  const m = readMaps(process.pid).find((e) => e.name === '[vdso]')!;
  return { start: m.start, bytes: sys.readMemory(process.pid, m.start, Number(m.end - m.start)) };
}

async function start(): Promise<Victim> {
  const v = await startTestprog('vdsotime');
  started.push(v);
  await new Promise((r) => setTimeout(r, 200));
  return v;
}

const dumpLog = (dir: string) => fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
const restoreLog = (dir: string) => fs.readFileSync(path.join(dir, 'restore.log'), 'utf8');
const dumpedVdso = async (dir: string, pid: number) => {
  const mm = await readImageFile(path.join(dir, `mm-${pid}.img`));
  const v = (mm.entries[0].message.vmas as Msg[]).find((e) => Number(e.status) & (1 << 3))!;
  return { start: BigInt(v.start as bigint), end: BigInt(v.end as bigint) };
};

describe('vDSO images and proxies', () => {
  it('reads the symbols of the running vDSO', () => {
    const { bytes } = ownVdso();
    const img = readVdsoImage(bytes);
    for (const s of ['__vdso_clock_gettime', '__vdso_gettimeofday', '__vdso_time', '__vdso_getcpu']) {
      const sym = img.symbols.get(s);
      expect(sym).toBeDefined();
      expect(sym!.offset).toBeGreaterThan(0);
      expect(sym!.offset + sym!.size).toBeLessThanOrEqual(img.fileEnd);
    }
    expect(img.fileEnd).toBeLessThanOrEqual(bytes.length);
    expect(() => readVdsoImage(Buffer.alloc(4096))).toThrow(/no ELF magic/);
    expect(() => readVdsoImage(bytes.subarray(0, 100))).toThrow(/outside the 100 bytes/);
  });

  it('builds x86_64 stubs that jump to the running symbols, and a mark a dump recognizes', () => {
    const { bytes, start } = ownVdso();
    const oldBase = 0x7f0000000000n, runtime = start;
    const patches = buildVdsoProxy(x86_64.vdsoProxy, bytes, oldBase, bytes, runtime, runtime - 0x4000n);
    const img = readVdsoImage(bytes);
    const cg = img.symbols.get('__vdso_clock_gettime')!;
    const stub = patches.find((p) => p.offset === cg.offset)!;
    expect(stub.bytes.subarray(0, 2)).toEqual(Buffer.from([0x48, 0xb8]));
    expect(stub.bytes.readBigUInt64LE(2)).toBe(runtime + BigInt(cg.offset));
    expect(stub.bytes.subarray(10)).toEqual(Buffer.from([0xff, 0xe0]));
    const mark = patches.find((p) => p.what === 'mark')!;
    expect(mark.offset).toBe(bytes.length - PROXY_MARK_SIZE);
    expect(readProxyMark(mark.bytes)).toEqual({ runtimeVdso: runtime, vvarStart: runtime - 0x4000n });
    expect(readProxyMark(Buffer.alloc(PROXY_MARK_SIZE))).toBeUndefined();
  });

  it('refuses a running vDSO that lacks a symbol the dumped one has', () => {
    const { bytes } = ownVdso();
    const code = { ...x86_64.vdsoProxy, symbols: [...x86_64.vdsoProxy.symbols] };
    const renamed = Buffer.from(bytes);
    const at = renamed.indexOf('__vdso_getcpu\0', 0, 'latin1');
    renamed.write('__vdso_getcpX', at, 'latin1');
    expect(() => buildVdsoProxy(code, bytes, 0n, renamed, 0n, 0n)).toThrow(/running kernel's vDSO has no __vdso_getcpu/);
  });

  it('a symbol an older running vDSO lacks but that has a syscall fallback (getrandom) becomes that syscall', () => {
    const { bytes } = ownVdso();
    const older = Buffer.from(bytes);
    const at = older.indexOf('__vdso_getrandom\0', 0, 'latin1');
    expect(at).toBeGreaterThan(0);
    older.write('__vdso_getrandoX', at, 'latin1');
    const patches = buildVdsoProxy(x86_64.vdsoProxy, bytes, 0n, older, 0n, 0n, (n) => x86_64.sysno(n));
    const gr = readVdsoImage(bytes).symbols.get('__vdso_getrandom')!;
    const p = patches.find((x) => x.offset === gr.offset)!;
    expect(p.what).toMatch(/syscall 318 \(not in the running vDSO\)/);
    expect([...p.bytes]).toEqual([0xb8, 0x3e, 0x01, 0, 0, 0x0f, 0x05, 0xc3]); // mov $318,%eax; syscall; ret
  });
});

describe('vdsotime: four threads in clock_gettime & co', () => {
  it('same kernel: the running vDSO moves to the dumped address, threads caught inside are stepped out', async () => {
    const v = await start();
    const dir = path.join(tmp, 'inplace');
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
    await waitPidGone(v.pid);
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    const want = await dumpedVdso(dir, v.pid);
    expect(readMaps(v.pid).find((m) => m.name === '[vdso]')!.start).toBe(want.start);
    expect(restoreLog(dir)).toMatch(/the running vDSO is the dumped one: moved to/);
    // Same boot: the clocks are not behind, the task stays in our time namespace.
    expect(fs.readlinkSync(`/proc/${v.pid}/ns/time`)).toBe(fs.readlinkSync('/proc/self/ns/time'));
    console.log(dumpLog(dir).split('\n').filter((l) => /inside the vDSO/.test(l)).join('\n') || 'no thread was inside the vDSO');
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });

  it('forced proxy, two rounds: the dumped vDSO code stays at its address and forwards to the running one', async () => {
    const v = await start();
    for (let round = 1; round <= 2; round++) {
      const dir = path.join(tmp, `proxy-${round}`);
      await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4 });
      if (round === 2) expect(dumpLog(dir)).toMatch(/is a vDSO proxy from an earlier restore/);
      await waitPidGone(v.pid);
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, vdso: 'proxy' });
      const want = await dumpedVdso(dir, v.pid);
      const maps = readMaps(v.pid);
      const proxy = maps.find((m) => m.start === want.start)!;
      expect(proxy.name).toBe('');
      expect(proxy.perms).toBe('r-xp');
      const runtime = maps.find((m) => m.name === '[vdso]')!;
      expect(runtime.start).not.toBe(want.start);
      expect(readProxyMark(sys.readMemory(v.pid, proxy.end - BigInt(PROXY_MARK_SIZE), PROXY_MARK_SIZE))?.runtimeVdso).toBe(runtime.start);
      expect(restoreLog(dir)).toMatch(/vDSO proxy forwards [1-9] symbols/);
      const n = readLog(v).length;
      await new Promise((r) => setTimeout(r, 200));
      expect(isAlive(v.pid)).toBe(true);
      expect(readLog(v).length).toBe(n); // no FAIL line meanwhile
    }
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });

  it('refuses to proxy a thread dumped inside the vDSO, and leaves no task behind', async () => {
    const v = await start();
    const dir = path.join(tmp, 'inside');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    const vdso = await dumpedVdso(dir, v.pid);
    const file = path.join(dir, `core-${v.pid}.img`);
    const core = await readImageFile(file);
    fs.copyFileSync(file, `${file}.orig`);
    const ti = core.entries[0].message.thread_info as Msg;
    (ti.gpregs as Msg).ip = vdso.start + 0x10n;
    await writeImageFile(file, 'CORE', core.entries.map((e) => ({ message: e.message })));
    const err = await restore({ imagesDir: dir, vdso: 'proxy' }).catch((e) => e);
    expect(err).toBeInstanceOf(RestoreError);
    expect(err.message).toMatch(new RegExp(`thread ${v.pid} was dumped inside the vDSO`));
    expect(err.file).toBe(`core-${v.pid}.img`);
    expect(fs.existsSync(`/proc/${v.pid}`) && isAlive(v.pid)).toBe(false);
    // Nothing was left half-done: the undamaged images restore.
    fs.renameSync(`${file}.orig`, file);
    await restore({ imagesDir: dir, vdso: 'proxy' });
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });

  it('50 checkpoints with leave-running, each restored with a proxy and checked', async () => {
    const v = await start();
    const dirs: string[] = [];
    let stepped = 0;
    for (let i = 0; i < 50; i++) {
      const dir = path.join(tmp, `leave-${i}`);
      await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true, logFile: 'dump.log', logLevel: 4 });
      stepped += dumpLog(dir).split('\n').filter((l) => /inside the vDSO: stepped out/.test(l)).length;
      expect(dumpLog(dir)).not.toMatch(/inside the vDSO: still inside/);
      dirs.push(dir);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(isAlive(v.pid)).toBe(true);
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
    const passes: string[] = [];
    // vdsotime prints only READY and its verdict: each restored run writes its verdict at the
    // offset its stdout had at the dump, right after READY.
    const readyLen = readLog(v).indexOf('\n') + 1;
    for (const dir of dirs) {
      await waitPidGone(v.pid);
      await restore({ imagesDir: dir, vdso: 'proxy' });
      fs.truncateSync(v.log, readyLen);
      await new Promise((r) => setTimeout(r, 50));
      passes.push(await verdict(v, 15_000));
    }
    console.log(`50 checkpoints: ${stepped} threads stepped out of the vDSO; verdicts: ${new Set(passes.map((p) => p.split(' ')[0])).size === 1 ? passes[0].split(' ')[0] : passes.join(' | ')}`);
    expect(passes.filter((p) => p.startsWith('PASS vdsotime')).length).toBe(50);
    // Four threads that spend most of their time in the vDSO: 50 dumps catch some of them there.
    expect(stepped).toBeGreaterThan(0);
  }, 400_000);

  it('a thread caught inside the vDSO is moved out of it before its registers are taken, and runs on', async () => {
    const v = await start();
    const tids = fs.readdirSync(`/proc/${v.pid}/task`).map(Number);
    const vdso = readMaps(v.pid).find((m) => m.name === '[vdso]')!;
    const inside = (t: FrozenTask) => { const ip = t.arch.ip(t.savedRegs); return ip >= vdso.start && ip < vdso.end; };
    // Freeze the four hammering threads until one is caught inside (each try: a few ms of running).
    let frozen: FrozenTask[] = [];
    for (let tries = 0; tries < 500; tries++) {
      frozen = tids.map((tid) => FrozenTask.freeze(tid, x86_64));
      if (frozen.some(inside)) break;
      for (const t of frozen) t.release();
      frozen = [];
      await new Promise((r) => setTimeout(r, 3));
    }
    expect(frozen.length).toBe(tids.length);
    const lines: string[] = [];
    try {
      const caught = frozen.filter(inside).map((t) => t.pid);
      const results = stepOutOfVdso(frozen, readMaps(v.pid), new Logger(3, undefined, (l) => lines.push(l)));
      expect(results.map((r) => r.tid)).toEqual(caught);
      for (const r of results) {
        expect(r.left).toBe(true);
        expect(r.steps + r.runs).toBeGreaterThan(0);
      }
      expect(frozen.filter(inside)).toEqual([]);
      // Where each stopped is what the task reports now.
      for (const t of frozen) expect(t.arch.ip(Buffer.from(sys.ptrace.getRegset(t.pid, NT.PRSTATUS, t.arch.gpRegsSize)))).toBe(t.arch.ip(t.savedRegs));
      expect(lines.join('')).toMatch(new RegExp(`thread ${caught[0]} was inside the vDSO: stepped out \\(`));
    } finally {
      for (const t of frozen) t.release();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });
});

describe('moving the running vDSO in place', () => {
  it('a target overlapping where another piece is now: all step aside, then into place; moved back, the four threads run on', async () => {
    const v = await start();
    // Every thread stopped (some are inside the vDSO); syscalls injected through the main one.
    const tids = fs.readdirSync(`/proc/${v.pid}/task`).map(Number).sort((a, b) => (a === v.pid ? -1 : b === v.pid ? 1 : a - b));
    const frozen = tids.map((tid) => FrozenTask.freeze(tid, x86_64));
    const task = frozen[0];
    try {
      const maps = readMaps(v.pid);
      const pieces = maps.filter((m) => ['[vdso]', '[vvar]', '[vvar_vclock]'].includes(m.name)).sort((a, b) => (a.start < b.start ? -1 : 1));
      const vdso = pieces.find((m) => m.name === '[vdso]')!;
      const lo = pieces[0].start, hi = pieces[pieces.length - 1].end;
      expect(vdso.end).toBe(hi); // x86_64: the vvar pages come first
      const size = vdso.end - vdso.start, block = hi - lo;
      const at = (base: bigint) => [
        { start: base + (vdso.start - lo), end: base + block, status: 1 << 3 },
        { start: base, end: base + (vdso.start - lo), status: 1 << 12 },
      ];
      const ctx = { arch: x86_64, img: { pid: v.pid, pages: { runs: [], file: '' }, core: {}, threadCores: [] } as never, pageSize: 4096, mode: 'auto' as const, log: silentLogger };
      const where = () => readMaps(v.pid).filter((m) => ['[vdso]', '[vvar]', '[vvar_vclock]'].includes(m.name)).map((m) => [m.name, m.start]);
      // Libraries may sit right next to the vDSO: first to a free range with room on both sides...
      const roomy = findFreeRange(maps, Number(3n * block), 4096) + block;
      expect(placeVdso(task, maps, at(roomy), ctx)).toBeUndefined();
      // ... then shifted by the vDSO's size: each piece lands where a neighbour is now.
      expect(placeVdso(task, readMaps(v.pid), at(roomy + size), ctx)).toBeUndefined();
      expect(where()).toEqual(pieces.map((m) => [m.name, m.start - lo + roomy + size]));
      // And back (the threads' return addresses and glibc's pointers are there), the same way.
      expect(placeVdso(task, readMaps(v.pid), at(lo), ctx)).toBeUndefined();
      expect(where()).toEqual(pieces.map((m) => [m.name, m.start]));
    } finally {
      for (const t of frozen) t.release();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });
});

describe('clocks across a reboot', () => {
  it('clocks dumped ahead of this kernel (as after a reboot) go on from there, in a time namespace', async () => {
    const v = await start();
    const dir = path.join(tmp, 'reboot');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    // Pretend the dump came from a machine up 1000 s longer than this one.
    const file = path.join(dir, 'timens-0.img');
    const t = await readImageFile(file);
    const m = t.entries[0].message as { monotonic: Msg; boottime: Msg };
    m.monotonic.tv_sec = BigInt(m.monotonic.tv_sec as bigint) + 1000n;
    m.boottime.tv_sec = BigInt(m.boottime.tv_sec as bigint) + 1000n;
    await writeImageFile(file, 'TIMENS', [{ message: m }]);
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, vdso: 'proxy' });
    expect(restoreLog(dir)).toMatch(/the tree gets a time namespace \(monotonic \+99\d\.\d+ s/);
    expect(fs.readlinkSync(`/proc/${v.pid}/ns/time`)).not.toBe(fs.readlinkSync('/proc/self/ns/time'));
    const offsets = fs.readFileSync(`/proc/${v.pid}/timens_offsets`, 'utf8');
    const sec = (name: string) => Number(new RegExp(`${name}\\s+(-?\\d+)`).exec(offsets)![1]);
    expect(sec('monotonic')).toBeGreaterThanOrEqual(990);
    expect(sec('monotonic')).toBeLessThanOrEqual(1000);
    // A dump of the restored task records the clocks as it sees them: still 1000 s ahead of ours.
    const again = path.join(tmp, 'reboot-again');
    await dump({ pid: v.pid, imagesDir: again, leaveRunning: true });
    const seen = (await readImageFile(path.join(again, 'timens-0.img'))).entries[0].message as { monotonic: Msg };
    const ours = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    expect(Number(seen.monotonic.tv_sec as bigint) - ours).toBeGreaterThan(900);
    expect(await verdict(v, 15_000)).toMatch(/^PASS vdsotime/);
  });
});
