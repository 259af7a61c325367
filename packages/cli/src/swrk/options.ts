// criu_opts as criu-ts reads them: which fields it honours, which have nothing to do in criu-ts
// (a warning in the log, as `criu dump`/`restore` do for the same command-line options), and
// which would change what CRIU does in ways the engine cannot follow (the request is refused
// with a clear error, never silently half-done). Also CRIU's directory and log conventions of
// the RPC: images_dir_fd and work_dir_fd are descriptors of the *client* process, reached
// through /proc/<peer pid>/fd/<n>; the log file is a bare name in the work directory.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Logger, type LogLevel } from '@criu/core';
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
  ['orphan_pts_master', ''], ['skip_file_rwx_check', ''], ['pre_dump_mode', ''], ['mntns_compat_mode', ''],
  ['auto_ext_mnt', ''], ['ext_sharing', ''], ['ext_masters', ''], ['unprivileged', ''], ['status_fd', ' (obsolete in CRIU too)'],
  ['manage_cgroups', ': criu-ts neither dumps nor restores cgroups; the restored task stays in the cgroup of its restorer'],
  ['cg_root', ': criu-ts does not restore cgroups'], ['cgroup_props', ''], ['cgroup_props_file', ''], ['cgroup_dump_controller', ''],
  ['rst_sibling', ': the restored task is reparented to init (or the nearest subreaper), not made a child of the client'],
]);

/** Refused when set, with the reason shown to the client. */
const REFUSED = new Map<string, string>([
  ['ps', 'page server (ps) is not supported'],
  ['lazy_pages', 'lazy pages are not supported'],
  ['exec_cmd', 'exec_cmd is not supported'],
  ['ext_mnt', 'external mounts (ext_mnt) are not supported: criu-ts does not dump or restore mount namespaces'],
  ['veths', 'veth pairs are not supported: criu-ts does not restore network namespaces'],
  ['inherit_fd', 'inherit_fd is not supported'],
  ['join_ns', 'join_ns is not supported: criu-ts does not restore namespaces'],
  ['external', 'external resources (external) are not supported: criu-ts does not dump namespaces or external objects'],
  ['tcp_established', 'established TCP connections (tcp_established) are not supported'],
  ['tcp_close', 'tcp_close is not supported'],
  ['leave_stopped', 'leave_stopped is not supported'],
  ['lsm_profile', 'lsm_profile is not supported'],
  ['lsm_mount_context', 'lsm_mount_context is not supported'],
  ['config_file', 'config_file is not supported by criu-ts swrk'],
  ['tls', 'TLS is not supported'], ['tls_cacert', 'TLS is not supported'], ['tls_cacrl', 'TLS is not supported'],
  ['tls_cert', 'TLS is not supported'], ['tls_key', 'TLS is not supported'], ['tls_no_cn_verify', 'TLS is not supported'],
  ['cgroup_yard', 'cgroup_yard is not supported'],
  ['pidfd_store_sk', 'pidfd_store is not supported'],
  ['empty_ns', 'empty_ns is not supported: criu-ts does not restore namespaces'],
]);

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
    if (key === 'root') {
      if (isSet(value) && path.resolve(String(value)) !== '/') {
        throw new RpcError(`root ${String(value)} is not supported: criu-ts does not change the root of restored tasks`);
      }
      continue;
    }
    if (key === 'manage_cgroups_mode') {
      const v = Number(value);
      if (v === CG_MODE.PROPS || v === CG_MODE.FULL || v === CG_MODE.STRICT) {
        throw new RpcError(`manage_cgroups_mode ${Object.entries(CG_MODE).find(([, n]) => n === v)?.[0]} is not supported: criu-ts does not dump or restore cgroups`);
      }
      if (v !== CG_MODE.IGNORE && v !== CG_MODE.CG_NONE) warnings.push(`manage_cgroups_mode has no effect in criu-ts; ignored: criu-ts does not restore cgroups`);
      continue;
    }
    if (!isSet(value)) continue;
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
  const warnings = checkOpts(opts);
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
