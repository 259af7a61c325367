/** Public options and result of restore(); the engine is in restore.ts. */
import type { Arch } from '../arch/types.js';
import type { LogLevel, Logger } from '../util/log.js';
import type { LazyPagesSink } from './lazy.js';
import type { ExternalResources, InheritFd } from '../ns/external.js';
import type { CgroupMode, CgroupRoot } from '../cgroups/mode.js';

export interface RestoreProgress {
  step: string;
  index: number;
  total: number;
}

export interface RestoreOptions {
  imagesDir: string;
  /** Return once the task runs, leaving it detached (CRIU's -d). Otherwise wait for it to exit. */
  detach?: boolean;
  /** Write the restored root task's PID here (CRIU's --pidfile). */
  pidfile?: string;
  /** Give the restored task the caller's terminal for its tty fds (CRIU's --shell-job). */
  shellJob?: boolean;
  logFile?: string;
  logLevel?: LogLevel;
  logger?: Logger;
  onProgress?: (p: RestoreProgress) => void;
  arch?: Arch;
  /** Fail on purpose at this step (tests). Also read from CRIU_TS_FAULT_STEP. */
  faultAt?: string;
  /**
   * CRIU's --cpu-cap: which CPU checks to make against cpuinfo.img ('image' compares the image's
   * features with this CPU's; 'none' skips). Default: 'image' whenever the image has a cpuinfo.img.
   */
  cpuCap?: string[];
  /**
   * The dumped vDSO: 'auto' moves the running one in place when it is the dumped one, else
   * proxies it; 'proxy' always proxies (to test the proxy on one kernel).
   */
  vdso?: 'auto' | 'proxy';
  /** How long to wait for a PID that is still taken by a dying task (default 5000 ms). */
  pidWaitMs?: number;
  /**
   * Lazy restore (CRIU's --lazy-pages): anonymous private memory is left unfilled and each
   * task's userfaultfd is handed to this sink, which must serve the faults (one task only).
   */
  lazyPages?: LazyPagesSink;
  /** CRIU's --root: the directory that becomes / of a restored mount namespace. */
  root?: string;
  /** CRIU's --external / --ext-mount-map: what the keys of external resources in the images map to here. */
  external?: ExternalResources;
  /** CRIU's --inherit-fd: descriptors of the caller that stand for external objects. */
  inheritFds?: InheritFd[];
  /** CRIU's --manage-cgroups mode (default 'soft': tasks go back into their cgroups, missing ones created). */
  manageCgroups?: CgroupMode;
  /** CRIU's --cgroup-root: where a hierarchy's dumped cgroups go instead. */
  cgroupRoots?: CgroupRoot[];
  /**
   * Called at CRIU's action-script points (the RPC's NOTIFY), with the root task's PID, while
   * the tasks are stopped; a throw fails the restore (and kills what it made).
   */
  onHook?: (name: RestoreHook, pid: number) => Promise<void>;
}

/** CRIU's restore action scripts that fall inside restore() (post-resume is the caller's). */
export type RestoreHook = 'setup-namespaces' | 'post-setup-namespaces' | 'post-restore' | 'network-unlock' | 'pre-resume';

export interface RestoreResult {
  /** PID of the restored root task. */
  pid: number;
  /** When not detached: how the task ended. */
  exit?: { code?: number; signal?: number };
  /** Pages left to the lazy-pages server (0 without lazyPages). */
  lazyPages?: number;
}
