// `pnpm bench`: criu-ts (library API and CLI) side by side with the oracle CRIU, dumping and
// restoring a program with N MiB of touched, non-compressible anonymous memory. Writes
// docs/benchmarks.md, docs/benchmarks.svg and tools/bench/results.json.
//
//   BENCH_SIZES=64,1024,4096   sizes in MiB (default)
//   BENCH_REPS=5               repetitions per engine and size (default)
//   BENCH_DIR=/var/tmp/criu-ts-bench   work directory (images of both engines, victim logs)
//   BENCH_ENGINES=criu,lib,cli subset of engines (default all three)
//   BENCH_NO_DOC=1             print the results but leave docs/ alone
//   BENCH_REPORT=results.json  no run: rewrite docs/ from a saved results file
//
// Needs root, the built packages (tools/scripts/bench.sh builds them first), cc and
// /usr/bin/time (Debian package `time`), and the oracle at /var/tmp/criu-oracle/bin/criu.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageFile } from '../../packages/images/dist/index.js';
import { vmSection } from './vm-report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const ORACLE = process.env.CRIU_ORACLE ?? '/var/tmp/criu-oracle/bin/criu';
const CLI = path.join(root, 'packages/cli/bin/criu.cjs');
const LIB_OP = path.join(here, 'lib-op.mjs');
const TIME = '/usr/bin/time';
let SIZES = (process.env.BENCH_SIZES ?? '64,1024,4096').split(',').map(Number);
let REPS = Number(process.env.BENCH_REPS ?? 5);
const WORK = path.resolve(process.env.BENCH_DIR ?? '/var/tmp/criu-ts-bench');
let ENGINES = (process.env.BENCH_ENGINES ?? 'criu,lib,cli').split(',');
const ENGINE_NAME = { criu: 'CRIU 4.1 (oracle)', lib: 'criu-ts library', cli: 'criu-ts CLI' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('[bench]', ...a);

function fail(msg) {
  throw new Error(msg);
}

// ---------------------------------------------------------------- setup

function preflight() {
  if (process.getuid() !== 0) fail('run as root (ptrace and CRIU need it)');
  if (!fs.existsSync(ORACLE)) fail(`no oracle CRIU at ${ORACLE} (run tools/scripts/setup.sh)`);
  if (!fs.existsSync(TIME)) fail(`no ${TIME} (apt-get install time; tools/scripts/setup.sh does)`);
  if (!fs.existsSync(path.join(root, 'packages/core/dist/index.js'))) fail('packages are not built (pnpm exec turbo run build)');
  for (const s of SIZES) if (!Number.isInteger(s) || s <= 0) fail(`bad BENCH_SIZES entry ${s}`);
  if (!Number.isInteger(REPS) || REPS <= 0) fail(`bad BENCH_REPS ${REPS}`);
  for (const e of ENGINES) if (!ENGINE_NAME[e]) fail(`unknown engine ${e} in BENCH_ENGINES`);
  const needMiB = Math.max(...SIZES) * 1.1 + 512;
  const freeMiB = Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'latin1'))[1]) / 1024;
  if (freeMiB < needMiB * 2) log(`warning: ${freeMiB.toFixed(0)} MiB available; the largest size needs about ${(needMiB * 2).toFixed(0)} MiB (task + page cache)`);
}

function buildVictim() {
  const out = path.join(here, 'build', 'benchmem');
  const src = path.join(here, 'benchmem.c');
  if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out + '.tmp', src]);
    fs.renameSync(out + '.tmp', out);
  }
  return out;
}

// ---------------------------------------------------------------- victims

/** Starts the victim detached (setsid, stdio to a file, no inherited fds); returns its PID. */
function startVictim(prog, mib, logFile) {
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  const cmd = `${closeInherited}; cd '${path.dirname(logFile)}' || exit 1; setsid '${prog}' ${mib} </dev/null >'${logFile}' 2>&1 & echo $!`;
  return Number(execFileSync('bash', ['-c', cmd]).toString().trim());
}

const readText = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
const alive = (pid) => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
};

async function waitFor(what, probe, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const waitGone = (pid) => waitFor(`PID ${pid} to be reaped`, () => !fs.existsSync(`/proc/${pid}`), 30_000);

function killIfOurs(pid) {
  if (pid && alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---------------------------------------------------------------- the three engines

/** Runs argv under /usr/bin/time; returns wall ms, peak RSS (KiB) and the exit status. */
function timed(argv, cwd) {
  const tf = path.join(os.tmpdir(), `criu-ts-bench-time-${process.pid}`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(TIME, ['-f', '%M', '-o', tf, ...argv], { cwd, encoding: 'utf8', timeout: 600_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const rss = Number(readText(tf).trim().split('\n').pop());
  fs.rmSync(tf, { force: true });
  return { ms, maxRssKiB: rss, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function libOp(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [LIB_OP, ...args], { encoding: 'utf8', timeout: 600_000 });
  const procMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) return { status: r.status, stderr: r.stderr };
  return { status: 0, procMs, ...JSON.parse(r.stdout.trim().split('\n').pop()) };
}

async function frozenFromStats(dir) {
  const { entries } = await readImageFile(path.join(dir, 'stats-dump'));
  const d = entries[0].message.dump;
  return Number(d.frozen_time);
}

/**
 * KiB of free memory this VM has handed back to its host so far (free page reporting), or
 * undefined where there is none. Fresh memory that was handed back must be backed again by the
 * host on first touch: a copy into it runs 3-5x slower (docs/benchmarks.md), so each timed step
 * records how much was handed back while it ran.
 */
function reportedKiB() {
  const t = readText('/sys/module/page_reporting/parameters/reported_kib').trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

/** Runs a timed step and notes the MiB the VM handed back to the host meanwhile. */
async function noteReported(step) {
  const before = reportedKiB();
  const r = await step();
  const after = reportedKiB();
  return { ...r, reportedMiB: before === undefined || after === undefined ? undefined : (after - before) / 1024 };
}

async function doDump(engine, pid, dir) {
  fs.mkdirSync(dir, { recursive: true });
  let r;
  if (engine === 'lib') r = libOp(['dump', String(pid), dir]);
  else if (engine === 'cli') r = timed([process.execPath, CLI, 'dump', '-t', String(pid), '-D', dir, '-o', 'dump.log']);
  else r = timed([ORACLE, 'dump', '--no-default-config', '-t', String(pid), '-D', dir, '-o', 'dump.log']);
  if (r.status !== 0) fail(`${engine} dump of ${pid} failed (${r.status}): ${(r.stderr ?? '').trim()}\n${readText(path.join(dir, 'dump.log')).split('\n').filter((l) => /rror/.test(l)).slice(-5).join('\n')}`);
  const frozenUs = engine === 'lib' ? r.frozenTimeUs : await frozenFromStats(dir);
  return { ms: r.ms, procMs: r.procMs, frozenUs, maxRssKiB: r.maxRssKiB };
}

async function doRestore(engine, dir) {
  let r;
  if (engine === 'lib') r = libOp(['restore', dir]);
  else if (engine === 'cli') r = timed([process.execPath, CLI, 'restore', '-d', '-D', dir, '-o', 'restore.log']);
  else r = timed([ORACLE, 'restore', '--no-default-config', '-d', '-D', dir, '-o', 'restore.log']);
  if (r.status !== 0) fail(`${engine} restore of ${dir} failed (${r.status}): ${(r.stderr ?? '').trim()}\n${readText(path.join(dir, 'restore.log')).split('\n').filter((l) => /rror/.test(l)).slice(-5).join('\n')}`);
  return { ms: r.ms, procMs: r.procMs, maxRssKiB: r.maxRssKiB };
}

// ---------------------------------------------------------------- one round trip

async function roundTrip(prog, engine, mib, rep) {
  const dir = path.join(WORK, `${engine}-${mib}-${rep}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'victim.out');
  let pid = startVictim(prog, mib, logFile);
  try {
    await waitFor(`READY from benchmem ${mib}`, () => /^READY benchmem/m.test(readText(logFile)) || !alive(pid) || undefined, 120_000);
    if (!alive(pid)) fail(`benchmem ${mib} died: ${readText(logFile)}`);
    const checksum = /^checksum (\w+)/m.exec(readText(logFile))[1];
    const imgs = path.join(dir, 'images');
    execFileSync('sync');
    const d = await noteReported(() => doDump(engine, pid, imgs));
    await waitGone(pid); // the dump killed it; init reaps it a little later
    execFileSync('sync'); // write the images back before timing the restore (same for every engine)
    const r = await noteReported(() => doRestore(engine, imgs));
    if (!alive(pid)) fail(`${engine}: restored task ${pid} is not running`);
    process.kill(pid, 'SIGTERM');
    const verdict = await waitFor(`PASS/FAIL from restored ${pid}`, () => /^(PASS|FAIL) benchmem.*$/m.exec(readText(logFile))?.[0], 120_000);
    if (!verdict.startsWith('PASS') || !verdict.includes(checksum)) fail(`${engine} ${mib} MiB: after restore: ${verdict} (expected checksum ${checksum})`);
    await waitGone(pid);
    pid = 0;
    return { engine, mib, rep, dump: d, restore: r };
  } finally {
    killIfOurs(pid);
    if (pid) await waitGone(pid).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- statistics and report

const sortNum = (a) => [...a].sort((x, y) => x - y);
const median = (a) => {
  const s = sortNum(a);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const minOf = (a) => Math.min(...a);
const maxOf = (a) => Math.max(...a);

function summarize(results) {
  const S = {};
  for (const mib of SIZES) {
    S[mib] = {};
    for (const e of ENGINES) {
      const rs = results.filter((r) => r.mib === mib && r.engine === e);
      if (!rs.length) continue;
      const pick = (f) => rs.map(f).filter((x) => typeof x === 'number' && !Number.isNaN(x));
      S[mib][e] = {
        dump: { min: minOf(pick((r) => r.dump.ms)), med: median(pick((r) => r.dump.ms)) },
        dumpProc: e === 'lib' ? { min: minOf(pick((r) => r.dump.procMs)), med: median(pick((r) => r.dump.procMs)) } : undefined,
        restore: { min: minOf(pick((r) => r.restore.ms)), med: median(pick((r) => r.restore.ms)) },
        restoreProc: e === 'lib' ? { min: minOf(pick((r) => r.restore.procMs)), med: median(pick((r) => r.restore.procMs)) } : undefined,
        frozen: { min: minOf(pick((r) => r.dump.frozenUs / 1000)), med: median(pick((r) => r.dump.frozenUs / 1000)) },
        dumpReported: median(pick((r) => r.dump.reportedMiB)),
        restoreReported: median(pick((r) => r.restore.reportedMiB)),
        dumpRss: maxOf(pick((r) => r.dump.maxRssKiB / 1024)),
        restoreRss: maxOf(pick((r) => r.restore.maxRssKiB / 1024)),
        n: rs.length,
      };
    }
  }
  return S;
}

function sh(cmd) {
  try {
    return execFileSync('bash', ['-c', cmd], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'latin1'))?.[1] ?? '?';
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'latin1'))[1]);
  const mnt = sh(`findmnt -n -T '${WORK}' -o SOURCE,FSTYPE,OPTIONS`);
  const dev = mnt.split(/\s+/)[0] ?? '';
  const blk = path.basename(dev);
  const rota = sh(`cat /sys/block/${blk}/queue/rotational 2>/dev/null`);
  const sched = sh(`cat /sys/block/${blk}/queue/scheduler 2>/dev/null`);
  return {
    cpu,
    cores: os.cpus().length,
    ramGiB: (memKiB / 1048576).toFixed(1),
    kernel: os.release(),
    fs: mnt,
    disk: `${dev} (${rota === '1' ? 'reported rotational' : rota === '0' ? 'non-rotational' : '?'}${sched !== '?' ? `, scheduler ${sched}` : ''}; a virtio disk of a KVM guest)`,
    node: process.version,
    criu: sh(`${ORACLE} --version | head -1`),
    thp: sh('cat /sys/kernel/mm/transparent_hugepage/enabled'),
    pipeMax: sh('cat /proc/sys/fs/pipe-max-size'),
    dirty: sh('echo "dirty_ratio $(cat /proc/sys/vm/dirty_ratio), dirty_background_ratio $(cat /proc/sys/vm/dirty_background_ratio)"'),
  };
}

const f1 = (x) => (x === undefined || Number.isNaN(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ms2s = (x) => (x / 1000).toFixed(x >= 10_000 ? 1 : 2);
const fmtMs = (x) => (x >= 1000 ? `${ms2s(x)} s` : `${f1(x)} ms`);
const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : '–');

function sizeLabel(mib) {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

function opTable(S, op) {
  const cols = ENGINES.map((e) => ENGINE_NAME[e]);
  const lines = [];
  const head = ['size', ...cols.flatMap((c) => [`${c} min`, `${c} median`])];
  if (ENGINES.includes('criu')) {
    for (const e of ENGINES.filter((x) => x !== 'criu')) head.push(`speed-up ${e === 'lib' ? 'library' : 'CLI'} vs CRIU (median)`);
  }
  head.push(...ENGINES.map((e) => `${ENGINE_NAME[e]} MiB/s (median)`));
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`);
  for (const mib of SIZES) {
    const row = [sizeLabel(mib)];
    for (const e of ENGINES) {
      const s = S[mib][e];
      row.push(s ? fmtMs(s[op].min) : '–', s ? fmtMs(s[op].med) : '–');
    }
    if (ENGINES.includes('criu')) {
      for (const e of ENGINES.filter((x) => x !== 'criu')) row.push(`${ratio(S[mib].criu?.[op].med, S[mib][e]?.[op].med)}x`);
    }
    for (const e of ENGINES) row.push(S[mib][e] ? f1(mib / (S[mib][e][op].med / 1000)) : '–');
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

function frozenTable(S) {
  const head = ['size', ...ENGINES.flatMap((e) => [`${ENGINE_NAME[e]} min`, `${ENGINE_NAME[e]} median`])];
  if (ENGINES.includes('criu')) for (const e of ENGINES.filter((x) => x !== 'criu')) head.push(`${e === 'lib' ? 'library' : 'CLI'} / CRIU (median)`);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`];
  for (const mib of SIZES) {
    const row = [sizeLabel(mib)];
    for (const e of ENGINES) {
      const s = S[mib][e];
      row.push(s ? fmtMs(s.frozen.min) : '–', s ? fmtMs(s.frozen.med) : '–');
    }
    if (ENGINES.includes('criu')) for (const e of ENGINES.filter((x) => x !== 'criu')) row.push(ratio(S[mib][e]?.frozen.med, S[mib].criu?.frozen.med));
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** A table of MiB, a dump and a restore column per engine: `pick(summary)` gives the two values. */
function mibTable(S, pick) {
  const head = ['size', ...ENGINES.flatMap((e) => [`${ENGINE_NAME[e]} dump`, `${ENGINE_NAME[e]} restore`])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`];
  const cell = (v) => (Number.isFinite(v) ? `${f1(v)} MiB` : '–');
  for (const mib of SIZES) {
    const row = [sizeLabel(mib)];
    for (const e of ENGINES) row.push(...(S[mib][e] ? pick(S[mib][e]).map(cell) : ['–', '–']));
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

const rssTable = (S) => mibTable(S, (s) => [s.dumpRss, s.restoreRss]);
const reportedTable = (S) => mibTable(S, (s) => [s.dumpReported, s.restoreReported]);

function targets(S) {
  if (!ENGINES.includes('criu') || !ENGINES.includes('lib')) return '(the targets need the CRIU and library engines)';
  const rows = [['target', 'measured (medians)', 'met?']];
  const big = SIZES.filter((m) => m >= 1024);
  for (const mib of big) {
    for (const e of ENGINES.filter((x) => x !== 'criu')) {
      const r = S[mib].criu.dump.med / S[mib][e].dump.med;
      rows.push([`dump throughput ${sizeLabel(mib)} >= 2x CRIU (${e === 'lib' ? 'library call' : 'CLI process'})`, `${r.toFixed(2)}x`, r >= 2 ? 'yes' : '**no**']);
    }
  }
  for (const mib of SIZES) {
    for (const e of ENGINES.filter((x) => x !== 'criu')) {
      const r = S[mib].criu.restore.med / S[mib][e].restore.med;
      rows.push([`restore ${sizeLabel(mib)} >= 1.5x CRIU (${e === 'lib' ? 'library call' : 'CLI process'})`, `${r.toFixed(2)}x`, r >= 1.5 ? 'yes' : '**no**']);
    }
  }
  if (S[64]) {
    const r = S[64].lib.frozen.med / S[64].criu.frozen.med;
    rows.push(['frozen time 64 MiB <= 0.5x CRIU (library)', `${r.toFixed(2)}x (${f1(S[64].lib.frozen.med)} vs ${f1(S[64].criu.frozen.med)} ms)`, r <= 0.5 ? 'yes' : '**no**']);
  }
  const rss = maxOf(SIZES.flatMap((m) => ENGINES.filter((e) => e !== 'criu').map((e) => S[m][e]?.dumpRss ?? 0)));
  rows.push(['criu-ts dumper peak RSS <= 128 MiB at any size', `${f1(rss)} MiB at most`, rss <= 128 ? 'yes' : '**no**']);
  return rows.map((r, i) => `| ${r.join(' | ')} |${i === 0 ? `\n|${r.map(() => ' --- ').join('|')}|` : ''}`).join('\n');
}

// ---------------------------------------------------------------- the plot (SVG, by hand)

function svgPlot(S) {
  const W = 460, H = 340, M = { l: 64, r: 16, t: 36, b: 48 };
  const colors = { criu: '#c0392b', lib: '#2471a3', cli: '#27ae60' };
  const dash = { criu: '', lib: '', cli: '6 4' };
  const xs = SIZES.map(Math.log2);
  const xmin = Math.min(...xs) - 0.3, xmax = Math.max(...xs) + 0.3;
  const panel = (op, title, ox) => {
    const vals = SIZES.flatMap((m) => ENGINES.map((e) => S[m][e]?.[op].med).filter(Boolean)).map((v) => v / 1000);
    const ymin = Math.log10(Math.min(...vals)) - 0.15, ymax = Math.log10(Math.max(...vals)) + 0.15;
    const X = (mib) => ox + M.l + ((Math.log2(mib) - xmin) / (xmax - xmin)) * (W - M.l - M.r);
    const Y = (s) => M.t + (1 - (Math.log10(s) - ymin) / (ymax - ymin)) * (H - M.t - M.b);
    let g = `<text x="${ox + W / 2}" y="20" text-anchor="middle" font-weight="bold">${title}</text>\n`;
    g += `<rect x="${ox + M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#999"/>\n`;
    for (const m of SIZES) {
      g += `<line x1="${X(m)}" y1="${H - M.b}" x2="${X(m)}" y2="${H - M.b + 5}" stroke="#333"/><text x="${X(m)}" y="${H - M.b + 18}" text-anchor="middle">${sizeLabel(m)}</text>\n`;
    }
    for (let p = Math.floor(ymin); p <= Math.ceil(ymax); p++) {
      for (const k of [1, 2, 5]) {
        const v = k * 10 ** p;
        if (Math.log10(v) < ymin || Math.log10(v) > ymax) continue;
        g += `<line x1="${ox + M.l}" y1="${Y(v)}" x2="${ox + W - M.r}" y2="${Y(v)}" stroke="#eee"/><text x="${ox + M.l - 6}" y="${Y(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toPrecision(1)}</text>\n`;
      }
    }
    g += `<text x="${ox + W / 2}" y="${H - 10}" text-anchor="middle">touched anonymous memory</text>\n`;
    g += `<text transform="translate(${ox + 16},${(H - M.b + M.t) / 2}) rotate(-90)" text-anchor="middle">median time (s)</text>\n`;
    for (const e of ENGINES) {
      const pts = SIZES.filter((m) => S[m][e]).map((m) => [X(m), Y(S[m][e][op].med / 1000)]);
      if (!pts.length) continue;
      g += `<polyline fill="none" stroke="${colors[e]}" stroke-width="2" stroke-dasharray="${dash[e]}" points="${pts.map((p) => p.map((v) => v.toFixed(1)).join(',')).join(' ')}"/>\n`;
      for (const [x, y] of pts) g += `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${colors[e]}"/>\n`;
    }
    return g;
  };
  let legend = '';
  ENGINES.forEach((e, i) => {
    const x = 80 + i * 220;
    legend += `<line x1="${x}" y1="${H + 14}" x2="${x + 28}" y2="${H + 14}" stroke="${colors[e]}" stroke-width="2" stroke-dasharray="${dash[e]}"/><text x="${x + 34}" y="${H + 18}">${ENGINE_NAME[e]}</text>\n`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 30}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n${panel('dump', 'dump (log-log)', 0)}${panel('restore', 'restore (log-log)', W)}${legend}</svg>\n`;
}

function report(S, results, m, started, loads) {
  const analysis = readText(path.join(here, 'analysis.md')).trim();
  return `# Benchmarks: criu-ts vs CRIU

Generated by \`${[REPS !== 5 ? `BENCH_REPS=${REPS}` : '', SIZES.join(',') !== '64,1024,4096' ? `BENCH_SIZES=${SIZES.join(',')}` : ''].filter(Boolean).concat('pnpm bench').join(' ')}\` (tools/scripts/bench.sh: builds the packages, then runs
tools/bench/bench.mjs) on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; sizes ${SIZES.map(sizeLabel).join(', ')},
${REPS} repetitions per engine and size. Raw numbers: tools/bench/results.json. Load average
(1/5/15 min) before the run: ${loads[0]}; after: ${loads[1]}.

![dump and restore time vs size](benchmarks.svg)

## Machine

| | |
| --- | --- |
| CPU | ${m.cpu}, ${m.cores} cores |
| RAM | ${m.ramGiB} GiB |
| kernel | ${m.kernel} |
| images dir | ${WORK} on ${m.fs} |
| disk | ${m.disk} |
| Node | ${m.node} |
| oracle | ${m.criu} (${ORACLE}) |
| THP | ${m.thp} |
| pipe-max-size | ${m.pipeMax} |
| writeback | ${m.dirty} |

## Method

The victim is tools/bench/benchmem.c: \`benchmem N\` maps N MiB of private anonymous memory,
fills every byte with a xorshift64 stream (no zero page, nothing compressible), checksums it,
prints READY and sleeps (it does not touch its memory again, so it adds no CPU load) until
SIGTERM, when it checksums again and prints PASS or FAIL. It is started detached (setsid,
stdio to a file in the run's directory, no inherited descriptors).

For each size and repetition, each engine in turn (${ENGINES.join(', ')}, the order rotated by one each
repetition) does a full round trip on a fresh
victim: start, wait for READY, \`sync\`, **dump** (timed), wait until init has reaped the killed
PID, \`sync\`, **restore** (timed), check the PID runs, SIGTERM, require \`PASS\` with the checksum
printed before the dump, wait for the PID to go, delete the images.

* **${ENGINE_NAME.lib}**: \`dump({ pid, imagesDir })\` / \`restore({ imagesDir, detach: true })\` from
  packages/core/dist, each in a fresh \`node tools/bench/lib-op.mjs\` process; the time is that
  of the call alone (the process also pays Node's start-up and module loading, shown
  separately below), the frozen time is the call's \`stats.frozenTimeUs\`, the peak RSS is
  the process's \`process.resourceUsage().maxRSS\` (so it includes Node itself).
* **${ENGINE_NAME.cli}**: \`node packages/cli/bin/criu.cjs dump -t PID -D DIR -o dump.log\` and
  \`restore -d -D DIR -o restore.log\`; wall time of the whole process.
* **${ENGINE_NAME.criu}**: \`${ORACLE} dump --no-default-config -t PID -D DIR -o dump.log\` and
  \`restore --no-default-config -d -D DIR -o restore.log\`; wall time of the whole process; frozen
  time from its \`stats-dump\` image (decoded with @criu/images \`readImageFile\`).
* CLI and CRIU peak RSS: \`/usr/bin/time -f %M\` (wait4 rusage of the process and the children
  it waited for; the restored task is not one of them).
* Both engines write their images to the same directory tree on the same filesystem. Nothing
  is dropped from the page cache; the \`sync\` before each timed step (the same for every engine)
  keeps the previous step's dirty pages from being written back inside the next measurement,
  and each restore reads images that are still in the page cache.

## Targets

${targets(S)}

## Dump (wall time)

${opTable(S, 'dump')}

Library dump including Node start-up (process wall time, min / median): ${SIZES.filter((m) => S[m].lib).map((m) => `${sizeLabel(m)} ${fmtMs(S[m].lib.dumpProc.min)} / ${fmtMs(S[m].lib.dumpProc.med)}`).join('; ')}.

## Restore (wall time)

${opTable(S, 'restore')}

Library restore including Node start-up (process wall time, min / median): ${SIZES.filter((m) => S[m].lib).map((m) => `${sizeLabel(m)} ${fmtMs(S[m].lib.restoreProc.min)} / ${fmtMs(S[m].lib.restoreProc.med)}`).join('; ')}.

## Frozen time (dump)

From the moment the task is stopped until it is no longer needed (CRIU's \`frozen_time\`).

${frozenTable(S)}

## Peak RSS of the dumper / restorer (max over repetitions)

${rssTable(S)}

## Memory handed back to the host during the timed steps (median)

This VM returns freed memory to its host (free page reporting: /sys/module/page_reporting,
\`reported_kib\`). Memory handed back must be backed again on first touch, and a copy into it runs
3-5x slower: a step during which much was handed back likely paid for that, whichever engine ran it.
${reportedKiB() === undefined ? '\n(No free page reporting on this machine.)\n' : `
${reportedTable(S)}
`}
${vmSection(here)}
${analysis}
`;
}

// ---------------------------------------------------------------- main

function writeDocs(S, results, m, started, loads) {
  fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'docs/benchmarks.svg'), svgPlot(S));
  fs.writeFileSync(path.join(root, 'docs/benchmarks.md'), report(S, results, m, started, loads));
  log('wrote docs/benchmarks.md, docs/benchmarks.svg');
}

async function main() {
  if (process.env.BENCH_REPORT) {
    const saved = JSON.parse(fs.readFileSync(path.resolve(process.env.BENCH_REPORT), 'utf8'));
    SIZES = saved.sizes;
    REPS = saved.reps;
    ENGINES = saved.engines;
    const S = summarize(saved.results);
    console.log(targets(S));
    writeDocs(S, saved.results, saved.machine, new Date(saved.started), saved.loads);
    return;
  }
  preflight();
  const prog = buildVictim();
  fs.mkdirSync(WORK, { recursive: true });
  const loads = [fs.readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' ')];
  const started = new Date();
  log(`sizes ${SIZES.join(',')} MiB, ${REPS} reps, engines ${ENGINES.join(',')}, work dir ${WORK}; load ${loads[0]}`);
  const results = [];
  for (const mib of SIZES) {
    for (let rep = 0; rep < REPS; rep++) {
      // Rotate the engine order so none always runs first (warmest or coldest).
      const order = ENGINES.map((_, i) => ENGINES[(i + rep) % ENGINES.length]);
      for (const e of order) {
        const r = await roundTrip(prog, e, mib, rep);
        results.push(r);
        log(`${sizeLabel(mib).padStart(7)} rep ${rep + 1}/${REPS} ${e.padEnd(4)} dump ${fmtMs(r.dump.ms).padStart(9)} (frozen ${fmtMs(r.dump.frozenUs / 1000)}, rss ${f1(r.dump.maxRssKiB / 1024)} MiB)  restore ${fmtMs(r.restore.ms).padStart(9)} (rss ${f1(r.restore.maxRssKiB / 1024)} MiB)`);
      }
    }
  }
  loads.push(fs.readFileSync('/proc/loadavg', 'latin1').split(' ').slice(0, 3).join(' '));
  const S = summarize(results);
  const m = machine();
  fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify({ started, sizes: SIZES, reps: REPS, engines: ENGINES, machine: m, loads, results, summary: S }, null, 1) + '\n');
  console.log(targets(S));
  log('wrote tools/bench/results.json');
  if (!process.env.BENCH_NO_DOC) writeDocs(S, results, m, started, loads);
}

main().catch((e) => {
  console.error(`[bench] FAILED: ${e.message}`);
  process.exit(1);
});
