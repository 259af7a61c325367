import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import { FrozenTask, Parasite, hostArch, InfectError, readMaps } from '../src';
import { PCMD } from '../src/infect/protocol';
import { encodeMulti } from '../src/dump/memory';
import { buildFixture, startDetached, readLog, waitFor, killVictim, isAlive, lastCounter, type Victim } from './helpers/victims';

const arch = hostArch();
const SIGUSR1 = 10, SIGALRM = 14;
const SA_RESTART = 0x10000000n, SA_ONSTACK = 0x08000000n;

async function startVictim(): Promise<{ v: Victim; pattern: bigint; fd: number }> {
  const v = startDetached(buildFixture('victim'), ['/etc/hostname']);
  const m = await waitFor('victim READY', () => /READY (0x[0-9a-f]+) (\d+)/.exec(readLog(v)) ?? undefined);
  return { v, pattern: BigInt(m[1]), fd: Number(m[2]) };
}

async function expectStillCounting(v: Victim): Promise<void> {
  const before = lastCounter(v);
  await waitFor('counter to advance', () => lastCounter(v) > before + 2);
}

describe('syscall injection and the parasite (real processes)', () => {
  const started: Victim[] = [];
  afterAll(() => started.forEach(killVictim));

  it('runs syscalls inside a frozen task and leaves it running as before', async () => {
    const { v } = await startVictim();
    started.push(v);
    const mapsBefore = readMaps(v.pid).length;
    const task = FrozenTask.freeze(v.pid, arch);
    try {
      expect(Number(task.syscall('getpid'))).toBe(v.pid);
      const addr = task.syscall('mmap', 0, 4096, 3, 0x22, -1, 0);
      expect(readMaps(v.pid).some((m) => m.start === addr)).toBe(true);
      task.syscall('munmap', addr, 4096);
      expect(task.rawSyscall('close', 9999)).toBe(-9n); // EBADF comes back as -errno
    } finally {
      task.release();
    }
    expect(readMaps(v.pid).length).toBe(mapsBefore);
    await expectStillCounting(v);
  });

  it('reports task state, hands over fds and vmsplices memory, then cures the task', async () => {
    const { v, pattern, fd } = await startVictim();
    started.push(v);
    const mapsBefore = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
    const task = FrozenTask.freeze(v.pid, arch);
    let pipe: [number, number] | undefined;
    try {
      const parasite = Parasite.inject(task);
      try {
        const st = parasite.taskState();
        expect(st.umask).toBe(0o27);
        const usr1 = st.sigactions[SIGUSR1 - 1];
        expect(usr1.handler).not.toBe(0n);
        expect(usr1.flags & SA_RESTART).toBe(SA_RESTART);
        expect(usr1.mask).toBe(1n << 11n); // SIGUSR2 (12) blocked in the handler
        expect(st.sigactions[SIGALRM - 1].flags & SA_ONSTACK).toBe(SA_ONSTACK);
        expect(st.itimers[0].intervalSec).toBe(1n);
        expect(st.sigaltstack.size).toBe(65536n);
        expect(st.tidAddress).not.toBe(0n);

        const [dup] = parasite.receiveFds([fd]);
        try {
          expect(fs.readlinkSync(`/proc/self/fd/${dup}`)).toBe('/etc/hostname');
        } finally {
          sys.close(dup);
        }
        expect(() => parasite.receiveFds([987])).toThrow(InfectError); // not open in the task

        pipe = sys.pipe2(0);
        parasite.setPipe(pipe[1]);
        expect(parasite.dumpPages([{ start: pattern, length: 8192 }])).toBe(8192);
        const got = Buffer.alloc(8192);
        let off = 0;
        while (off < got.length) off += fs.readSync(pipe[0], got, off, got.length - off, null);
        for (let i = 0; i < 8192; i++) if (got[i] !== ((i * 7 + 3) & 0xff)) throw new Error(`byte ${i} differs`);
      } finally {
        parasite.finish();
      }
    } finally {
      pipe?.forEach((f) => sys.close(f));
      task.release();
    }
    expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(mapsBefore);
    await expectStillCounting(v);
    process.kill(v.pid, 'SIGTERM');
    await waitFor('victim verdict', () => /PASS|FAIL/.exec(readLog(v)));
    expect(readLog(v)).toMatch(/PASS counter=\d+/);
    await waitFor('victim exit', () => !isAlive(v.pid));
  });

  it('fills several pipes per DUMP_PAGES_MULTI request and closes the pipes it was given', async () => {
    const { v, pattern } = await startVictim();
    started.push(v);
    const task = FrozenTask.freeze(v.pid, arch);
    const pipes: Array<[number, number]> = [];
    try {
      const parasite = Parasite.inject(task);
      // The request/reply halves are private (memory.ts pipelines through them the same way).
      const wire = parasite as unknown as { request(cmd: number, p: Buffer, fds?: number[]): void; expect(cmd: number, min: number): { data: Buffer } };
      const multi = (groups: Array<Array<[bigint, number]>>): Buffer => encodeMulti(groups.map((g) => g.map(([start, length]) => ({ start, length }))));
      const eofAfter = (fd: number, bytes: number): Buffer => {
        const got = Buffer.alloc(bytes + 1);
        let off = 0;
        for (;;) {
          const n = fs.readSync(fd, got, off, got.length - off, null);
          if (n === 0) break; // every write end is closed: ours, and the parasite's copy
          off += n;
        }
        expect(off).toBe(bytes);
        return got.subarray(0, bytes);
      };
      try {
        for (let i = 0; i < 3; i++) pipes.push(sys.pipe2(0));
        // Two pipes, the second with two ranges: the pattern's two pages in order.
        wire.request(PCMD.DUMP_PAGES_MULTI, multi([[[pattern, 4096]], [[pattern + 4096n, 2048], [pattern + 6144n, 2048]]]), [pipes[0][1], pipes[1][1]]);
        expect(wire.expect(PCMD.DUMP_PAGES_MULTI, 8).data.readBigUInt64LE(0)).toBe(8192n);
        for (const p of pipes.slice(0, 2)) {
          sys.close(p[1]);
          p[1] = -1;
        }
        const got = Buffer.concat([eofAfter(pipes[0][0], 4096), eofAfter(pipes[1][0], 4096)]);
        for (let i = 0; i < 8192; i++) if (got[i] !== ((i * 7 + 3) & 0xff)) throw new Error(`byte ${i} differs`);
        // Two range lists but one pipe: refused, and the pipe still closed by the parasite.
        wire.request(PCMD.DUMP_PAGES_MULTI, multi([[[pattern, 4096]], [[pattern, 4096]]]), [pipes[2][1]]);
        expect(() => wire.expect(PCMD.DUMP_PAGES_MULTI, 8)).toThrow(/errno 22/);
        sys.close(pipes[2][1]);
        pipes[2][1] = -1;
        eofAfter(pipes[2][0], 0);
      } finally {
        parasite.finish();
      }
    } finally {
      for (const p of pipes) for (const f of p) if (f >= 0) sys.close(f);
      task.release();
    }
    await expectStillCounting(v);
    killVictim(v);
  });

  it('a parasite that is torn down mid-session leaves the task as it was', async () => {
    const { v } = await startVictim();
    started.push(v);
    const mapsBefore = fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1');
    const task = FrozenTask.freeze(v.pid, arch);
    try {
      const parasite = Parasite.inject(task);
      parasite.taskState();
      parasite.abort();
    } finally {
      task.release();
    }
    expect(fs.readFileSync(`/proc/${v.pid}/maps`, 'latin1')).toBe(mapsBefore);
    await expectStillCounting(v);
    process.kill(v.pid, 'SIGTERM');
    await waitFor('victim verdict', () => /PASS|FAIL/.exec(readLog(v)));
    expect(readLog(v)).toMatch(/PASS/);
  });

  it('refuses to freeze a task that does not exist', () => {
    expect(() => FrozenTask.freeze(2 ** 22 + 17, arch)).toThrow(/seize/);
  });
});
