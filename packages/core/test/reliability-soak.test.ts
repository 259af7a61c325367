/**
 * Soak: 200 dump/restore cycles of one test program in a separate node process (--expose-gc).
 * The engine's open descriptors and its heap after GC must not grow from cycle to cycle.
 *
 * Speed: the soak process is a child subreaper, so each killed task is reaped by the dump itself
 * (its tracer and parent) and its PID is free at once; without that, a killed task's PID stays
 * taken until init reaps the zombie (~1.5 s here), and 200 cycles would take minutes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { testprog } from './helpers/testprogs';
import { runSoak } from './reliability-helpers';

const CYCLES = Number(process.env.CRIU_TS_SOAK_CYCLES ?? 200);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-soak-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

it(`${CYCLES} dump/restore cycles: no descriptor or heap growth, the program intact`, async () => {
  const { code, out } = await runSoak(testprog('counter'), CYCLES, work);
  const samples = [...out.matchAll(/^sample (.*)$/gm)].map((m) => JSON.parse(m[1]) as { i: number; fds: number; heap: number; external: number; rss: number; ms: number });
  console.log(`soak: ${out.match(/soak done \d+/)?.[0]} ms\n` + samples.map((s) => `cycle ${s.i + 1}: ${s.fds} fds, heap ${(s.heap / 1048576).toFixed(2)} MiB, external ${(s.external / 1048576).toFixed(2)} MiB, rss ${(s.rss / 1048576).toFixed(1)} MiB, ${s.ms} ms`).join('\n'));
  expect(out).not.toMatch(/^error/m);
  expect(code).toBe(0);
  expect(out).toMatch(/^verdict PASS counter/m);
  expect(samples.length).toBeGreaterThanOrEqual(3);
  // After 40 cycles: code compiled and every lazily built codec and cache filled (the heap still
  // grew by ~1.7 MiB between cycles 20 and 40, then by ~0.3 MiB over the next 160).
  const warm = samples[2];
  const last = samples[samples.length - 1];
  expect(last.i).toBe(CYCLES - 1);
  expect(last.fds).toBe(samples[0].fds);
  // A leak of even 10 KiB per cycle would show over the 160 cycles after warm-up.
  expect(last.heap - warm.heap).toBeLessThan(1.5 * 1048576);
  expect(last.external - warm.external).toBeLessThan(1.5 * 1048576);
}, 240_000);
