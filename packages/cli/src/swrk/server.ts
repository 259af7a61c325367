// `criu swrk FD`: CRIU's RPC service on one already-connected SOCK_SEQPACKET socket (runc and
// go-criu start it with a socketpair). One criu_req per datagram, one criu_resp per datagram;
// the loop goes on while the request says keep_open (CRIU allows that for VERSION,
// FEATURE_CHECK, CPUINFO_* and the page server only). Exit status as CRIU's: 0 when the last
// request was answered (queries answer success=false without failing the process), 1 when a
// DUMP/RESTORE failed or the conversation broke (EOF, a malformed request).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectMemTrack, dump, DumpError, hostArch, parseExternal, restore, RestoreError, type Arch, type DumpResult, type RestoreHook } from '@criu/core';
import { decodeMessage, encodeMessage, readImageFile, writeImageFile, type Msg } from '@criu/images';
import { sys, SysError } from '@criu/sys';
import { CRIU_TS_VERSION } from '../version.js';
import { engineOptions, RpcError, setupRequest, type RequestEnv } from './options.js';
import { ERRNO, REQ, reqTypeName } from './protocol.js';
import type { PeerCred, SeqpacketSocket } from './socket.js';

/** The version criu-ts answers: the CRIU release whose behaviour it follows. */
export const RPC_VERSION = { major_number: 4, minor_number: 1, name: `criu-ts ${CRIU_TS_VERSION}` } as const;

/**
 * CRIU_TS_RPC_TRACE=FILE: every decoded criu_req and every criu_resp sent is appended to FILE as
 * one JSON line, to see exactly what a client (runc) asks for and what it was told.
 */
const TRACE_ENV = 'CRIU_TS_RPC_TRACE';

function trace(dir: 'req' | 'resp', msg: Msg, fds: number[] = []): void {
  const file = process.env[TRACE_ENV];
  if (!file) return;
  const line = JSON.stringify({ t: new Date().toISOString(), pid: process.pid, dir, fds: fds.length || undefined, msg }, (_k, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );
  try {
    fs.appendFileSync(file, `${line}\n`);
  } catch {
    /* tracing is best effort */
  }
}

const NS_KINDS = ['pid', 'net', 'mnt', 'uts', 'ipc', 'user', 'cgroup'];

/** True when task `pid` is in another namespace than this process for one of `kinds`. */
function nsDiffers(pid: number, kinds: string[]): boolean {
  return kinds.some((k) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/ns/${k}`) !== fs.readlinkSync(`/proc/self/ns/${k}`);
    } catch {
      return false; // a kernel without that kind
    }
  });
}

/** Requests CRIU lets a client send with keep_open (chk_keepopen_req). */
const KEEP_OPEN_OK = new Set<number>([REQ.VERSION, REQ.FEATURE_CHECK, REQ.CPUINFO_DUMP, REQ.CPUINFO_CHECK, REQ.PAGE_SERVER, REQ.PAGE_SERVER_CHLD]);

export interface SwrkServerOptions {
  socket: SeqpacketSocket;
  /** where to say why the service stopped (CRIU prints such errors on stderr) */
  stderr: (text: string) => void;
  arch?: Arch;
  /** a worker of `criu service` (not started by its client): rst_sibling and inherit_fd are refused, as CRIU does */
  standalone?: boolean;
}

/** A request failed in a way the client is told about. */
interface Failure {
  message: string;
  errno?: number;
}

/** errno of the first SysError in an error's cause chain (or ESRCH for a task that is gone). */
function errnoOf(err: unknown): number | undefined {
  for (let e = err as { cause?: unknown } | undefined, i = 0; e && i < 8; e = e.cause as typeof e, i++) {
    if (e instanceof RpcError) return e.errno;
    if (e instanceof SysError) return e.errno;
  }
  const msg = err instanceof Error ? err.message : String(err);
  if (/no such process/i.test(msg)) return ERRNO.ESRCH;
  return undefined;
}

function failureOf(err: unknown): Failure {
  return { message: err instanceof Error ? err.message : String(err), errno: errnoOf(err) };
}

/** cr_errmsg / cr_errno of a failure, in CRIU's form (cr_errno only when known). */
function errFields(f: Failure | undefined): Msg {
  if (!f) return {};
  const out: Msg = { cr_errmsg: f.message };
  if (f.errno) out.cr_errno = f.errno;
  return out;
}

export class SwrkServer {
  private readonly socket: SeqpacketSocket;
  private readonly stderr: (text: string) => void;
  private readonly arch?: Arch;
  private readonly standalone: boolean;
  private peer: PeerCred = { pid: 0, uid: 0, gid: 0 };

  constructor(o: SwrkServerOptions) {
    this.socket = o.socket;
    this.stderr = o.stderr;
    this.arch = o.arch;
    this.standalone = o.standalone === true;
  }

  /** Serves until the conversation ends; resolves to the process exit status. */
  async serve(): Promise<number> {
    try {
      this.peer = this.socket.peerCred();
    } catch (e) {
      this.stderr(`Error (criu-ts swrk): can't read the credentials of the RPC peer: ${(e as Error).message}\n`);
      return 1;
    }
    for (;;) {
      const req = await this.receive();
      if (req === undefined) return 1;
      const type = Number(req.type);
      if (req.keep_open === true && !KEEP_OPEN_OK.has(type)) {
        // CRIU drops such a request without an answer; the client deserves one.
        this.send({ type, success: false, ...errFields({ message: `keep_open is not allowed with ${reqTypeName(type)} (only VERSION, FEATURE_CHECK, CPUINFO_DUMP, CPUINFO_CHECK and PAGE_SERVER)`, errno: ERRNO.EBADRQC }) });
        return 1;
      }
      let status: number;
      try {
        status = await this.dispatch(type, req);
      } catch (e) {
        // Only a broken socket gets here (every handler answers its own failures).
        this.stderr(`Error (criu-ts swrk): ${(e as Error).message}\n`);
        return 1;
      }
      if (status !== 0 || req.keep_open !== true) return status;
    }
  }

  /** The next request; undefined (after telling the client, when it is still there) when there is none. */
  private async receive(): Promise<Msg | undefined> {
    let data: Buffer;
    try {
      const d = await this.socket.recv();
      for (const fd of d.fds) sys.close(fd); // CRIU takes no descriptors with a request
      if (d.closed) {
        this.stderr('Error (criu-ts swrk): the RPC client closed the socket before sending a request\n');
        return undefined;
      }
      data = d.data;
    } catch (e) {
      this.stderr(`Error (criu-ts swrk): can't receive a request: ${(e as Error).message}\n`);
      return undefined;
    }
    try {
      const req = decodeMessage('criu_req', data);
      trace('req', req);
      return req;
    } catch (e) {
      const message = `malformed criu_req (${data.length} bytes): ${(e as Error).message}`;
      this.stderr(`Error (criu-ts swrk): ${message}\n`);
      try {
        this.send({ type: REQ.EMPTY, success: false, cr_errmsg: message, cr_errno: ERRNO.EBADMSG });
      } catch {
        /* the client is gone too */
      }
      return undefined;
    }
  }

  private send(resp: Msg, fds: number[] = []): void {
    trace('resp', resp, fds);
    this.socket.send(encodeMessage('criu_resp', resp), fds);
  }

  private async dispatch(type: number, req: Msg): Promise<number> {
    const opts = (req.opts ?? { images_dir_fd: -1 }) as Msg;
    switch (type) {
      case REQ.VERSION:
        this.send({ type, success: true, version: { ...RPC_VERSION } });
        return 0;
      case REQ.FEATURE_CHECK:
        // What criu-ts has of each: none yet. CRIU answers all three whatever was asked.
        this.send({ type, success: true, features: { mem_track: detectMemTrack().method !== undefined, lazy_pages: false, pidfd_store: false } });
        return 0;
      case REQ.CHECK:
        this.send({ type, success: true });
        return 0;
      case REQ.DUMP:
        return this.dump(opts);
      case REQ.RESTORE:
        return this.restore(opts);
      case REQ.CPUINFO_DUMP:
      case REQ.CPUINFO_CHECK:
        return this.cpuinfo(type, opts);
      case REQ.WAIT_PID:
        return this.waitPid(Number(req.pid ?? 0));
      case REQ.PRE_DUMP:
        return this.dump(opts, REQ.PRE_DUMP);
      case REQ.SINGLE_PRE_DUMP:
        this.send({ type, success: false, ...errFields({ message: 'single pre-dump is not supported by criu-ts; use PRE_DUMP', errno: ERRNO.EOPNOTSUPP }) });
        return 1;
      case REQ.PAGE_SERVER:
      case REQ.PAGE_SERVER_CHLD:
        this.send({ type, success: false, ...errFields({ message: 'the page server is not supported by criu-ts', errno: ERRNO.EOPNOTSUPP }) });
        return 1;
      default:
        // EMPTY, or a NOTIFY reply with no notification pending: CRIU's "Invalid req".
        this.send({ type: REQ.EMPTY, success: false, ...errFields({ message: `Invalid req: ${reqTypeName(type)} is not a request a client starts`, errno: ERRNO.EBADRQC }) });
        return 1;
    }
  }

  /**
   * A NOTIFY round trip (opts.notify_scripts): criu_resp{NOTIFY, notify{script, pid}}, then the
   * client's criu_req{NOTIFY, notify_success}. Throws RpcError when the client reports failure.
   */
  private async notify(env: RequestEnv, script: string, pid?: number): Promise<Msg> {
    env.logger.info(`RPC: notify ${script}${pid ? ` (pid ${pid})` : ''}`);
    this.send({ type: REQ.NOTIFY, success: true, notify: pid ? { script, pid } : { script } });
    const d = await this.socket.recv();
    for (const fd of d.fds) sys.close(fd);
    if (d.closed) throw new RpcError(`the RPC client went away during the ${script} notification`, 104 /* ECONNRESET */);
    let reply: Msg;
    try {
      reply = decodeMessage('criu_req', d.data);
      trace('req', reply);
    } catch (e) {
      throw new RpcError(`malformed reply to the ${script} notification: ${(e as Error).message}`, ERRNO.EBADMSG);
    }
    if (Number(reply.type) !== REQ.NOTIFY || reply.notify_success !== true) {
      throw new RpcError(`RPC client reported script error (${script})`, ERRNO.EINVAL);
    }
    return reply;
  }

  private setup(opts: Msg): RequestEnv {
    if (this.standalone && opts.rst_sibling !== undefined) throw new RpcError('rst_sibling is not allowed in standalone service');
    // Its descriptors would be the service's, not the client's.
    if (this.standalone && Array.isArray(opts.inherit_fd) && opts.inherit_fd.length) throw new RpcError('inherit_fd is not allowed in standalone service');
    return setupRequest(opts, this.peer.pid, (line) => this.stderr(line));
  }

  /** DUMP: CRIU's dump_using_req. No response after killing the client itself (it is gone). */
  private async dump(opts: Msg, reqType: number = REQ.DUMP): Promise<number> {
    const preDump = reqType === REQ.PRE_DUMP;
    const selfDump = !opts.pid;
    const pid = selfDump ? this.peer.pid : Number(opts.pid);
    const leaveRunning = opts.leave_running === true;
    let failure: Failure | undefined;
    let env: RequestEnv | undefined;
    let networkLocked = false;
    try {
      env = this.setup(opts);
      const e = env;
      const notifying = opts.notify_scripts === true;
      const eng = engineOptions(opts);
      e.logger.info(`Dumping task ${pid} into ${e.imagesDir} (RPC)`);
      if (notifying) await this.notify(e, 'pre-dump');
      const ghostLimit = opts.ghost_limit === undefined ? undefined : Number(opts.ghost_limit);
      // CRIU's order: pre-dump; network-lock and query-ext-files once the tree is frozen;
      // post-dump with the images written and the tasks still frozen; network-unlock when they
      // live on (leave_running, or a failed dump).
      const onHook = async (name: 'network-lock' | 'post-dump') => {
        if (!notifying) return;
        if (name === 'network-lock') {
          // Only for a tree in a network namespace of its own, and not for a pre-dump, as CRIU.
          if (!preDump && nsDiffers(pid, ['net'])) {
            await this.notify(e, 'network-lock');
            networkLocked = true;
          }
          const ext = await this.notify(e, 'query-ext-files');
          const more = ((ext.opts as Msg | undefined)?.external as string[] | undefined) ?? [];
          if (more.length) {
            const add = parseExternal(more);
            for (const [k, v] of add.mounts) eng.external.mounts.set(k, v);
            for (const [k, v] of add.nets) eng.external.nets.set(k, v);
            eng.external.other.push(...add.other);
          }
          return;
        }
        await this.notify(e, name);
      };
      const result: DumpResult = await dump({
        pid, imagesDir: e.imagesDir, leaveRunning, shellJob: opts.shell_job === true, logger: e.logger, arch: this.arch, ghostLimit,
        // Iterative dumps (runc checkpoint --pre-dump, then --parent-path).
        preDump, trackMem: opts.track_mem === true, parentImagesDir: typeof opts.parent_img === 'string' ? opts.parent_img : undefined, autoDedup: opts.auto_dedup === true,
        external: eng.external, manageCgroups: eng.manageCgroups, onHook,
      });
      if (networkLocked && leaveRunning) await this.notify(e, 'network-unlock');
      if (opts.display_stats === true) {
        const s = result.stats;
        env.logger.info(`Dump stats: freezing ${s.freezingTimeUs} us, frozen ${s.frozenTimeUs} us, memdump ${s.memdumpTimeUs} us, memwrite ${s.memwriteTimeUs} us, pages scanned ${s.pagesScanned}, written ${s.pagesWritten}`);
      }
      env.logger.info('Dumping finished successfully');
    } catch (e) {
      failure = failureOf(e);
      // The engine has logged its own errors already.
      if (!(e instanceof DumpError || e instanceof RestoreError)) env?.logger.error(failure.message);
      if (networkLocked && env) {
        try {
          await this.notify(env, 'network-unlock');
        } catch (ue) {
          env.logger.error(`network-unlock after the failed dump: ${(ue as Error).message}`);
        }
      }
    } finally {
      env?.close();
    }
    if (preDump) {
      this.send({ type: REQ.PRE_DUMP, success: !failure, ...errFields(failure) });
    } else if (leaveRunning || !selfDump || failure) {
      this.send({ type: REQ.DUMP, success: !failure, dump: { restored: false }, ...errFields(failure) });
    }
    return failure ? 1 : 0;
  }

  /** RESTORE: CRIU's restore_using_req, always detached (the restored tree outlives swrk). */
  private async restore(opts: Msg): Promise<number> {
    let failure: Failure | undefined;
    let env: RequestEnv | undefined;
    let pid = -1;
    try {
      env = this.setup(opts);
      const e = env;
      const notifying = opts.notify_scripts === true;
      const eng = engineOptions(opts);
      e.logger.info(`Restoring from ${e.imagesDir} (RPC, detached)`);
      if (notifying) await this.notify(e, 'pre-restore');
      // CRIU's order (pids for setup-namespaces and post-restore); all but post-resume come
      // while the restored tasks are stopped, and a failed one fails the restore.
      const onHook = async (name: RestoreHook, hookPid: number) => {
        if (!notifying) return;
        // As CRIU: the namespace scripts only when the tree has namespaces of its own, the
        // network unlock only with a network namespace of its own.
        if ((name === 'setup-namespaces' || name === 'post-setup-namespaces') && !nsDiffers(hookPid, NS_KINDS)) return;
        if (name === 'network-unlock' && !nsDiffers(hookPid, ['net'])) return;
        await this.notify(e, name, name === 'setup-namespaces' || name === 'post-restore' ? hookPid : undefined);
      };
      // cpu_cap: CRIU's RPC always adds the image check to it, which is the engine's default.
      const result = await restore({
        imagesDir: e.imagesDir, detach: true, shellJob: opts.shell_job === true, logger: e.logger, arch: this.arch,
        root: eng.root, external: eng.external, inheritFds: eng.inheritFds, manageCgroups: eng.manageCgroups, cgroupRoots: eng.cgroupRoots, onHook,
      });
      pid = result.pid;
      if (notifying) {
        try {
          await this.notify(e, 'post-resume');
        } catch (e) {
          // The restore is reported failed: the task must not live on unowned.
          env.logger.error(`killing restored task ${pid}: ${(e as Error).message}`);
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
          pid = -1;
          throw e;
        }
      }
      env.logger.info('Restore finished successfully. Tasks resumed.');
    } catch (e) {
      failure = failureOf(e);
      // The engine has logged its own errors already.
      if (!(e instanceof DumpError || e instanceof RestoreError)) env?.logger.error(failure.message);
    } finally {
      env?.close();
    }
    this.send({ type: REQ.RESTORE, success: !failure, restore: { pid: failure ? -1 : pid }, ...errFields(failure) });
    return failure ? 1 : 0;
  }

  /** CPUINFO_DUMP / CPUINFO_CHECK: cpuinfo.img in the images directory, where the arch records CPU features. */
  private async cpuinfo(type: number, opts: Msg): Promise<number> {
    let failure: Failure | undefined;
    let env: RequestEnv | undefined;
    try {
      const arch = this.arch ?? hostArch();
      const cpu = arch.cpuinfo?.();
      if (!cpu) throw new RpcError(`cpuinfo ${type === REQ.CPUINFO_DUMP ? 'dump' : 'check'} is not supported on ${arch.name}: criu-ts records no CPU features there`, ERRNO.EOPNOTSUPP);
      env = this.setup(opts);
      const file = path.join(env.imagesDir, 'cpuinfo.img');
      if (type === REQ.CPUINFO_DUMP) {
        await writeImageFile(file, 'CPUINFO', [{ message: cpu }]);
        env.logger.info(`wrote ${file}`);
      } else {
        if (!fs.existsSync(file)) throw new RpcError(`no cpuinfo.img in ${env.imagesDir}`, ERRNO.ENOENT);
        const img = await readImageFile(file);
        const entry = img.entries[0]?.message as Msg | undefined;
        if (!entry) throw new RpcError('cpuinfo.img has no record', ERRNO.EINVAL);
        const missing = arch.cpuinfoMissing?.(entry) ?? [];
        if (missing.length) throw new RpcError(`this CPU lacks features the image's CPU had: ${missing.join(', ')}`, ERRNO.EOPNOTSUPP);
        env.logger.info('cpuinfo.img matches this CPU');
      }
    } catch (e) {
      failure = failureOf(e);
      // The engine has logged its own errors already.
      if (!(e instanceof DumpError || e instanceof RestoreError)) env?.logger.error(failure.message);
    } finally {
      env?.close();
    }
    this.send({ type, success: !failure, ...errFields(failure) });
    return 0;
  }

  /** WAIT_PID: waits for a child of this process (CRIU: the raw wait status in `status`). */
  private async waitPid(pid: number): Promise<number> {
    const status = Buffer.alloc(4);
    try {
      if (pid <= 0) throw new RpcError(`invalid pid ${pid}`, ERRNO.EINVAL);
      await sys.syscallAsync('wait4', pid, status, 0, 0);
      this.send({ type: REQ.WAIT_PID, success: true, status: status.readInt32LE(0) });
    } catch (e) {
      const f = failureOf(e);
      // Restored tasks are not children of swrk in criu-ts (nor in CRIU, whose restore is detached).
      this.send({ type: REQ.WAIT_PID, success: false, ...errFields({ message: `Unable to wait ${pid}: ${f.message}`, errno: f.errno }) });
    }
    return 0;
  }
}
