import * as fs from 'node:fs';
import { readStat, readStatus, readSmapsVmFlags, listFds, readFdInfo, readMountinfo, readMaps, parseStat, parseMaps, parseSmapsVmFlags } from '../src/proc';

describe('/proc readers on this very process', () => {
  it('reads status and stat consistently', () => {
    const st = readStatus(process.pid);
    const stat = readStat(process.pid);
    expect(st.pid).toBe(process.pid);
    expect(stat.pid).toBe(process.pid);
    expect(st.ppid).toBe(process.ppid);
    expect(stat.ppid).toBe(process.ppid);
    expect(st.uid[0]).toBe(process.getuid!());
    expect(st.threads).toBe(stat.numThreads);
    expect(stat.argStart).toBeLessThan(stat.argEnd);
    expect(stat.envStart).toBe(stat.argEnd);
    expect(typeof st.umask).toBe('number');
  });

  it('parses a comm with spaces and parentheses', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    const s = parseStat(`42 (a (b) c) ${fields.join(' ')}`);
    expect(s.comm).toBe('a (b) c');
    expect(s.ppid).toBe(4);
    expect(s.exitCode).toBe(52);
  });

  it('reads maps with VmFlags for every mapping', () => {
    // One read of smaps holds both: this process's mappings change between two separate reads.
    const text = fs.readFileSync(`/proc/${process.pid}/smaps`, 'latin1');
    const maps = parseMaps(text.split('\n').filter((l) => /^[0-9a-f]+-[0-9a-f]+ /.test(l)).join('\n'));
    const flags = parseSmapsVmFlags(text);
    expect(maps.length).toBeGreaterThan(5);
    for (const m of maps) expect(flags.get(m.start)).toBeDefined();
    const stack = maps.find((m) => m.name === '[stack]')!;
    expect(flags.get(stack.start)!.has('gd')).toBe(true); // grows down
    expect(readMaps(process.pid).some((m) => m.name === '[stack]')).toBe(true);
    expect(readSmapsVmFlags(process.pid).size).toBeGreaterThan(5);
  });

  it('reads fdinfo and mountinfo', () => {
    const fds = listFds(process.pid);
    expect(fds).toContain(0);
    const info = readFdInfo(process.pid, fds[0]);
    expect(info.mntId).toBeGreaterThan(0);
    const mounts = readMountinfo(process.pid);
    expect(mounts.some((m) => m.mountPoint === '/')).toBe(true);
  });
});

describe('rlimits from /proc/PID/limits', () => {
  it('match prlimit64 for this process', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { rlimitsFromProc } = require('../src/dump/task-state');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { sys } = require('@criu/sys');
    const fromProc = rlimitsFromProc(process.pid).rlimits;
    const buf = Buffer.alloc(16);
    for (let r = 0; r < 16; r++) {
      sys.syscall('prlimit64', process.pid, r, 0, buf);
      expect(fromProc[r]).toEqual({ cur: buf.readBigUInt64LE(0), max: buf.readBigUInt64LE(8) });
    }
  });
});
