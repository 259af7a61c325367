/**
 * The manifest of tools/testprogs: every C test program with how to run it, for tests that
 * iterate over all of them (dump/restore by the oracle, by criu-ts, or a mix).
 *
 * The protocol, the same for all (see tools/testprogs/README.md):
 *   1. make a scratch directory `tmp` for the run (one per program and run) and call
 *      `setup?.(tmp)` (writes the files the program uses);
 *   2. start it detached with `startTestprog(name, args?.(tmp) ?? [])` (waits for READY);
 *   3. let it run `settleMs` more (default 0) so the dump catches it in the state the program
 *      is about (e.g. inside nanosleep), then dump, wait for the PID to vanish, restore;
 *   4. `verdict(v)` sends SIGTERM and returns the last line: it must start with `PASS <name>`.
 *      A verdict may take a few seconds (sleeper finishes the sleep in progress), so allow
 *      at least 10 s.
 * `tree: true` marks multi-threaded or multi-process programs (single-task engines skip them).
 * `shellJob: true` would mark one that needs `--shell-job` (none of these: startDetached runs
 * every program in its own session without a controlling terminal).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TestProgram {
  name: string;
  args?(tmp: string): string[];
  setup?(tmp: string): void;
  shellJob?: boolean;
  settleMs?: number;
  tree?: boolean;
  /**
   * The tree to dump is rooted at the pid of the READY line, not at the started process (which
   * exits): pidns's namespace init. A restore gives that root a new host pid (the restore's
   * result, or the oracle's --pidfile), which the verdict's SIGTERM then goes to.
   */
  readyPid?: boolean;
  /** Options the oracle CRIU needs to dump and restore it (criu-ts needs none). */
  oracleOptions?: string[];
  /**
   * The oracle CRIU cannot dump this program on this machine: a pattern its dump.log must show
   * (the oracle round trips then check that it does fail that way, instead of a PASS).
   */
  oracleDumpFails?: RegExp;
  /**
   * What the oracle CRIU's restore of criu-ts's images of this program loses (the first verdict
   * line it must then print instead of PASS): state CRIU 4.1 cannot restore.
   */
  oracleRestoreLoses?: RegExp;
  /**
   * The oracle CRIU cannot restore criu-ts's images of this program at all (images it could never
   * write itself): a pattern its restore log must show. The same images must then restore with
   * criu-ts.
   */
  oracleRestoreFails?: RegExp;
}

/**
 * CRIU 4.1 reads SO_PASSCRED and SO_PASSSEC from every socket; Linux 6.x refuses both on inet
 * sockets (EOPNOTSUPP), so its dump of any TCP or UDP socket fails there.
 */
export const ORACLE_INET_FAILURE = /Can't get 1:(16|20) opt: Operation not supported/;

/** 1 MiB where byte i = i % 251 (what fileio expects to read). */
function writeFileioInput(file: string): void {
  fs.writeFileSync(file, Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 251)));
}

/** 512 KiB of pseudo-random bytes: 8 pages even with 64 KiB pages (ppc64). */
function writeFilemapInput(file: string): void {
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

/**
 * Programs that the generic runs cannot drive, each with the suite that tests them (with the
 * oracle too): mntns needs `root` and an external mount to be restored, and logs inside its root.
 */
export const OWN_SUITE: Record<string, string> = { mntns: 'test/mntns.test.ts' };

export const PROGRAMS: TestProgram[] = [
  { name: 'counter', settleMs: 200 },
  { name: 'threads4', tree: true, settleMs: 200 },
  { name: 'vdsotime', tree: true, settleMs: 200 },
  { name: 'inotify', setup: (tmp) => fs.mkdirSync(path.join(tmp, 'watched')), args: (tmp) => [path.join(tmp, 'watched')] },
  { name: 'tree', tree: true, settleMs: 200 },
  { name: 'shmanon', tree: true, settleMs: 200 },
  { name: 'mem64' },
  // The 256 MiB region with a checksum that issue #4 names (two criu-ts rounds and the oracle runs).
  { name: 'mem', args: () => ['256'] },
  // Rewrites 5% of its pages on SIGUSR1 (iterative dumps: incremental.test.ts); here a plain program.
  { name: 'memdirty', args: () => ['16'] },
  {
    name: 'fileio',
    setup: (tmp) => writeFileioInput(path.join(tmp, 'fileio.in')),
    args: (tmp) => [path.join(tmp, 'fileio.in'), path.join(tmp, 'fileio.log')],
    settleMs: 300,
  },
  { name: 'cpuloop', settleMs: 300 },
  // Dumped ~1 s into a 5 s nanosleep.
  { name: 'sleeper', settleMs: 1000 },
  { name: 'envargs', args: () => ['alpha', 'two words', '', '--opt=ü', "it's"] },
  {
    name: 'umaskcwd',
    setup: (tmp) => fs.mkdirSync(path.join(tmp, 'cwd'), { recursive: true }),
    args: (tmp) => [path.join(tmp, 'cwd')],
  },
  { name: 'rlimits' },
  { name: 'mprotect' },
  { name: 'madvise' },
  {
    name: 'filemap',
    setup: (tmp) => writeFilemapInput(path.join(tmp, 'filemap.bin')),
    args: (tmp) => [path.join(tmp, 'filemap.bin')],
  },
  { name: 'brk' },
  { name: 'selfexe' },
  { name: 'signals' },
  { name: 'itimer', settleMs: 200 },
  { name: 'posixtimer', settleMs: 200 },
  // A zombie child (exit code 7) and a child stopped by SIGSTOP.
  { name: 'zombie', tree: true },
  { name: 'altstack', settleMs: 200 },
  { name: 'tls', settleMs: 200 },
  { name: 'rseq' },
  // Robust futex lists of two threads (one holding a lock) and a non-default personality.
  { name: 'robust', tree: true, settleMs: 200 },
  // File kinds (the stricter modes, `eventfd sem` and `timerfd expired`, check what CRIU 4.1
  // loses: the oracle round trip runs the default ones).
  { name: 'eventfd' },
  { name: 'timerfd' },
  { name: 'signalfd' },
  { name: 'epoll' },
  { name: 'memfd' },
  { name: 'unixpair' },
  { name: 'fifo', args: (tmp) => [path.join(tmp, 'fifo')] },
  { name: 'ghost', args: (tmp) => [tmp] },
  { name: 'ghostexe', args: (tmp) => [tmp] },
  // CRIU refuses tasks holding file locks without --file-locks (criu-ts always dumps them).
  { name: 'flock', args: (tmp) => [tmp], oracleOptions: ['--file-locks'] },
  // Sockets beyond socketpairs: named unix sockets (path and abstract), TCP listeners and UDP.
  { name: 'unixnamed', args: (tmp) => [tmp] },
  { name: 'inetlisten', oracleDumpFails: ORACLE_INET_FAILURE },
  // A pty pair made by the program: the parent holds the master, the child's session has the slave as ctty.
  { name: 'ptypair', tree: true },
  // Processes sharing kernel objects with their parent: a descriptor table (CLONE_FILES) and fs
  // info (CLONE_FS; CRIU 4.1 refuses to dump that). Threads and a child under several policies.
  { name: 'sharefiles', tree: true },
  // A parent and a forked child sharing one open file description: one offset for both (kcmp KCMP_FILE).
  { name: 'sharepos', tree: true, args: (tmp) => [tmp] },
  // CRIU 4.1 restores each task with its own fs info: the child no longer sees the parent's chdir.
  { name: 'sharefs', tree: true, args: (tmp) => [tmp], oracleDumpFails: /Can't make FS id for \d+/, oracleRestoreLoses: /^FAIL sharefs child: cwd .*, expected .*\/b$/ },
  { name: 'sched', tree: true, settleMs: 200 },
  // A child sharing the parent's address space and signal handlers (clone(CLONE_VM|CLONE_SIGHAND)
  // without CLONE_THREAD). CRIU 4.1 refuses to dump it; criu-ts's images give the child no mm of
  // its own (docs/images.md), so CRIU restores the child without memory and it dies (SIGSEGV).
  { name: 'sharevm', tree: true, oracleDumpFails: /Can't make VM id for \d+/, oracleRestoreFails: /\d+ killed by signal 11/ },
  // The init of a pid namespace of its own (with uts and ipc ones): its own suite too, test/pidns.test.ts.
  { name: 'pidns', tree: true, readyPid: true },
];

export function program(name: string): TestProgram {
  const p = PROGRAMS.find((q) => q.name === name);
  if (!p) throw new Error(`no test program ${name}`);
  return p;
}
