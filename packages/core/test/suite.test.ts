/**
 * The whole C test-program suite through criu-ts: each program is dumped and restored by
 * criu-ts twice over (the restored task is dumped again), and images the oracle CRIU wrote
 * for the same programs are restored by criu-ts. Every program checks its own state on SIGTERM.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dump, restore } from '../src';
import { type Victim } from './helpers/victims';
import { testWorkspace } from './helpers/workspace';
import { oracle, oracleRestore, requireOracle, waitPidGone } from './helpers/oracle';
import { startTestprog, verdict } from './helpers/testprogs';
import { PROGRAMS, type TestProgram } from './helpers/programs';

jest.setTimeout(120_000);
const { dir: tmp, started } = testWorkspace('suite');

// Multi-threaded and multi-process programs (tree: true) run here too.
const single = PROGRAMS;

async function launch(p: TestProgram, tag: string): Promise<{ v: Victim; dir: string }> {
  const work = fs.mkdtempSync(path.join(tmp, `${p.name}-${tag}-`));
  p.setup?.(work);
  const v = await startTestprog(p.name, p.args?.(work) ?? [], p.readyPid);
  started.push(v);
  if (p.settleMs) await new Promise((r) => setTimeout(r, p.settleMs));
  return { v, dir: path.join(work, 'images') };
}

describe('every test program: criu-ts dump + criu-ts restore, two rounds', () => {
  it.each(single.map((p) => [p.name, p] as const))('%s', async (_name, p) => {
    const { v, dir } = await launch(p, 'ours');
    for (let round = 1; round <= 2; round++) {
      const images = `${dir}-${round}`;
      await dump({ pid: v.pid, imagesDir: images });
      await waitPidGone(v.pid);
      // The same pid, or a new one on the host for a root in a pid namespace of its own.
      v.pid = (await restore({ imagesDir: images, logFile: 'restore.log', logLevel: 4 })).pid;
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(await verdict(v, 15_000)).toMatch(new RegExp(`^PASS ${p.name}\\b`));
  });
});

describe('every test program: oracle CRIU dump + criu-ts restore', () => {
  beforeAll(() => requireOracle());
  // CRIU 4.1 does not record MADV_WIPEONFORK, so madvise runs without that region here
  // (tools/testprogs/madvise.c "nowipe"; see testprogs-oracle.test.ts).
  const args = (p: TestProgram, work: string) => (p.name === 'madvise' ? ['nowipe'] : p.args?.(work) ?? []);
  it.each(single.filter((p) => !p.oracleDumpFails).map((p) => [p.name, p] as const))('%s', async (_name, p) => {
    const work = fs.mkdtempSync(path.join(tmp, `${p.name}-oracle-`));
    p.setup?.(work);
    const v = await startTestprog(p.name, args(p, work), p.readyPid);
    started.push(v);
    if (p.settleMs) await new Promise((r) => setTimeout(r, p.settleMs));
    const dir = path.join(work, 'images');
    fs.mkdirSync(dir);
    const r = oracle(['dump', '-t', String(v.pid), '-D', dir, '-o', 'dump.log', '-v4', ...(p.oracleOptions ?? [])]);
    expect(r.status).toBe(0);
    await waitPidGone(v.pid);
    v.pid = (await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 })).pid;
    await new Promise((r2) => setTimeout(r2, 150));
    expect(await verdict(v, 15_000)).toMatch(new RegExp(`^PASS ${p.name}\\b`));
  });
});

// What the oracle cannot dump on this kernel (programs.ts oracleDumpFails: inet sockets) goes the
// other way: criu-ts dumps, the oracle CRIU restores our images.
describe('programs the oracle cannot dump here: criu-ts dump + oracle CRIU restore', () => {
  beforeAll(() => requireOracle());
  it.each(single.filter((p) => p.oracleDumpFails).map((p) => [p.name, p] as const))('%s', async (_name, p) => {
    const { v, dir } = await launch(p, 'to-oracle');
    await dump({ pid: v.pid, imagesDir: dir });
    await waitPidGone(v.pid);
    if (p.oracleRestoreFails) {
      // Images only criu-ts writes: the oracle must fail as known, and criu-ts restore them.
      expect(() => oracleRestore(dir)).toThrow(p.oracleRestoreFails);
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4 });
    } else {
      oracleRestore(dir);
    }
    await new Promise((r) => setTimeout(r, 150));
    expect(await verdict(v, 15_000)).toMatch(p.oracleRestoreLoses ?? new RegExp(`^PASS ${p.name}\\b`));
  });
});
