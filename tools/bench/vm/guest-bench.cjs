#!/usr/bin/env node
/*
 * The ppc64le half of `pnpm bench`, run by node inside the ppc64le VM (tools/bench/vm-bench.sh):
 * criu-ts (library calls in this node process) side by side with the guest's own CRIU (Debian
 * 12's criu), dumping and restoring benchmem (cross-built) on the same sizes in the same run.
 *
 *   node guest-bench.cjs <benchmem> <out.json> <sizes MiB, comma-separated> <repetitions>
 *
 * Images go to the guest's tmpfs: the 9p share would measure QEMU's file transport, not the
 * engines. Writes { machine, results: [{ engine, mib, rep, dump: {ms, frozenUs}, restore: {ms} }] }.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..', '..');
const [benchmem, outFile, sizesArg = '64,256', repsArg = '3'] = process.argv.slice(2);
const SIZES = sizesArg.split(',').map(Number);
const REPS = Number(repsArg);
const { dump, restore } = require(path.join(root, 'packages/core/dist/index.cjs'));
const { ppc64: arch } = require(path.join(root, 'arch/ppc64/dist/index.cjs'));
const { readImageFile } = require(path.join(root, 'packages/images/dist/index.cjs'));

const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-vm-bench-'));
const log = (...a) => console.error('[vm-bench]', ...a);
// The guest test harness's waits and process helpers (tools/ppc64/guest-harness.cjs).
const harness = require(path.join(root, 'tools/ppc64/guest-harness.cjs'));
const { isAlive: alive, readText, CLOSE_INHERITED } = harness;
const waitFor = (what, probe, timeoutMs = 600_000) => harness.waitFor(what, probe, timeoutMs);
const waitGone = (pid) => waitFor(`PID ${pid} to go`, () => !fs.existsSync(`/proc/${pid}`));
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

function startVictim(mib, logFile) {
  return harness.startDetached([benchmem, String(mib)], logFile).pid;
}
function criu(args, dir) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `${CLOSE_INHERITED}; exec criu ${args}`], { encoding: 'utf8' });
  const t = ms(t0);
  if (r.status !== 0) throw new Error(`criu ${args}: exit ${r.status} ${r.stderr}\n${readText(path.join(dir, 'criu.log')).split('\n').filter((l) => /rror/.test(l)).slice(-5).join('\n')}`);
  return t;
}

async function roundTrip(engine, mib, rep) {
  const dir = path.join(WORK, `${engine}-${mib}-${rep}`);
  const imgs = path.join(dir, 'images');
  fs.mkdirSync(imgs, { recursive: true });
  const logFile = path.join(dir, 'victim.out');
  let pid = startVictim(mib, logFile);
  try {
    await waitFor(`READY from benchmem ${mib}`, () => /^READY benchmem/m.test(readText(logFile)) || !alive(pid) || undefined);
    if (!alive(pid)) throw new Error(`benchmem ${mib} died: ${readText(logFile)}`);
    const checksum = /^checksum (\w+)/m.exec(readText(logFile))[1];
    let dumpMs, frozenUs, restoreMs;
    if (engine === 'lib') {
      const t0 = process.hrtime.bigint();
      const r = await dump({ pid, imagesDir: imgs, arch });
      dumpMs = ms(t0);
      frozenUs = r.stats.frozenTimeUs;
    } else {
      dumpMs = criu(`dump -t ${pid} -D '${imgs}' -o criu.log`, imgs);
      frozenUs = Number((await readImageFile(path.join(imgs, 'stats-dump'))).entries[0].message.dump.frozen_time);
    }
    await waitGone(pid);
    if (engine === 'lib') {
      const t0 = process.hrtime.bigint();
      await restore({ imagesDir: imgs, detach: true, arch });
      restoreMs = ms(t0);
    } else {
      restoreMs = criu(`restore -d -D '${imgs}' -o criu-restore.log`, imgs);
    }
    if (!alive(pid)) throw new Error(`${engine}: restored task ${pid} is not running`);
    process.kill(pid, 'SIGTERM');
    const verdict = await waitFor(`verdict of ${pid}`, () => /^(PASS|FAIL) benchmem.*$/m.exec(readText(logFile))?.[0]);
    if (!verdict.startsWith('PASS') || !verdict.includes(checksum)) throw new Error(`${engine} ${mib} MiB after restore: ${verdict} (expected ${checksum})`);
    await waitGone(pid);
    pid = 0;
    return { engine, mib, rep, dump: { ms: dumpMs, frozenUs }, restore: { ms: restoreMs } };
  } finally {
    if (pid && alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const results = [];
  // One untimed warm-up of each engine: loads node's modules and the page cache of both binaries.
  for (const engine of ['lib', 'criu']) await roundTrip(engine, 16, 0);
  for (const mib of SIZES) {
    for (let rep = 1; rep <= REPS; rep++) {
      for (const engine of ['criu', 'lib']) {
        const r = await roundTrip(engine, mib, rep);
        log(`${engine} ${mib} MiB #${rep}: dump ${r.dump.ms.toFixed(0)} ms (frozen ${(r.dump.frozenUs / 1000).toFixed(0)} ms), restore ${r.restore.ms.toFixed(0)} ms`);
        results.push(r);
      }
    }
  }
  const criuVersion = spawnSync('criu', ['--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  const cpu = (/^cpu\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8')) || [])[1];
  const machine = { kernel: os.release(), cpu, cpus: os.cpus().length, memMiB: Math.round(os.totalmem() / 2 ** 20), node: process.version, criu: criuVersion, pageSize: Number(execFileSync('getconf', ['PAGESIZE']).toString()) };
  fs.writeFileSync(outFile, JSON.stringify({ machine, sizes: SIZES, reps: REPS, results }, null, 1) + '\n');
  log(`wrote ${outFile}`);
}

main().catch((e) => {
  console.error(`[vm-bench] FAILED: ${e.stack || e}`);
  process.exit(1);
});
