// Real images from the oracle CRIU, for tests: builds the C test programs, starts one detached
// from Node (setsid, never a child_process-owned child), dumps it with the oracle `criu`, and
// decodes/encodes images with the oracle's pycriu in one python process per batch (crit
// itself costs ~0.25 s per call, mostly start-up).
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const TEST_PROGRAMS = ['counter', 'threads4', 'tree', 'mem64'] as const;
export type TestProgram = (typeof TEST_PROGRAMS)[number];

const REPO_ROOT = path.resolve(__dirname, '../../../..');
const TESTPROGS_DIR = path.join(REPO_ROOT, 'tools/testprogs');
export const FIXTURES_ROOT = '/tmp/criu-ts-fixtures';

export function criuOraclePath(): string {
  return process.env.CRIU_ORACLE || '/var/tmp/criu-oracle/bin/criu';
}

export function critOraclePath(): string {
  return process.env.CRIT_ORACLE || path.join(path.dirname(criuOraclePath()), 'crit');
}

/** pycriu lives inside the oracle's install dir: <dir>/bin/criu -> <dir>/usr/lib/python3/dist-packages */
function pycriuPath(): string {
  return path.join(path.dirname(path.dirname(criuOraclePath())), 'usr/lib/python3/dist-packages');
}

/** The interpreter the crit wrapper uses. */
function pythonPath(): string {
  if (process.env.CRIU_ORACLE_PYTHON) return process.env.CRIU_ORACLE_PYTHON;
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Builds the test programs (idempotent, fast when up to date); returns the build dir. */
export function buildTestPrograms(): string {
  execFileSync('bash', [path.join(TESTPROGS_DIR, 'build.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return path.join(TESTPROGS_DIR, 'build');
}

/** Starts `bin` in its own session, stdin from /dev/null, stdout+stderr to `logFile`; returns its PID. */
export function startDetached(bin: string, logFile: string): number {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const out = execFileSync('sh', ['-c', `setsid ${quote(bin)} </dev/null >${quote(logFile)} 2>&1 & echo $!`], {
    encoding: 'utf8',
  });
  const pid = Number.parseInt(out.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`could not start ${bin}: ${out}`);
  return pid;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** 'R', 'S', 'Z', ... or null when the PID no longer exists. */
export function processState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Dead = gone or a zombie waiting for init to reap it. */
export function isDead(pid: number): boolean {
  const st = processState(pid);
  return st === null || st === 'Z' || st === 'X';
}

/** Waits until the program printed its READY line (its state is set up). */
export async function waitForReady(pid: number, logFile: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    if (log.includes(`READY `)) return;
    if (isDead(pid)) throw new Error(`test program ${pid} exited before it was ready; log:\n${log}`);
    if (Date.now() > deadline) throw new Error(`test program ${pid} not ready after ${timeoutMs} ms; log:\n${log}`);
    await sleep(10);
  }
}

/** The PID and all its descendants (from /proc/PID/task/TID/children). */
export function processTree(pid: number): number[] {
  const all: number[] = [];
  const visit = (p: number) => {
    all.push(p);
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      let kids = '';
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(/\s+/).filter(Boolean)) visit(Number(k));
    }
  };
  visit(pid);
  return all;
}

/** Kills the given PIDs (only processes we started) and waits until they are dead. */
export async function killAndWait(pids: number[], timeoutMs = 5000): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => !isDead(p))) {
    if (Date.now() > deadline) throw new Error(`processes still alive: ${pids.filter((p) => !isDead(p)).join(' ')}`);
    await sleep(10);
  }
}

export interface OracleDump {
  program: TestProgram;
  /** the images directory: nothing but what the oracle wrote there */
  dir: string;
  /** PID of the dumped root task (now dead) and of every task of its tree */
  pid: number;
  pids: number[];
  /** criu's -v4 log (outside the images dir) and the program's stdout */
  dumpLog: string;
  programLog: string;
  /** the image file names in dir, sorted */
  files: string[];
}

/** The oracle's `criu dump` failed; the program it was dumping has been killed. */
export class OracleDumpError extends Error {
  override readonly name = 'OracleDumpError';
  constructor(
    readonly program: TestProgram,
    readonly pids: number[],
    readonly status: number | null,
    readonly stderr: string,
    readonly logTail: string,
  ) {
    super(`oracle dump of ${program} failed (status ${status}): ${stderr}\n${logTail}`);
  }
}

export interface OracleDumpOptions {
  /** extra options for `criu dump` */
  extraArgs?: string[];
  /** dump again even if this test file already has a dump of the program */
  fresh?: boolean;
}

const cache = new Map<string, Promise<OracleDump>>();
let dumpSeq = 0;

/** This process's fixtures dir; dirs left by processes that no longer exist are removed. */
function fixturesDir(): string {
  const mine = path.join(FIXTURES_ROOT, String(process.pid));
  if (!fs.existsSync(mine)) {
    fs.mkdirSync(FIXTURES_ROOT, { recursive: true });
    for (const d of fs.readdirSync(FIXTURES_ROOT)) {
      if (/^\d+$/.test(d) && !fs.existsSync(`/proc/${d}`)) fs.rmSync(path.join(FIXTURES_ROOT, d), { recursive: true, force: true });
    }
    fs.mkdirSync(mine, { recursive: true });
  }
  return mine;
}

/**
 * Dumps a fresh run of a test program with the oracle CRIU and returns the images dir.
 * Cached per program within one test file (one jest module registry). The program is dead
 * afterwards either way: criu dump kills it, and if dump fails we kill the tree by PID.
 */
export function oracleDump(program: TestProgram, opts: OracleDumpOptions = {}): Promise<OracleDump> {
  const key = `${program} ${JSON.stringify(opts.extraArgs ?? [])}`;
  if (!opts.fresh) {
    const hit = cache.get(key);
    if (hit) return hit;
  }
  const p = doDump(program, opts);
  cache.set(key, p);
  // A failed dump must not stay cached.
  p.catch(() => cache.delete(key));
  return p;
}

async function doDump(program: TestProgram, opts: OracleDumpOptions): Promise<OracleDump> {
  const build = buildTestPrograms();
  const base = path.join(fixturesDir(), `${program}-${++dumpSeq}`);
  const dir = path.join(base, 'images');
  fs.mkdirSync(dir, { recursive: true });
  const programLog = path.join(base, `${program}.out`);
  const dumpLog = path.join(base, 'dump.log');

  const pid = startDetached(path.join(build, program), programLog);
  let pids = [pid];
  try {
    await waitForReady(pid, programLog);
    pids = processTree(pid);
    const args = ['dump', '--no-default-config', '-t', String(pid), '-D', dir, '-o', dumpLog, '-v4', ...(opts.extraArgs ?? [])];
    const res = spawnSync(criuOraclePath(), args, { encoding: 'utf8', timeout: 60000 });
    if (res.status !== 0) {
      const log = fs.existsSync(dumpLog) ? fs.readFileSync(dumpLog, 'utf8') : '';
      throw new OracleDumpError(program, pids, res.status, res.stderr, log.slice(-4000));
    }
  } finally {
    // criu dump killed the tree; this only acts when something failed.
    await killAndWait(pids.filter((p) => !isDead(p)));
  }
  const files = fs.readdirSync(dir).sort();
  return { program, dir, pid, pids, dumpLog, programLog, files };
}

/** Removes this process's fixtures (call in afterAll). */
export function removeOracleDumps(): void {
  cache.clear();
  fs.rmSync(path.join(FIXTURES_ROOT, String(process.pid)), { recursive: true, force: true });
}

// ---- crit (pycriu) in one python process per batch ----

/** What crit produces for one image file. */
export interface CritDecoded {
  /** exactly `crit decode` output (json.dumps text, without crit's trailing newline to stdout) */
  plain?: string;
  /** exactly `crit decode --pretty` / `crit show` output, without the trailing newline */
  pretty?: string;
  /** `crit info` result, or why it failed (it cannot walk images with raw payload) */
  info?: { magic: string; count: number };
  infoError?: { kind: string; message: string };
  /** why pycriu refused the file: 'magic' = crit's "Unknown magic ... raw data" error */
  error?: { kind: string; message: string; magic?: number };
}

const PY_BATCH = String.raw`
import base64, json, sys
import pycriu

req = json.load(sys.stdin)
res = {'decode': {}, 'encode': {}}
for p in req['decode']:
    r = {}
    try:
        for pretty in (False, True):
            with open(p, 'rb') as f:
                img = pycriu.images.load(f, pretty)
            r['pretty' if pretty else 'plain'] = json.dumps(img, indent=4 if pretty else None)
    except pycriu.images.MagicException as e:
        r['error'] = {'kind': 'magic', 'message': 'Unknown magic %#x' % e.magic, 'magic': e.magic}
    except Exception as e:
        r['error'] = {'kind': type(e).__name__, 'message': str(e)}
    # crit info walks length-prefixed records only: it fails on images with raw payload
    # after an entry (pipes-data with unread bytes), so it is kept apart from decode.
    if 'error' not in r:
        try:
            with open(p, 'rb') as f:
                r['info'] = pycriu.images.info(f)
        except Exception as e:
            r['infoError'] = {'kind': type(e).__name__, 'message': str(e)}
    res['decode'][p] = r
for p in req['encode']:
    try:
        with open(p, 'r') as f:
            img = json.load(f)
        res['encode'][p] = {'bytes': base64.b64encode(pycriu.images.dumps(img)).decode()}
    except Exception as e:
        res['encode'][p] = {'error': {'kind': type(e).__name__, 'message': str(e)}}
json.dump(res, sys.stdout)
`;

interface BatchResult {
  decode: Record<string, CritDecoded>;
  encode: Record<string, { bytes?: string; error?: { kind: string; message: string } }>;
}

function runBatch(decode: string[], encode: string[]): BatchResult {
  const env = {
    ...process.env,
    PYTHONPATH: pycriuPath() + (process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : ''),
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION: 'python',
  };
  const res = spawnSync(pythonPath(), ['-s', '-c', PY_BATCH], {
    input: JSON.stringify({ decode, encode }),
    encoding: 'utf8',
    env,
    maxBuffer: 1 << 30,
    timeout: 300000,
  });
  if (res.status !== 0) throw new Error(`pycriu batch failed (status ${res.status}): ${res.stderr}`);
  return JSON.parse(res.stdout) as BatchResult;
}

/** crit decode (plain and pretty) and crit info of every file, in one python run. */
export function critDecodeFiles(files: string[]): Record<string, CritDecoded> {
  return runBatch(files, []).decode;
}

/** crit encode of every JSON file (plain or pretty JSON text): the bytes it writes, or its error. */
export function critEncodeFiles(jsonFiles: string[]): Record<string, { bytes?: Buffer; error?: { kind: string; message: string } }> {
  const out: Record<string, { bytes?: Buffer; error?: { kind: string; message: string } }> = {};
  for (const [p, r] of Object.entries(runBatch([], jsonFiles).encode)) {
    out[p] = r.bytes !== undefined ? { bytes: Buffer.from(r.bytes, 'base64') } : { error: r.error };
  }
  return out;
}

/** A scratch dir for a test file, removed by removeOracleDumps(). */
export function scratchDir(name: string): string {
  const d = path.join(fixturesDir(), `${name}-${++dumpSeq}`);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** Page size of this machine (pagemap nr_pages counts these). */
export function pageSize(): number {
  const out = execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' });
  const size = Number.parseInt(out.trim(), 10);
  if (!(size > 0)) throw new Error(`getconf PAGESIZE printed ${out}`);
  return size;
}
