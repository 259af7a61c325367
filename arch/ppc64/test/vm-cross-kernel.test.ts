/**
 * Checkpoint on one POWER kernel, restore on another: vdsotime (four threads in the vDSO's time
 * functions) is dumped in the VM booted on Debian 12's 6.1 and restored in the VM booted on
 * Debian 13's 6.12, then the other way round. The two kernels' vDSOs differ (6.12 moved every
 * entry point and added __kernel_getrandom), so each restore must proxy the dumped vDSO through
 * the ppc64 two-step trampoline, and the program must go on with sane, monotonic clocks.
 * Three boots: dump on 6.1; restore + dump on 6.12; restore on 6.1 (guest-suite.cjs
 * "cross-kernel:" tests, which run only when named).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const runner = path.join(root, 'tools', 'ppc64', 'run-vm-tests.sh');
const xkernel = path.join(root, 'tools', 'ppc64', 'build', 'xkernel');
const DUMP = 'cross-kernel: dump vdsotime for a restore on the other kernel';
const RESTORE = 'cross-kernel: restore vdsotime dumped on the other kernel; the vDSO is proxied and the program passes';

function boot(kernel: string, only: string, build: boolean): string {
  const r = spawnSync('bash', [runner, ...(build ? [] : ['--no-build']), '--kernel', kernel, '--only', only], {
    cwd: root, encoding: 'utf8', timeout: 25 * 60_000, maxBuffer: 64 << 20,
  });
  return `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\nrunner error: ${r.error.message}` : ''}\n(runner exit ${r.status})`;
}

function passed(output: string, name: string): string {
  const line = output.split('\n').find((l) => l.slice(5).startsWith(name));
  if (!line || !line.startsWith('ok   ')) {
    const at = output.indexOf(name);
    throw new Error(`guest test "${name}" did not pass:\n${at >= 0 ? output.slice(Math.max(0, at - 5), at + 3000) : output.slice(-4000)}`);
  }
  return line;
}

describe('checkpoint on one ppc64le kernel, restore on another (6.1 <-> 6.12)', () => {
  const out: Record<string, string> = {};
  beforeAll(() => {
    fs.rmSync(xkernel, { recursive: true, force: true });
    out.first = boot('bookworm', `^${DUMP}$`, true);
    out.second = boot('trixie', `^(${RESTORE}|${DUMP})$`, false);
    out.third = boot('bookworm', `^${RESTORE}$`, false);
  }, 80 * 60_000);

  it('dumped on 6.1', () => {
    console.log(passed(out.first, DUMP));
  });
  it('restored on 6.12 (vDSO proxied), and dumped there', () => {
    console.log(passed(out.second, RESTORE));
    console.log(passed(out.second, DUMP));
    expect(out.second).toMatch(/^kernel 6\.12\./m);
  });
  it('restored on 6.1 (vDSO proxied)', () => {
    console.log(passed(out.third, RESTORE));
    expect(out.third).toMatch(/^kernel 6\.1\./m);
  });
});
