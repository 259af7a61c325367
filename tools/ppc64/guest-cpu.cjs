#!/usr/bin/env node
/*
 * The CPU-model matrix, run by node 18 inside the ppc64le VM, one phase per boot
 * (tools/ppc64/run-vm-cpu-tests.sh boots POWER8, POWER9, POWER8, POWER10 in that order):
 * cpuinfo.img and `criu cpuinfo dump|check`, `criu dump|restore --cpu-cap` through the built CLI,
 * images carried from one CPU model to another, and a node 18 program checkpointed in the guest.
 *
 *   node guest-cpu.cjs <phase> <persistent dir in the shared repo> <dir with the cross-built testprogs>
 *
 * Images a later boot needs go to the persistent dir (the guest's /tmp is a tmpfs, gone at
 * power-off); a restored program is started and stopped within one boot. Prints one line per test,
 * then "N passed, N failed"; exits 1 when a test failed.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const [phase, persistArg, testprogArg] = process.argv.slice(2);
const PHASES = ['POWER8-first', 'POWER9', 'POWER8-again', 'POWER10'];
if (!PHASES.includes(phase) || !persistArg || !testprogArg) {
  console.log(`usage: guest-cpu.cjs ${PHASES.join('|')} PERSIST_DIR TESTPROG_DIR`);
  process.exit(2);
}
const persist = path.resolve(persistArg);
const testprogDir = path.resolve(testprogArg);
const core = require(path.join(root, 'packages/core/dist/index.cjs'));
const images = require(path.join(root, 'packages/images/dist/index.cjs'));
const { ppc64, hostCpu, hwcapNames } = require(path.join(root, 'arch/ppc64/dist/index.cjs'));
const { sys } = require(path.join(root, 'packages/sys/dist/index.cjs'));
const CLI = path.join(root, 'packages/cli/bin/criu.cjs');
// The harness shared with guest-suite.cjs and the VM bench.
const { AssertionError, ok, eq, sleep, waitFor, isAlive, readText, tail, CLOSE_INHERITED, shellQuote, started, startDetached, test, runTests, runMain } = require('./guest-harness.cjs');
const NODE_TIMER = path.join(__dirname, 'fixtures', 'node-timer.js');
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-cpu-'));

/** AT_HWCAP is the same on every model; AT_HWCAP2 per model (../shared/ppc64-vm/results/facts-*.txt). */
const HWCAP = 0xdc0065c2n;
const HWCAP2 = { POWER8: 0xbe000000n, POWER9: 0xbef00000n, POWER10: 0xbef60000n };
const cpuModel = phase.replace(/-.*/, '');
/** Where each boot leaves its images for the next. */
const P8_COUNTER = path.join(persist, 'counter-POWER8');
const P9_COUNTER = path.join(persist, 'counter-POWER9');

/*
 * Regression guard, as guest-suite.cjs does for SO_RCVTIMEO: core once read a pipe's buffered
 * byte count with x86's FIONREAD (0x541b); powerpc's is _IOR('f', 127, int) = 0x4004667f, and
 * 0x541b fails with ENOTTY, so no program with a pipe (node: 4 of them) could be dumped on ppc64.
 * In this process (the node tests' in-process dump) exactly that call is translated, so the rest
 * of the node checkpoint is still tested; the test 'core reads pipe data with powerpc's FIONREAD'
 * fails while core makes it.
 */
const X86_FIONREAD = 0x541b, PPC_FIONREAD = 0x4004667f;
let x86FionreadSeen = 0;
{
  const original = sys.syscall.bind(sys);
  sys.syscall = (nr, ...args) => {
    if (nr === 'ioctl' && args[1] === X86_FIONREAD) {
      x86FionreadSeen++;
      args[1] = PPC_FIONREAD;
    }
    return original(nr, ...args);
  };
}

// --- processes and the CLI --------------------------------------------------------------------
/** Makes the next PIDs start above `n`, so that images carried to another boot find theirs free. */
function pidsFrom(n) {
  fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(n));
}
/** Runs the criu-ts CLI (node 18, the built dist/), no inherited fds beyond stdio. */
function criu(...args) {
  const r = spawnSync('bash', ['-c', `${CLOSE_INHERITED}; exec ${shellQuote(process.execPath)} ${shellQuote(CLI)} ${args.map(shellQuote).join(' ')}`], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, text: `exit ${r.status}: ${(r.stdout + r.stderr).trim()}` };
}
async function cpuinfoOf(dir) {
  const img = await images.readImageFile(path.join(dir, 'cpuinfo.img'));
  eq(img.entries.length, 1, `records in ${dir}/cpuinfo.img`);
  const e = img.entries[0].message.ppc64_entry;
  eq(e.length, 1, 'ppc64_entry records');
  return { endian: e[0].endian, hwcap: BigInt(e[0].hwcap[0]), hwcap2: BigInt(e[0].hwcap[1]) };
}
const lines = (v) => readText(v.log);
function lastNumber(file) {
  const nums = readText(file).split('\n').filter((l) => /^\d+$/.test(l));
  return nums.length ? Number(nums[nums.length - 1]) : -1;
}
/** User processes (with a command line): restore must not leave any behind when it refuses. */
function userPids() {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`).length > 0;
    } catch {
      return false;
    }
  }).map(Number).sort((a, b) => a - b);
}

// --- the counter, carried between boots -------------------------------------------------------
/** Starts tools/testprogs/counter with its output in `dir`/counter.out (kept for the next boot). */
async function startCounter(dir, firstPid) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  pidsFrom(firstPid);
  const v = startDetached([path.join(testprogDir, 'counter')], path.join(dir, 'counter.out'));
  await waitFor('counter READY', () => /READY counter /.test(lines(v)));
  await waitFor('counter counting', () => lastNumber(v.log) >= 3);
  return v;
}
/** `criu dump --cpu-cap` of the counter into `dir`: the images a later boot restores. */
async function dumpCounter(v, dir) {
  const r = criu('dump', '-t', v.pid, '-D', dir, '--cpu-cap', '-o', 'dump.log', '-v4');
  eq(r.status, 0, `criu dump: ${r.text}\n       dump.log: ${tail(path.join(dir, 'dump.log'))}`);
  await waitFor(`dumped counter ${v.pid} gone`, () => !isAlive(v.pid));
  const cpu = await cpuinfoOf(dir);
  eq(cpu.endian, 1, 'cpuinfo.img endian (LITTLEENDIAN)');
  eq(cpu.hwcap, HWCAP, 'cpuinfo.img hwcap[0]');
  eq(cpu.hwcap2, HWCAP2[cpuModel], 'cpuinfo.img hwcap[1]');
  fs.writeFileSync(path.join(dir, 'pid'), `${v.pid}\n`);
  return `pid ${v.pid}, counted to ${lastNumber(v.log)}`;
}
/** `criu restore -d` of counter images another boot left; the counter runs on and PASSes. */
async function restoreCounter(dir, extra = []) {
  ok(fs.existsSync(path.join(dir, 'pid')), `no images in ${dir}: the earlier boot did not dump them`);
  const pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8'));
  const out = path.join(dir, 'counter.out');
  const before = lastNumber(out);
  const r = criu('restore', '-D', dir, '-d', '-o', 'restore.log', '-v4', ...extra);
  eq(r.status, 0, `criu restore: ${r.text}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  const v = { pid, log: out };
  started.push(v);
  await waitFor(`restored counter ${pid} counting past ${before + 3}`, () => lastNumber(out) > before + 3, 30_000).catch((e) => {
    throw new AssertionError(`${e.message}; alive ${isAlive(pid)}; output: ${tail(out, 4)}`);
  });
  process.kill(pid, 'SIGTERM');
  const verdict = await waitFor('counter verdict', () => /^(PASS|FAIL) .*$/m.exec(lines(v)));
  await waitFor('counter exit', () => !isAlive(pid));
  ok(verdict[0].startsWith('PASS counter'), `verdict: ${verdict[0]}`);
  return `${verdict[0]}, from ${before}`;
}

// --- tests --------------------------------------------------------------------------------------
test(`${cpuModel}: AT_HWCAP/AT_HWCAP2 are the model's, and the arch's cpuinfo record carries them`, () => {
  const cpu = hostCpu();
  eq(cpu.hwcap, HWCAP, 'AT_HWCAP');
  eq(cpu.hwcap2, HWCAP2[cpuModel], `AT_HWCAP2 (${hwcapNames(1, cpu.hwcap2).join(' ')})`);
  const rec = ppc64.cpuinfo().ppc64_entry[0];
  eq(rec.endian, 1, 'endian');
  eq(BigInt(rec.hwcap[1]), cpu.hwcap2, 'hwcap[1]');
  eq(ppc64.cpuinfoMissing(ppc64.cpuinfo()).length, 0, 'missing features against itself');
  return hwcapNames(1, cpu.hwcap2).join(' ');
});

// (Each CLI run is a node start-up, ~9 s under TCG: criu cpuinfo dump is tried on one boot.)
if (phase === 'POWER10') test('POWER10: criu cpuinfo dump writes this CPU, and criu cpuinfo check accepts it', async () => {
  const cpu = hostCpu();
  const dir = path.join(logDir, 'cpuinfo');
  fs.mkdirSync(dir);
  const d = criu('cpuinfo', 'dump', '-D', dir);
  eq(d.status, 0, `criu cpuinfo dump: ${d.text}`);
  const img = await cpuinfoOf(dir);
  eq(img.hwcap2, cpu.hwcap2, 'cpuinfo.img hwcap[1]');
  eq(img.endian, 1, 'cpuinfo.img endian');
  const c = criu('cpuinfo', 'check', '-D', dir);
  eq(c.status, 0, `criu cpuinfo check: ${c.text}`);
  return c.stdout.trim();
});

if (phase === 'POWER8-first') {
  test('POWER8: criu dump --cpu-cap of counter into the shared repo, cpuinfo.img = POWER8 (for the POWER9 boot)', async () => {
    const v = await startCounter(P8_COUNTER, 20000);
    return dumpCounter(v, P8_COUNTER);
  });
}

if (phase === 'POWER9') {
  test('POWER8 -> POWER9: criu cpuinfo check accepts the POWER8 images; criu restore --cpu-cap runs the counter on, and it PASSes', async () => {
    const c = criu('cpuinfo', 'check', '-D', P8_COUNTER);
    eq(c.status, 0, `criu cpuinfo check of the POWER8 images: ${c.text}`);
    return restoreCounter(P8_COUNTER, ['--cpu-cap']);
  });
  test('POWER9: criu dump --cpu-cap of counter into the shared repo, cpuinfo.img = POWER9 (for the POWER8 and POWER10 boots)', async () => {
    const v = await startCounter(P9_COUNTER, 25000);
    return dumpCounter(v, P9_COUNTER);
  });
}

if (phase === 'POWER8-again') {
  const MISSING = 'arch_3_00, ieee128, darn, scv';
  test(`POWER9 -> POWER8: criu cpuinfo check exits 1 naming what POWER8 lacks (${MISSING})`, () => {
    ok(fs.existsSync(path.join(P9_COUNTER, 'pid')), `no images in ${P9_COUNTER}: the POWER9 boot did not dump them`);
    const c = criu('cpuinfo', 'check', '-D', P9_COUNTER);
    eq(c.status, 1, `criu cpuinfo check: ${c.text}`);
    ok(c.stderr.includes(`lacks features the image's CPU had: ${MISSING}\n`), `criu cpuinfo check names the missing bits: ${c.text}`);
    return c.stderr.trim();
  });
  test('POWER9 -> POWER8: restore refuses before creating anything, naming the missing HWCAP2 bits (engine default, criu restore, criu restore --cpu-cap)', async () => {
    const pid = Number(fs.readFileSync(path.join(P9_COUNTER, 'pid'), 'utf8'));
    const before = userPids();
    let err;
    try {
      await core.restore({ imagesDir: P9_COUNTER, arch: ppc64, logFile: 'engine-restore.log', logLevel: 4 });
    } catch (e) {
      err = e;
    }
    ok(err instanceof core.RestoreError, `engine restore() refused: ${err ? err.stack : 'it restored'}`);
    eq(err.step, 'read-images', 'step of the refusal');
    ok(err.message.includes(`this CPU lacks features the dumped task's CPU had: ${MISSING}`), `engine message: ${err.message}`);
    for (const cap of [[], ['--cpu-cap']]) {
      const r = criu('restore', '-D', P9_COUNTER, '-d', ...cap);
      eq(r.status, 1, `criu restore ${cap.join(' ')}: ${r.text}`);
      ok(r.stderr.includes(`lacks features the dumped task's CPU had: ${MISSING}`), `criu restore ${cap.join(' ')} names the missing bits: ${r.text}`);
    }
    ok(!fs.existsSync(`/proc/${pid}`), `PID ${pid} of the image exists after the refusals`);
    eq(JSON.stringify(userPids().filter((p) => !before.includes(p) && p !== process.pid)), '[]', 'user processes left behind');
    return err.message;
  });
  test("POWER9 -> POWER8 with --cpu-cap=none: the check is skipped, the restore goes ahead, and the task dies of SIGILL at glibc's scv", async () => {
    const pid = Number(fs.readFileSync(path.join(P9_COUNTER, 'pid'), 'utf8'));
    const out = path.join(P9_COUNTER, 'counter.out');
    const before = lastNumber(out);
    // The POWER10 boot restores these images again: their output file is put back afterwards.
    const saved = fs.readFileSync(out);
    const r = criu('restore', '-D', P9_COUNTER, '-d', '--cpu-cap=none', '-o', 'restore-none.log', '-v4');
    eq(r.status, 0, `criu restore --cpu-cap=none: ${r.text}\n       restore-none.log: ${tail(path.join(P9_COUNTER, 'restore-none.log'))}`);
    started.push({ pid, log: out });
    await sleep(1500);
    const alive = isAlive(pid);
    const kernel = spawnSync('dmesg', { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`[${pid}]`)).join(' / ').trim();
    if (alive) process.kill(pid, 'SIGKILL');
    await waitFor(`task ${pid} gone`, () => !isAlive(pid));
    fs.writeFileSync(out, saved);
    // glibc saw scv in HWCAP2 on POWER9 and makes its syscalls with `scv 0` (0x44000001), which
    // POWER8 does not have: what the refusal above protects from.
    ok(!alive, `the POWER9 task still runs on POWER8 (counter ${before} -> ${lastNumber(out)})`);
    ok(/illegal instruction/.test(kernel) && /<44000001>/.test(kernel), `the kernel reports SIGILL at scv 0 for ${pid}: ${kernel || '(nothing in dmesg)'}`);
    return kernel.split(' / ')[0];
  });
}

if (phase === 'POWER10') {
  test('POWER9 -> POWER10: criu restore --cpu-cap of the POWER9 images; the counter runs on and PASSes', () => restoreCounter(P9_COUNTER, ['--cpu-cap']));
}

if (phase === 'POWER9' || phase === 'POWER10') {
  test(`${cpuModel}: node 18 timer loop (7 threads, epoll, eventfd, pipes): dump + restore, it keeps counting from where it was`, async () => {
    const out = path.join(logDir, 'node-timer.out');
    const v = startDetached([process.execPath, NODE_TIMER, out], path.join(logDir, 'node-timer.log'));
    await waitFor('node-timer READY', () => /READY node-timer/.test(lines(v)), 120_000);
    await waitFor('node-timer counting', () => lastNumber(out) >= 3, 60_000);
    // What node has, for the report: descriptors by kind, threads.
    const fds = fs.readdirSync(`/proc/${v.pid}/fd`).map(Number).sort((a, b) => a - b)
      .map((fd) => `${fd}=${fs.readlinkSync(`/proc/${v.pid}/fd/${fd}`).replace(/^anon_inode:\[?(\w+)\]?$/, '$1').replace(/^pipe:.*/, 'pipe')}`);
    const threads = fs.readdirSync(`/proc/${v.pid}/task`).length;
    const has = `node ${process.version}: ${threads} threads, fds ${fds.join(' ')}`;
    const dir = path.join(logDir, 'node-images');
    fs.mkdirSync(dir);
    let stats;
    try {
      stats = (await core.dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch: ppc64 })).stats;
    } catch (e) {
      const still = lastNumber(out);
      await waitFor('node-timer counting on after the failed dump', () => lastNumber(out) > still + 2, 30_000);
      throw new AssertionError(`dump of node 18 failed: ${e.message}; ${has}; node counts on unharmed\n       dump.log: ${tail(path.join(dir, 'dump.log'))}`);
    }
    await waitFor(`dumped node ${v.pid} gone`, () => !isAlive(v.pid));
    const cpu = await cpuinfoOf(dir);
    eq(cpu.hwcap2, HWCAP2[cpuModel], 'the node images\' cpuinfo.img hwcap[1]');
    const before = lastNumber(out);
    try {
      await core.restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch: ppc64, detach: true });
    } catch (e) {
      throw new AssertionError(`restore of node 18 failed: ${e.message}; ${has}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
    }
    await waitFor(`restored node counting past ${before + 10}`, () => lastNumber(out) > before + 10, 60_000).catch((e) => {
      throw new AssertionError(`${e.message}; alive ${isAlive(v.pid)}; last ${lastNumber(out)}; ${has}`);
    });
    const nums = fs.readFileSync(out, 'utf8').trim().split('\n').map(Number);
    ok(nums.every((n, i) => n === i), `node's counter runs on without a gap or a restart: ${nums.slice(Math.max(0, before - 2), before + 4).join(' ')}`);
    eq(fs.readdirSync(`/proc/${v.pid}/task`).length, threads, 'threads after the restore');
    process.kill(v.pid, 'SIGKILL');
    return `${before} -> ${lastNumber(out)}, frozen ${Math.round(stats.frozenTimeUs / 1000)} ms; ${has}`;
  });
  test("core reads a pipe's buffered bytes with powerpc's FIONREAD (0x4004667f), not x86's 0x541b", () => {
    eq(x86FionreadSeen, 0, "ioctl calls core made with x86's FIONREAD 0x541b (packages/core/src/dump/pipes.ts): ENOTTY on ppc64, so no program with a pipe dumps");
  });
}

// --- run ------------------------------------------------------------------------------------
runMain(async () => {
  console.log(`phase ${phase} on ${fs.readFileSync('/proc/cpuinfo', 'latin1').match(/^cpu\s*:\s*(.*)$/m)?.[1] ?? '?'}`);
  await runTests();
});
