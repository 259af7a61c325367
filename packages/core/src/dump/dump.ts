/**
 * `dump()`: checkpoint one process into a directory of CRIU images. The task is frozen with
 * ptrace, its state collected from /proc, ptrace and the parasite, its memory spliced into
 * pages-1.img, then it is cured and killed (or left running). Any failure cures and resumes
 * the task exactly as before and leaves the images directory marked incomplete.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { writeImageFile } from '@criu/images';
import { sys } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { hostArch } from '../arch/host.js';
import { FrozenTask } from '../infect/frozen-task.js';
import { Parasite } from '../infect/parasite.js';
import type { ParasiteTaskState } from '../infect/protocol.js';
import { readMaps } from '../proc/maps.js';
import { readSmapsVmFlags } from '../proc/smaps.js';
import { readStat } from '../proc/stat.js';
import { readStatus } from '../proc/status.js';
import { Logger, type LogLevel } from '../util/log.js';
import { DumpError, InjectedFault } from './errors.js';
import { FileRegistry } from './file-registry.js';
import { checkFilesSupported, collectFiles, mappedFileId } from './files.js';
import { dumpMemory } from './memory.js';
import type { Msg, TaskDumpContext } from './model.js';
import { DUMP_STEPS, type DumpStep } from './steps.js';
import { collectPtraceState, collectTaskCore, collectThreadCore, PR_GET_SECUREBITS, savedAuxv } from './task-state.js';
import { collectThreadSelfState, freezeThreads, killThreads, releaseThreads } from './threads.js';
import { collectVmas } from './vmas.js';

export const INCOMPLETE_MARKER = 'criu-ts.incomplete';

export interface DumpProgress {
  step: DumpStep;
  index: number;
  total: number;
}

export interface DumpOptions {
  pid: number;
  imagesDir: string;
  /** Keep the task running after the dump (CRIU's --leave-running). Default: kill it. */
  leaveRunning?: boolean;
  /** Accept the task's controlling terminal (CRIU's --shell-job). */
  shellJob?: boolean;
  logFile?: string;
  logLevel?: LogLevel;
  /** Or an existing logger (the CLI passes its own). */
  logger?: Logger;
  onProgress?: (p: DumpProgress) => void;
  arch?: Arch;
  /** Fail on purpose at this step (tests). Also read from CRIU_TS_FAULT_STEP. */
  faultAt?: DumpStep;
  memory?: { method?: 'parasite' | 'vm_readv'; scan?: 'ioctl' | 'pagemap' };
}

export interface DumpStats {
  freezingTimeUs: number;
  frozenTimeUs: number;
  memdumpTimeUs: number;
  memwriteTimeUs: number;
  pagesScanned: number;
  pagesWritten: number;
  pagesSkippedZero: number;
  pagesSkippedFile: number;
}

export interface DumpResult {
  pid: number;
  imagesDir: string;
  stats: DumpStats;
}

const usSince = (t: bigint) => Number((process.hrtime.bigint() - t) / 1000n);

function clockTimespec(clock: number): Msg {
  const ts = Buffer.alloc(16);
  sys.syscall('clock_gettime', clock, ts);
  return { tv_sec: ts.readBigUInt64LE(0), tv_nsec: ts.readBigUInt64LE(8) };
}

export async function dump(options: DumpOptions): Promise<DumpResult> {
  const { pid } = options;
  if (!Number.isInteger(pid) || pid <= 0) throw new DumpError('check-task', pid, `invalid pid ${pid}`);
  const imagesDir = path.resolve(options.imagesDir);
  const arch = options.arch ?? hostArch();
  const log = options.logger ?? new Logger(options.logLevel ?? 2, options.logFile ? path.resolve(imagesDir, options.logFile) : undefined);
  const faultAt = options.faultAt ?? (process.env.CRIU_TS_FAULT_STEP as DumpStep | undefined);
  let stepIndex = -1;
  let current: DumpStep = 'check-task';
  const step = (name: DumpStep) => {
    current = name;
    stepIndex = DUMP_STEPS.indexOf(name);
    log.info(`dump step ${stepIndex + 1}/${DUMP_STEPS.length}: ${name}`);
    options.onProgress?.({ step: name, index: stepIndex, total: DUMP_STEPS.length });
    if (faultAt === name) throw new InjectedFault(name);
  };

  let task: FrozenTask | undefined;
  let threads: FrozenTask[] = [];
  let parasite: Parasite | undefined;
  let frozenAt = 0n;
  const t0 = process.hrtime.bigint();
  try {
    step('check-task');
    const status = readStatusOrFail(pid);
    if (status.tracerPid !== 0) throw new DumpError('check-task', pid, `the task is already traced by process ${status.tracerPid}`, { hint: 'another dump or a debugger holds it' });
    const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim();
    if (children) throw new DumpError('check-task', pid, `the task has children (${children}); process trees are not supported yet`);

    step('check-files');
    checkFilesSupported(pid, options.shellJob ?? false);

    step('prepare-dir');
    fs.mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(imagesDir, INCOMPLETE_MARKER), `dump of ${pid} in progress\n`, { mode: 0o600 });

    step('freeze');
    threads = freezeThreads(pid, arch);
    task = threads[0];
    frozenAt = process.hrtime.bigint();
    const freezingTimeUs = usSince(t0);

    step('collect-proc');
    const stat = readStat(pid);
    const statusFrozen = readStatus(pid);
    const maps = readMaps(pid);
    const vmFlags = readSmapsVmFlags(pid);
    const auxv = savedAuxv(pid);
    const brk = task.syscall('brk', 0);
    const securebits = Number(task.syscall('prctl', PR_GET_SECUREBITS, 0, 0, 0, 0));
    // ptrace reads need the task stopped, so they come before the parasite runs in it.
    const ptraceState = collectPtraceState(pid);
    const threadInfo = arch.dumpThreadInfo(pid, task.savedRegs);
    const others = threads.slice(1);
    const selfStates = collectThreadSelfState(task, others, sys.pageSize());
    const extraCores: Array<{ tid: number; core: Msg }> = others.map((t) => {
      const ti = arch.dumpThreadInfo(t.pid, t.savedRegs);
      const self = selfStates.get(t.pid)!;
      ti.clear_tid_addr = self.tidAddress;
      const threadCore = collectThreadCore({
        tid: t.pid, stat: readStat(pid, t.pid), status: readStatus(pid, t.pid), ptrace: collectPtraceState(t.pid),
        securebits, self, sigmask: t.savedSigmask,
      });
      return { tid: t.pid, core: { mtype: arch.image.march, [arch.image.threadInfoField]: ti, thread_core: threadCore } };
    });

    step('infect');
    parasite = Parasite.inject(task);

    step('task-state');
    const pstate: ParasiteTaskState = parasite.taskState();
    const { tc, threadCore } = collectTaskCore({ pid, stat, status: statusFrozen, parasite: pstate, sigmask: task.savedSigmask, securebits, ptrace: ptraceState });

    const files = new FileRegistry();
    const ctx: TaskDumpContext = { pid, imagesDir, pageSize: sys.pageSize(), log, files, parasite, maps, shellJob: options.shellJob ?? false };

    step('files');
    const filesOut = await collectFiles(ctx);

    step('vmas');
    const vmas = collectVmas(pid, maps, vmFlags, (m) => mappedFileId(ctx, m));

    step('memory');
    const mem = await dumpMemory(ctx, vmas, { pagesId: 1, ...options.memory });

    step('registers');
    threadInfo.clear_tid_addr = pstate.tidAddress;

    step('cure');
    parasite.finish();
    parasite = undefined;

    step('write-images');
    const ids: Msg = { vm_id: 2, files_id: 2, fs_id: 2, sighand_id: 2, pid_ns_id: 1, net_ns_id: 2, ipc_ns_id: 3, uts_ns_id: 4, mnt_ns_id: 6, user_ns_id: 7, cgroup_ns_id: 8, time_ns_id: 5 };
    const core: Msg = { mtype: arch.image.march, [arch.image.threadInfoField]: threadInfo, tc, thread_core: threadCore };
    const mm: Msg = {
      mm_start_code: stat.startCode, mm_end_code: stat.endCode, mm_start_data: stat.startData, mm_end_data: stat.endData,
      mm_start_stack: stat.startStack, mm_start_brk: stat.startBrk, mm_brk: brk, mm_arg_start: stat.argStart,
      mm_arg_end: stat.argEnd, mm_env_start: stat.envStart, mm_env_end: stat.envEnd, exe_file_id: filesOut.exeFileId,
      mm_saved_auxv: auxv, vmas, dumpable: pstate.dumpable, thp_disabled: pstate.thpDisabled !== 0,
    };
    const frozenTimeUs = usSince(frozenAt);
    const stats: DumpStats = {
      freezingTimeUs, frozenTimeUs, memdumpTimeUs: Math.round(mem.stats.elapsedMs * 1000), memwriteTimeUs: 0,
      pagesScanned: mem.stats.pagesScanned, pagesWritten: mem.stats.pagesWritten,
      pagesSkippedZero: mem.stats.pagesSkippedZero, pagesSkippedFile: mem.stats.pagesSkippedFile,
    };
    const out = (name: string) => path.join(imagesDir, name);
    const images: Array<[string, string, Msg[]]> = [
      ['inventory.img', 'INVENTORY', [{
        img_version: 2, fdinfo_per_id: true,
        root_ids: { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1, pid_ns_id: 1, net_ns_id: 2, ipc_ns_id: 3, uts_ns_id: 4, mnt_ns_id: 6, user_ns_id: 7, cgroup_ns_id: 8, time_ns_id: 5 },
        ns_per_id: true, root_cg_set: 1, lsmtype: 0, network_lock_method: 0, plugins_entry: {}, dump_criu_run_id: crypto.randomUUID(),
      }]],
      ['pstree.img', 'PSTREE', [{ pid, ppid: 0, pgid: stat.pgid, sid: stat.sid, threads: threads.map((t) => t.pid) }]],
      [`core-${pid}.img`, 'CORE', [core]],
      ...extraCores.map((x): [string, string, Msg[]] => [`core-${x.tid}.img`, 'CORE', [x.core]]),
      [`ids-${pid}.img`, 'IDS', [ids]],
      [`mm-${pid}.img`, 'MM', [mm]],
      [`pagemap-${pid}.img`, 'PAGEMAP', mem.pagemap],
      [`fdinfo-${ids.files_id}.img`, 'FDINFO', filesOut.fdinfo],
      ['files.img', 'FILES', files.fileEntries()],
      [`fs-${pid}.img`, 'FS', [filesOut.fs]],
      ['seccomp.img', 'SECCOMP', [{}]],
      ['timens-0.img', 'TIMENS', [{ monotonic: clockTimespec(1), boottime: clockTimespec(7) }]],
      ...filesOut.extraImages.map((x): [string, string, Msg[]] => [x.file, x.magic, x.entries]),
    ];
    if (filesOut.ttyInfo.length) images.push(['tty-info.img', 'TTY_INFO', filesOut.ttyInfo]);
    for (const [file, magic, entries] of images) {
      await writeImageFile(out(file), magic, entries.map((message) => ({ message })));
    }
    await writeImageFile(out('stats-dump'), 'STATS', [{ message: { dump: {
      freezing_time: stats.freezingTimeUs, frozen_time: stats.frozenTimeUs, memdump_time: stats.memdumpTimeUs,
      memwrite_time: stats.memwriteTimeUs, pages_scanned: BigInt(stats.pagesScanned), pages_skipped_parent: 0n,
      pages_written: BigInt(stats.pagesWritten), irmap_resolve: 0, pages_lazy: 0n,
      page_pipes: BigInt(mem.stats.pipeBufs), page_pipe_bufs: BigInt(mem.stats.pipeBufs),
    } } }]);

    step('finish');
    fs.rmSync(out(INCOMPLETE_MARKER), { force: true });
    if (options.leaveRunning) releaseThreads(threads);
    else killThreads(threads);
    log.info(`dump of ${pid} finished: ${stats.pagesWritten} pages, frozen ${(stats.frozenTimeUs / 1000).toFixed(1)} ms`);
    return { pid, imagesDir, stats };
  } catch (e) {
    // Put the task back exactly as it was; the images dir keeps its "incomplete" marker.
    let resumed = true;
    try {
      parasite?.abort();
    } catch (ce) {
      log.error(`removing the parasite from ${pid} failed: ${(ce as Error).message}`);
    }
    try {
      releaseThreads(threads);
    } catch (ce) {
      resumed = false;
      log.error(`resuming ${pid} failed: ${(ce as Error).message}`);
    }
    const err = e instanceof DumpError ? e : new DumpError(current, pid, (e as Error).message, { cause: e, taskResumed: resumed });
    log.error(err.message);
    throw err;
  } finally {
    if (!options.logger) log.close();
  }
}

function readStatusOrFail(pid: number) {
  try {
    return readStatus(pid);
  } catch (e) {
    throw new DumpError('check-task', pid, `no such process (${(e as Error).message})`, { hint: 'check the PID', cause: e });
  }
}
