/**
 * Memory change tracking between iterative dumps (pre-dump, then dump with a parent).
 *
 * Two kernel mechanisms:
 * - 'soft-dirty': writing "4" to /proc/PID/clear_refs clears every page's soft-dirty bit; a
 *   write sets it again (PAGE_IS_SOFT_DIRTY / pagemap bit 55). Needs CONFIG_MEM_SOFT_DIRTY.
 * - 'uffd-wp': a userfaultfd in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC). The
 *   task itself creates it (injected syscall) and keeps it open between dumps; the dumper
 *   takes a copy with pidfd_getfd, registers the task's private vmas with it, and write-protects
 *   the pages with PAGEMAP_SCAN(PM_SCAN_WP_MATCHING). A write un-protects a page, which
 *   PAGEMAP_SCAN then reports as PAGE_IS_WRITTEN (Linux 6.7+).
 *
 * Which uffd belongs to us is recorded in each images dir (MEMTRACK_FILE): the next dump reads
 * it from the parent dir, leaves that fd out of the dumped files, and trusts PAGE_IS_WRITTEN only
 * for vmas registered with it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys, SysError } from '@criu/sys';
import { decodeImageEntries, pageRuns, PE_PARENT, PE_PRESENT } from '@criu/images';
import { PAGEMAP_SCAN, PAGE_IS } from './mem-scan.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { Logger } from '../util/log.js';
import type { Msg } from './model.js';
import { MAP, VMA, vmaIsPrivateDumpable } from './vmas.js';

export type TrackMethod = 'soft-dirty' | 'uffd-wp';

/** criu-ts's own note in an images dir: how memory was tracked after this dump. */
export const MEMTRACK_FILE = 'criu-ts.memtrack.json';

/**
 * A dump over a page server leaves its pagemap on the receiver; the sender keeps a copy under
 * this name, so that the next iteration knows what the parent covers.
 */
export const sentPagemapFile = (pid: number): string => `criu-ts.sent-pagemap-${pid}.img`;

// _IOWR(type, nr, size): the same numbers on x86_64 and powerpc for these sizes.
const iowr = (type: number, nr: number, size: number) => (0xc0000000 | (size << 16) | (type << 8) | nr) >>> 0;
const UFFD_API = 0xaan;
const UFFDIO_API = iowr(0xaa, 0x3f, 24);
const UFFDIO_REGISTER = iowr(0xaa, 0x00, 32);
const UFFDIO_REGISTER_MODE_WP = 1n << 1n;
const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
const UFFD_FEATURE_WP_ASYNC = 1n << 15n;
const UFFD_USER_MODE_ONLY = 1;
const O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000;
const PM_SCAN_WP_MATCHING = 1n;
const F_DUPFD_CLOEXEC = 1030;
/**
 * Where the task's uffd lives, out of the way of the program's own fds. Each tracking period
 * moves it between the two: the fd a parent's note names then identifies the period that parent
 * started, so a dump that failed half-way through a reset can not be mistaken for it.
 */
const UFFD_FDS = [900, 901];
const PM_SOFT_DIRTY = 1n << 55n;

export class MemTrackError extends Error {
  override readonly name = 'MemTrackError';
}

export interface TrackSupport {
  method?: TrackMethod;
  /** Why each mechanism is or is not usable. */
  softDirty: string;
  uffdWp: string;
  /** The one method CRIU_TS_MEM_TRACK asks for (tests): the other is then not used. */
  forced?: TrackMethod;
}

let cached: TrackSupport | undefined;

/** Probes this kernel (on our own memory) for the two mechanisms; soft-dirty is preferred, as CRIU. */
export function detectMemTrack(): TrackSupport {
  if (cached) return cached;
  const softDirty = probeSoftDirty();
  const uffdWp = probeUffdWp();
  const env = process.env.CRIU_TS_MEM_TRACK;
  const forced = env === 'soft-dirty' || env === 'uffd-wp' ? env : undefined;
  let method: TrackMethod | undefined = softDirty === 'ok' ? 'soft-dirty' : uffdWp === 'ok' ? 'uffd-wp' : undefined;
  // A forced method the kernel lacks is no method at all: no silent fallback to the other one.
  if (forced) method = (forced === 'soft-dirty' ? softDirty : uffdWp) === 'ok' ? forced : undefined;
  cached = { method, softDirty, uffdWp, ...(forced ? { forced } : {}) };
  return cached;
}

function probeSoftDirty(): string {
  try {
    const ps = sys.pageSize();
    const buf = Buffer.alloc(ps * 4);
    const addr = sys.address(buf);
    const page = (addr + BigInt(ps) - 1n) / BigInt(ps);
    const off = Number(page * BigInt(ps) - addr);
    const pm = fs.openSync('/proc/self/pagemap', 'r');
    const pme = Buffer.alloc(8);
    const bit = () => {
      fs.readSync(pm, pme, 0, 8, page * 8n);
      return (pme.readBigUInt64LE(0) & PM_SOFT_DIRTY) !== 0n;
    };
    try {
      // A few tries: the kernel may set the bit by itself in between (a THP collapse, a migration).
      for (let attempt = 0; attempt < 8; attempt++) {
        buf[off] = 1;
        fs.writeFileSync('/proc/self/clear_refs', '4');
        const afterClear = bit();
        buf[off] = 2;
        const afterWrite = bit();
        if (!afterClear && afterWrite) return 'ok';
      }
      return 'the kernel reports no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off)';
    } finally {
      fs.closeSync(pm);
    }
  } catch (e) {
    return `soft-dirty probe failed: ${(e as Error).message}`;
  }
}

function probeUffdWp(): string {
  const r = sys.trySyscall('userfaultfd', O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (r.errno) return `userfaultfd() fails with errno ${r.errno}`;
  const fd = Number(r.ret);
  try {
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(UFFD_API, 0);
    api.writeBigUInt64LE(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 8);
    const a = sys.trySyscall('ioctl', fd, UFFDIO_API, api);
    if (a.errno) return `UFFDIO_API with UFFD_FEATURE_WP_ASYNC fails with errno ${a.errno} (Linux 6.7+ with uffd-wp support needed)`;
    // PAGEMAP_SCAN on our own pagemap, empty range: ENOTTY on kernels without it.
    const pm = fs.openSync('/proc/self/pagemap', 'r');
    try {
      const arg = Buffer.alloc(96);
      arg.writeBigUInt64LE(96n, 0);
      const s = sys.trySyscall('ioctl', pm, PAGEMAP_SCAN, arg);
      if (s.errno) return `PAGEMAP_SCAN fails with errno ${s.errno}`;
    } finally {
      fs.closeSync(pm);
    }
    return 'ok';
  } finally {
    sys.close(fd);
  }
}

/** The note in an images dir: method, and per pid the task's uffd (uffd-wp). */
export interface MemTrackNote { method: TrackMethod; uffd: Record<string, number> }

export function readMemTrackNote(dir: string): MemTrackNote | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(path.join(dir, MEMTRACK_FILE), 'utf8')) as MemTrackNote;
    if (j && (j.method === 'soft-dirty' || j.method === 'uffd-wp') && typeof j.uffd === 'object') return j;
  } catch { /* none or damaged: nothing is trusted */ }
  return undefined;
}

export function writeMemTrackNote(dir: string, note: MemTrackNote): void {
  fs.writeFileSync(path.join(dir, MEMTRACK_FILE), JSON.stringify(note) + '\n', { mode: 0o600 });
}

/** The task's tracking uffd: an async write-protect userfaultfd criu-ts left at one of UFFD_FDS. */
export function trackedUffd(pid: number): number | undefined {
  for (const fd of UFFD_FDS) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:[userfaultfd]') continue;
      const api = /^API:\s*\w+:([0-9a-f]+):/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
      if (api && (BigInt('0x' + api[1]) & UFFD_FEATURE_WP_ASYNC)) return fd;
    } catch { /* not there */ }
  }
  return undefined;
}

/** Sorted, disjoint page intervals [start, end) the parent images hold for one task. */
export class ParentCoverage {
  private constructor(private readonly starts: bigint[], private readonly ends: bigint[]) {}

  static load(parentDir: string, pid: number, pageSize: number): ParentCoverage {
    const file = path.join(parentDir, `pagemap-${pid}.img`);
    return ParentCoverage.ofFile(fs.existsSync(file) ? file : path.join(parentDir, sentPagemapFile(pid)), pageSize);
  }

  /** What one pagemap image covers (nothing if there is no such file). */
  static ofFile(file: string, pageSize: number): ParentCoverage {
    const starts: bigint[] = [], ends: bigint[] = [];
    if (fs.existsSync(file)) {
      const runs = pageRuns(decodeImageEntries(fs.readFileSync(file), { file }).entries, pageSize);
      for (const r of runs) {
        if (!(r.flags & (PE_PRESENT | PE_PARENT))) continue;
        const s = r.vaddr, e = r.vaddr + BigInt(r.nrPages) * BigInt(pageSize);
        if (ends.length && s <= ends[ends.length - 1]) { if (e > ends[ends.length - 1]) ends[ends.length - 1] = e; }
        else { starts.push(s); ends.push(e); }
      }
    }
    return new ParentCoverage(starts, ends);
  }

  /** Splits [start, end) into pieces that the parent covers or not, in order. */
  split(start: bigint, end: bigint): Array<{ start: bigint; end: bigint; covered: boolean }> {
    const out: Array<{ start: bigint; end: bigint; covered: boolean }> = [];
    let lo = 0, hi = this.starts.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.ends[mid] <= start) lo = mid + 1; else hi = mid; }
    let at = start;
    for (let i = lo; i < this.starts.length && at < end; i++) {
      const s = this.starts[i] > at ? this.starts[i] : at;
      if (s >= end) break;
      if (s > at) out.push({ start: at, end: s, covered: false });
      const e = this.ends[i] < end ? this.ends[i] : end;
      out.push({ start: s, end: e, covered: true });
      at = e;
    }
    if (at < end) out.push({ start: at, end, covered: false });
    return out;
  }
}

/** How one task's dump decides which pages changed. */
export interface TaskTracking {
  method: TrackMethod | undefined;
  coverage: ParentCoverage;
  /** uffd-wp: the registered vmas (start addresses) of the task's uffd; PAGE_IS_WRITTEN is trusted only there. */
  registered: Set<bigint>;
}

/** True when the page run with these PAGE_IS categories may differ from the parent's copy. */
export function maybeChanged(t: TaskTracking, categories: number, vmaStart: bigint): boolean {
  if (t.method === 'soft-dirty') return (categories & PAGE_IS.SOFT_DIRTY) !== 0;
  if (t.method === 'uffd-wp') return !t.registered.has(vmaStart) || (categories & PAGE_IS.WRITTEN) !== 0;
  return true;
}

/** vmas whose changes uffd-wp follows: private memory but the vDSO. */
function trackable(v: Msg): boolean {
  return vmaIsPrivateDumpable(v) && !(Number(v.status) & VMA.AREA_VDSO) && !(Number(v.flags) & MAP.SHARED);
}

/** The vmas (start addresses) of the task registered with uffd-wp ("uw" in smaps VmFlags). */
export function uffdRegisteredVmas(vmas: Msg[], vmFlags: Map<bigint, Set<string>> | undefined): Set<bigint> {
  const out = new Set<bigint>();
  if (!vmFlags) return out;
  for (const v of vmas) if (vmFlags.get(BigInt(v.start as bigint))?.has('uw')) out.add(BigInt(v.start as bigint));
  return out;
}

/**
 * Starts a new tracking period for a frozen task whose pages were just saved: soft-dirty bits
 * cleared, or every trackable vma registered with the task's uffd (created in the task on first
 * use) and write-protected. Returns the uffd's fd in the task (uffd-wp).
 */
export function resetTracking(method: TrackMethod, task: FrozenTask, vmas: Msg[], uffdInTask: number | undefined, log: Logger): number | undefined {
  const pid = task.pid;
  if (method === 'soft-dirty') {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '4');
    } catch (e) {
      throw new MemTrackError(`task ${pid}: cannot clear soft-dirty bits (/proc/${pid}/clear_refs): ${(e as Error).message}`);
    }
    return undefined;
  }
  let fdInTask = uffdInTask;
  let fresh = false;
  if (fdInTask === undefined) {
    // The uffd must belong to the task's mm: the task creates it.
    const r = task.rawSyscall('userfaultfd', O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (r < 0n) throw new MemTrackError(`task ${pid}: userfaultfd() in the task failed with errno ${-r}`);
    fdInTask = Number(r);
    fresh = true;
  }
  // A new period, a new fd (UFFD_FDS): moved before anything is reset.
  const want = fdInTask === UFFD_FDS[0] ? UFFD_FDS[1] : UFFD_FDS[0];
  const d = task.rawSyscall('fcntl', fdInTask, F_DUPFD_CLOEXEC, want);
  if (d !== BigInt(want)) {
    if (d >= 0n) task.rawSyscall('close', Number(d));
    if (fresh) task.rawSyscall('close', fdInTask);
    throw new MemTrackError(`task ${pid}: cannot move the tracking uffd to fd ${want} (${d < 0n ? `errno ${-d}` : `fd ${want} is taken`})`);
  }
  task.rawSyscall('close', fdInTask);
  fdInTask = want;
  const pidfd = sys.pidfdOpen(pid);
  let uffd: number;
  try {
    uffd = sys.pidfdGetfd(pidfd, fdInTask);
  } finally {
    sys.close(pidfd);
  }
  try {
    if (fresh) {
      const api = Buffer.alloc(24);
      api.writeBigUInt64LE(UFFD_API, 0);
      api.writeBigUInt64LE(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, 8);
      const a = sys.trySyscall('ioctl', uffd, UFFDIO_API, api);
      if (a.errno) throw new MemTrackError(`task ${pid}: UFFDIO_API(WP_ASYNC) failed with errno ${a.errno}`);
    }
    const pm = fs.openSync(`/proc/${pid}/pagemap`, 'r');
    try {
      let n = 0;
      for (const v of vmas) {
        if (!trackable(v)) continue;
        const start = BigInt(v.start as bigint), end = BigInt(v.end as bigint);
        const reg = Buffer.alloc(32);
        reg.writeBigUInt64LE(start, 0);
        reg.writeBigUInt64LE(end - start, 8);
        reg.writeBigUInt64LE(UFFDIO_REGISTER_MODE_WP, 16);
        const r = sys.trySyscall('ioctl', uffd, UFFDIO_REGISTER, reg);
        if (r.errno) {
          log.debug(`memtrack: ${pid}: vma ${start.toString(16)} cannot be registered (errno ${r.errno}); it is dumped whole next time`);
          continue;
        }
        writeProtect(pid, pm, start, end);
        n++;
      }
      log.info(`memtrack: ${pid}: ${n} vma(s) write-protected through uffd ${fdInTask}`);
    } finally {
      fs.closeSync(pm);
    }
  } finally {
    sys.close(uffd);
  }
  return fdInTask;
}

/** Write-protects the written pages of [start, end): PAGEMAP_SCAN with PM_SCAN_WP_MATCHING. */
function writeProtect(pid: number, pm: number, start: bigint, end: bigint): void {
  const arg = Buffer.alloc(96);
  const vec = Buffer.alloc(24 * 256);
  let cur = start;
  while (cur < end) {
    arg.fill(0);
    arg.writeBigUInt64LE(96n, 0);
    arg.writeBigUInt64LE(PM_SCAN_WP_MATCHING, 8);
    arg.writeBigUInt64LE(cur, 16);
    arg.writeBigUInt64LE(end, 24);
    arg.writeBigUInt64LE(sys.address(vec), 40);
    arg.writeBigUInt64LE(256n, 48);
    arg.writeBigUInt64LE(BigInt(PAGE_IS.WRITTEN), 72); // category_mask
    arg.writeBigUInt64LE(BigInt(PAGE_IS.WRITTEN), 88); // return_mask
    const r = sys.trySyscall('ioctl', pm, PAGEMAP_SCAN, arg);
    if (r.errno) throw new MemTrackError(`task ${pid}: PAGEMAP_SCAN(WP_MATCHING) ${cur.toString(16)}-${end.toString(16)} failed: ${new SysError('ioctl', r.errno, '').code}`);
    const walkEnd = arg.readBigUInt64LE(32);
    if (walkEnd <= cur) throw new MemTrackError(`task ${pid}: PAGEMAP_SCAN(WP_MATCHING) made no progress at ${cur.toString(16)}`);
    cur = walkEnd;
  }
}
