/**
 * Runs the ppc64le suite in the ppc64le VM (tools/ppc64/run-vm-tests.sh: host build, cross-built
 * fixtures and test programs, one VM boot, one node 18 process in the guest on the built dist/):
 * syscall injection, the parasite, and core's dump() + restore() of real programs; checks every
 * guest test passed, by name. Needs qemu-system-ppc64 and the image of ../shared/ppc64-vm (the runner
 * builds the image when it is missing).
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const runner = path.join(root, 'tools', 'ppc64', 'run-vm-tests.sh');

/** The guest tests, by the name the suite prints. */
const GUEST_TESTS = [
  'the guest is ppc64le on POWER9 with 64 KiB pages, and core picks the ppc64 arch',
  'syscalls run inside a frozen task (sc + trap, CR0.SO errors), which then runs on',
  'the parasite reports task state, hands over fds, vmsplices memory, then the task is cured',
  'a parasite torn down mid-session leaves the task as it was',
  'a blocking read() the task was frozen in restarts after injection and release',
  'thread_info_ppc64 of a task blocked in read: restart fix-up, FP/VSX/VMX values; the parasite leaves them intact',
  'freezing a task that does not exist fails at seize',
  'core control socket uses the ppc64 socket option numbers (SO_RCVTIMEO 18, SO_SNDTIMEO 19)',
  // core's dump() + restore() of the cross-built tools/testprogs (the restore hooks of this package).
  'criu-ts dump + restore (2 rounds): counter passes its own checks',
  ...['mem64', 'fileio', 'cpuloop', 'sleeper', 'signals', 'itimer', 'altstack', 'tls', 'rseq', 'envargs', 'umaskcwd', 'rlimits',
    'mprotect', 'madvise', 'filemap', 'brk', 'selfexe', 'threads4', 'tree'].map((name) => `criu-ts dump + restore: ${name} passes its own checks`),
  'criu-ts dump + restore (2 rounds): all 64 VSRs, FPSCR, VSCR and VRSAVE hold their patterns; the thread stays a VMX/VSX user',
  'criu-ts dump + restore of a program that never used VMX/VSX: MSR_VEC/MSR_VSX stay off (signal frame, ptrace)',
  "criu-ts dump + restore (2 rounds) of a program whose only vector instruction is one scalar VSX add: it stays a VSX user (the kernel's view, from a signal frame)",
  'a dumper killed while the parasite runs: the parasite resumes the task by rt_sigreturn (all vector state intact)',
  "Debian's criu restores what criu-ts dumped: counter, and vecregs with every FP/vector register",
  "criu-ts restores what Debian's criu dumped: counter, vecregs, and novec stays a non-vector thread",
];

describe('ppc64le VM: injection, the parasite, dump and restore on the real ppc64le kernel', () => {
  let output = '';
  let status: number | null = null;

  beforeAll(() => {
    // The whole guest suite, under TCG: give the VM (PPC64_VM_TIMEOUT) and the runner 40 minutes.
    const r = spawnSync('bash', [runner], {
      cwd: root, encoding: 'utf8', timeout: 45 * 60_000, maxBuffer: 64 << 20, env: { ...process.env, PPC64_VM_TIMEOUT: process.env.PPC64_VM_TIMEOUT ?? '2400' },
    });
    output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    status = r.status;
    if (r.error) output += `\nrunner error: ${r.error.message}`;
  }, 46 * 60_000);

  it('the VM booted and the guest suite ran to its summary', () => {
    const summary = /^(\d+) passed, (\d+) failed$/m.exec(output);
    if (!summary) throw new Error(`no summary from the guest suite (runner exit ${status}):\n${output}`);
    // Every test below, and the file-kind, socket, tty, timer, memory, vDSO and real-program tests
    // added since (guest-suite.cjs is the list; the ones named here are the core of it).
    expect(Number(summary[1]) + Number(summary[2])).toBeGreaterThanOrEqual(GUEST_TESTS.length);
  });

  it('no guest test failed', () => {
    // Each failure with the first lines of its reason (indented under it), so that a CI log
    // which keeps only this assertion still says why.
    const lines = output.split('\n');
    const failures = lines.flatMap((l, i) => {
      if (!l.startsWith('FAIL ')) return [];
      const end = lines.findIndex((m, j) => j > i && !m.startsWith('     '));
      return [[l, ...lines.slice(i + 1, end < 0 ? undefined : end).slice(0, 12)].join('\n')];
    });
    expect(failures).toEqual([]);
    expect(/^\d+ passed, 0 failed$/m.test(output)).toBe(true);
  });

  it.each(GUEST_TESTS)('guest: %s', (name) => {
    const line = output.split('\n').find((l) => l.slice(5).startsWith(name));
    if (!line || !line.startsWith('ok   ')) {
      const at = output.indexOf(name);
      throw new Error(`guest test did not pass:\n${at >= 0 ? output.slice(Math.max(0, at - 5), at + 2000) : output}`);
    }
  });

  it('the runner exits 0 exactly when every guest test passed', () => {
    const failed = Number(/^\d+ passed, (\d+) failed$/m.exec(output)?.[1] ?? -1);
    expect(status).toBe(failed === 0 ? 0 : 1);
  });
});
