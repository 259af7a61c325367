#!/usr/bin/env node
/*
 * The ppc64le suite, run by node inside the ppc64le VM (tools/ppc64/run-vm-tests.sh). Plain
 * CommonJS on the built dist/ of the packages: the guest has no jest, swc or turbo. It does what
 * packages/core/test/infect.test.ts does on x86_64, with the ppc64 arch object passed explicitly,
 * then dumps and restores the cross-built test programs (tools/testprogs) and the vector fixtures
 * with core's dump() and restore(), on real processes under the VM's kernel (64 KiB pages).
 *
 *   node guest-suite.cjs <dir with the cross-built fixtures> <dir with the cross-built testprogs> [name regex]
 *
 * Prints one line per test, then "N passed, N failed"; exits 1 when a test failed.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const fixtureDir = path.resolve(process.argv[2] || path.join(__dirname, 'build'));
const testprogDir = path.resolve(process.argv[3] || path.join(root, 'tools/testprogs/build/powerpc64le-linux-gnu'));
const core = require(path.join(root, 'packages/core/dist/index.cjs'));
const { ppc64, getReg, TRAP, MSR, vectorUse, vectorUseFromValues } = require(path.join(root, 'arch/ppc64/dist/index.cjs'));
const images = require(path.join(root, 'packages/images/dist/index.cjs'));
const { sys } = require(path.join(root, 'packages/sys/dist/index.cjs'));
const { FrozenTask, Parasite, InfectError, readMaps, dump, restore } = core;
// The harness shared with guest-cpu.cjs and the VM bench.
const harness = require('./guest-harness.cjs');
const { AssertionError, ok, eq, fmt, sleep, isAlive, readText, tail, started, test, runTests, runMain } = harness;

const arch = ppc64;

/*
 * Regression guard: core's control socket once set SO_RCVTIMEO/SO_SNDTIMEO with the x86_64
 * numbers 20/21; on powerpc they are 18/19 (20/21 are SO_PASSCRED/SO_PEERCRED, and setting
 * SO_PEERCRED fails with ENOPROTOOPT), which broke Parasite.inject on ppc64 (fixed in 2231c0d).
 * Should it come back, exactly that call is translated so the arch tests still run, and the test
 * 'core control socket uses the ppc64 socket option numbers' fails.
 */
const SOL_SOCKET = 1, X86_SO_RCVTIMEO = 20, X86_SO_SNDTIMEO = 21, PPC_SO_RCVTIMEO = 18, PPC_SO_SNDTIMEO = 19;
let x86SockoptSeen = 0;
{
  const original = sys.syscall.bind(sys);
  sys.syscall = (nr, ...args) => {
    if (nr === 'setsockopt' && args[1] === SOL_SOCKET && (args[2] === X86_SO_RCVTIMEO || args[2] === X86_SO_SNDTIMEO) && Buffer.isBuffer(args[3]) && args[4] === 16) {
      x86SockoptSeen++;
      args[2] = args[2] === X86_SO_RCVTIMEO ? PPC_SO_RCVTIMEO : PPC_SO_SNDTIMEO;
    }
    return original(nr, ...args);
  };
}
const SIGUSR1 = 10, SIGALRM = 14;
const SA_RESTART = 0x10000000n, SA_ONSTACK = 0x08000000n;
const PROT_READ_WRITE = 3, MAP_PRIVATE_ANON = 0x22;
// Node under TCG is 15-35x slower than on the host: generous waits.
const WAIT_MS = 60_000;
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-ppc64-'));
const waitFor = (what, probe, timeoutMs = WAIT_MS) => harness.waitFor(what, probe, timeoutMs);

// --- assertions beyond guest-harness.cjs's ------------------------------------------------
function throwsMatching(fn, check, what) {
  try {
    fn();
  } catch (e) {
    ok(check(e), `${what}: threw the wrong error: ${e && e.stack}`);
    return;
  }
  throw new AssertionError(`${what}: did not throw`);
}

// --- processes ------------------------------------------------------------------------------
function fixture(name) {
  const p = path.join(fixtureDir, name);
  ok(fs.existsSync(p), `fixture ${p} is missing (cross-built by run-vm-tests.sh)`);
  return p;
}

/** Starts `prog args` in its own session, stdout and stderr to a log of their own; not a child of node. */
function startDetached(prog, args = []) {
  return harness.startDetached([prog, ...args], path.join(logDir, `${path.basename(prog)}-${started.length}.log`));
}
const readLog = (v) => readText(v.log);
function lastCounter(v) {
  const nums = readLog(v).split('\n').filter((l) => /^\d+$/.test(l));
  return nums.length ? Number(nums[nums.length - 1]) : -1;
}
async function expectStillCounting(v) {
  const before = lastCounter(v);
  await waitFor(`victim ${v.pid} counting past ${before + 2}`, () => lastCounter(v) > before + 2);
}
async function startVictim() {
  const v = startDetached(fixture('victim'), ['/etc/hostname']);
  const m = await waitFor('victim READY', () => /READY (0x[0-9a-f]+) (\d+)/.exec(readLog(v)));
  return { v, pattern: BigInt(m[1]), fd: Number(m[2]) };
}
async function finishVictim(v) {
  process.kill(v.pid, 'SIGTERM');
  await waitFor('victim verdict', () => /PASS|FAIL/.exec(readLog(v)));
  ok(/PASS counter=\d+/.test(readLog(v)), `victim verdict: ${readLog(v).split('\n').filter((l) => !/^\d+$/.test(l)).join(' | ')}`);
  await waitFor('victim exit', () => !isAlive(v.pid));
}
const mapsText = (pid) => fs.readFileSync(`/proc/${pid}/maps`, 'latin1');

// --- the tests ------------------------------------------------------------------------------
/** The CPU model the suite relies on (scv in glibc, HWCAP2 bits): run.sh's default. */
function cpuIsPower9() {
  const cpu = /^cpu\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'latin1'));
  const platform = /^AT_PLATFORM:\s*(\S+)/m.exec(execFileSync('/bin/true', { env: { LD_SHOW_AUXV: '1' } }).toString());
  return { cpu: cpu ? cpu[1] : '?', platform: platform ? platform[1] : '?', ok: !!cpu && /^POWER9\b/.test(cpu[1]) && !!platform && platform[1] === 'power9' };
}

test('the guest is ppc64le on POWER9 with 64 KiB pages, and core picks the ppc64 arch', () => {
  const p9 = cpuIsPower9();
  ok(p9.ok, `the suite expects a POWER9 guest (PPC64_VM_CPU): /proc/cpuinfo cpu "${p9.cpu}", AT_PLATFORM ${p9.platform}`);
  eq(process.arch, 'ppc64', 'process.arch');
  eq(os.endianness(), 'LE', 'endianness');
  const ps = sys.pageSize();
  eq(ps, Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()), 'sys.pageSize() vs getconf');
  eq(ps, 65536, 'page size of the VM kernel');
  eq(core.hostArch().name, 'ppc64', 'hostArch().name');
  eq(core.hostArch().image.march, 4, 'hostArch().image.march');
});

test('syscalls run inside a frozen task (sc + trap, CR0.SO errors), which then runs on', async () => {
  const { v } = await startVictim();
  const ps = sys.pageSize();
  const mapsBefore = mapsText(v.pid);
  const vmasBefore = readMaps(v.pid);
  const task = FrozenTask.freeze(v.pid, arch);
  try {
    eq(task.savedRegs.length, arch.gpRegsSize, 'NT_PRSTATUS size');
    eq(Number(task.syscall('getpid')), v.pid, 'remote getpid');
    const addr = task.syscall('mmap', 0, ps, PROT_READ_WRITE, MAP_PRIVATE_ANON, -1, 0);
    eq(addr % BigInt(ps), 0n, 'mmap result is page aligned');
    const covers = (x) => x.start <= addr && addr + BigInt(ps) <= x.end;
    ok(!vmasBefore.some((x) => x.start < addr + BigInt(ps) && addr < x.end), 'the address was free before the mmap');
    const m = readMaps(v.pid).find(covers); // may have merged with a neighbouring anonymous vma
    ok(m !== undefined, `the remote mmap at 0x${addr.toString(16)} shows in /proc/${v.pid}/maps`);
    ok(m.perms.startsWith('rw'), `mapping perms ${m.perms}`);
    eq(task.syscall('munmap', addr, ps), 0n, 'remote munmap');
    eq(mapsText(v.pid), mapsBefore, 'maps after munmap');
    eq(task.rawSyscall('close', 9999), -9n, 'close(9999) = -EBADF');
    eq(task.rawSyscall('munmap', 1, 10), -22n, 'munmap(1, 10) = -EINVAL');
    throwsMatching(() => task.syscall('close', 9999), (e) => e instanceof core.RemoteSyscallError, 'syscall() throws on -errno');
  } finally {
    task.release();
  }
  eq(mapsText(v.pid), mapsBefore, 'maps after release');
  await expectStillCounting(v);
  await finishVictim(v);
});

test('the parasite reports task state, hands over fds, vmsplices memory, then the task is cured', async () => {
  const { v, pattern, fd } = await startVictim();
  const mapsBefore = mapsText(v.pid);
  const task = FrozenTask.freeze(v.pid, arch);
  let pipe;
  try {
    const parasite = Parasite.inject(task, { timeoutMs: WAIT_MS });
    try {
      const st = parasite.taskState();
      eq(st.umask, 0o27, 'umask');
      const usr1 = st.sigactions[SIGUSR1 - 1];
      ok(usr1.handler !== 0n, 'SIGUSR1 has a handler');
      eq(usr1.flags & SA_RESTART, SA_RESTART, 'SIGUSR1 SA_RESTART');
      eq(usr1.mask, 1n << 11n, 'SIGUSR1 sa_mask (SIGUSR2)');
      eq(st.sigactions[SIGALRM - 1].flags & SA_ONSTACK, SA_ONSTACK, 'SIGALRM SA_ONSTACK');
      eq(st.itimers[0].intervalSec, 1n, 'ITIMER_REAL interval');
      eq(st.sigaltstack.size, 65536n, 'sigaltstack size');
      ok(st.tidAddress !== 0n, 'tid address');

      const [dup] = parasite.receiveFds([fd]);
      try {
        eq(fs.readlinkSync(`/proc/self/fd/${dup}`), '/etc/hostname', 'received fd target');
      } finally {
        sys.close(dup);
      }
      throwsMatching(() => parasite.receiveFds([987]), (e) => e instanceof InfectError, 'receiveFds of a closed fd');

      pipe = sys.pipe2(0);
      parasite.setPipe(pipe[1]);
      eq(parasite.dumpPages([{ start: pattern, length: 8192 }]), 8192, 'bytes vmspliced');
      const got = Buffer.alloc(8192);
      let off = 0;
      while (off < got.length) off += fs.readSync(pipe[0], got, off, got.length - off, null);
      for (let i = 0; i < 8192; i++) if (got[i] !== ((i * 7 + 3) & 0xff)) throw new AssertionError(`pattern byte ${i} differs`);
    } finally {
      parasite.finish();
    }
  } finally {
    if (pipe) pipe.forEach((f) => sys.close(f));
    task.release();
  }
  eq(mapsText(v.pid), mapsBefore, 'maps after the parasite is gone');
  await expectStillCounting(v);
  await finishVictim(v);
});

test('a parasite torn down mid-session leaves the task as it was', async () => {
  const { v } = await startVictim();
  const mapsBefore = mapsText(v.pid);
  const task = FrozenTask.freeze(v.pid, arch);
  try {
    const parasite = Parasite.inject(task, { timeoutMs: WAIT_MS });
    parasite.taskState();
    parasite.abort();
  } finally {
    task.release();
  }
  eq(mapsText(v.pid), mapsBefore, 'maps after abort');
  await expectStillCounting(v);
  await finishVictim(v);
});

test('a blocking read() the task was frozen in restarts after injection and release', async () => {
  const fifo = path.join(logDir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const r = startDetached(fixture('fifo-reader'), [fifo]);
  await waitFor('fifo-reader READY', () => /READY/.test(readLog(r)));
  // Until it sleeps in read (ppc64 __NR_read = 3).
  await waitFor('fifo-reader blocked in read', () => /^3 /.test(fs.readFileSync(`/proc/${r.pid}/syscall`, 'latin1')));
  const task = FrozenTask.freeze(r.pid, arch);
  let trap;
  try {
    trap = Number(getReg(task.savedRegs, 'trap')) & ~0x1f;
    ok(trap === TRAP.SYSCALL || trap === TRAP.SCV, `frozen in a syscall (trap 0x${trap.toString(16)})`);
    eq(Number(task.syscall('getpid')), r.pid, 'remote getpid');
    const parasite = Parasite.inject(task, { timeoutMs: WAIT_MS });
    parasite.taskState();
    parasite.finish();
  } finally {
    task.release();
  }
  // Frozen again, it is back in the same read: same nip and syscall, every non-volatile register
  // as before (the kernel rewound it to re-execute the syscall instruction).
  await waitFor('fifo-reader blocked in read again', () => /^3 /.test(fs.readFileSync(`/proc/${r.pid}/syscall`, 'latin1')));
  const again = FrozenTask.freeze(r.pid, arch);
  try {
    const names = ['nip', 'r0', 'r1', 'r2', 'orig_gpr3', 'link', 'trap', ...Array.from({ length: 19 }, (_, i) => `r${13 + i}`)];
    for (const n of names) eq(getReg(again.savedRegs, n), getReg(task.savedRegs, n), `${n} after the restart`);
  } finally {
    again.release();
  }
  fs.writeFileSync(fifo, 'hello');
  await waitFor('fifo-reader verdict', () => /GOT|BAD/.test(readLog(r)));
  eq(readLog(r).trim().split('\n').pop(), 'GOT hello', `reader (frozen in ${trap === TRAP.SCV ? 'scv' : 'sc'})`);
  await waitFor('fifo-reader exit', () => !isAlive(r.pid));
  // glibc 2.36 makes syscalls with `scv 0` where the CPU has it (POWER9 on): the restart above went through scv.
  ok(cpuIsPower9().ok, 'a POWER9 guest');
  eq(trap, TRAP.SCV, 'the trap of a read() frozen on POWER9 (scv, 0x3000)');
  return 'task was in scv';
});

test('thread_info_ppc64 of a task blocked in read: restart fix-up, FP/VSX/VMX values; the parasite leaves them intact', async () => {
  const fifo = path.join(logDir, 'fifo-regs');
  execFileSync('mkfifo', [fifo]);
  const r = startDetached(fixture('regs-reader'), [fifo]);
  await waitFor('regs-reader READY', () => /READY/.test(readLog(r)));
  await waitFor('regs-reader blocked in read', () => /^3 /.test(fs.readFileSync(`/proc/${r.pid}/syscall`, 'latin1')));
  const task = FrozenTask.freeze(r.pid, arch);
  try {
    const saved = task.savedRegs;
    const ti = arch.dumpThreadInfo(r.pid, saved);
    const gp = ti.gpregs;
    // read() returned -ERESTARTSYS: the image resumes at the syscall instruction with r3 = fd.
    eq(gp.nip, getReg(saved, 'nip') - 4n, 'gpregs.nip rewound to the syscall instruction');
    eq(gp.gpr[3], getReg(saved, 'orig_gpr3'), 'gpregs.gpr[3] = orig_gpr3');
    eq(gp.gpr[0], 3n, 'gpregs.gpr[0] = __NR_read');
    eq(gp.trap, 0n, 'gpregs.trap cleared');
    eq(gp.gpr.length, 32, 'gpr count');
    for (const n of [1, 2, 13, 31]) eq(gp.gpr[n], getReg(saved, `r${n}`), `gpr[${n}]`);
    eq(ti.fpstate.fpregs.length, 33, 'fpregs count (FPR0-31 + FPSCR)');
    eq(ti.fpstate.fpregs[14], 0x3ff8000000000000n, 'FPR14 (= VSR14 doubleword 0)');
    eq(ti.vsxstate.vsxregs.length, 32, 'vsxregs count');
    eq(ti.vsxstate.vsxregs[14], 0x1122334455667788n, 'VSR14 doubleword 1');
    eq(ti.vrstate.vrregs.length, 66, 'vrregs count (VR0-31 + VSCR)');
    eq(ti.vrstate.vrregs[40], 0xa7a6a5a4a3a2a1a0n, 'VR20 low doubleword');
    eq(ti.vrstate.vrregs[41], 0xafaeadacabaaa9a8n, 'VR20 high doubleword');
    eq(ti.vrstate.vrsave, 0x5a5, 'VRSAVE');
    const back = images.decodeMessage('thread_info_ppc64', images.encodeMessage('thread_info_ppc64', ti));
    eq(back.gpregs.nip, gp.nip, 'thread_info_ppc64 encodes and decodes (nip)');
    eq(back.vrstate.vrregs[41], ti.vrstate.vrregs[41], 'thread_info_ppc64 encodes and decodes (vrregs)');
    const parasite = Parasite.inject(task, { timeoutMs: WAIT_MS });
    parasite.taskState();
    parasite.finish();
  } finally {
    task.release();
  }
  fs.writeFileSync(fifo, 'hello');
  await waitFor('regs-reader verdict', () => /GOT|BAD/.test(readLog(r)));
  eq(readLog(r).trim().split('\n').pop(), 'GOT hello', 'regs-reader: read restarted and VSR14/VR20 intact');
});

test('freezing a task that does not exist fails at seize', () => {
  throwsMatching(() => FrozenTask.freeze(2 ** 22 + 17, arch), (e) => /seize/.test(e.message), 'freeze of a missing pid');
});

test('core control socket uses the ppc64 socket option numbers (SO_RCVTIMEO 18, SO_SNDTIMEO 19)', () => {
  eq(x86SockoptSeen, 0, 'setsockopt calls core made with the x86_64 SO_RCVTIMEO/SO_SNDTIMEO numbers (20/21)');
});

// --- dump and restore of real programs ------------------------------------------------------
/*
 * The programs of tools/testprogs run in the guest, with their arguments and setup: mirrors
 * packages/core/test/helpers/programs.ts (TypeScript, which the guest cannot load).
 */
function writeFileioInput(file) {
  fs.writeFileSync(file, Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 251)));
}
function writeFilemapInput(file) {
  const b = Buffer.alloc(8 * 65536);
  let x = 0x2545f491;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  fs.writeFileSync(file, b);
}
const PROGRAMS = [
  { name: 'counter', settleMs: 200, rounds: 2 },
  { name: 'mem64' },
  { name: 'fileio', setup: (tmp) => writeFileioInput(path.join(tmp, 'fileio.in')), args: (tmp) => [path.join(tmp, 'fileio.in'), path.join(tmp, 'fileio.log')], settleMs: 300 },
  { name: 'cpuloop', settleMs: 300 },
  { name: 'sleeper', settleMs: 1000 },
  { name: 'signals' },
  { name: 'itimer', settleMs: 200 },
  // The guest kernel (6.1) lacks PR_TIMER_CREATE_RESTORE_IDS: the timer ids come back in sequence.
  { name: 'posixtimer', settleMs: 200 },
  // A zombie child and a stopped one: the zombie is not reaped, the stopped one stays stopped.
  { name: 'zombie' },
  { name: 'altstack', settleMs: 200 },
  { name: 'tls', settleMs: 200 },
  { name: 'rseq' },
  // Robust futex lists of two threads (one holding a lock) and a non-default personality.
  { name: 'robust', settleMs: 200, rounds: 2 },
  { name: 'envargs', args: () => ['alpha', 'two words', '', '--opt=\u00fc', "it's"] },
  { name: 'umaskcwd', setup: (tmp) => fs.mkdirSync(path.join(tmp, 'cwd'), { recursive: true }), args: (tmp) => [path.join(tmp, 'cwd')] },
  { name: 'rlimits' },
  { name: 'mprotect' },
  { name: 'madvise' },
  { name: 'filemap', setup: (tmp) => writeFilemapInput(path.join(tmp, 'filemap.bin')), args: (tmp) => [path.join(tmp, 'filemap.bin')] },
  { name: 'brk' },
  { name: 'selfexe' },
  // Multi-threaded and multi-process: all threads come back with their TIDs; the tree keeps its
  // parent/child links and the unread data in its pipe.
  { name: 'threads4', settleMs: 300 },
  { name: 'tree', settleMs: 300 },
  // Shared anonymous memory: one object for parent and child (64 KiB pages: 16 of them).
  { name: 'shmanon', settleMs: 300, rounds: 2 },
  // Deleted-but-open files (ghost files) and file locks (flock, POSIX, OFD).
  { name: 'ghost', args: (tmp) => [tmp], rounds: 2 },
  { name: 'ghostexe', args: (tmp) => [tmp], rounds: 2 },
  { name: 'flock', args: (tmp) => [tmp], rounds: 2 },
  // Sockets: socketpairs, named unix sockets (path and abstract), TCP listeners and UDP on loopback.
  { name: 'unixpair', rounds: 2 },
  // File kinds: eventfd, timerfd, signalfd, epoll (with its targets), memfd, FIFO, inotify.
  // (Not `eventfd sem`: 6.1's fdinfo does not show EFD_SEMAPHORE, so no dumper can see it there.)
  { name: 'eventfd' },
  { name: 'timerfd', args: () => ['expired'] },
  { name: 'signalfd' },
  { name: 'epoll' },
  { name: 'memfd' },
  { name: 'fifo', args: (tmp) => [path.join(tmp, 'fifo')] },
  { name: 'inotify', setup: (tmp) => fs.mkdirSync(path.join(tmp, 'watched')), args: (tmp) => [path.join(tmp, 'watched')] },
  { name: 'unixnamed', args: (tmp) => [tmp], rounds: 2 },
  { name: 'inetlisten', rounds: 2 },
  // A pty pair made by the program; the child's session has the slave as controlling terminal,
  // a grandchild's group is its foreground (fg), and the child keeps /dev/tty open (devtty).
  { name: 'ptypair', args: () => ['fg', 'devtty'], rounds: 2 },
  // Children sharing the parent's descriptor table (CLONE_FILES) or fs info (CLONE_FS); threads
  // and a child under BATCH, IDLE, FIFO and RR.
  { name: 'sharefiles', rounds: 2 },
  // A parent and a forked child sharing one open file description: one offset for both.
  { name: 'sharepos', args: (tmp) => [tmp], rounds: 2 },
  { name: 'sharefs', args: (tmp) => [tmp], rounds: 2 },
  { name: 'sched', settleMs: 200, rounds: 2 },
  // Children sharing the parent's address space (CLONE_VM), with and without its signal handlers.
  { name: 'sharevm', rounds: 2 },
  { name: 'sharevm', label: 'sharevm vmonly', args: () => ['vmonly'], rounds: 2 },
  // The init of a pid namespace of its own (with uts and ipc ones): pids there, names, sysctls.
  { name: 'pidns', readyPid: true, rounds: 2 },
];

function testprog(name) {
  const p = path.join(testprogDir, name);
  ok(fs.existsSync(p), `test program ${p} is missing (CC=powerpc64le-linux-gnu-gcc tools/testprogs/build.sh)`);
  return p;
}
/** The program's verdict line after SIGTERM (it may take a while: sleeper finishes a 5 s cycle). */
async function verdictOf(v, name) {
  process.kill(v.pid, 'SIGTERM');
  let m;
  try {
    m = await waitFor(`${name} verdict`, () => /^(PASS|FAIL) .*$/m.exec(readLog(v)), 90_000);
  } catch (e) {
    // What the kernel says of the task, and whether a second SIGTERM gets through.
    const read = (f) => { try { return fs.readFileSync(`/proc/${v.pid}/${f}`, 'latin1'); } catch (re) { return `(${re.code})`; } };
    const status = read('status').split('\n').filter((l) => /State|PPid|Tracer|Sig|Pnd/.test(l)).join(' | ');
    const seen = `${status} | syscall ${read('syscall').trim()} | wchan ${read('wchan')} | log ${JSON.stringify(readLog(v))}`;
    try { process.kill(v.pid, 'SIGTERM'); } catch { /* gone */ }
    await sleep(3000);
    throw new AssertionError(`${e.message}: ${seen}; after a second SIGTERM: log ${JSON.stringify(readLog(v))}; maps:\n${read('maps')}`);
  }
  await waitFor(`${name} exit`, () => !isAlive(v.pid));
  return m[0];
}
/** dump() then restore() of `v`, `rounds` times; returns the image directory of the last round. */
/** `newPid`: the root is a pid namespace's init, restored with another host pid (v.pid follows it). */
async function dumpAndRestore(v, work, rounds = 1, newPid = false) {
  let dir;
  for (let round = 1; round <= rounds; round++) {
    dir = path.join(work, `images-${round}`);
    fs.mkdirSync(dir); // dump() opens its log file before it creates the directory
    try {
      await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch });
    } catch (e) {
      throw new AssertionError(`dump (round ${round}): ${e.message}\n       dump.log: ${tail(path.join(dir, 'dump.log'))}`);
    }
    await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
    try {
      const r = await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch });
      if (newPid) v.pid = r.pid;
      else eq(r.pid, v.pid, 'restored PID');
    } catch (e) {
      throw new AssertionError(`restore (round ${round}): ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
    }
    await sleep(150);
    ok(isAlive(v.pid), `restored task ${v.pid} is running (round ${round}); its output: ${readLog(v).split('\n').slice(-5).join(' | ')}`);
  }
  return dir;
}
/** `readyPid`: the victim is the process the READY line names (pidns: its namespace init). */
async function launch(prog, name, args, readyPid = false) {
  const v = startDetached(prog, args);
  const m = await waitFor(`${name} READY`, () => new RegExp(`READY ${name} (\\d+)`).exec(readLog(v)));
  if (readyPid) v.pid = Number(m[1]);
  return v;
}

for (const p of PROGRAMS) {
  test(`criu-ts dump + restore${p.rounds > 1 ? ` (${p.rounds} rounds)` : ''}: ${p.label || p.name} passes its own checks`, async () => {
    const work = fs.mkdtempSync(path.join(logDir, `${p.name}-`));
    if (p.setup) p.setup(work);
    const v = await launch(testprog(p.name), p.name, p.args ? p.args(work) : [], p.readyPid);
    if (p.settleMs) await sleep(p.settleMs);
    await dumpAndRestore(v, work, p.rounds || 1, p.readyPid);
    const verdict = await verdictOf(v, p.name);
    ok(verdict.startsWith(`PASS ${p.name}`), `verdict: ${verdict}`);
  });
}

// A mount namespace of its own (not in PROGRAMS: it logs into its root, and its restore needs
// `root` and its external mount): proc, tmpfs, devpts, sysfs, binds, read-only mounts, pivot_root.
test('criu-ts dump + restore (2 rounds): mntns in a mount namespace of its own, with root and an external mount', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'mntns-'));
  const rootDir = path.join(work, 'root'), ext = path.join(work, 'ext');
  fs.mkdirSync(rootDir);
  fs.mkdirSync(ext);
  fs.writeFileSync(path.join(ext, 'marker'), 'ext-marker\n');
  const outer = startDetached(testprog('mntns'), [rootDir, ext]);
  const v = { pid: outer.pid, log: path.join(rootDir, 'log') };
  await waitFor('mntns READY', () => /READY mntns /.test(readLog(v)));
  for (let round = 1; round <= 2; round++) {
    const dir = path.join(work, `images-${round}`);
    fs.mkdirSync(dir);
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch, external: core.parseExternal(['mnt[/ext]:extkey', 'mnt[/proc/uptime]:devnull']) });
    await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
    ok(fs.readdirSync(dir).some((f) => /^mountpoints-\d+\.img$/.test(f)), 'a mountpoints image');
    try {
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch, root: rootDir, external: core.parseExternal([`mnt[extkey]:${ext}`, 'mnt[devnull]:/dev/null']) });
    } catch (e) {
      throw new AssertionError(`restore (round ${round}): ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
    }
    ok(isAlive(v.pid), `restored mntns ${v.pid} is running (round ${round})`);
  }
  const verdict = await verdictOf(v, 'mntns');
  ok(verdict === 'PASS mntns', `verdict: ${verdict}`);
});

test('vDSO: vdsotime dumped (leave-running) until threads are caught inside the vDSO: each runs out through a trap on a way out, none stays', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'vdsostep-'));
  const v = await launch(testprog('vdsotime'), 'vdsotime', []);
  await sleep(300);
  const caught = [];
  for (let i = 0; i < 15 && !caught.length; i++) {
    const dir = path.join(work, `images-${i}`);
    fs.mkdirSync(dir);
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch, leaveRunning: true });
    const lines = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8').split('\n').filter((l) => /inside the vDSO/.test(l));
    ok(!lines.some((l) => /still inside/.test(l)), `dump ${i}: a thread stayed inside the vDSO: ${lines.join(' | ')}`);
    caught.push(...lines);
  }
  ok(caught.length > 0, 'no dump caught a thread inside the vDSO (four threads calling it in a loop)');
  // ppc64 runs them out at full speed to a trap on a way out (blr, sc), then steps over it.
  // (A thread frozen right on a way out needs only the step over it.)
  ok(caught.some((l) => /stepped out \([1-9]\d* run\(s\) to a way out, [1-9]\d* single step\(s\)\)/.test(l)), `none was run out through a trap: ${caught.join(' | ')}`);
  ok(isAlive(v.pid), 'vdsotime runs on after the dumps');
  const verdict = await verdictOf(v, 'vdsotime');
  ok(verdict.startsWith('PASS vdsotime'), `verdict: ${verdict}`);
  return caught.map((l) => l.replace(/^\(\S+\) /, '')).join('; ');
});

test('vDSO proxy (forced, 2 rounds): vdsotime runs on through the two-step trampoline; threads inside the vDSO are stepped out', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'vdsoproxy-'));
  const v = await launch(testprog('vdsotime'), 'vdsotime', []);
  await sleep(300);
  const notes = [];
  for (let round = 1; round <= 2; round++) {
    const dir = path.join(work, `images-${round}`);
    fs.mkdirSync(dir);
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch });
    const dumpLog = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
    const stepped = dumpLog.split('\n').filter((l) => /inside the vDSO/.test(l));
    ok(!stepped.some((l) => /still inside/.test(l)), `a thread stayed inside the vDSO: ${stepped.join(' | ')}`);
    // The second dump is of a task restored with a proxy: it knows the proxy for what it is.
    if (round === 2) ok(/is a vDSO proxy from an earlier restore, forwarding to the vDSO at 0x[0-9a-f]+/.test(dumpLog), `round 2: the dump did not recognise the proxy: ${tail(path.join(dir, 'dump.log'))}`);
    notes.push(`round ${round}: ${stepped.length} thread(s) stepped out`);
    await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
    try {
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch, vdso: 'proxy' });
    } catch (e) {
      throw new AssertionError(`restore (round ${round}): ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
    }
    const log = fs.readFileSync(path.join(dir, 'restore.log'), 'utf8');
    ok(/vDSO proxy forwards [1-9]\d* symbols/.test(log), `the restore built a proxy: ${tail(path.join(dir, 'restore.log'))}`);
    const maps = readMaps(v.pid);
    ok(maps.some((m) => m.name === '' && m.perms === 'r-xp'), 'the proxy (anonymous r-x) is mapped');
    await sleep(500);
    ok(isAlive(v.pid), `vdsotime runs after the proxied restore (round ${round}): ${readLog(v).split('\n').slice(-3).join(' | ')}`);
  }
  const verdict = await verdictOf(v, 'vdsotime');
  ok(verdict.startsWith('PASS vdsotime'), `verdict: ${verdict}`);
  return notes.join(', ');
});

/** A new connection and GET / to 127.0.0.1:port; the answer's body. */
function httpGet(port) {
  const http = require('node:http');
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: WAIT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new AssertionError(`no HTTP answer from port ${port}`)));
    req.on('error', reject);
  });
}

test('criu-ts dump + restore of `node server.js` (an http server on 127.0.0.1 and a setInterval timer): a new request is answered, the timer ticks on', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'node-server-'));
  const script = path.join(work, 'server.js');
  fs.writeFileSync(script, [
    "const http = require('http');",
    'let ticks = 0;',
    'setInterval(() => { ticks++; }, 50);',
    "const server = http.createServer((req, res) => res.end('ticks ' + ticks + ' pid ' + process.pid + '\\n'));",
    "server.listen(0, '127.0.0.1', () => console.log('READY ' + process.pid + ' ' + server.address().port));",
  ].join('\n'));
  const v = startDetached(process.execPath, [script]);
  const m = await waitFor('server READY', () => /READY (\d+) (\d+)/.exec(readLog(v)), 120_000);
  const port = Number(m[2]);
  const ticks = (a) => Number((/^ticks (\d+) /.exec(a) || [])[1]);
  const first = ticks(await httpGet(port));
  // The server closes each connection after answering: only the listener may be left.
  const sockets = () => fs.readdirSync(`/proc/${v.pid}/fd`).filter((f) => { try { return fs.readlinkSync(`/proc/${v.pid}/fd/${f}`).startsWith('socket:'); } catch { return false; } });
  await waitFor('only the listening socket left', () => sockets().length === 1);
  const threads = fs.readdirSync(`/proc/${v.pid}/task`).length;
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  try {
    await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch });
  } catch (e) {
    throw new AssertionError(`dump: ${e.message}\n       dump.log: ${tail(path.join(dir, 'dump.log'))}`);
  }
  await waitFor(`dumped node ${v.pid} gone`, () => !isAlive(v.pid));
  try {
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch });
  } catch (e) {
    throw new AssertionError(`restore: ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  }
  const answer = await httpGet(port);
  ok(new RegExp(`^ticks \\d+ pid ${v.pid}\\n$`).test(answer), `answer after restore: ${JSON.stringify(answer)}`);
  const after = ticks(answer);
  ok(after >= first, `ticks ${first} before the dump, ${after} after the restore`);
  let later = after;
  for (let i = 0; i < 100 && later <= after; i++) {
    await new Promise((r) => setTimeout(r, 200));
    later = ticks(await httpGet(port));
  }
  ok(later > after, `the timer ticks after the restore (${after} -> ${later})`);
  eq(fs.readdirSync(`/proc/${v.pid}/task`).length, threads, 'threads after the restore');
  process.kill(v.pid, 'SIGKILL');
  return `node ${process.version}, ${threads} threads: ticks ${first} -> ${after} -> ${later}`;
});

test('criu-ts dump + restore (2 rounds): all 64 VSRs, FPSCR, VSCR and VRSAVE hold their patterns; the thread stays a VMX/VSX user', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'vecregs-'));
  const v = await launch(fixture('vecregs'), 'vecregs', []);
  // Sleeping in pause() with every pattern in place (the asm prints READY after loading them).
  await waitFor('vecregs in pause', () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const dir = await dumpAndRestore(v, work, 2);
  const core = await images.readImageFile(path.join(dir, `core-${v.pid}.img`));
  const ti = core.entries[0].message.ti_ppc64;
  const use = vectorUse(ti);
  ok(use.vmx && use.vsx, `the image shows VMX and VSX in use: ${JSON.stringify(use)}`);
  eq(BigInt(ti.gpregs.msr) & (MSR.VEC | MSR.VSX), MSR.VEC | MSR.VSX, 'MSR_VEC | MSR_VSX in the image\'s gpregs.msr');
  const verdict = await verdictOf(v, 'vecregs');
  ok(verdict.startsWith('PASS vecregs'), `verdict: ${verdict}`);
  return verdict.replace(/^PASS vecregs /, '');
});

test('criu-ts dump + restore of a program that never used VMX/VSX: MSR_VEC/MSR_VSX stay off (signal frame, ptrace)', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'novec-'));
  const v = await launch(fixture('novec'), 'novec', []);
  await waitFor('novec in pause', () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const dir = await dumpAndRestore(v, work, 1);
  const core = await images.readImageFile(path.join(dir, `core-${v.pid}.img`));
  const ti = core.entries[0].message.ti_ppc64;
  const vr = ti.vrstate.vrregs;
  eq(JSON.stringify(vectorUse(ti)), JSON.stringify({ vmx: false, vsx: false }),
    `units in use by the image (VSCR slot ${fmt(vr[64])} ${fmt(vr[65])}, vrsave ${ti.vrstate.vrsave})`);
  eq(BigInt(ti.gpregs.msr) & (MSR.VEC | MSR.VSX), 0n, 'MSR_VEC | MSR_VSX in the image\'s gpregs.msr');
  // The MSR the kernel holds for the restored task (user MSR as ptrace shows it), once it waits
  // in pause() again: not while it is still on its way back there from the restore.
  await waitFor('restored novec in pause', () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const task = FrozenTask.freeze(v.pid, arch);
  let msr;
  try {
    msr = getReg(task.savedRegs, 'msr');
  } finally {
    task.release();
  }
  eq(msr & (MSR.VEC | MSR.VSX), 0n, `MSR_VEC | MSR_VSX of the restored task (msr ${fmt(msr)})`);
  const verdict = await verdictOf(v, 'novec');
  ok(verdict.startsWith('PASS novec'), `verdict: ${verdict}`);
  return `ptrace msr 0x${msr.toString(16)}, ${verdict.replace(/^PASS novec /, 'frame ')}`;
});

test('criu-ts dump + restore (2 rounds) of a program whose only vector instruction is one scalar VSX add: it stays a VSX user (the kernel\'s view, from a signal frame)', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'scalarvsx-'));
  const v = await launch(fixture('scalarvsx'), 'scalarvsx', []);
  await waitFor('scalarvsx in pause', () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const before = /READY scalarvsx \d+ msr=([0-9a-f]+)/.exec(readLog(v));
  ok(before, `READY line: ${readLog(v)}`);
  const dir = await dumpAndRestore(v, work, 2);
  const core = await images.readImageFile(path.join(dir, `core-${v.pid}.img`));
  const ti = core.entries[0].message.ti_ppc64;
  // Every low VSX doubleword is zero: the registers alone would say "never used VSX".
  const values = vectorUseFromValues(ti);
  eq(values.vsx, false, `VSX in use as the register values show it (${JSON.stringify(values)}, VSCR slot ${fmt(ti.vrstate.vrregs[64])} ${fmt(ti.vrstate.vrregs[65])})`);
  eq(BigInt(ti.gpregs.msr) & (MSR.VEC | MSR.VSX), BigInt('0x' + before[1]) & (MSR.VEC | MSR.VSX), 'MSR_VEC | MSR_VSX in the image = those of its own signal frame before the dump');
  ok((BigInt(ti.gpregs.msr) & MSR.VSX) !== 0n, 'MSR_VSX in the image');
  const log = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8');
  ok(/its signal frame says \{"vmx":(true|false),"vsx":true\}/.test(log), `the dump took the kernel's view: ${log.split('\n').filter((l) => /signal frame/.test(l)).join(' | ')}`);
  const verdict = await verdictOf(v, 'scalarvsx');
  ok(verdict.startsWith('PASS scalarvsx'), `verdict: ${verdict}`);
  return `before msr=${before[1]}, ${verdict.replace(/^PASS scalarvsx /, 'after ')}; values say ${JSON.stringify(values)}`;
});

test('a dumper killed while the parasite runs: the parasite resumes the task by rt_sigreturn (all vector state intact)', async () => {
  const v = await launch(fixture('vecregs'), 'vecregs', []);
  await waitFor('vecregs in pause', () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const mapsBefore = readMaps(v.pid).length;
  // The dumper: another node process that freezes the task, injects the parasite and dies.
  const script = `
    const core = require(${JSON.stringify(path.join(root, 'packages/core/dist/index.cjs'))});
    const { ppc64 } = require(${JSON.stringify(path.join(root, 'arch/ppc64/dist/index.cjs'))});
    const task = core.FrozenTask.freeze(${v.pid}, ppc64);
    const p = core.Parasite.inject(task, { timeoutMs: 60000 });
    console.log('INJECTED selfResume=' + p.selfResume + (p.selfResumeError ? ' ' + p.selfResumeError.message : ''));
    process.kill(process.pid, 'SIGKILL');`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  ok(/INJECTED selfResume=true/.test(r.stdout), `the dumper injected the parasite with a self-resume frame: ${r.stdout} ${r.stderr}`);
  eq(r.signal, 'SIGKILL', 'the dumper died by SIGKILL');
  const status = () => fs.readFileSync(`/proc/${v.pid}/status`, 'latin1');
  await waitFor('the task untraced and back in pause', () => /TracerPid:\s+0\b/.test(status()) && /^State:\s+S/m.test(status())
    && /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
  const left = readMaps(v.pid).length - mapsBefore;
  const verdict = await verdictOf(v, 'vecregs');
  ok(verdict.startsWith('PASS vecregs'), `verdict: ${verdict}`);
  return `${left} mapping(s) left behind by the parasite`;
});

// Iterative dumps under the VM's kernel, which has soft-dirty bits (x86_64 jest covers uffd-wp).
async function memdirtyRound(v, round) {
  process.kill(v.pid, 'SIGUSR1');
  await waitFor(`DIRTIED ${round}`, () => new RegExp(`^DIRTIED ${round} `, 'm').test(readLog(v)));
}
/** Indices (in memdirty's region, from its "MEM <address> <bytes>" line) of the pages a pagemap saves. */
function presentInRegion(runs, region, ps) {
  const out = [];
  for (const r of runs) {
    if (!(r.flags & images.PE_PRESENT)) continue;
    const first = Number((r.vaddr - region.start) / BigInt(ps));
    for (let i = 0; i < r.nrPages; i++) if (first + i >= 0 && first + i < region.pages) out.push(first + i);
  }
  return out;
}
test('iterative dumps (soft-dirty), 1 GiB: three pre-dumps then a dump of memdirty write only the changed pages; the chain restores', async () => {
  const MIB = 1024, ps = 65536, npages = (MIB << 20) / ps, dirtied = Math.ceil(npages / 20);
  // The images go to the guest's /tmp, a tmpfs (over 9p a GiB is slow): the VM has 4 GiB for it.
  const work = fs.mkdtempSync(path.join(logDir, 'incr-'));
  const fsType = (fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((m) => m[1] && work.startsWith(m[1])).sort((x, y) => y[1].length - x[1].length)[0] || [])[2];
  const thp = (() => { try { return fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim(); } catch { return 'no THP'; } })();
  // Soft-dirty bits of a THP cover the whole huge page: the test wants small-page granularity.
  const v = await launch(testprog('memdirty'), 'memdirty', [String(MIB), 'nothp']);
  const mem = /^MEM ([0-9a-f]+) (\d+)$/m.exec(readLog(v));
  ok(mem, `memdirty printed its region: ${readLog(v)}`);
  const region = { start: BigInt(`0x${mem[1]}`), pages: Number(mem[2]) / ps };
  eq(region.pages, npages, 'region pages');
  const dir = (n) => path.join(work, `it${n}`);
  const pagemap = (n) => images.pageRuns(images.decodeImageEntries(fs.readFileSync(path.join(dir(n), `pagemap-${v.pid}.img`))).entries, ps);
  const first = await dump({ pid: v.pid, imagesDir: dir(1), preDump: true, trackMem: true, arch });
  eq(first.stats.memTrack, 'soft-dirty', 'tracking method');
  ok(first.stats.pagesWritten >= npages, `first pre-dump wrote ${first.stats.pagesWritten} pages`);
  eq(presentInRegion(pagemap(1), region, ps).length, npages, 'region pages in the first pre-dump');
  let last, sd, inRegion;
  for (let n = 2; n <= 4; n++) {
    const round = n - 2;
    await memdirtyRound(v, round);
    last = await dump({ pid: v.pid, imagesDir: dir(n), preDump: n < 4, trackMem: true, parentImagesDir: `../it${n - 1}`, logFile: 'dump.log', logLevel: 4, arch });
    eq(fs.readlinkSync(path.join(dir(n), 'parent')), `../it${n - 1}`, 'parent link');
    const s = last.stats;
    const rollup = (() => { try { return fs.readFileSync(`/proc/${v.pid}/smaps_rollup`, 'utf8').split('\n').filter((l) => /AnonHuge|Rss/.test(l)).join(', '); } catch { return ''; } })();
    // Of the region, exactly the rewritten 5% (index % 20 == round).
    const runs = pagemap(n);
    inRegion = presentInRegion(runs, region, ps);
    ok(inRegion.length === dirtied && inRegion.every((p) => p % 20 === round), `iteration ${n}: ${inRegion.length} region pages saved, ${dirtied} rewritten (${inRegion.filter((p) => p % 20 !== round).length} not rewritten; THP: ${thp}; ${rollup})`);
    ok(s.pagesWritten >= dirtied && s.pagesWritten < dirtied + npages / 100, `iteration ${n}: ${s.pagesWritten} pages written, ${dirtied} rewritten`);
    ok(s.pagesSkippedParent > npages - dirtied - npages / 100, `iteration ${n}: ${s.pagesSkippedParent} pages left in the parent`);
    const present = runs.filter((r) => r.flags & images.PE_PRESENT).reduce((a, r) => a + r.nrPages, 0);
    const parent = runs.filter((r) => r.flags & images.PE_PARENT).reduce((a, r) => a + r.nrPages, 0);
    eq(present, s.pagesWritten, 'PE_PRESENT pages in the pagemap');
    eq(parent, s.pagesSkippedParent, 'PE_PARENT pages in the pagemap');
    // stats-dump says the same.
    sd = images.decodeImageEntries(fs.readFileSync(path.join(dir(n), 'stats-dump'))).entries[0].message.dump;
    eq(Number(sd.pages_written), present, 'stats-dump pages_written');
    eq(Number(sd.pages_skipped_parent), parent, 'stats-dump pages_skipped_parent');
  }
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  await restore({ imagesDir: dir(4), logFile: 'restore.log', logLevel: 4, arch });
  await memdirtyRound(v, 3);
  // A full dump of the same task, for the frozen-time comparison (left running); the chain
  // goes first, or the guest's tmpfs would hold two copies of the GiB.
  for (let n = 1; n <= 4; n++) fs.rmSync(dir(n), { recursive: true });
  const full = await dump({ pid: v.pid, imagesDir: path.join(work, 'full'), leaveRunning: true, arch });
  // memdirty checks every page of the region against its generation.
  const verdict = await verdictOf(v, 'memdirty');
  ok(verdict.startsWith('PASS memdirty'), `verdict: ${verdict}`);
  fs.rmSync(path.join(work, 'full'), { recursive: true });
  return `images on ${fsType}; final dump: frozen ${Math.round(Number(sd.frozen_time) / 1000)} ms, ${last.stats.pagesWritten} pages written (${inRegion.length} of the region's ${npages}), ${last.stats.pagesSkippedParent} in the parents; first pre-dump ${first.stats.pagesWritten} pages, frozen ${Math.round(first.stats.frozenTimeUs / 1000)} ms; full dump ${full.stats.pagesWritten} pages, frozen ${Math.round(full.stats.frozenTimeUs / 1000)} ms`;
});

test("criu-ts restores Debian's criu pre-dump + dump chain (--track-mem, --prev-images-dir)", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const work = fs.mkdtempSync(path.join(logDir, 'criu-incr-'));
  const v = await launch(testprog('memdirty'), 'memdirty', ['16']);
  const run = (args) => {
    const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu ${args}`], { encoding: 'utf8' });
    ok(r.status === 0, `criu ${args}: exit ${r.status} ${r.stderr}`);
  };
  fs.mkdirSync(path.join(work, '1'));
  fs.mkdirSync(path.join(work, '2'));
  run(`pre-dump -t ${v.pid} -D '${work}/1' --track-mem -v4 -o pre.log`);
  await memdirtyRound(v, 0);
  run(`dump -t ${v.pid} -D '${work}/2' --track-mem --prev-images-dir ../1 -v4 -o dump.log`);
  const runs = images.pageRuns(images.decodeImageEntries(fs.readFileSync(path.join(work, '2', `pagemap-${v.pid}.img`))).entries, 65536);
  const parent = runs.filter((r) => r.flags & images.PE_PARENT).reduce((a, r) => a + r.nrPages, 0);
  ok(parent > 0, 'CRIU wrote PE_PARENT entries');
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  await restore({ imagesDir: path.join(work, '2'), logFile: 'restore.log', logLevel: 4, arch });
  const verdict = await verdictOf(v, 'memdirty');
  ok(verdict.startsWith('PASS memdirty'), `verdict: ${verdict}`);
  return `CRIU left ${parent} pages in the parent; link ${fs.readlinkSync(path.join(work, '2', 'parent'))}`;
});

test("Debian's criu restores a criu-ts pre-dump + dump chain", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const work = fs.mkdtempSync(path.join(logDir, 'ours-incr-'));
  const v = await launch(testprog('memdirty'), 'memdirty', ['16']);
  await dump({ pid: v.pid, imagesDir: path.join(work, '1'), preDump: true, trackMem: true, arch });
  await memdirtyRound(v, 0);
  await dump({ pid: v.pid, imagesDir: path.join(work, '2'), trackMem: true, parentImagesDir: '../1', arch });
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  const dir = path.join(work, '2');
  const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu restore -D '${dir}' -d -v4 -o criu-restore.log`], { encoding: 'utf8' });
  ok(r.status === 0, `criu restore: exit ${r.status} ${r.stderr}\n       criu-restore.log: ${tail(path.join(dir, 'criu-restore.log'))}`);
  await sleep(150);
  const verdict = await verdictOf(v, 'memdirty');
  ok(verdict.startsWith('PASS memdirty'), `verdict: ${verdict}`);
});

test("Debian's criu restores what criu-ts dumped: counter, and vecregs with every FP/vector register", async () => {
  const version = spawnSync('criu', ['--version'], { encoding: 'utf8' });
  ok(version.status === 0, `criu --version: ${version.error ? version.error.message : version.stderr}`);
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  // (Not novec: CRIU's restore turns MSR_VEC/MSR_VSX on for every thread with VMX/VSX state in the
  // image, so novec's own check fails after a CRIU restore by design; criu-ts restores only the
  // units in use, and records just those in the image's MSR, which is what lets CRIU restore
  // vecregs' vector registers from our images.)
  for (const [name, prog] of [['counter', testprog('counter')], ['vecregs', fixture('vecregs')]]) {
    const work = fs.mkdtempSync(path.join(logDir, `criu-${name}-`));
    const v = await launch(prog, name, []);
    if (name === 'counter') await sleep(200);
    else await waitFor(`${name} in pause`, () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
    const dir = path.join(work, 'images');
    fs.mkdirSync(dir);
    await dump({ pid: v.pid, imagesDir: dir, arch });
    await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
    const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu restore -D '${dir}' -d -v4 -o criu-restore.log`], { encoding: 'utf8' });
    ok(r.status === 0, `criu restore of ${name}: exit ${r.status} ${r.stderr}\n       criu-restore.log: ${tail(path.join(dir, 'criu-restore.log'))}`);
    await sleep(150);
    ok(isAlive(v.pid), `${name} runs after the criu restore`);
    const verdict = await verdictOf(v, name);
    ok(verdict.startsWith(`PASS ${name}`), `${name} after the criu restore: ${verdict}`);
  }
  return version.stdout.trim().split('\n')[0];
});

test("criu-ts restores what Debian's criu dumped: counter, vecregs, and novec stays a non-vector thread", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const notes = [];
  for (const [name, prog] of [['counter', testprog('counter')], ['vecregs', fixture('vecregs')], ['novec', fixture('novec')]]) {
    const work = fs.mkdtempSync(path.join(logDir, `oracle-${name}-`));
    const v = await launch(prog, name, []);
    if (name === 'counter') await sleep(200);
    else await waitFor(`${name} in pause`, () => /^29 /.test(fs.readFileSync(`/proc/${v.pid}/syscall`, 'latin1')));
    const dir = path.join(work, 'images');
    fs.mkdirSync(dir);
    const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu dump -t ${v.pid} -D '${dir}' -v4 -o criu-dump.log`], { encoding: 'utf8' });
    ok(r.status === 0, `criu dump of ${name}: exit ${r.status} ${r.stderr}\n       criu-dump.log: ${tail(path.join(dir, 'criu-dump.log'))}`);
    await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
    if (name === 'novec') {
      const core = await images.readImageFile(path.join(dir, `core-${v.pid}.img`));
      const msr = BigInt(core.entries[0].message.ti_ppc64.gpregs.msr);
      notes.push(`CRIU's novec image msr 0x${msr.toString(16)}`);
    }
    try {
      await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch });
    } catch (e) {
      throw new AssertionError(`restore of CRIU's ${name} images: ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
    }
    await sleep(150);
    const verdict = await verdictOf(v, name);
    ok(verdict.startsWith(`PASS ${name}`), `${name} after criu dump + criu-ts restore: ${verdict}`);
  }
  return notes.join(', ');
});

// --- a shell job on an outside terminal (mirrors packages/core/test/pty.test.ts, --shell-job) ---
test('--shell-job: a shell job comes back on the restorer\'s terminal, in its session and foreground, and reads from it', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'shelljob-'));
  const screen = (log) => readText(log).replace(/\r/g, '');
  const stat = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'latin1').replace(/^.*\) /s, '').split(' '); return `session ${f[3]} pgrp ${f[2]} tty_nr ${f[4]} tpgid ${f[5]}`; };
  // pty-run: a terminal whose command leads its session; bash -c 'set -m; ...' runs the job in
  // its own group, in the foreground.
  const jobLog = path.join(work, 'job-tty.log');
  startDetached(fixture('pty-run'), [jobLog, 'bash', '-c', `set -m; '${fixture('shell-job')}'; exec sleep 1000`]);
  const m = await waitFor('shell-job READY', () => /READY (\S+) (\d+)/.exec(screen(jobLog)));
  const pid = Number(m[2]);
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  await dump({ pid, imagesDir: dir, shellJob: true, logFile: 'dump.log', logLevel: 4, arch });
  await waitFor(`dumped task ${pid} gone`, () => !fs.existsSync(`/proc/${pid}`));
  // The restorer: core's restore() in a node process of its own on a new terminal, under bash.
  const script = path.join(work, 'restorer.cjs');
  fs.writeFileSync(script, [
    `const { restore } = require(${JSON.stringify(path.join(root, 'packages/core/dist/index.cjs'))});`,
    'restore({ imagesDir: process.argv[2], shellJob: true, detach: false, logFile: "restore.log", logLevel: 4 })',
    '  .then((r) => console.log("RESTORED " + r.pid), (e) => { console.log("RESTORE FAILED " + e.message); process.exit(1); });',
  ].join('\n'));
  const rLog = path.join(work, 'restorer-tty.log');
  const term = startDetached(fixture('pty-run'), [rLog, 'bash', '-c', `set -m; '${process.execPath}' '${script}' '${dir}'; echo "restorer exit $?"; exec sleep 1000`]);
  const h = await waitFor('the restorer terminal', () => /^PTYRUN (\S+) (\d+)/.exec(screen(rLog)));
  const pts = h[1], bash = Number(h[2]);
  await waitFor(`task ${pid} restored on ${pts}`, () => /restore step 15\/15/.test(readText(path.join(dir, 'restore.log'))) || /RESTORE FAILED.*/.exec(screen(rLog)), 120_000);
  ok(!/RESTORE FAILED/.test(screen(rLog)), `restore: ${screen(rLog)}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  eq(fs.readlinkSync(`/proc/${pid}/fd/0`), pts, 'the job\'s stdin');
  eq(stat(pid), `session ${bash} pgrp ${pid} tty_nr ${fs.statSync(pts).rdev} tpgid ${pid}`, 'the job in the caller\'s session, its own group, the foreground');
  process.kill(term.pid, 'SIGUSR1');
  const verdict = await waitFor('the job\'s verdict', () => /(PASS|FAIL) shell-job.*/.exec(screen(rLog)));
  eq(verdict[0], `PASS shell-job ping on ${pts}`, 'verdict');
  await waitFor('the restorer to exit', () => /restorer exit \d+/.exec(screen(rLog)));
  ok(screen(rLog).includes(`RESTORED ${pid}\nrestorer exit 0`), `restorer: ${screen(rLog)}`);
});

// --- real programs, started as a user would (mirrors packages/core/test/real-programs.test.ts) --
const realprogs = path.join(root, 'tools/realprogs');
const childrenOf = (pid) => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
const commOf = (pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
const wcharOf = (pid) => Number(/wchar: (\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))[1]);

test('a shell pipeline (sh -c "yes | cat | wc -c > FILE"): every stage comes back and the byte count keeps growing', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'pipeline-'));
  const count = path.join(work, 'count');
  const sh = startDetached('/bin/sh', ['-c', `yes | cat | wc -c > '${count}'`]);
  // Three children that have exec'd their programs (a child is "sh" until its exec).
  const names = (c) => c.map((p) => { try { return commOf(p); } catch { return '?'; } }).sort().join(' ');
  const stages = await waitFor('three pipeline stages', () => { const c = childrenOf(sh.pid); return c.length === 3 && names(c) === 'cat wc yes' && c; });
  const byName = Object.fromEntries(stages.map((p) => [commOf(p), p]));
  await dumpAndRestore(sh, work, 1);
  eq(childrenOf(sh.pid).sort().join(' '), [...stages].sort().join(' '), 'the stages are children of sh again');
  const w0 = wcharOf(byName.cat);
  await waitFor('cat to write more', () => wcharOf(byName.cat) > w0 + (1 << 20));
  const w1 = wcharOf(byName.cat);
  process.kill(byName.yes, 'SIGTERM');
  await waitFor('sh to finish', () => !isAlive(sh.pid));
  const total = Number(fs.readFileSync(count, 'utf8').trim());
  ok(total >= w1 && total % 2 === 0, `wc counted ${total} bytes (cat wrote ${w1} since the restore)`);
  return `${total} bytes`;
});

for (const [name, prog, args] of [['python', 'python3', (work) => [path.join(realprogs, 'counter.py'), path.join(work, 'python.log')]],
  ['node', process.execPath, () => [path.join(realprogs, 'timer.js')]]]) {
  test(`a ${name} program as a user runs it: dump + restore, it goes on and passes its own checks`, async () => {
    const work = fs.mkdtempSync(path.join(logDir, `${name}-`));
    const v = await launch(prog, name, args(work));
    await dumpAndRestore(v, work, 1);
    const verdict = await verdictOf(v, name);
    ok(verdict.startsWith(`PASS ${name}`), `verdict: ${verdict}`);
  });
}
test("criu-ts restores what Debian's criu dumped: shmanon (shared anonymous memory of parent and child)", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const work = fs.mkdtempSync(path.join(logDir, 'oracle-shmanon-'));
  const v = await launch(testprog('shmanon'), 'shmanon', []);
  const child = Number(/^child (\d+)$/m.exec(readLog(v))[1]);
  await sleep(300);
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu dump -t ${v.pid} -D '${dir}' -v4 -o criu-dump.log`], { encoding: 'utf8' });
  ok(r.status === 0, `criu dump of shmanon: exit ${r.status} ${r.stderr}\n       criu-dump.log: ${tail(path.join(dir, 'criu-dump.log'))}`);
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  await waitFor(`dumped task ${child} gone`, () => !fs.existsSync(`/proc/${child}`));
  // How this CRIU recorded the shared mappings (memfd vmas or VMA_ANON_SHARED).
  const mm = await images.readImageFile(path.join(dir, `mm-${v.pid}.img`));
  const kinds = [...new Set(mm.entries[0].message.vmas.filter((x) => Number(x.flags) & 1).map((x) => `0x${Number(x.status).toString(16)}`))];
  try {
    await restore({ imagesDir: dir, logFile: 'restore.log', logLevel: 4, arch });
  } catch (e) {
    throw new AssertionError(`restore of CRIU's shmanon images: ${e.message}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  }
  await sleep(150);
  ok(isAlive(child), `the child ${child} runs after the restore`);
  const verdict = await verdictOf(v, 'shmanon');
  ok(verdict.startsWith('PASS shmanon'), `shmanon after criu dump + criu-ts restore: ${verdict}`);
  return `shared vma status ${kinds.join(', ')}`;
});

test("Debian's criu restores what criu-ts dumped: shmanon (one shared object for parent and child)", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const work = fs.mkdtempSync(path.join(logDir, 'criu-shmanon-'));
  const v = await launch(testprog('shmanon'), 'shmanon', []);
  const child = Number(/^child (\d+)$/m.exec(readLog(v))[1]);
  await sleep(300);
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  await dump({ pid: v.pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch });
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  await waitFor(`dumped task ${child} gone`, () => !fs.existsSync(`/proc/${child}`));
  const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu restore -D '${dir}' -d -v4 -o criu-restore.log`], { encoding: 'utf8' });
  ok(r.status === 0, `criu restore of shmanon: exit ${r.status} ${r.stderr}\n       criu-restore.log: ${tail(path.join(dir, 'criu-restore.log'))}`);
  await sleep(150);
  ok(isAlive(child), `the child ${child} runs after the criu restore`);
  const verdict = await verdictOf(v, 'shmanon');
  ok(verdict.startsWith('PASS shmanon'), `shmanon after criu-ts dump + criu restore: ${verdict}`);
});

// --- across kernels (arch/ppc64/test/vm-cross-kernel.test.ts boots the VM once per step) ---------
/*
 * Step 1, booted on one kernel: vdsotime is dumped into tools/ppc64/build/xkernel/<uname -r>/.
 * Step 2, booted on the other kernel: the images of the first kernel are restored (the vDSO
 * differs, so the restore must proxy it) and vdsotime must pass its own checks. The log and the
 * images live in the shared folder, which both boots see at the same path.
 */
const xkernelRoot = path.join(__dirname, 'build', 'xkernel');
const kernelRelease = () => fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();

test('cross-kernel: restore vdsotime dumped on the other kernel; the vDSO is proxied and the program passes', async () => {
  const here = kernelRelease();
  const from = fs.existsSync(xkernelRoot) ? fs.readdirSync(xkernelRoot).filter((d) => d !== here && fs.existsSync(path.join(xkernelRoot, d, 'images', 'inventory.img'))) : [];
  ok(from.length === 1, `one image set dumped on another kernel in ${xkernelRoot} (found: ${JSON.stringify(from)})`);
  const work = path.join(xkernelRoot, from[0]);
  const dir = path.join(work, 'images');
  const v = JSON.parse(fs.readFileSync(path.join(work, 'victim.json'), 'utf8'));
  try {
    await restore({ imagesDir: dir, logFile: `restore-on-${here}.log`, logLevel: 4, arch });
  } catch (e) {
    throw new AssertionError(`restore on ${here} of the images from ${from[0]}: ${e.message}\n       restore.log: ${tail(path.join(dir, `restore-on-${here}.log`))}`);
  }
  const log = fs.readFileSync(path.join(dir, `restore-on-${here}.log`), 'utf8');
  ok(/differs from the dumped one.*becomes a proxy/.test(log), `the restore proxied the vDSO: ${tail(path.join(dir, `restore-on-${here}.log`))}`);
  ok(/vDSO proxy forwards [1-9]\d* symbols/.test(log), 'the proxy forwards the time symbols');
  const clocks = /the tree gets a time namespace \(([^)]*)\)/.exec(log);
  await sleep(1000);
  ok(isAlive(v.pid), `vdsotime runs after the restore: ${readLog(v).split('\n').slice(-3).join(' | ')}`);
  const verdict = await verdictOf(v, 'vdsotime');
  ok(verdict.startsWith('PASS vdsotime'), `verdict: ${verdict}`);
  return `${from[0]} -> ${here}; ${clocks ? `time namespace: ${clocks[1]}` : 'clocks were not behind: no time namespace'}`;
}, { explicit: true });

test('cross-kernel: dump vdsotime for a restore on the other kernel', async () => {
  const here = kernelRelease();
  const work = path.join(xkernelRoot, here);
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(path.join(work, 'images'), { recursive: true });
  // A PID far above what a fresh boot uses, so the restore on the next boot finds it free.
  fs.writeFileSync('/proc/sys/kernel/ns_last_pid', '30000');
  const log = path.join(work, 'vdsotime.log');
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const pid = Number(execFileSync('bash', ['-c', `${closeInherited}; setsid '${testprog('vdsotime')}' </dev/null >'${log}' 2>&1 & echo $!`]).toString().trim());
  const v = { pid, log };
  started.push(v);
  await waitFor('vdsotime READY', () => /READY vdsotime /.test(readLog(v)));
  await sleep(500);
  const dir = path.join(work, 'images');
  await dump({ pid, imagesDir: dir, logFile: 'dump.log', logLevel: 4, arch });
  await waitFor(`dumped task ${pid} gone`, () => !fs.existsSync(`/proc/${pid}`));
  fs.writeFileSync(path.join(work, 'victim.json'), JSON.stringify(v));
  const lines = fs.readFileSync(path.join(dir, 'dump.log'), 'utf8').split('\n').filter((l) => /inside the vDSO/.test(l));
  const stuck = lines.filter((l) => /still inside/.test(l));
  // A thread left inside cannot be restored on the other kernel: say so here, where the dump is.
  ok(!stuck.length, `the dump left a thread inside the vDSO: ${stuck.join(' | ')}`);
  // What the restore on the other kernel will check: no thread's saved nip inside the dumped vDSO.
  const vdsoVma = (await images.readImageFile(path.join(dir, `mm-${pid}.img`))).entries[0].message.vmas.find((m) => Number(m.status) & (1 << 3));
  const cores = fs.readdirSync(dir).filter((f) => /^core-\d+\.img$/.test(f));
  for (const f of cores) {
    const nip = BigInt((await images.readImageFile(path.join(dir, f))).entries[0].message.ti_ppc64.gpregs.nip);
    ok(!vdsoVma || nip < BigInt(vdsoVma.start) || nip >= BigInt(vdsoVma.end), `${f}: nip 0x${nip.toString(16)} is inside the dumped vDSO; dump.log: ${lines.join(' | ')}`);
  }
  return `pid ${pid} on ${here}, ${lines.length} thread(s) stepped out of the vDSO`;
}, { explicit: true });

const CLI = path.join(root, 'packages/cli/bin/criu.cjs');
/** A criu-ts command in the background; resolves once it reports ready on --status-fd 3. */
async function cliDaemon(args, what) {
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, [CLI, ...args, '--status-fd', '3'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += String(d); });
  const exited = new Promise((res) => child.once('exit', (code) => res(code)));
  const ready = await new Promise((res) => {
    child.stdio[3].once('data', () => res(true));
    child.once('exit', () => res(false));
  });
  ok(ready, `${what} did not start: ${stderr}`);
  return { exited };
}
function cli(args) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 900_000 });
}

test('page server + lazy restore (criu CLI): mem 64 MiB dumped over TCP to criu page-server, restored with --lazy-pages; the checksum holds', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'pageserver-'));
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  const v = await launch(testprog('mem'), 'mem', ['64']);
  const port = 20000 + (process.pid % 20000);
  const ps = await cliDaemon(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', dir, '-o', 'ps.log', '-v4'], 'criu page-server');
  const d = cli(['dump', '-t', String(v.pid), '-D', dir, '--page-server', '--address', '127.0.0.1', '--port', String(port), '-o', 'dump.log', '-v4']);
  ok(d.status === 0, `criu dump --page-server: exit ${d.status} ${d.stderr}\n       dump.log: ${tail(path.join(dir, 'dump.log'))}`);
  eq(await ps.exited, 0, 'page server exit');
  ok(fs.existsSync(path.join(dir, `pagemap-${v.pid}.img`)), 'the page server wrote the pagemap');
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  const lp = await cliDaemon(['lazy-pages', '-D', dir, '-o', 'lazy.log', '-v4'], 'criu lazy-pages');
  const r = cli(['restore', '-D', dir, '-d', '--lazy-pages', '-o', 'restore.log', '-v4']);
  ok(r.status === 0, `criu restore --lazy-pages: exit ${r.status} ${r.stderr}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  // The daemon's counts as the restore returned (asked for by the restore): pages still to copy.
  const at = /as the restore returns, the lazy-pages daemon has copied (\d+) pages; (\d+) left/.exec(fs.readFileSync(path.join(dir, 'restore.log'), 'utf8'));
  ok(at && Number(at[2]) > 0, `pages left to copy when the restore returned: ${tail(path.join(dir, 'restore.log'), 4)}`);
  eq(await lp.exited, 0, 'lazy-pages exit');
  const m = /finished: 1 task\(s\), (\d+) faults, (\d+) pages on fault, (\d+) in the background/.exec(fs.readFileSync(path.join(dir, 'lazy.log'), 'utf8'));
  ok(m && Number(m[3]) > 0, `lazy-pages served pages in the background: ${tail(path.join(dir, 'lazy.log'), 4)}`);
  const verdict = await verdictOf(v, 'mem');
  ok(verdict.startsWith('PASS mem'), `verdict: ${verdict}`);
  return `${m[2]} pages on fault (${m[1]} faults), ${m[3]} in the background; when the restore returned: ${at[1]} copied, ${at[2]} left`;
});

test("page server iterations (soft-dirty): Debian's criu pre-dump + dump into criu-ts page servers, criu-ts pre-dump + dump into Debian's; both chains restore", async () => {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const debian = (args) => {
    const r = spawnSync('bash', ['-c', `${closeInherited}; exec criu ${args}`], { encoding: 'utf8' });
    ok(r.status === 0, `criu ${args}: exit ${r.status} ${r.stderr}`);
  };
  const work = fs.mkdtempSync(path.join(logDir, 'ps-chain-'));
  const d = (side, n) => path.join(work, side, String(n));
  for (const side of ['a-src', 'a-dst', 'b-src', 'b-dst']) for (const n of [1, 2]) fs.mkdirSync(d(side, n), { recursive: true });
  const basePort = 20000 + ((process.pid + 13) % 20000);
  const parentRuns = (dir, pid) => images.pageRuns(images.decodeImageEntries(fs.readFileSync(path.join(dir, `pagemap-${pid}.img`))).entries, 65536)
    .filter((r) => r.flags & images.PE_PARENT).reduce((a, r) => a + r.nrPages, 0);

  // A: Debian's criu sends (PS_IOV_PARENT while frozen, OPEN2, holes); criu-ts receives and restores.
  // nothp: with 64 KiB pages a transparent huge page is 16 MiB, and one write would mark it all dirty.
  const a = await launch(testprog('memdirty'), 'memdirty', ['16', 'nothp']);
  const counts = [];
  for (const n of [1, 2]) {
    const prev = n > 1 ? ' --prev-images-dir ../1' : '';
    const port = basePort + n;
    const ps = await cliDaemon(['page-server', '--address', '127.0.0.1', '--port', String(port), '-D', d('a-dst', n), ...(n > 1 ? ['--prev-images-dir', '../1'] : []), '-o', 'ps.log', '-v4'], 'criu page-server');
    debian(`${n === 1 ? 'pre-dump' : 'dump'} -t ${a.pid} -D '${d('a-src', n)}' --track-mem${prev} --page-server --address 127.0.0.1 --port ${port} -v4 -o dump.log`);
    eq(await ps.exited, 0, `criu-ts page server ${n} exit`);
    const m = /page-server: done(?: \(connection closed\))?, (\d+) pages received in \d+ pagemap\(s\), (\d+) left in the parent/.exec(fs.readFileSync(path.join(d('a-dst', n), 'ps.log'), 'utf8'));
    ok(m, `page server ${n} log: ${tail(path.join(d('a-dst', n), 'ps.log'))}`);
    counts.push({ received: Number(m[1]), parent: Number(m[2]) });
    if (n === 1) await memdirtyRound(a, 0);
  }
  ok(counts[1].parent > counts[1].received && counts[1].received < counts[0].received, `Debian's criu sent only the changes the second time: ${JSON.stringify(counts)}`);
  for (const f of fs.readdirSync(d('a-src', 2))) if (f.endsWith('.img')) fs.copyFileSync(path.join(d('a-src', 2), f), path.join(d('a-dst', 2), f));
  await waitFor(`dumped task ${a.pid} gone`, () => !fs.existsSync(`/proc/${a.pid}`));
  await restore({ imagesDir: d('a-dst', 2), logFile: 'restore.log', logLevel: 4, arch });
  const va = await verdictOf(a, 'memdirty');
  ok(va.startsWith('PASS memdirty'), `verdict (A): ${va}`);

  // B: criu-ts sends; Debian's criu page-server --prev-images-dir receives; Debian's criu restores.
  const b = await launch(testprog('memdirty'), 'memdirty', ['16', 'nothp']);
  for (const n of [1, 2]) {
    const prev = n > 1 ? ['--prev-images-dir', '../1'] : [];
    const port = basePort + 2 + n;
    const pidfile = path.join(work, `debian-ps${n}.pid`);
    debian(`page-server --address 127.0.0.1 --port ${port} -D '${d('b-dst', n)}' ${prev.join(' ')} -v4 -o ps.log -d --pidfile '${pidfile}'`);
    // (The library, as the other chain tests here: the criu CLI's soft-dirty probe fails in this guest.)
    await dump({ pid: b.pid, imagesDir: d('b-src', n), preDump: n === 1, trackMem: true, parentImagesDir: n > 1 ? '../1' : undefined, pageServer: { address: '127.0.0.1', port }, arch });
    const psPid = Number(fs.readFileSync(pidfile, 'utf8'));
    await waitFor(`Debian page server ${n} gone`, () => !fs.existsSync(`/proc/${psPid}`));
    if (n === 1) await memdirtyRound(b, 0);
  }
  const parentB = parentRuns(d('b-dst', 2), b.pid);
  ok(parentB > 0, "Debian's page server stored PE_PARENT holes");
  for (const f of fs.readdirSync(d('b-src', 2))) if (f.endsWith('.img') && !f.startsWith('criu-ts.')) fs.copyFileSync(path.join(d('b-src', 2), f), path.join(d('b-dst', 2), f));
  await waitFor(`dumped task ${b.pid} gone`, () => !fs.existsSync(`/proc/${b.pid}`));
  const dir = d('b-dst', 2);
  const rr = spawnSync('bash', ['-c', `${closeInherited}; exec criu restore -D '${dir}' -d -v4 -o criu-restore.log`], { encoding: 'utf8' });
  ok(rr.status === 0, `criu restore: exit ${rr.status} ${rr.stderr}\n       criu-restore.log: ${tail(path.join(dir, 'criu-restore.log'))}`);
  await sleep(150);
  const vb = await verdictOf(b, 'memdirty');
  ok(vb.startsWith('PASS memdirty'), `verdict (B): ${vb}`);
  const check = cli(['check', '--feature', 'mem_dirty_track']);
  return `A: Debian's criu sent ${counts[0].received} then ${counts[1].received} pages (${counts[1].parent} left in the parent); B: ${parentB} pages left in the parent; criu check (CLI): ${check.status} ${(check.stdout + check.stderr).replace(/\s+/g, ' ').trim()}`;
});

test('post-copy (criu CLI): criu dump --lazy-pages serves mem 64 MiB to criu lazy-pages --page-server; the lazy restore passes the checksum', async () => {
  const work = fs.mkdtempSync(path.join(logDir, 'postcopy-'));
  const dir = path.join(work, 'images');
  fs.mkdirSync(dir);
  const v = await launch(testprog('mem'), 'mem', ['64']);
  const port = 20000 + ((process.pid + 7) % 20000);
  const dumper = await cliDaemon(['dump', '-t', String(v.pid), '-D', dir, '--lazy-pages', '--address', '127.0.0.1', '--port', String(port), '-o', 'dump.log', '-v4'], 'criu dump --lazy-pages');
  await waitFor(`dumped task ${v.pid} gone`, () => !fs.existsSync(`/proc/${v.pid}`));
  const runs = images.pageRuns(images.decodeImageEntries(fs.readFileSync(path.join(dir, `pagemap-${v.pid}.img`))).entries, 65536);
  const lazyOnly = runs.filter((r) => r.flags === images.PE_LAZY).reduce((a, r) => a + r.nrPages, 0);
  ok(lazyOnly >= (64 << 20) / 65536, `PE_LAZY-only pages in the pagemap: ${lazyOnly}`);
  const lp = await cliDaemon(['lazy-pages', '-D', dir, '-o', 'lazy.log', '-v4', '--page-server', '--address', '127.0.0.1', '--port', String(port)], 'criu lazy-pages --page-server');
  const r = cli(['restore', '-D', dir, '-d', '--lazy-pages', '-o', 'restore.log', '-v4']);
  ok(r.status === 0, `criu restore --lazy-pages: exit ${r.status} ${r.stderr}\n       restore.log: ${tail(path.join(dir, 'restore.log'))}`);
  eq(await lp.exited, 0, 'lazy-pages exit');
  eq(await dumper.exited, 0, 'dump (post-copy server) exit');
  const served = /post-copy: (\d+) of (\d+) lazy pages served/.exec(fs.readFileSync(path.join(dir, 'dump.log'), 'utf8'));
  ok(served && Number(served[1]) === lazyOnly && Number(served[2]) === lazyOnly, `served by the dump side: ${tail(path.join(dir, 'dump.log'), 3)}`);
  const verdict = await verdictOf(v, 'mem');
  ok(verdict.startsWith('PASS mem'), `verdict: ${verdict}`);
  return `${lazyOnly} pages served by the dump side`;
});

// --- run ------------------------------------------------------------------------------------
runMain(async () => {
  // First line: which kernel ran the suite (the VM boots Debian 12's 6.1 or, with --kernel, 6.12).
  console.log(`kernel ${os.release()} ${os.machine ? os.machine() : process.arch}, node ${process.version}`);
  await runTests(process.argv[4] ? new RegExp(process.argv[4]) : undefined);
});
