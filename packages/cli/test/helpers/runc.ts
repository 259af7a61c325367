// runc containers for tests: a busybox bundle in a temporary directory (busybox-static's
// /bin/busybox), a network namespace made with `ip netns add` (runc then declares it external to
// CRIU), the container started detached with its stdio as pipes that belong to a shell wrapper,
// not to Node (files or ttys of the host cannot be dumped from the container's mount namespace;
// pipes are external objects runc hands back at restore), and checkpoint / restore / exec
// wrappers taking the `criu` to use. Everything made is removed by cleanup().
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const RUNC = process.env.RUNC ?? ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].find((p) => fs.existsSync(p)) ?? 'runc';
export const BUSYBOX = process.env.BUSYBOX ?? ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p)) ?? '/bin/busybox';

/** The container's program: a counter written to /tmp/count five times a second. */
export const COUNTER_SCRIPT = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done';

/** Throws (naming what to install) when runc, a static busybox or `ip` is missing. */
export function requireRunc(): void {
  const missing: string[] = [];
  if (spawnSync(RUNC, ['--version']).status !== 0) missing.push(`runc (${RUNC}; Debian: apt-get install runc)`);
  const file = fs.existsSync(BUSYBOX) ? spawnSync('file', ['-L', BUSYBOX], { encoding: 'utf8' }).stdout ?? '' : '';
  if (!fs.existsSync(BUSYBOX)) missing.push(`a static busybox at ${BUSYBOX} (Debian: apt-get install busybox-static)`);
  else if (file && !/statically linked|static-pie/.test(file)) missing.push(`a STATIC busybox (${BUSYBOX} is dynamic; Debian: apt-get install busybox-static)`);
  if (spawnSync('ip', ['-V']).status !== 0) missing.push('ip (iproute2)');
  if (missing.length) throw new Error(`runc tests need: ${missing.join(', ')}`);
}

export interface RunResult {
  status: number | null;
  /** stdout + stderr */
  output: string;
}

export interface Container {
  id: string;
  netns: string;
  dir: string;
  bundle: string;
  /** Starts the container (`runc run -d`) with pipes as stdio; resolves when runc has returned. */
  run(criu?: string): Promise<RunResult>;
  /** `runc checkpoint --image-path IMG [extra] ID` with `criu` as CRIU (work dir = IMG). */
  checkpoint(criu: string, imageDir: string, extra?: string[], env?: NodeJS.ProcessEnv): RunResult;
  /** `runc restore -d --image-path IMG ID` with `criu` as CRIU, stdio pipes again (detached like run). */
  restore(criu: string, imageDir: string, env?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** `runc exec ID ARGS...`: its output. */
  exec(args: string[]): RunResult;
  /** The counter the container writes (-1 when it can't be read). */
  count(): number;
  /** `runc state ID`.status ('running', 'stopped', ...) or undefined when runc knows no such container. */
  status(): string | undefined;
  /** runc kill -9, then runc delete once it has stopped. */
  kill(): Promise<void>;
  cleanup(): void;
}

/** A directory holding only `criu` → the given binary: runc >= 1.2 has no --criu and looks in PATH. */
function criuPathDir(dir: string, criu: string): string {
  const d = path.join(dir, `criu-path-${Buffer.from(criu).toString('hex').slice(-16)}`);
  if (!fs.existsSync(d)) {
    fs.mkdirSync(d);
    fs.symlinkSync(criu, path.join(d, 'criu'));
  }
  return d;
}

function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function waitFile(file: string, what: string, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (fs.existsSync(file)) {
      const t = fs.readFileSync(file, 'utf8');
      if (t.endsWith('\n')) return t;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A busybox bundle `name` (unique per process) with its own network namespace. */
export function makeContainer(name: string, script = COUNTER_SCRIPT): Container {
  const id = `criuts-${name}-${process.pid}`;
  const netns = id;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `criu-ts-runc-${name}-`));
  const bundle = path.join(dir, 'bundle');
  const rootfs = path.join(bundle, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'sleep', 'echo', 'cat', 'ls']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
  execFileSync(RUNC, ['spec'], { cwd: bundle });
  const cfgFile = path.join(bundle, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  cfg.process.terminal = false;
  cfg.process.args = ['/bin/sh', '-c', script];
  cfg.root.readonly = false;
  for (const ns of cfg.linux.namespaces as Array<{ type: string; path?: string }>) if (ns.type === 'network') ns.path = `/var/run/netns/${netns}`;
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  execFileSync('ip', ['netns', 'add', netns]);

  /** Pids of the `sleep` feeding each run's stdin (ours to kill). */
  const sleepers: string[] = [];
  let runs = 0;

  const runcArgs = (criu: string | undefined, args: string[]) => [RUNC, ...(criu ? ['--criu', criu] : []), ...args];
  const envFor = (criu: string | undefined, env?: NodeJS.ProcessEnv) => ({ ...process.env, ...env, ...(criu ? { PATH: `${criuPathDir(dir, criu)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` } : {}) });

  /**
   * runc with the container's stdio: stdin from a `sleep` (a pipe nobody writes), stdout and
   * stderr into a `cat` that writes the run's output file. setsid: neither is Node's child.
   */
  async function detached(criu: string | undefined, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const n = ++runs;
    const out = path.join(dir, `run-${n}.out`);
    const status = path.join(dir, `run-${n}.status`);
    const sleepPid = path.join(dir, `run-${n}.sleep`);
    const cmd = runcArgs(criu, args).map(sh).join(' ');
    const script = `cd ${sh(bundle)}; { sleep 100000 & echo $! > ${sh(sleepPid)}; wait; } | { ${cmd}; echo $? > ${sh(status)}; } 2>&1 | cat > ${sh(out)}`;
    const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
    execFileSync('bash', ['-c', `${closeInherited}; setsid bash -c ${sh(script)} </dev/null >/dev/null 2>&1 &`], { env: envFor(criu, env) });
    const code = Number((await waitFile(status, `runc ${args[0]} ${id} to return`, 120_000)).trim());
    sleepers.push(fs.readFileSync(sleepPid, 'utf8').trim());
    return { status: code, output: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '' };
  }

  const sync = (criu: string | undefined, args: string[], env?: NodeJS.ProcessEnv): RunResult => {
    const [bin, ...rest] = runcArgs(criu, args);
    const r = spawnSync(bin, rest, { cwd: bundle, encoding: 'utf8', env: envFor(criu, env), timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  };

  const c: Container = {
    id,
    netns,
    dir,
    bundle,
    run: (criu) => detached(criu, ['run', '-d', id]),
    checkpoint: (criu, imageDir, extra = [], env) => sync(criu, ['checkpoint', '--image-path', imageDir, ...extra, id], env),
    restore: (criu, imageDir, env) => detached(criu, ['restore', '-d', '--image-path', imageDir, id], env),
    exec: (args) => sync(undefined, ['exec', id, ...args]),
    count: () => {
      const r = c.exec(['cat', '/tmp/count']);
      return r.status === 0 && /^\d+\s*$/.test(r.output) ? Number(r.output) : -1;
    },
    status: () => {
      const r = spawnSync(RUNC, ['state', id], { encoding: 'utf8' });
      if (r.status !== 0) return undefined;
      try {
        return (JSON.parse(r.stdout) as { status: string }).status;
      } catch {
        return undefined;
      }
    },
    kill: async () => {
      sync(undefined, ['kill', id, 'KILL']);
      const end = Date.now() + 10_000;
      while (c.status() === 'running' && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const d = sync(undefined, ['delete', id]);
      if (d.status !== 0) throw new Error(`runc delete ${id}: ${d.output}`);
    },
    cleanup: () => {
      spawnSync(RUNC, ['delete', '-f', id], { stdio: 'ignore' });
      for (const p of sleepers.splice(0)) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch { /* gone */ }
      }
      spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** Waits until the container's counter passes `than` (it runs), or throws. */
export async function countAbove(c: Container, than: number, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const n = c.count();
    if (n > than) return n;
    if (Date.now() > end) throw new Error(`the counter of ${c.id} did not pass ${than} (last read ${n})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
