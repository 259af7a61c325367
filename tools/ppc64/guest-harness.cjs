/*
 * The tiny test harness the guest scripts share (guest-suite.cjs, guest-cpu.cjs and
 * tools/bench/vm/guest-bench.cjs): plain CommonJS for node 18 in the ppc64le VM, which has no
 * jest. Assertions, a test list run in order with one line per test, waits, and detached
 * processes that are not node's children.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

class AssertionError extends Error {}
function fmt(v) {
  return typeof v === 'bigint' ? `${v}n (0x${BigInt.asUintN(64, v).toString(16)})` : JSON.stringify(v);
}
function ok(cond, what) {
  if (!cond) throw new AssertionError(what);
}
function eq(actual, expected, what) {
  if (actual !== expected) throw new AssertionError(`${what}: expected ${fmt(expected)}, got ${fmt(actual)}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Polls `probe` every 20 ms until it returns something truthy (returned), or throws after `timeoutMs`. */
async function waitFor(what, probe, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new AssertionError(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
/** Alive and not a zombie. */
function isAlive(pid) {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}
const readText = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
/** The last lines of a log, indented to sit under a FAIL line. */
function tail(file, lines = 25) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n       ');
  } catch {
    return `(no ${path.basename(file)})`;
  }
}

/** The guest's command runner leaks a unix socket (fd 4) into its children, which a dump rightly refuses: close all but stdio. */
const CLOSE_INHERITED = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
const shellQuote = (a) => `'${String(a).replace(/'/g, `'\\''`)}'`;
/** Processes started by startDetached, killed by runTests at the end if still there. */
const started = [];
/** Starts `argv` in its own session, stdout and stderr to `log`; not a child of node (never ptrace those). */
function startDetached(argv, log) {
  const pid = Number(execFileSync('bash', ['-c', `${CLOSE_INHERITED}; setsid ${argv.map(shellQuote).join(' ')} </dev/null >${shellQuote(log)} 2>&1 & echo $!`]).toString().trim());
  const v = { pid, log };
  started.push(v);
  return v;
}

const tests = [];
/** Registers a test; `explicit` ones run only when a name filter picks them. */
function test(name, fn, opts = {}) {
  tests.push({ name, fn, explicit: !!opts.explicit });
}
/**
 * Runs the registered tests in order ("ok   NAME (ms) [note]" or "FAIL NAME (ms)" with the
 * reason indented under it), kills what they left running, prints "N passed, N failed" and sets
 * the exit code. `only`: a RegExp of the names to run.
 */
async function runTests(only) {
  let passed = 0, failed = 0;
  for (const t of tests) {
    if (only ? !only.test(t.name) : t.explicit) continue;
    const t0 = Date.now();
    try {
      const note = await t.fn();
      passed++;
      console.log(`ok   ${t.name} (${Date.now() - t0} ms)${note ? ` [${note}]` : ''}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${t.name} (${Date.now() - t0} ms)\n     ${String(e && e.stack ? e.stack : e).split('\n').join('\n     ')}`);
    }
  }
  for (const v of started) {
    if (isAlive(v.pid)) {
      try { process.kill(v.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
/** Runs `main`, turning a crash outside any test into exit code 2. */
function runMain(main) {
  main().catch((e) => {
    console.log(`suite crashed: ${e && e.stack}`);
    process.exitCode = 2;
  });
}

module.exports = { AssertionError, fmt, ok, eq, sleep, waitFor, isAlive, readText, tail, CLOSE_INHERITED, shellQuote, started, startDetached, test, runTests, runMain };
