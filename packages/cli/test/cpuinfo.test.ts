// `criu cpuinfo dump|check` and --cpu-cap on the host (x86_64, where criu-ts records no CPU
// features); the ppc64 side runs in the VM (tools/ppc64/guest-suite.cjs, arch/ppc64/test/vm*.test.ts).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from '../src/main';
import { parseCpuCap } from '../src/commands/cpuinfo';
import type { CommandContext } from '../src/commands/types';
import { runCli } from './helpers/capture-io';

const ctxOf = (argv: string[]) => ({ io: undefined, args: parseArgs(argv) }) as unknown as CommandContext;

describe('--cpu-cap[=LIST]', () => {
  test.each([
    [['restore'], undefined],
    [['restore', '--cpu-cap'], ['all', 'image']],
    [['restore', '--cpu-cap=image'], ['image']],
    [['restore', '--cpu-cap=none'], ['none']],
    [['restore', '--cpu-cap=fpu,ins'], ['fpu', 'ins']],
    [['restore', '--cpu-cap=all'], ['all', 'image']],
    [['restore', '--cpu-cap=image,none'], ['none']],
    [['restore', '--cpu-cap=none,image'], ['none', 'image']],
  ])('%j -> RestoreOptions.cpuCap %j', (argv, want) => {
    expect(parseCpuCap(ctxOf(argv))).toEqual(want);
  });

  test('an unknown word is refused (as CRIU), by restore and dump alike, before anything runs', async () => {
    expect(() => parseCpuCap(ctxOf(['restore', '--cpu-cap=image,sse9']))).toThrow(/unknown cpu capability 'sse9'/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cpucap-'));
    try {
      const r = await runCli(['restore', '-D', dir, '--cpu-cap=bogus']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("unknown cpu capability 'bogus'");
      const d = await runCli(['dump', '-t', String(2 ** 22 + 3), '-D', dir, '--cpu-cap=bogus']);
      expect(d.status).toBe(1);
      expect(d.stderr).toContain("unknown cpu capability 'bogus'");
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('dump and restore no longer warn that --cpu-cap is ignored', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cpucap-'));
    try {
      const r = await runCli(['restore', '-D', dir, '--cpu-cap=none']);
      expect(r.stderr).not.toMatch(/cpu-cap has no effect/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('criu cpuinfo', () => {
  test('needs an action: dump or check', async () => {
    const a = await runCli(['cpuinfo']);
    expect(a.status).toBe(1);
    expect(a.stderr).toContain('criu cpuinfo dump|check');
    const b = await runCli(['cpuinfo', 'frob']);
    expect(b.status).toBe(1);
    expect(b.stderr).toContain("unknown cpuinfo action 'frob'");
  });

  // This suite runs on the x86_64 host (the ppc64le behaviour is tested in the VM, tools/ppc64).
  test.each(['dump', 'check'])('cpuinfo %s on x86_64: says it is not implemented for this arch, exit 1, writes nothing', async (action) => {
    expect(process.arch).toBe('x64');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cpuinfo-'));
    try {
      const r = await runCli(['cpuinfo', action, '-D', dir]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('Error: cpuinfo is not implemented for x86_64 in criu-ts (it records CPU features on ppc64 only)\n');
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
