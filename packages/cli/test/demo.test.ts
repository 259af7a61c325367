// The README demo (`npm start` = tools/scripts/demo.sh) run as written, minus the setup and
// build that `npm test` has already done (CRIU_TS_DEMO_NO_SETUP=1).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '../../..');

test('npm start (tools/scripts/demo.sh): dump, kill, restore, and the counter says PASS', () => {
  const r = spawnSync('bash', [path.join(root, 'tools/scripts/demo.sh')], {
    cwd: root,
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, CRIU_TS_DEMO_NO_SETUP: '1' },
  });
  // The demo keeps its files (images, logs, the counter's output) in a temporary dir it names.
  const work = /(\/tmp\/criu-ts-demo\.[A-Za-z0-9]+)/.exec(r.stdout + r.stderr)?.[1];
  try {
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout).toContain('setup and build skipped: CRIU_TS_DEMO_NO_SETUP=1');
    expect(r.stdout).toMatch(/^ {4}PASS counter \d+/m);
    const counts = /is back and counting: last count before the dump (\d+), first after the restore (\d+)/.exec(r.stdout);
    expect(counts).not.toBeNull();
    expect(Number(counts![2])).toBe(Number(counts![1]) + 1);
    expect(r.stdout).toContain('Demo complete:');
    // The counter's own output, which the demo checked, says PASS too.
    expect(fs.readFileSync(path.join(work!, 'counter.out'), 'utf8')).toMatch(/^PASS counter/m);
  } finally {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  }
});
