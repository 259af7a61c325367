/**
 * The CPU-model matrix in the ppc64le VM (tools/ppc64/run-vm-cpu-tests.sh: four boots, POWER8,
 * POWER9, POWER8, POWER10, images carried between them in tools/ppc64/build/cpu-matrix/):
 * cpuinfo.img, `criu cpuinfo`, `--cpu-cap`, POWER8 images restored on POWER9, POWER9 images
 * refused on POWER8 naming the HWCAP2 bits it lacks, and node 18 checkpointed on POWER9 and
 * POWER10. Checks every guest test of every boot passed, by name. Needs qemu-system-ppc64 and the
 * image of ../shared/ppc64-vm. The runner holds the same lock as run-vm-tests.sh: one VM at a time.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const runner = path.join(root, 'tools', 'ppc64', 'run-vm-cpu-tests.sh');

const hwcaps = (cpu: string) => `${cpu}: AT_HWCAP/AT_HWCAP2 are the model's, and the arch's cpuinfo record carries them`;
const node = (cpu: string) => `${cpu}: node 18 timer loop (7 threads, epoll, eventfd, pipes): dump + restore, it keeps counting from where it was`;
const FIONREAD = "core reads a pipe's buffered bytes with powerpc's FIONREAD (0x4004667f), not x86's 0x541b";

/** The guest tests of each boot, in boot order, by the name guest-cpu.cjs prints. */
const BOOTS: Array<[string, string[]]> = [
  ['POWER8-first', [
    hwcaps('POWER8'),
    'POWER8: criu dump --cpu-cap of counter into the shared repo, cpuinfo.img = POWER8 (for the POWER9 boot)',
  ]],
  ['POWER9', [
    hwcaps('POWER9'),
    'POWER8 -> POWER9: criu cpuinfo check accepts the POWER8 images; criu restore --cpu-cap runs the counter on, and it PASSes',
    'POWER9: criu dump --cpu-cap of counter into the shared repo, cpuinfo.img = POWER9 (for the POWER8 and POWER10 boots)',
    node('POWER9'),
    FIONREAD,
  ]],
  ['POWER8-again', [
    hwcaps('POWER8'),
    'POWER9 -> POWER8: criu cpuinfo check exits 1 naming what POWER8 lacks (arch_3_00, ieee128, darn, scv)',
    'POWER9 -> POWER8: restore refuses before creating anything, naming the missing HWCAP2 bits (engine default, criu restore, criu restore --cpu-cap)',
    "POWER9 -> POWER8 with --cpu-cap=none: the check is skipped, the restore goes ahead, and the task dies of SIGILL at glibc's scv",
  ]],
  ['POWER10', [
    hwcaps('POWER10'),
    'POWER10: criu cpuinfo dump writes this CPU, and criu cpuinfo check accepts it',
    'POWER9 -> POWER10: criu restore --cpu-cap of the POWER9 images; the counter runs on and PASSes',
    node('POWER10'),
    FIONREAD,
  ]],
];
const CASES = BOOTS.flatMap(([phase, names]) => names.map((name) => [phase, name] as const));

describe('ppc64le VM, POWER8/9/10: cpuinfo.img, --cpu-cap, images across CPU models, node 18', () => {
  let output = '';
  let status: number | null = null;
  /** Each boot's output, by phase. */
  const boots = new Map<string, string>();

  beforeAll(() => {
    const r = spawnSync('bash', [runner], { cwd: root, encoding: 'utf8', timeout: 40 * 60_000, maxBuffer: 64 << 20 });
    output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    status = r.status;
    if (r.error) output += `\nrunner error: ${r.error.message}`;
    // Kept for reading the guests' notes (counter values, frozen times, what node has).
    fs.mkdirSync(path.join(root, 'tools/ppc64/build/cpu-matrix'), { recursive: true });
    fs.writeFileSync(path.join(root, 'tools/ppc64/build/cpu-matrix/runner-output.txt'), output);
    for (const m of output.matchAll(/^=== boot \w+ ([\w-]+)\n([\s\S]*?)^=== end /gm)) boots.set(m[1], m[2]);
  }, 41 * 60_000);

  it.each(BOOTS.map(([phase, names]) => [phase, names.length] as const))('boot %s ran its %d tests to the summary', (phase, count) => {
    const text = boots.get(phase);
    if (text === undefined) throw new Error(`no boot ${phase} in the runner's output (exit ${status}):\n${output}`);
    const summary = /^(\d+) passed, (\d+) failed$/m.exec(text);
    if (!summary) throw new Error(`no summary from boot ${phase}:\n${text}`);
    expect(Number(summary[1]) + Number(summary[2])).toBe(count);
  });

  it.each(CASES)('%s: %s', (phase, name) => {
    const text = boots.get(phase) ?? '';
    const line = text.split('\n').find((l) => l.slice(5).startsWith(name));
    if (!line || !line.startsWith('ok   ')) {
      const at = text.indexOf(name);
      throw new Error(`guest test did not pass:\n${at >= 0 ? text.slice(Math.max(0, at - 5), at + 3000) : text || output}`);
    }
  });

  it('the runner exits 0 exactly when every boot passed', () => {
    const failed = [...boots.values()].some((t) => !/^\d+ passed, 0 failed$/m.test(t));
    expect(status).toBe(failed || boots.size !== BOOTS.length ? 1 : 0);
  });
});
