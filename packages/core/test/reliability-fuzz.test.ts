/**
 * Fuzzing restore planning: 100,000 damaged image sets, made from real image sets that criu-ts
 * dumped of test programs (single tasks, and trees: a parent with children joined by a pipe, a
 * threaded task, a zombie and a stopped child, a child sharing its parent's address space), go
 * through decode and planRestore() in memory: the checks restore() runs on the images before it
 * creates anything. Each must end in a typed error (RestoreError, never ImageCheckBug, which
 * marks an unexpected failure inside the checks) or a plan, quickly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, encodeImageEntries, ImageFormatError, type Msg } from '@criu/images';
import { sys } from '@criu/sys';
import { dump, hostArch } from '../src';
import { RestoreError } from '../src/restore/errors';
import { memorySource, type DecodeCache } from '../src/restore/images-in';
import { planRestore, ImageCheckBug, type TreePlanOptions } from '../src/restore/plan';
import { killVictim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { startTestprog } from './helpers/testprogs';
import { PROGRAMS } from './helpers/programs';

const SETS = Number(process.env.CRIU_TS_FUZZ_SETS ?? 100_000);
/**
 * Single tasks (flock: filelocks.img), then trees: tree (3 tasks, a pipe holding data), threads4,
 * zombie (a zombie and a stopped child), sharevm (CLONE_VM), ptypair (a pty pair: tty-info.img),
 * pidns (the init of its own pid, uts and ipc namespaces, with children and a zombie).
 */
const BASES = ['counter', 'fileio', 'filemap', 'flock', 'tree', 'threads4', 'zombie', 'sharevm', 'ptypair', 'pidns'];
const TREES = new Set(['tree', 'threads4', 'zombie', 'sharevm', 'ptypair', 'pidns']);
/** Errors only the checks of a tree give (readTreeImagesFrom, checkSharedKobjs, zombies, thread ids, pipes data). */
const TREE_CHECK = /parent N is|appears twice in the tree|shares its|not the wait status|thread id|first thread|bytes of data|own, yet has|pty N|session N|tty_info|namespace|nodename|sem_ctls|not its init/;
const { dir: tmp, started } = testWorkspace('fuzz');

const arch = hostArch();
const opts: TreePlanOptions = { march: arch.image.march, threadInfoField: arch.image.threadInfoField, pageSize: sys.pageSize() };

/** A small deterministic PRNG (xorshift32) so a failure can be replayed from its seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  return { next, below: (n: number) => next() % n, pick: <T>(a: readonly T[]): T => a[next() % a.length] };
}

type ImageSet = Map<string, Buffer>;

async function dumpProgram(name: string): Promise<ImageSet> {
  const prog = PROGRAMS.find((p) => p.name === name)!;
  const work = path.join(tmp, `${name}-work`);
  fs.mkdirSync(work, { recursive: true });
  prog.setup?.(work);
  const v = await startTestprog(name, prog.args?.(work) ?? [], prog.readyPid);
  started.push(v);
  const dir = path.join(tmp, name);
  await dump({ pid: v.pid, imagesDir: dir, leaveRunning: true });
  killVictim(v);
  const set: ImageSet = new Map();
  for (const f of fs.readdirSync(dir)) set.set(f, fs.readFileSync(path.join(dir, f)));
  return set;
}

/** Leaf paths of a decoded message: [container, key] pairs a mutation can change. */
function leaves(m: unknown, out: Array<[Record<string, unknown> | unknown[], string | number]> = []) {
  if (Array.isArray(m)) {
    m.forEach((v, i) => (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) ? leaves(v, out) : out.push([m, i])));
  } else if (m && typeof m === 'object' && !(m instanceof Uint8Array)) {
    for (const [k, v] of Object.entries(m)) {
      if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) leaves(v, out);
      out.push([m as Record<string, unknown>, k]);
    }
  }
  return out;
}

const INTERESTING = [0, 1, -1, 7, 4095, 4096, 0x7fffffff, -0x80000000, 0xffffffff];
const INTERESTING_BIG = [0n, 1n, -1n, 4095n, 4096n, (1n << 47n), (1n << 56n), (1n << 63n) - 1n, -(1n << 63n), (1n << 64n) - 1n];

function mutateValue(r: ReturnType<typeof rng>, v: unknown): unknown {
  switch (r.below(4)) {
    case 0: return undefined; // drop it
    case 1: if (typeof v === 'bigint') return r.pick(INTERESTING_BIG); if (typeof v === 'number') return r.pick(INTERESTING); break;
    case 2: if (typeof v === 'bigint') return v + BigInt(r.pick([1, -1, 4096, -4096, 1 << 20])); if (typeof v === 'number') return v + r.pick([1, -1, 2, 4096]); break;
  }
  if (typeof v === 'string') return r.pick(['', '/', '/nonexistent', 'x'.repeat(5000), 'a\0b']);
  if (typeof v === 'boolean') return !v;
  if (v instanceof Uint8Array) return v.subarray(0, r.below(v.length + 1));
  if (typeof v === 'bigint') return BigInt(r.next()) << BigInt(r.below(40));
  if (typeof v === 'number') return r.next() | 0;
  return undefined;
}

/** Decode, change one field or record, encode: damage that passes framing and reaches the checks. */
function semantic(r: ReturnType<typeof rng>, set: ImageSet, name: string, decoded: Map<string, { magic: string; entries: Msg[] }>): boolean {
  const d = decoded.get(name);
  if (!d || !d.entries.length) return false;
  const entries = structuredClone(d.entries);
  const what = r.below(10);
  if (what === 0) {
    entries.push(entries[r.below(entries.length)]); // a duplicate record
  } else if (what === 1) {
    entries.splice(r.below(entries.length), 1); // a record lost
  } else {
    const all = leaves(entries);
    if (!all.length) return false;
    for (let n = 1 + r.below(3); n > 0; n--) {
      const [obj, key] = r.pick(all);
      (obj as Record<string | number, unknown>)[key] = mutateValue(r, (obj as Record<string | number, unknown>)[key]);
    }
  }
  try {
    set.set(name, encodeImageEntries(d.magic, entries.map((message) => ({ message })), { file: name }));
    return true;
  } catch (e) {
    if (!(e instanceof ImageFormatError)) throw e; // the encoder refused the value: try another mutation
    return false;
  }
}

function mutate(r: ReturnType<typeof rng>, base: ImageSet, decoded: Map<string, { magic: string; entries: Msg[] }>): { set: ImageSet; did: string[] } {
  const set = new Map(base);
  const names = [...set.keys()].filter((n) => n.endsWith('.img'));
  const small = names.filter((n) => !n.startsWith('pages-'));
  // In a tree, a quarter of the damage goes to what ties its tasks together.
  const ties = names.filter((n) => n === 'pstree.img' || n === 'pipes-data.img' || n.startsWith('ids-'));
  const tree = ties.length > 2;
  const did: string[] = [];
  for (let n = 1 + r.below(3); n > 0; n--) {
    const name = tree && r.below(4) === 0 ? r.pick(ties) : r.pick(small);
    const cur = set.get(name);
    switch (r.below(8)) {
      case 0: case 1: { // flip bytes
        if (!cur || !cur.length) break;
        const b = Buffer.from(cur);
        for (let k = 1 + r.below(8); k > 0; k--) b[r.below(b.length)] ^= 1 << r.below(8);
        set.set(name, b);
        did.push(`flip ${name}`);
        break;
      }
      case 2: { // truncate (pages images too)
        const victim = r.below(4) === 0 ? r.pick(names) : name;
        const b = set.get(victim);
        if (!b) break;
        set.set(victim, b.subarray(0, r.below(b.length + 1)));
        did.push(`truncate ${victim}`);
        break;
      }
      case 3: { // swap two files
        const other = r.pick(small);
        const a = set.get(name), b = set.get(other);
        if (a && b) { set.set(name, b); set.set(other, a); did.push(`swap ${name} ${other}`); }
        break;
      }
      case 4: // remove
        set.delete(name);
        did.push(`remove ${name}`);
        break;
      case 5: { // garbage appended
        if (!cur) break;
        set.set(name, Buffer.concat([cur, Buffer.from(Array.from({ length: 1 + r.below(64) }, () => r.below(256)))]));
        did.push(`append ${name}`);
        break;
      }
      default:
        if (semantic(r, set, name, decoded)) did.push(`field ${name}`);
    }
  }
  return { set, did };
}

describe('fuzzing restore planning', () => {
  const bases: Array<{ name: string; set: ImageSet; decoded: Map<string, { magic: string; entries: Msg[] }> }> = [];

  beforeAll(async () => {
    for (const name of BASES) {
      const set = await dumpProgram(name);
      const decoded = new Map<string, { magic: string; entries: Msg[] }>();
      for (const [f, b] of set) {
        if (!f.endsWith('.img') || f.startsWith('pages-')) continue;
        const d = decodeImageEntries(b, { file: f });
        decoded.set(f, { magic: d.magic, entries: d.entries.map((e) => e.message) });
      }
      bases.push({ name, set, decoded });
    }
  }, 60_000);

  it('plans the undamaged image sets (every task; file mappings, fds, threads, pipes and zombies resolved)', () => {
    for (const b of bases) {
      const planned = planRestore(memorySource(b.set), opts);
      const { tree, tasks } = planned;
      const plan = tasks[0];
      expect(plan.vmas.length).toBeGreaterThan(5);
      expect(plan.pagesToFill).toBeGreaterThan(0);
      expect(plan.exe).toMatch(new RegExp(`/${b.name}$`));
      if (b.name === 'fileio') expect(plan.fds.some((f) => f.name?.endsWith('fileio.in') && f.pos > 0n)).toBe(true);
      if (b.name === 'filemap') expect(plan.vmas.some((v) => v.fileName?.endsWith('filemap.bin'))).toBe(true);
      if (b.name === 'tree') {
        expect(tasks.length).toBe(3);
        expect(tasks.slice(1).every((t) => Number(t.images.pstree.ppid) === plan.images.pid)).toBe(true);
        expect(tasks.slice(1).every((t) => t.fds.some((f) => f.type === 2 /* pipe */))).toBe(true);
        expect([...tree.pipesData.values()].some((p) => p.data.length > 0)).toBe(true);
      }
      if (b.name === 'threads4') expect(plan.images.threadCores.length).toBe(3);
      if (b.name === 'zombie') {
        expect(tasks.length).toBe(2);
        expect(tree.zombies.map((z) => z.exitStatus)).toEqual([7 << 8]);
      }
      if (b.name === 'flock') expect(planned.locks.length).toBeGreaterThan(0);
      if (b.name === 'ptypair') expect(planned.ptys.pairs.length).toBe(1);
      if (b.name === 'pidns') {
        expect(plan.images.pid).toBe(1);
        expect(planned.namespaces.newPidNs).toBe(true);
        expect(planned.namespaces.uts?.nodename).toBeTruthy();
      }
      if (b.name === 'sharevm') {
        const child = tasks.find((t) => t.images.mmOf !== undefined)!;
        expect(child.images.mmOf).toBe(plan.images.pid);
        expect(child.vmas).toEqual([]);
      }
    }
  });

  it('names what is wrong in hand-made damage', () => {
    const b = bases[0];
    const pid = [...b.set.keys()].find((f) => f.startsWith('core-'))!.slice(5, -4);
    const err = (set: ImageSet) => { try { planRestore(memorySource(set), opts); } catch (e) { return e as RestoreError; } throw new Error('no error'); };
    const withMm = (change: (vmas: Msg[]) => void) => {
      const set = new Map(b.set);
      const mm = structuredClone(b.decoded.get(`mm-${pid}.img`)!.entries);
      change(mm[0].vmas as Msg[]);
      set.set(`mm-${pid}.img`, encodeImageEntries('MM', mm.map((message) => ({ message }))));
      return set;
    };
    const overlap = err(withMm((v) => { v[2].start = BigInt(v[1].start as bigint); }));
    expect(overlap.message).toMatch(/overlaps/);
    expect(overlap.file).toBe(`mm-${pid}.img`);
    expect(overlap.field).toBe('vmas[2].start');
    const noPages = err(withMm((v) => { const i = v.findIndex((m) => (Number(m.status) & (1 << 9)) && !(Number(m.status) & 2)); v.splice(i, 1); }));
    expect(noPages.message).toMatch(/not inside the mappings/);
    expect(noPages.file).toBe(`pagemap-${pid}.img`);
    const set = new Map(b.set);
    set.delete('files.img');
    expect(err(set).message).toMatch(/image missing \(file files\.img\)/);
    const trunc = new Map(b.set);
    trunc.set('pages-1.img', trunc.get('pages-1.img')!.subarray(0, 4096));
    expect(err(trunc).message).toMatch(/pages image has 4096 bytes.*file pages-1\.img.*hint: the image set is truncated/);

    // Trees: the order of pstree.img, the pipes' data, a thread's core.
    const tree = bases.find((x) => x.name === 'tree')!;
    const withTree = (name: string, change: (entries: Msg[]) => void) => {
      const s2 = new Map(tree.set);
      const d = tree.decoded.get(name)!;
      const entries = structuredClone(d.entries);
      change(entries);
      s2.set(name, encodeImageEntries(d.magic, entries.map((message) => ({ message }))));
      return s2;
    };
    const order = err(withTree('pstree.img', (e) => e.push(e.shift()!)));
    expect(order.message).toMatch(/its parent \d+ is not listed before it/);
    expect([order.file, order.record, order.field]).toEqual(['pstree.img', 0, 'ppid']);
    const pipes = new Map(tree.set);
    pipes.set('pipes-data.img', tree.set.get('pipes-data.img')!.subarray(0, tree.set.get('pipes-data.img')!.length - 1));
    const short = err(pipes);
    expect(short.message).toMatch(/extra of \d+ bytes goes beyond the end of the file/);
    expect([short.record, short.field]).toEqual([0, 'extra']);
    expect(short.file).toBe('pipes-data.img');
    const zombie = bases.find((x) => x.name === 'zombie')!;
    const zpid = planRestore(memorySource(zombie.set), opts).tree.zombies[0].pid;
    const badExit = new Map(zombie.set);
    const zcore = structuredClone(zombie.decoded.get(`core-${zpid}.img`)!.entries);
    (zcore[0].tc as Msg).exit_code = 0x17f;
    badExit.set(`core-${zpid}.img`, encodeImageEntries('CORE', zcore.map((message) => ({ message }))));
    const exit = err(badExit);
    expect(exit.message).toMatch(/is not the wait status of a dead task/);
    expect([exit.file, exit.field]).toEqual([`core-${zpid}.img`, 'tc.exit_code']);
    // A lock of a task the tree does not have.
    const flock = bases.find((x) => x.name === 'flock')!;
    const badLock = new Map(flock.set);
    const locks = structuredClone(flock.decoded.get('filelocks.img')!.entries);
    locks[locks.length - 1].pid = 4194000;
    badLock.set('filelocks.img', encodeImageEntries('FILE_LOCKS', locks.map((message) => ({ message }))));
    const lock = err(badLock);
    expect(lock.message).toMatch(/lock of task 4194000, which is not in pstree\.img/);
    expect([lock.file, lock.record, lock.field]).toEqual(['filelocks.img', locks.length - 1, 'pid']);
    const threads = bases.find((x) => x.name === 'threads4')!;
    const tid = (threads.decoded.get('pstree.img')!.entries[0].threads as number[])[2];
    const noThread = new Map(threads.set);
    noThread.delete(`core-${tid}.img`);
    const missing = err(noThread);
    expect(missing.message).toMatch(/image missing/);
    expect(missing.file).toBe(`core-${tid}.img`);
  });

  it(`${SETS} damaged image sets: a typed error or a plan each time, never a crash or a hang`, () => {
    const r = rng(0x5eed1234);
    // Undamaged files are decoded once; every damaged one is decoded anew.
    const cache: DecodeCache = new WeakMap();
    const outcomes = new Map<string, number>();
    const treeOutcomes = new Map<string, number>();
    const perBase = new Map<string, number>();
    let located = 0;
    let worstMs = 0;
    let planNs = 0n;
    let worst = '';
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < SETS; i++) {
      const base = bases[i % bases.length];
      const { set, did } = mutate(r, base.set, base.decoded);
      const t = process.hrtime.bigint();
      let outcome: string;
      try {
        planRestore(memorySource(set, cache), opts);
        outcome = 'plan';
      } catch (e) {
        if (e instanceof ImageCheckBug || !(e instanceof RestoreError)) {
          throw new Error(`set ${i} (${base.name}: ${did.join(', ')}): untyped failure ${(e as Error)?.stack ?? e}`);
        }
        if (!e.opts.file && !/no images directory/.test(e.message)) throw new Error(`set ${i} (${did.join(', ')}): error names no file: ${e.message}`);
        if (e.record !== undefined || e.field !== undefined) located++;
        outcome = `${e.step}: ${e.message.replace(/0x[0-9a-f]+|\d+/g, 'N').slice(0, 90)}`;
      }
      const dt = process.hrtime.bigint() - t;
      planNs += dt;
      const ms = Number(dt) / 1e6;
      if (ms > worstMs) { worstMs = ms; worst = `${base.name}: ${did.join(', ')}`; }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (TREES.has(base.name)) treeOutcomes.set(outcome, (treeOutcomes.get(outcome) ?? 0) + 1);
      perBase.set(base.name, (perBase.get(base.name) ?? 0) + (outcome === 'plan' ? 1 : 0));
    }
    const elapsed = Date.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const top = [...outcomes].sort((a, b) => b[1] - a[1]);
    console.log(`${SETS} sets in ${elapsed} ms, ${Math.round(cpuMs)} ms of CPU (decode + planRestore: ${Number(planNs / 1000000n)} ms, the rest making the damage); slowest ${worstMs.toFixed(1)} ms (${worst}); ${top.length} distinct outcomes:\n` + top.slice(0, 200).filter(([k], i) => i < 12 || !/record length|image missing|field number|unknown magic/.test(k)).map(([k, n]) => `${String(n).padStart(7)}  ${k}`).join('\n'));
    // Times are reported above, not asserted (speed belongs to `pnpm bench`); a hang trips the
    // test timeout.
    // The damage reaches the deep checks, not only the decoder.
    const deep = top.filter(([k]) => /overlaps|not inside the mappings|not page aligned|no file with id|appears twice|required value missing/.test(k)).reduce((n, [, c]) => n + c, 0);
    expect(deep).toBeGreaterThan(SETS / 100);
    // The tree sets reach the checks of the tree itself (order, sharing, zombies, threads, pipes).
    const treeChecks = [...treeOutcomes].filter(([k]) => TREE_CHECK.test(k));
    console.log(`${located} of ${SETS - (outcomes.get('plan') ?? 0)} errors name a record or field besides the file`);
    console.log(`plans per base: ${[...perBase].map(([k, n]) => `${k} ${n}`).join(', ')}; tree-level outcomes (${treeChecks.reduce((n, [, c]) => n + c, 0)}):\n` + treeChecks.sort((a, b) => b[1] - a[1]).map(([k, n]) => `${String(n).padStart(7)}  ${k}`).join('\n'));
    expect(treeChecks.reduce((n, [, c]) => n + c, 0)).toBeGreaterThan(SETS / 1000);
  }, 300_000);
});
