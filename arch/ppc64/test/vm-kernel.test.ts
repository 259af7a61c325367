/**
 * The second guest kernel: tools/ppc64/run-vm-tests.sh --kernel trixie boots Debian 13's 6.12
 * (64 KiB pages) under the same Debian 12 userland, for cross-kernel checkpoint/restore (the vDSO
 * differs between 6.1 and 6.12). The runner builds that image when it is missing
 * (tools/ppc64/build-alt-kernel.sh: one kernel .deb from the Debian mirror), so a fresh machine
 * needs no manual step. Checks that the guest really runs the other kernel and that the suite's
 * basics pass there: the 64 KiB-page check and criu-ts dump + restore of `counter`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const runner = path.join(root, 'tools', 'ppc64', 'run-vm-tests.sh');
const altCache = process.env.PPC64_VM_ALT_CACHE ?? '/var/tmp/ppc64-vm-trixie';

const GUEST_TESTS = [
  'the guest is ppc64le on POWER9 with 64 KiB pages, and core picks the ppc64 arch',
  'criu-ts dump + restore (2 rounds): counter passes its own checks',
];
const ONLY = `^(${GUEST_TESTS.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;

describe('ppc64le VM on the second kernel (Debian 13, 6.12)', () => {
  let output = '';
  let status: number | null = null;

  beforeAll(() => {
    const r = spawnSync('bash', [runner, '--kernel', 'trixie', '--only', ONLY], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20 * 60_000,
      maxBuffer: 64 << 20,
    });
    output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    status = r.status;
    if (r.error) output += `\nrunner error: ${r.error.message}`;
  }, 21 * 60_000);

  it('the guest ran the kernel of the trixie image, not Debian 12 6.1', () => {
    const info = fs.readFileSync(path.join(altCache, 'image.info'), 'utf8');
    const kver = /^kernel_pkg=linux-image-(.+)$/m.exec(info)?.[1];
    expect(kver).toMatch(/^6\.12\./);
    const line = /^kernel (\S+) /m.exec(output);
    if (!line) throw new Error(`the guest suite printed no kernel line (runner exit ${status}):\n${output}`);
    expect(line[1]).toBe(kver);
  });

  it.each(GUEST_TESTS)('guest on 6.12: %s', (name) => {
    const line = output.split('\n').find((l) => l.slice(5).startsWith(name));
    if (!line || !line.startsWith('ok   ')) {
      const at = output.indexOf(name);
      throw new Error(`guest test did not pass:\n${at >= 0 ? output.slice(Math.max(0, at - 5), at + 2000) : output}`);
    }
  });

  it('the runner exits 0 with every selected guest test passed', () => {
    expect(/^(\d+) passed, (\d+) failed$/m.exec(output)?.slice(1)).toEqual([String(GUEST_TESTS.length), '0']);
    expect(status).toBe(0);
  });
});
