/**
 * File kinds beyond regular files and pipes (eventfd, timerfd, signalfd, epoll, ...): each test
 * program of tools/testprogs checks its own descriptors after a round trip through criu-ts dump
 * + restore, oracle dump + criu-ts restore, and criu-ts dump + oracle restore; and criu-ts
 * writes the records the oracle writes for the same process.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readImageFile, type Msg } from '@criu/images';
import { dump, restore, Logger } from '../src';
import { killVictim, readLog, type Victim } from './helpers/victims';
import { ORACLE_CRIU, oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-filekinds-'));
const started: Victim[] = [];
afterAll(() => {
  started.forEach(killVictim);
  if (!process.env.FILEKINDS_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
});
const logger = new Logger(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function start(name: string, args: string[]): Promise<Victim> {
  const v = await startTestprog(name, args);
  started.push(v);
  await sleep(200);
  return v;
}

function oracleDump(pid: number, dir: string, leaveRunning = false): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = oracle(['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4', ...(leaveRunning ? ['--leave-running'] : [])], path.join(dir, 'dump.log'));
  if (r.status !== 0) throw new Error(`oracle dump failed: ${r.log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
}

type Engine = 'criu-ts' | 'oracle';

/** Start, dump with `by[0]`, wait for the PID to go, restore with `by[1]`, verdict. */
async function roundTrip(name: string, args: string[], by: [Engine, Engine], extraCheck?: (dir: string) => Promise<void>): Promise<string> {
  const v = await start(name, args);
  const dir = path.join(tmp, `${name}-${by.join('-')}-${Date.now()}`);
  if (by[0] === 'oracle') oracleDump(v.pid, dir);
  else await dump({ pid: v.pid, imagesDir: dir, logger });
  await waitPidGone(v.pid);
  await extraCheck?.(dir);
  if (by[1] === 'oracle') oracleRestore(dir);
  else await restore({ imagesDir: dir, logger });
  // Let the restored task get back into its wait loop before the verdict.
  await sleep(300);
  const line = await verdict(v, 15_000).catch((e) => `${(e as Error).message} (images: ${dir})`);
  return line.startsWith('PASS') ? line : `${line}\n${readLog(v)}`;
}

async function records(file: string): Promise<Msg[]> {
  return (await readImageFile(file)).entries.map((e) => e.message);
}

/** The non-regular file_entry records by fd (fdinfo of the only task), ids left out. */
async function kindsByFd(dir: string): Promise<Map<number, Msg>> {
  const files = await records(path.join(dir, 'files.img'));
  const fdinfo = await records(path.join(dir, fs.readdirSync(dir).find((f) => /^fdinfo-\d+\.img$/.test(f))!));
  const out = new Map<number, Msg>();
  for (const e of fdinfo) {
    const f = files.find((x) => x.id === e.id)!;
    if (f.type === 1) continue;
    const [field] = Object.keys(f).filter((k) => k !== 'type' && k !== 'id');
    const { id: _id, ...rest } = f[field] as Msg;
    out.set(e.fd as number, { type: f.type, cloexec: e.flags, [field]: rest });
  }
  return out;
}

/** Both dumps of one running process (oracle first, --leave-running; then criu-ts, leaveRunning). */
async function bothDumps(name: string, args: string[]): Promise<{ ours: Map<number, Msg>; theirs: Map<number, Msg>; v: Victim; oursDir: string; theirsDir: string }> {
  const v = await start(name, args);
  const theirsDir = path.join(tmp, `${name}-oracle-lr-${Date.now()}`);
  oracleDump(v.pid, theirsDir, true);
  const oursDir = path.join(tmp, `${name}-ours-lr-${Date.now()}`);
  await dump({ pid: v.pid, imagesDir: oursDir, logger, leaveRunning: true });
  return { ours: await kindsByFd(oursDir), theirs: await kindsByFd(theirsDir), v, oursDir, theirsDir };
}

beforeAll(() => requireOracle());

interface Kind {
  name: string;
  /** Arguments for every run (a FIFO's path). */
  args?: () => string[];
  /** Arguments for runs that criu-ts restores (it keeps what CRIU 4.1 loses). */
  strict?: string[];
  /** criu-ts dump + oracle restore: strict too unless the oracle's restore loses it. */
  oracleRestoreStrict?: boolean;
}

const KINDS: Kind[] = [
  { name: 'eventfd', strict: ['sem'] },
  { name: 'timerfd', strict: ['expired'], oracleRestoreStrict: true },
  { name: 'signalfd' },
  { name: 'epoll' },
  { name: 'memfd' },
  { name: 'unixpair' },
  { name: 'fifo', args: () => [path.join(tmp, `fifo-${Date.now()}-${Math.random().toString(36).slice(2)}`)] },
];

describe.each(KINDS)('$name', (k) => {
  const strict = [...(k.args?.() ?? []), ...(k.strict ?? [])];
  it(`criu-ts dump + criu-ts restore${k.strict ? ` (${k.strict.join(' ')})` : ''}`, async () => {
    expect(await roundTrip(k.name, strict, ['criu-ts', 'criu-ts'])).toMatch(new RegExp(`^PASS ${k.name}`));
  }, 60_000);
  it('oracle dump + criu-ts restore', async () => {
    // The oracle's images lack what only criu-ts records (the semaphore mode).
    const args = k.name === 'eventfd' ? [] : strict;
    if (k.args && !k.strict) args.splice(0, args.length, ...k.args());
    expect(await roundTrip(k.name, args, ['oracle', 'criu-ts'])).toMatch(new RegExp(`^PASS ${k.name}`));
  }, 60_000);
  it('criu-ts dump + oracle restore', async () => {
    expect(await roundTrip(k.name, k.oracleRestoreStrict ? strict : (k.args?.() ?? []), ['criu-ts', 'oracle'])).toMatch(new RegExp(`^PASS ${k.name}`));
  }, 60_000);
});

describe('the records criu-ts writes are the ones CRIU 4.1 writes', () => {
  it('eventfd: counter and flags (+ EFD_SEMAPHORE, which CRIU 4.1 drops)', async () => {
    const { ours, theirs, v } = await bothDumps('eventfd', ['sem']);
    expect(ours.size).toBe(3);
    const withoutSem = new Map([...ours].map(([fd, e]) => [fd, { ...e, efd: { ...(e.efd as Msg), flags: Number((e.efd as Msg).flags) & ~1 } }]));
    expect(withoutSem).toEqual(theirs);
    expect([...ours.values()].map((e) => (e.efd as Msg).counter)).toEqual([42n, 3n, 42n]);
    expect([...ours.values()].map((e) => Number((e.efd as Msg).flags) & 1)).toEqual([0, 1, 0]);
    expect(await verdict(v)).toMatch(/^PASS eventfd sem/);
  }, 60_000);

  it('timerfd: clock, flags, settime flags, interval, ticks; time left within the dumps\' gap', async () => {
    const { ours, theirs, v } = await bothDumps('timerfd', ['expired']);
    expect(ours.size).toBe(6);
    for (const [fd, o] of ours) {
      const t = theirs.get(fd)!;
      const a = o.tfd as Msg, b = t.tfd as Msg;
      const { vsec: av, vnsec: an, ticks: at, ...restA } = a;
      const { vsec: bv, vnsec: bn, ticks: bt, ...restB } = b;
      expect({ ...o, tfd: restA }).toEqual({ ...t, tfd: restB });
      expect(at).toBeGreaterThanOrEqual(bt as bigint);
      const left = (s: unknown, n: unknown) => Number(s) + Number(n) / 1e9;
      const interval = left(a.isec, a.insec);
      if (left(bv, bn) === 0 && interval > 0 && Number(bt) > 0) {
        // Expired and unread: CRIU records no time left (its restore disarms it), criu-ts one interval.
        expect(left(av, an)).toBe(interval);
      } else {
        expect(Math.abs(left(av, an) - left(bv, bn))).toBeLessThan(Math.max(interval, 5));
      }
    }
    expect(await verdict(v)).toMatch(/^PASS timerfd expired/);
  }, 60_000);

  it('signalfd: sigmask and flags', async () => {
    const { ours, theirs, v } = await bothDumps('signalfd', []);
    expect(ours.size).toBe(2);
    expect(ours).toEqual(theirs);
    expect(await verdict(v)).toMatch(/^PASS signalfd/);
  }, 60_000);

  it('epoll: each target with its events and data', async () => {
    const { ours, theirs, v } = await bothDumps('epoll', []);
    const sorted = (m: Map<number, Msg>) => new Map([...m].map(([fd, e]) => [fd, e.epfd ? { ...e, epfd: { ...(e.epfd as Msg), tfd: [...((e.epfd as Msg).tfd as Msg[])].sort((x, y) => Number(x.tfd) - Number(y.tfd)) } } : e]));
    expect(sorted(ours)).toEqual(sorted(theirs));
    const ep = [...ours.values()].filter((e) => e.epfd).map((e) => ((e.epfd as Msg).tfd as Msg[]).length).sort();
    expect(ep).toEqual([1, 3]);
    expect(await verdict(v)).toMatch(/^PASS epoll/);
  }, 60_000);
});

describe('the records criu-ts writes are the ones CRIU 4.1 writes (memfd, unix sockets, FIFO)', () => {
  it('unix socketpairs: unix_sk_entry in CRIU\'s order (shutdown state included), sk-queues.img', async () => {
    const { ours, theirs, v, oursDir, theirsDir } = await bothDumps('unixpair', []);
    expect(ours.size).toBe(6);
    // The half-closed pair: one end shut for sending (SK_SHUTDOWN WRITE), its peer for receiving.
    expect([...ours.values()].map((e) => Number((e.usk as Msg).shutdown ?? 0)).sort()).toEqual([0, 0, 0, 0, 1, 2]);
    // Inode numbers and ids differ between the dumps: compare through the fd holding each.
    const inoFd = (m: Map<number, Msg>) => new Map([...m].map(([fd, e]) => [Number((e.usk as Msg).ino), fd]));
    const norm = (m: Map<number, Msg>) => {
      const fdOf = inoFd(m);
      return new Map([...m].map(([fd, e]) => {
        const { ino: _i, peer, name, ...rest } = e.usk as Msg;
        return [fd, { ...e, usk: { ...rest, name: Buffer.from(name as Uint8Array), peerFd: fdOf.get(Number(peer)) } }];
      }));
    };
    expect(norm(ours)).toEqual(norm(theirs));
    const order = async (dir: string) => {
      const fdinfo = await records(path.join(dir, fs.readdirSync(dir).find((f) => /^fdinfo-\d+\.img$/.test(f))!));
      const fdOfId = new Map(fdinfo.map((e) => [Number(e.id), Number(e.fd)]));
      const files = (await records(path.join(dir, 'files.img'))).filter((f) => f.type === 5).map((f) => fdOfId.get(Number(f.id)));
      const queues = (await readImageFile(path.join(dir, 'sk-queues.img'))).entries.map((e) => [fdOfId.get(Number(e.message.id_for)), e.message.length, Buffer.from((e.extra as { data: Uint8Array }).data).toString()]);
      return { files, queues };
    };
    expect(await order(oursDir)).toEqual(await order(theirsDir));
    expect(await verdict(v)).toMatch(/^PASS unixpair/);
  }, 60_000);

  it('memfd: memfd_file_entry, memfd.img and the contents in a shmem pagemap', async () => {
    const { ours, theirs, v, oursDir, theirsDir } = await bothDumps('memfd', []);
    expect(ours.size).toBe(3);
    expect(ours).toEqual(theirs);
    const inodes = async (dir: string) => (await records(path.join(dir, 'memfd.img'))).map(({ shmid: _s, ...rest }) => rest);
    expect(await inodes(oursDir)).toEqual(await inodes(theirsDir));
    // The same pages hold data, with the same bytes.
    const contents = async (dir: string) => {
      const out: Buffer[] = [];
      for (const m of await records(path.join(dir, 'memfd.img'))) {
        if (!fs.existsSync(path.join(dir, `pagemap-shmem-${m.shmid}.img`))) {
          out.push(Buffer.from(`empty ${m.size}`));
          continue;
        }
        const pm = await records(path.join(dir, `pagemap-shmem-${m.shmid}.img`));
        const runs = pm.slice(1).map((r) => [Number(r.vaddr), Number(r.nr_pages)]);
        out.push(Buffer.concat([Buffer.from(JSON.stringify(runs)), fs.readFileSync(path.join(dir, `pages-${pm[0].pages_id}.img`))]));
      }
      return out;
    };
    expect(await contents(oursDir)).toEqual(await contents(theirsDir));
    expect(await verdict(v)).toMatch(/^PASS memfd/);
  }, 60_000);

  it('FIFO: fifo_entry with its reg_file_entry, fifo-data.img', async () => {
    const fifo = path.join(tmp, `fifo-cmp-${Date.now()}`);
    const { ours, theirs, v, oursDir, theirsDir } = await bothDumps('fifo', [fifo]);
    const withReg = async (dir: string, m: Map<number, Msg>) => {
      const files = await records(path.join(dir, 'files.img'));
      return new Map([...m].map(([fd, e]) => {
        const { regf_id, ...fifoRest } = e.fifo as Msg;
        const { id: _id, ...reg } = files.find((f) => f.id === regf_id)!.reg as Msg;
        return [fd, { ...e, fifo: fifoRest, reg }];
      }));
    };
    expect(ours.size).toBe(2);
    expect(await withReg(oursDir, ours)).toEqual(await withReg(theirsDir, theirs));
    expect(await records(path.join(oursDir, 'fifo-data.img'))).toEqual(await records(path.join(theirsDir, 'fifo-data.img')));
    const files = await records(path.join(oursDir, 'files.img'));
    const fifoAt = files.findIndex((f) => f.type === 3);
    expect(files[fifoAt - 1]).toMatchObject({ type: 1, id: (files[fifoAt].fifo as Msg).regf_id }); // its path first, as CRIU writes
    expect(await verdict(v)).toMatch(/^PASS fifo/);
  }, 60_000);
});

test('the oracle CRIU is the one the tests expect', () => {
  expect(fs.existsSync(ORACLE_CRIU)).toBe(true);
});
