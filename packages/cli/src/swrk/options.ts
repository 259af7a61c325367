// criu_opts as criu-ts reads them: which fields it honours, which have nothing to do in criu-ts
// (a warning in the log, as `criu dump`/`restore` do for the same command-line options), and
// which would change what CRIU does in ways the engine cannot follow (the request is refused
// with a clear error, never silently half-done). Also CRIU's directory and log conventions of
// the RPC: images_dir_fd and work_dir_fd are descriptors of the *client* process, reached
// through /proc/<peer pid>/fd/<n>; the log file is a bare name in the work directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger, parseExternal, type CgroupMode, type CgroupRoot, type ExternalResources, type InheritFd, type LogLevel } from '@criu/core';
import type { Msg } from '@criu/images';
import { CG_MODE, ERRNO } from './protocol.js';
import { CRIU_COMPAT_VERSION, CRIU_TS_VERSION } from '../version.js';

/** A request criu-ts answers with success=false: the message goes to cr_errmsg. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    message: string,
    readonly errno: number = ERRNO.EBADRQC,
  ) {
    super(message);
  }
}

/** Fields read by the code (or with nothing to refuse) for the operations criu-ts has. */
const HONOURED = new Set([
  'images_dir_fd', 'images_dir', 'work_dir_fd', 'pid', 'leave_running', 'shell_job', 'log_level', 'log_file',
  'log_to_stderr', 'notify_scripts', 'display_stats', 'cpu_cap', 'ghost_limit',
  // iterative dumps (auto_dedup punches parent pages at dump time; a restore has nothing to do)
  'parent_img', 'track_mem', 'auto_dedup',
  // containers (runc): read by engineOptions()
  'root', 'external', 'ext_mnt', 'inherit_fd', 'manage_cgroups', 'manage_cgroups_mode', 'cg_root',
]);

/**
 * Accepted and without effect: they allow resources the engine refuses anyway (sockets) or
 * always handles (file locks), tune machinery it does not have (irmap, cgroup freezing, network locking of a
 * namespace it does not dump), or are obsolete in CRIU too (status_fd).
 */
const IGNORED = new Map<string, string>([
  ['ext_unix_sk', ''], ['unix_sk_ino', ''], ['evasive_devices', ''], ['file_locks', ''], ['link_remap', ''],
  ['force_irmap', ''], ['irmap_scan_paths', ''], ['skip_mnt', ''], ['enable_fs', ''],
  ['timeout', ''], ['network_lock', ''], ['weak_sysctls', ''], ['tcp_skip_in_flight', ''], ['freeze_cgroup', ''],
  ['skip_file_rwx_check', ''], ['pre_dump_mode', ''], ['mntns_compat_mode', ''],
  ['auto_ext_mnt', ''], ['ext_sharing', ''], ['ext_masters', ''], ['unprivileged', ''], ['status_fd', ' (obsolete in CRIU too)'],
  ['cgroup_props', ': cgroup properties are neither saved nor restored'], ['cgroup_props_file', ': cgroup properties are neither saved nor restored'], ['cgroup_dump_controller', ''],
  // runc always asks for it; a terminal's master outside the tree is refused at dump time anyway.
  ['orphan_pts_master', ': criu-ts refuses a tree whose terminal master is outside it at dump time'],
  ['rst_sibling', ': the restored task is reparented to init (or the nearest subreaper), not made a child of the client'],
]);

/** Refused when set, with the reason shown to the client. */
const REFUSED = new Map<string, string>([
  ['ps', 'page server (ps) is not supported'],
  ['lazy_pages', 'lazy pages are not supported'],
  ['exec_cmd', 'exec_cmd is not supported'],
  ['veths', 'veth pairs are not supported: criu-ts does not restore network namespaces'],
  ['join_ns', 'join_ns is not supported: criu-ts does not restore namespaces'],
  ['tcp_established', 'established TCP connections (tcp_established) are not supported'],
  ['tcp_close', 'tcp_close is not supported'],
  ['leave_stopped', 'leave_stopped is not supported'],
  ['lsm_profile', 'lsm_profile is not supported'],
  ['lsm_mount_context', 'lsm_mount_context is not supported'],
  ['tls', 'TLS is not supported'], ['tls_cacert', 'TLS is not supported'], ['tls_cacrl', 'TLS is not supported'],
  ['tls_cert', 'TLS is not supported'], ['tls_key', 'TLS is not supported'], ['tls_no_cn_verify', 'TLS is not supported'],
  ['cgroup_yard', 'cgroup_yard is not supported'],
  ['pidfd_store_sk', 'pidfd_store is not supported'],
]);

const CLONE_NEWNET = 0x40000000;

/** True when a field asks for something (false, 0, '' and [] are the defaults and ask for nothing). */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/**
 * Checks criu_opts against the policy. Throws RpcError (EBADRQC, as CRIU answers a request whose
 * options it can't set up) for the first refused field; returns warnings for ignored ones.
 */
export function checkOpts(opts: Msg): string[] {
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(opts)) {
    if (HONOURED.has(key)) continue;
    if (!isSet(value)) continue;
    if (key === 'empty_ns') {
      // runc sets CLONE_NEWNET for a container whose network namespace it manages itself:
      // its contents are not dumped, which criu-ts never does anyway.
      const other = Number(value) & ~CLONE_NEWNET;
      if (other) throw new RpcError(`empty_ns 0x${other.toString(16)} is not supported by criu-ts (only the network namespace, 0x${CLONE_NEWNET.toString(16)})`);
      continue;
    }
    if (key === 'config_file') {
      // CRIU reads it when it exists (runc names /etc/criu/runc.conf whether or not it does).
      if (fs.existsSync(String(value))) warnings.push(`config_file ${String(value)} exists and is NOT read by criu-ts: its options do not apply`);
      continue;
    }
    const refused = REFUSED.get(key);
    if (refused !== undefined) throw new RpcError(`${refused} (criu-ts)`);
    const ignored = IGNORED.get(key);
    if (ignored !== undefined) {
      warnings.push(`option ${key} has no effect in criu-ts; ignored${ignored}`);
      continue;
    }
    throw new RpcError(`option ${key} is not supported by criu-ts`);
  }
  return warnings;
}

/** A directory the request names, held open while the request runs. */
interface HeldDir {
  path: string;
  fd?: number;
}

/**
 * A descriptor of the client (`/proc/<peer>/fd/<n>`) as a directory path this process and the
 * restore helper it starts can use: the real path when it names the same directory, else our
 * own descriptor's /proc path.
 */
function clientDir(peerPid: number, fd: number, what: string): HeldDir {
  const proc = `/proc/${peerPid}/fd/${fd}`;
  let own: number;
  try {
    own = fs.openSync(proc, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RpcError(`can't open ${what} ${proc} (descriptor ${fd} of the client, pid ${peerPid}): ${code ?? (e as Error).message}`, code === 'ENOTDIR' ? 20 : code === 'EACCES' ? ERRNO.EACCES : ERRNO.ENOENT);
  }
  try {
    const real = fs.readlinkSync(`/proc/self/fd/${own}`);
    const a = fs.statSync(real);
    const b = fs.fstatSync(own);
    if (a.dev === b.dev && a.ino === b.ino) return { path: real, fd: own };
  } catch {
    /* another mount namespace, or deleted: use our descriptor */
  }
  return { path: `/proc/${process.pid}/fd/${own}`, fd: own };
}

/** What a DUMP/RESTORE/CPUINFO request runs with. */
export interface RequestEnv {
  imagesDir: string;
  workDir: string;
  logger: Logger;
  /** absolute log file, when logging to a file */
  logFile?: string;
  warnings: string[];
  close(): void;
}

/** CRIU's default log file name in the work directory (DEFAULT_LOG_FILENAME). */
export const DEFAULT_LOG_FILE = 'criu.log';

/**
 * Sets up a request as CRIU's setup_opts_from_req does: option policy, images directory
 * (images_dir_fd of the client, else images_dir), work directory (work_dir_fd, else the images
 * directory) and the log (log_file in the work dir, or stderr with log_to_stderr).
 */
export function setupRequest(opts: Msg, peerPid: number, stderr: (s: string) => void): RequestEnv {
  const held: HeldDir[] = [];
  const closeAll = () => {
    for (const h of held) if (h.fd !== undefined) try { fs.closeSync(h.fd); } catch { /* closed */ }
  };
  try {
    let images: HeldDir;
    const imagesFd = opts.images_dir_fd === undefined ? -1 : Number(opts.images_dir_fd);
    if (imagesFd !== -1) images = clientDir(peerPid, imagesFd, 'the images directory');
    else if (typeof opts.images_dir === 'string' && opts.images_dir) images = { path: path.resolve(opts.images_dir) };
    else throw new RpcError('Neither images_dir_fd nor images_dir was passed by RPC client');
    held.push(images);
    if (!images.fd && !fs.existsSync(images.path)) throw new RpcError(`can't open the images directory ${images.path}: No such file or directory`, ERRNO.ENOENT);
    let work = images;
    if (opts.work_dir_fd !== undefined) {
      work = clientDir(peerPid, Number(opts.work_dir_fd), 'the work directory');
      held.push(work);
    }
    const level = Math.max(0, Math.min(4, opts.log_level === undefined ? 2 : Number(opts.log_level))) as LogLevel;
    let logger: Logger;
    let logFile: string | undefined;
    if (typeof opts.log_file === 'string' && opts.log_file) {
      if (opts.log_file.includes('/')) throw new RpcError(`No subdirs are allowed in log_file name (${opts.log_file})`);
      logFile = path.join(work.path, opts.log_file);
    } else if (opts.log_to_stderr !== true) {
      logFile = path.join(work.path, DEFAULT_LOG_FILE);
    }
    if (logFile) {
      try {
        fs.writeFileSync(logFile, '', { mode: 0o600 });
      } catch (e) {
        throw new RpcError(`can't open the log file ${logFile}: ${(e as Error).message}`, ERRNO.EACCES);
      }
      logger = new Logger(level, logFile);
    } else {
      logger = new Logger(level, undefined, stderr);
    }
    logger.info(`Version: ${CRIU_COMPAT_VERSION} (criu-ts ${CRIU_TS_VERSION}), RPC`);
    // Checked once the log is open: a refused option is in the log the client points its user to.
    let warnings: string[];
    try {
      warnings = checkOpts(opts);
    } catch (e) {
      logger.error((e as Error).message);
      logger.close();
      throw e;
    }
    for (const w of warnings) logger.warn(w);
    return {
      imagesDir: images.path,
      workDir: work.path,
      logger,
      logFile,
      warnings,
      close: () => {
        logger.close();
        closeAll();
      },
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}

/** What a DUMP/RESTORE passes on to the engine from the container-related fields. */
export interface EngineOptions {
  external: ExternalResources;
  inheritFds: InheritFd[];
  root?: string;
  manageCgroups: CgroupMode;
  cgroupRoots: CgroupRoot[];
}

const CG_MODES: Record<number, CgroupMode> = {
  [CG_MODE.IGNORE]: 'ignore', [CG_MODE.CG_NONE]: 'none', [CG_MODE.PROPS]: 'props', [CG_MODE.SOFT]: 'soft',
  [CG_MODE.FULL]: 'full', [CG_MODE.STRICT]: 'strict', [CG_MODE.DEFAULT]: 'soft',
};

/**
 * external + ext_mnt → ExternalResources; inherit_fd (descriptors of THIS process: runc hands
 * them to `criu swrk` as its stdio and extra files, as CRIU expects) → InheritFd; root;
 * manage_cgroups (true: soft, false: ignore, as CRIU) overridden by manage_cgroups_mode; cg_root.
 */
export function engineOptions(opts: Msg): EngineOptions {
  let external: ExternalResources;
  try {
    external = parseExternal(opts.external as string[] | undefined, (opts.ext_mnt as Array<{ key: string; val: string }> | undefined) ?? []);
  } catch (e) {
    throw new RpcError((e as Error).message);
  }
  const inheritFds: InheritFd[] = ((opts.inherit_fd as Msg[] | undefined) ?? []).map((x) => {
    const fd = Number(x.fd);
    const key = String(x.key ?? '');
    if (!key) throw new RpcError(`inherit_fd with fd ${fd} has an empty key`);
    try {
      fs.fstatSync(fd);
    } catch (e) {
      throw new RpcError(`inherit_fd ${key}: descriptor ${fd} is not open in criu swrk (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return { key, fd };
  });
  let manageCgroups: CgroupMode = opts.manage_cgroups === false ? 'ignore' : 'soft';
  if (opts.manage_cgroups_mode !== undefined) {
    const m = CG_MODES[Number(opts.manage_cgroups_mode)];
    if (!m) throw new RpcError(`unknown manage_cgroups_mode ${String(opts.manage_cgroups_mode)}`);
    manageCgroups = m;
  }
  const cgroupRoots: CgroupRoot[] = ((opts.cg_root as Msg[] | undefined) ?? []).map((r) => {
    const p = String(r.path ?? '');
    if (!p.startsWith('/')) throw new RpcError(`cg_root ${r.ctrl === undefined ? '' : `${String(r.ctrl)}:`}${p}: the path must be absolute`);
    return r.ctrl === undefined ? { path: p } : { controller: String(r.ctrl), path: p };
  });
  const root = typeof opts.root === 'string' && opts.root && path.resolve(opts.root) !== '/' ? path.resolve(opts.root) : undefined;
  return { external, inheritFds, root, manageCgroups, cgroupRoots };
}
