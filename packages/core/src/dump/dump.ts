/**
 * `dump()`: checkpoint a process and all its descendants into a directory of CRIU images. Every
 * thread of every task is frozen with ptrace; then, task by task (pstree order), its state is
 * collected from /proc, ptrace and its own parasite and its memory spliced into its own
 * pages-<n>.img; one file registry serves the whole tree (an inherited open file keeps one id).
 * Then the tasks are cured and killed (or left running). Any failure cures and resumes every
 * task exactly as before and leaves the images directory marked incomplete.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { encodeImageEntries, encodeMessage, planOf, PE_PRESENT, writeImageFile, type MessagePlan } from '@criu/images';
import { sys } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { hostArch } from '../arch/host.js';
import { checkpointCapProblem, ptraceAccessProblem, type FrozenTask } from '../infect/frozen-task.js';
import { Parasite } from '../infect/parasite.js';
import type { ParasiteTaskState } from '../infect/protocol.js';
import { readMaps } from '../proc/maps.js';
import { readSmapsVmFlags } from '../proc/smaps.js';
import { readStat } from '../proc/stat.js';
import { readStatus } from '../proc/status.js';
import { Logger, type LogLevel } from '../util/log.js';
import { collectYoungGarbage } from '../util/gc.js';
import { DumpError, InjectedFault } from './errors.js';
import { FileRegistry } from './file-registry.js';
import { checkFilesSupported, checkUnixSockets, collectFiles, mappedFileId, ptyMastersOf } from './files.js';
import { closePipePool, dumpMemory, openPipePool, type DeferBudget, type Deferred } from './memory.js';
import { PageServerClient } from '../pageserver/client.js';
import type { PostCopyPages } from '../pageserver/post-copy.js';
import type { Msg, TaskDumpContext } from './model.js';
import { DUMP_STEPS, type DumpStep } from './steps.js';
import { collectPtraceState, collectTaskCore, personalityProblem, collectThreadCore, markStopped, savedAuxv, zombieImages } from './task-state.js';
import { collectThreadSelfState, releaseThreads } from './threads.js';
import { locksOf } from './file-locks.js';
import { collectNamespaces, ROOT_NS_IDS, type TreeNamespaces } from './namespaces.js';
import { collectMounts, dumpTmpfs, type MountNsDump } from './mounts.js';
import { kobjIdsOf, liveTasks, freezeTree, killTree, listTree, releaseTree, stateOf, unregisterTreeExitWrites, type KobjIds, type TreeTask } from './tree.js';
import { pipeDataOf } from './pipes.js';
import { collectPosixTimers } from './posix-timers.js';
import { collectVmas } from './vmas.js';
import { taskClocksNs, toTimespec } from '../proc/timens.js';
import { stepOutOfVdso, noteVdsoProxies } from './vdso.js';
import { mappedShmemId } from './shmem.js';
import { fileImagesOf } from './files-images.js';
import { dedupParents } from './dedup.js';
import type { ExternalResources } from '../ns/external.js';
import type { CgroupMode } from '../cgroups/mode.js';
import { dumpCgroups } from './cgroups.js';
import { detectMemTrack, ParentCoverage, readMemTrackNote, resetTracking, trackedUffd, uffdRegisteredVmas, writeMemTrackNote, sentPagemapFile, MEMTRACK_FILE, type MemTrackNote, type TaskTracking, type TrackMethod } from './mem-track.js';

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
  /** Largest deleted-but-open file saved as a ghost image, in bytes (CRIU's --ghost-limit; default 1 MiB). */
  ghostLimit?: number | bigint;
  /** CRIU's pre-dump: save the memory only (pagemap + pages) and leave the tasks running. */
  preDump?: boolean;
  /** Start tracking memory changes after this dump (CRIU's --track-mem), for a later iteration. */
  trackMem?: boolean;
  /** The previous (pre-)dump, relative to imagesDir as CRIU's --prev-images-dir (e.g. "../1"): unchanged pages point there. */
  parentImagesDir?: string;
  /** CRIU's --auto-dedup: punch the pages this dump saved again out of the parent images. */
  autoDedup?: boolean;
  /** Send the memory (pagemap + pages) to a page server instead of the images dir (CRIU's --page-server). */
  pageServer?: { address: string; port: number };
  /**
   * Post-copy (CRIU's `dump --lazy-pages`): the lazy memory is kept in this store, not written
   * (pagemap entries PE_LAZY only); the caller serves it with servePostCopy() after the dump.
   */
  postCopy?: PostCopyPages;
  /** CRIU's --external / --ext-mount-map: resources the dump refers to by key instead of saving. */
  external?: ExternalResources;
  /** CRIU's --manage-cgroups mode: 'ignore' writes no cgroup.img; any other saves the membership. */
  manageCgroups?: CgroupMode;
  /**
   * Called at CRIU's action-script points (the RPC's NOTIFY) while the tasks are frozen:
   * network-lock after the freeze, post-dump once the images are written. A throw fails the
   * dump and resumes the tasks.
   */
  onHook?: (name: 'network-lock' | 'post-dump', pid: number) => Promise<void>;
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
  /** Pages left in the parent images (PE_PARENT). */
  pagesSkippedParent: number;
  /** How changed pages were found (iterative dumps). */
  memTrack?: TrackMethod;
}

export interface DumpResult {
  pid: number;
  imagesDir: string;
  stats: DumpStats;
}

const usSince = (t: bigint) => Number((process.hrtime.bigint() - t) / 1000n);

export async function dump(options: DumpOptions): Promise<DumpResult> {
  const { pid } = options;
  if (!Number.isInteger(pid) || pid <= 0) throw new DumpError('check-task', pid, `invalid pid ${pid}`);
  const imagesDir = path.resolve(options.imagesDir);
  const arch = options.arch ?? hostArch();
  // What was in the images dir before we put anything there (the log): whether it is ours to chmod.
  let dirBefore: string[] | undefined;
  try { dirBefore = fs.readdirSync(imagesDir); } catch { /* absent (or not a directory: prepare-dir says so) */ }
  // The log lives in the images dir by default: make sure the dir exists before opening it.
  if (options.logFile && !options.logger) fs.mkdirSync(path.dirname(path.resolve(imagesDir, options.logFile)), { recursive: true, mode: 0o700 });
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

  let tasks: TreeTask[] = [];
  let parasite: Parasite | undefined;
  let pageServer: PageServerClient | undefined;
  let frozenAt = 0n;
  // Pages held in pipes until the tasks are killed (see DumpMemoryOptions.defer).
  const deferred: Deferred[] = [];
  let defer: DeferBudget | undefined;
  const t0 = process.hrtime.bigint();
  try {
    step('check-task');
    if (options.postCopy && (options.preDump || options.leaveRunning || options.pageServer || options.parentImagesDir !== undefined || options.trackMem)) {
      throw new DumpError('check-task', pid, 'a post-copy dump (--lazy-pages) goes alone: not with pre-dump, --leave-running, --page-server, --track-mem or --prev-images-dir');
    }
    const status = readStatusOrFail(pid);
    if (status.tracerPid !== 0) throw new DumpError('check-task', pid, `the task is already traced by process ${status.tracerPid}`, { hint: 'another dump or a debugger holds it' });
    const access = ptraceAccessProblem(pid);
    if (access) throw new DumpError('check-task', pid, access.reason, { hint: access.hint });
    const caps = checkpointCapProblem();
    if (caps) throw new DumpError('check-task', pid, caps.reason, { hint: caps.hint });
    const seen = listTree(pid);
    for (const t of seen.slice(1)) {
      let st;
      try { st = readStatus(t.pid); } catch { continue; /* exited meanwhile */ }
      if (st.tracerPid !== 0) throw new DumpError('check-task', t.pid, `task ${t.pid} (in the tree of ${pid}) is already traced by process ${st.tracerPid}`, { hint: 'another dump or a debugger holds it' });
    }
    for (const t of seen) {
      const problem = personalityProblem(t.pid);
      if (problem) throw new DumpError('check-task', t.pid, problem);
    }

    // Iterative dumps: the parent images and how changes are tracked (a method the kernel has).
    const inc = prepareIncremental(options, imagesDir, pid);
    if (inc.method) log.info(`dump: memory changes tracked with ${inc.method}${inc.parentDir ? `, parent ${inc.parentDir}` : ''}`);

    step('check-files');
    const ptyMasters = ptyMastersOf(seen.map((t) => t.pid));
    for (const t of seen) {
      if (t.pid !== pid && stateOf(t.pid) === 'Z') continue; // a zombie has no files
      try {
        checkFilesSupported(t.pid, options.shellJob ?? false, ghostLimitOf(options), ptyMasters, inc.ignoreFds(t.pid));
      } catch (e) {
        if (t.pid !== pid && !fs.existsSync(`/proc/${t.pid}`)) continue;
        throw e;
      }
    }
    checkUnixSockets(seen.map((t) => t.pid).filter((p) => fs.existsSync(`/proc/${p}`)));

    step('prepare-dir');
    takeImagesDir(imagesDir, dirBefore, log);
    // Connected before the freeze: an unreachable page server leaves the tree untouched.
    if (options.pageServer) {
      pageServer = PageServerClient.connect(options.pageServer.address, options.pageServer.port);
      log.info(`dump: memory goes to the page server at ${pageServer.where}`);
    }
    fs.writeFileSync(path.join(imagesDir, INCOMPLETE_MARKER), `dump of ${pid} in progress\n`, { mode: 0o600 });
    fs.rmSync(path.join(imagesDir, MEMTRACK_FILE), { force: true });
    if (options.parentImagesDir !== undefined) {
      // As CRIU: a "parent" symlink holding the path as given (relative to the images dir).
      fs.rmSync(path.join(imagesDir, 'parent'), { force: true });
      fs.symlinkSync(options.parentImagesDir, path.join(imagesDir, 'parent'));
    }

    // Build the image codecs now: loading the schemas costs ~0.2 s, which must not be frozen time.
    warmImageCodecs();
    Parasite.preload(arch);
    arch.prepareDump?.();
    // This machine's CPU record (cpuinfo.img) does not change while frozen: read it now.
    const cpu = arch.cpuinfo?.();
    // (The first random UUID of a process fills an entropy cache: ~0.3 ms.)
    const runId = crypto.randomUUID();
    sys.pageSize();
    // Killing the tasks afterwards: copy their pages into the images after the kill, not while
    // frozen; the pipes that will hold them are opened now, sized from the tasks' anonymous RSS.
    if (!(options.leaveRunning || options.preDump || pageServer)) {
      defer = { pipes: deferPipeBudget() };
      openPipePool(defer, seen.reduce((s, t) => s + rssAnonBytes(t.pid), 0), sys.pageSize());
    }
    collectYoungGarbage();
    step('freeze');
    tasks = freezeTree(pid, arch);
    frozenAt = process.hrtime.bigint();
    const freezingTimeUs = usSince(t0);
    const ns = collectNamespaces(tasks, options.external);
    if (ns.ownPidNs && (options.preDump || options.pageServer || options.parentImagesDir !== undefined || options.postCopy || options.trackMem)) {
      throw new DumpError('freeze', pid, `task ${pid} is the init of a pid namespace: pre-dumps, page servers, iterative and lazy dumps of it are not supported yet`);
    }
    // A pre-dump keeps the memory only: no mount table to read or check.
    const mountNs = options.preDump ? undefined : collectMounts(tasks, options.external?.mounts, Number(ns.idsOf(pid).mnt_ns_id));
    await options.onHook?.('network-lock', pid);
    const cgroups = options.manageCgroups === 'ignore' ? undefined : dumpCgroups(liveTasks(tasks).map((t) => t.pid), log);
    const kobjIds = kobjIdsOf(tasks);
    if (tasks.length > 1) log.info(`dump: tree of ${tasks.length} tasks: ${tasks.map((t) => `${t.pid}<${t.ppid}`).join(' ')}`);

    const files = new FileRegistry();
    locksOf(files).nsPid = ns.nsPid;
    files.ptyMasters = ptyMastersOf(tasks.map((t) => t.pid));
    const images: ImageList = [];
    const pstree: Msg[] = [];
    const ttyInfo: Msg[] = [];
    const taskVmas = new Map<number, Msg[]>();
    const tidAddresses = new Map<number, bigint>();
    const total = { pagesScanned: 0, pagesWritten: 0, pagesSkippedZero: 0, pagesSkippedFile: 0, pagesSkippedParent: 0, elapsedMs: 0, pipeBufs: 0 };
    // A descriptor table shared by several tasks is written once, under the first of them; so is
    // an address space (CLONE_VM without CLONE_THREAD): its mm/pagemap/pages images go under the
    // first task that has it, the others get none (docs/images.md).
    const tablesDumped = new Map<number, number>();
    const mmDumped = new Map<number, number>();
    for (let i = 0, live = 0; i < tasks.length; i++) {
      if (tasks[i].zombie) {
        const z = zombieImages(tasks[i].pid, tasks[i].ppid, arch.image.march);
        if (ns.ownPidNs) {
          // Named as its pid namespace sees it.
          const vz = ns.nsPid(tasks[i].pid);
          z.pstree = { ...z.pstree, pid: vz, ppid: ns.nsPid(tasks[i].ppid), ...ns.pgidSid(tasks[i].pid, { pgid: Number(z.pstree.pgid), sid: Number(z.pstree.sid) }), threads: [vz] };
        }
        images.push([`core-${z.pstree.pid}.img`, 'CORE', [z.core]]);
        pstree.push(z.pstree);
        continue;
      }
      const ids = kobjIds.get(tasks[i].pid)!;
      const tableOwner = tablesDumped.get(ids.files);
      if (tableOwner === undefined) tablesDumped.set(ids.files, tasks[i].pid);
      else log.info(`dump: task ${tasks[i].pid} shares the descriptor table of ${tableOwner} (fdinfo-${ids.files}.img)`);
      const mmOwner = mmDumped.get(ids.vm);
      if (mmOwner === undefined) mmDumped.set(ids.vm, tasks[i].pid);
      else log.info(`dump: task ${tasks[i].pid} shares the address space of ${mmOwner} (mm-${mmOwner}.img)`);
      const r = await dumpTask(tasks[i], live++, ids, { tableOwner, mmOwner }, { ns, arch, imagesDir, log, files, step, options, inc, pageServer, defer, deferred, mountNs, tidAddresses, setParasite: (p) => { parasite = p; } });
      images.push(...r.images);
      if (mmOwner === undefined) taskVmas.set(tasks[i].pid, r.vmas);
      pstree.push(r.pstree);
      // Its cgroup set in each of its core images (whatever pids they are named by).
      if (cgroups) for (const [, magic, entries] of r.images) if (magic === 'CORE' && entries[0]?.thread_core) (entries[0].thread_core as Msg).cg_set = cgroups.setOf.get(tasks[i].pid) ?? 1;
      ttyInfo.push(...r.ttyInfo);
      for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += r.mem[k];
    }

    closePipePool(defer);
    step('write-images');
    if (pageServer) {
      // The receiver answers the flush once every pagemap and page is stored.
      const ps = pageServer;
      pageServer = undefined;
      const status = ps.close();
      if (status !== 0) throw new DumpError('write-images', pid, `the page server at ${ps.where} reported status ${status}`);
    }
    const stats: DumpStats = {
      freezingTimeUs, frozenTimeUs: 0, memdumpTimeUs: Math.round(total.elapsedMs * 1000), memwriteTimeUs: 0,
      pagesScanned: total.pagesScanned, pagesWritten: total.pagesWritten,
      pagesSkippedZero: total.pagesSkippedZero, pagesSkippedFile: total.pagesSkippedFile,
      pagesSkippedParent: total.pagesSkippedParent, memTrack: inc.method,
    };
    const out = (name: string) => path.join(imagesDir, name);
    const head: ImageList = [
      ['inventory.img', 'INVENTORY', [{
        img_version: 2, fdinfo_per_id: true,
        root_ids: { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1, ...ROOT_NS_IDS },
        ns_per_id: true, root_cg_set: 1, lsmtype: 0, network_lock_method: 0, plugins_entry: {}, dump_criu_run_id: runId,
        // A pre-dump records when it ran: CRIU's next dump compares the tasks' start times with
        // it (pid reuse) and refuses a parent without it. pre_dump_mode 1: pages taken while frozen.
        ...(options.preDump ? { dump_uptime: uptimeUs(), pre_dump_mode: 1 } : {}),
      }]],
      ['pstree.img', 'PSTREE', pstree],
    ];
    const tail: ImageList = [
      ['files.img', 'FILES', files.fileEntries()],
      ['seccomp.img', 'SECCOMP', [{}]],
      // The clocks as the task sees them (its time namespace's offsets included), as CRIU writes them.
      ['timens-0.img', 'TIMENS', [(() => { const c = taskClocksNs(pid); return { monotonic: toTimespec(c.monotonic), boottime: toTimespec(c.boottime) }; })()]],
      // The root's own uts/ipc namespaces, its external network namespace.
      ...ns.images,
    ];
    if (ttyInfo.length) tail.push(['tty-info.img', 'TTY_INFO', ttyInfo]);
    if (cgroups) tail.push(['cgroup.img', 'CGROUP', [cgroups.entry]]);
    if (mountNs) {
      for (const x of mountNs.images) tail.push([x.file, x.magic, x.entries]);
      dumpTmpfs(tasks[0].pid, mountNs, imagesDir);
    }
    if (cpu) tail.push(['cpuinfo.img', 'CPUINFO', [cpu]]);
    // A pre-dump keeps the memory only (CRIU's pre-dump dir: inventory, pagemaps, pages).
    const toWrite = options.preDump ? [head[0], ...images.filter(([, magic]) => magic === 'PAGEMAP')] : [...head, ...images, ...tail];
    // Encoded, then written with plain synchronous writes: a round trip through libuv's thread
    // pool per open/write/close cost ~1 ms per image here, all of it frozen time.
    const encoded: Array<[string, Buffer]> = toWrite.map(([file, magic, entries]) => [file, encodeImageEntries(magic, entries.map((message) => ({ message })), { file: out(file) })]);
    const pipesData = pipeDataOf(files).entries();
    if (pipesData.length && !options.preDump) encoded.push(['pipes-data.img', encodeImageEntries('PIPES_DATA', pipesData, { file: out('pipes-data.img') })]);
    for (const [file, bytes] of encoded) {
      try {
        fs.writeFileSync(out(file), bytes, { mode: 0o600 });
      } catch (we) {
        throw new DumpError('write-images', pid, `cannot write ${out(file)}: ${(we as Error).message}`, { cause: we, file: out(file), hint: hintFor(we) });
      }
      log.debug(`wrote ${file} (${bytes.length} bytes)`);
    }
    // Every image is written and the tasks are still frozen: a new tracking period starts now, so
    // that a dump failing before this point leaves the previous period (and its parent) valid.
    // (Not when the dump kills the tasks: nothing will follow.)
    if (options.trackMem && inc.method && (options.preDump || options.leaveRunning)) {
      tasks.forEach((t) => {
        // An address space shared with an earlier task is tracked through that task.
        if (t.zombie || !taskVmas.has(t.pid)) return;
        const fd = resetTracking(inc.method!, t.threads[0], taskVmas.get(t.pid)!, inc.uffdOf(t.pid), log);
        if (fd !== undefined) inc.note.uffd[String(t.pid)] = fd;
      });
      writeMemTrackNote(imagesDir, inc.note);
    }
    if (options.autoDedup && inc.parentDir) {
      for (const [file, , entries] of images) {
        const m = /^pagemap-(\d+)\.img$/.exec(file);
        if (!m) continue;
        const ranges = entries.filter((e) => e.vaddr !== undefined && (Number(e.flags) & PE_PRESENT)).map((e) => ({ vaddr: BigInt(e.vaddr as bigint), nrPages: Number(e.nr_pages) }));
        const d = dedupParents(imagesDir, Number(m[1]), ranges, sys.pageSize());
        log.info(`auto-dedup: ${d.bytesPunched} bytes punched out of the parent images of ${m[1]}`);
      }
    }
    // Every image is written, the tasks still frozen: the caller's word (a throw resumes them).
    if (!options.preDump) await options.onHook?.('post-dump', pid);
    step('finish');
    if (!deferred.length) fs.rmSync(out(INCOMPLETE_MARKER), { force: true });
    if (options.leaveRunning || options.preDump) releaseTree(tasks);
    else {
      // The deferred pages are still the tasks' own: keep the exit's writes out of them.
      if (deferred.length) unregisterTreeExitWrites(tasks, tidAddresses);
      killTree(tasks);
    }
    // Frozen time as CRIU counts it: from the freeze until the tasks run again or are killed.
    stats.frozenTimeUs = usSince(frozenAt);
    if (deferred.length) {
      // The tasks are gone; their pages live on in the pipes. The blocks were reserved, so this
      // copy cannot run out of space; if it fails anyway the images stay marked incomplete.
      const t1 = process.hrtime.bigint();
      const pending = deferred.splice(0);
      try {
        // (A drain closes its own pipes, whether it fails or not.)
        while (pending.length) await pending.shift()!.drain();
      } catch (de) {
        for (const d of pending.splice(0)) d.discard();
        throw new DumpError('finish', pid, `copying the pages into the images after the kill failed: ${(de as Error).message}`, { cause: de, taskResumed: false });
      }
      stats.memwriteTimeUs = usSince(t1);
      log.info(`dump: pages copied into the images after the kill in ${(stats.memwriteTimeUs / 1000).toFixed(1)} ms`);
      fs.rmSync(out(INCOMPLETE_MARKER), { force: true });
    }
    try {
      await writeImageFile(out('stats-dump'), 'STATS', [{ message: { dump: {
        freezing_time: stats.freezingTimeUs, frozen_time: stats.frozenTimeUs, memdump_time: stats.memdumpTimeUs,
        memwrite_time: stats.memwriteTimeUs, pages_scanned: BigInt(stats.pagesScanned), pages_skipped_parent: BigInt(stats.pagesSkippedParent),
        pages_written: BigInt(stats.pagesWritten), irmap_resolve: 0, pages_lazy: BigInt(options.postCopy?.pages ?? 0),
        page_pipes: BigInt(total.pipeBufs), page_pipe_bufs: BigInt(total.pipeBufs),
      } } }]);
    } catch (se) {
      log.warn(`writing stats-dump failed (the images are complete): ${(se as Error).message}`);
    }
    log.info(`dump of ${pid} finished: ${tasks.length} task(s), ${stats.pagesWritten} pages, frozen ${(stats.frozenTimeUs / 1000).toFixed(1)} ms`);
    return { pid, imagesDir, stats };
  } catch (e) {
    // Put the tasks back exactly as they were; the images dir keeps its "incomplete" marker.
    pageServer?.destroy();
    for (const d of deferred.splice(0)) {
      try { d.discard(); } catch { /* closing our own pipes */ }
    }
    let resumed = true;
    try {
      parasite?.abort();
    } catch (ce) {
      log.error(`removing the parasite failed: ${(ce as Error).message}`);
    }
    for (const t of tasks) {
      try {
        releaseThreads(t.threads);
      } catch (ce) {
        resumed = false;
        log.error(`resuming ${t.pid} failed: ${(ce as Error).message}`);
      }
    }
    const err = e instanceof DumpError ? e : new DumpError(current, pid, (e as Error).message, { cause: e, taskResumed: resumed, hint: hintFor(e) });
    log.error(err.message);
    throw err;
  } finally {
    closePipePool(defer);
    if (!options.logger) log.close();
  }
}

type ImageList = Array<[string, string, Msg[]]>;

interface TaskDumpEnv {
  /** The tree's namespaces: the pids images name tasks by, the ns ids. */
  ns: TreeNamespaces;
  arch: Arch;
  imagesDir: string;
  log: Logger;
  files: FileRegistry;
  step: (name: DumpStep) => void;
  options: DumpOptions;
  inc: Incremental;
  pageServer?: PageServerClient;
  defer?: DeferBudget;
  /** Where a task's deferred page copy goes. */
  deferred: Deferred[];
  /** The tree's own mount namespace, when it has one (its id goes into ids-N.img). */
  mountNs?: MountNsDump;
  /** The parasite currently in a task (so a failure can remove it). */
  setParasite: (p: Parasite | undefined) => void;
  /** Every dumped thread's clear_child_tid address, by host tid (filled by dumpTask). */
  tidAddresses: Map<number, bigint>;
}

/**
 * What the kernel shows of thread `t` only in a signal frame (Arch.signalFrameProbe), or undefined
 * when the arch needs none or no frame could be taken (then the arch guesses from the registers).
 */
function signalFrameOf(arch: Arch, t: FrozenTask, log: Logger): unknown {
  const probe = arch.signalFrameProbe;
  if (!probe) return undefined;
  const facts = t.probeSignalFrame(probe.handlerOffset, probe.preserve, (regs) => probe.read(regs, (addr, len) => sys.readMemory(t.pid, addr, len)));
  if (facts === undefined) {
    log.warn(`thread ${t.pid}: no signal frame could be taken (every real-time signal pending, or no stack room): its vector-unit use is guessed from its registers`);
    return undefined;
  }
  log.debug(`thread ${t.pid}: its signal frame says ${JSON.stringify(facts)}`);
  return facts;
}

/** Dumps one frozen task of the tree (the `index`-th in pstree order): its images, pstree entry and memory stats. */
/**
 * `shared`: the earlier task whose descriptor table (tableOwner) or address space (mmOwner) this
 * task shares, already dumped: the task gets no fdinfo / no mm, pagemap and pages of its own.
 */
async function dumpTask(t: TreeTask, index: number, kobj: KobjIds, shared: { tableOwner?: number; mmOwner?: number }, env: TaskDumpEnv) {
  const { tableOwner, mmOwner } = shared;
  const { arch, imagesDir, log, files, step, options } = env;
  const pid = t.pid;
  // The images name tasks and threads as their pid namespace sees them; /proc and ptrace use host pids.
  const vpid = env.ns.nsPid(pid);
  const task = t.threads[0];
  const threads = t.threads;

  step('collect-proc');
  const stat = readStat(pid);
  const statusFrozen = readStatus(pid);
  // Threads caught inside the vDSO are stepped out before any register is read.
  const mapsBefore = readMaps(pid);
  // (Read again after a thread was moved: conservative, the moves run vDSO code only.)
  const maps = stepOutOfVdso(threads, mapsBefore, log).length ? readMaps(pid) : mapsBefore;
  noteVdsoProxies(pid, maps, log);
  const vmFlags = readSmapsVmFlags(pid);
  const auxv = savedAuxv(pid);
  const posixTimers = collectPosixTimers(pid, task, sys.pageSize());
  // ptrace reads need the task stopped, so they come before the parasite runs in it.
  const ptraceState = collectPtraceState(pid);
  const threadInfo = arch.dumpThreadInfo(pid, task.savedRegs, signalFrameOf(arch, task, log));
  const others = threads.slice(1);
  const selfStates = collectThreadSelfState(task, others, sys.pageSize());
  const extraCores: Array<{ tid: number; core: Msg }> = others.map((th) => {
    const ti = arch.dumpThreadInfo(th.pid, th.savedRegs, signalFrameOf(arch, th, log));
    const self = selfStates.get(th.pid)!;
    ti.clear_tid_addr = self.tidAddress;
    const threadCore = collectThreadCore({
      tid: th.pid, stat: readStat(pid, th.pid), status: readStatus(pid, th.pid), ptrace: collectPtraceState(th.pid),
      securebits: 0 /* the parasite's, below */, self, sigmask: th.savedSigmask,
    });
    return { tid: env.ns.nsPid(th.pid), core: { mtype: arch.image.march, [arch.image.threadInfoField]: ti, thread_core: threadCore } };
  });

  step('infect');
  // Its self-resume frame (should we die) from the state just read, the signal frame's view included.
  const parasite = Parasite.inject(task, { threadInfo });
  env.setParasite(parasite);

  step('task-state');
  // The task state, the program break and the securebits too (asked by the parasite: no
  // injected syscall each). Every thread's creds get the main thread's securebits.
  const pstate: ParasiteTaskState = parasite.taskState();
  const { securebits, brk } = pstate;
  for (const x of extraCores) ((x.core.thread_core as Msg).creds as Msg).secbits = securebits;
  const { tc, threadCore } = collectTaskCore({ pid, stat, status: statusFrozen, parasite: pstate, sigmask: task.savedSigmask, securebits, ptrace: ptraceState });
  if (posixTimers.length) (tc.timers as Msg).posix = posixTimers;
  if (t.stopped) markStopped(tc, task.groupStopSignal);

  const ctx: TaskDumpContext = { pid, imagesDir, pageSize: sys.pageSize(), log, files, parasite, maps, shellJob: options.shellJob ?? false, ghostLimit: ghostLimitOf(options), ignoreFds: env.inc.ignoreFds(pid), ...(env.mountNs ? { mountIds: env.mountNs.mntIds } : {}), ...(tableOwner !== undefined ? { fdsDumpedWith: tableOwner } : {}) };

  step('files');
  const filesOut = await collectFiles(ctx);

  // An address space shared with an earlier task was saved with it (the parasite here runs in
  // that same memory: its area was mapped after the maps were read, and goes at cure).
  step('vmas');
  const vmas = mmOwner !== undefined ? [] : collectVmas(pid, maps, vmFlags, (m) => mappedFileId(ctx, m), (m) => mappedShmemId(ctx, m));
  if (!options.preDump) await fileImagesOf(files).flush(imagesDir); // memfd.img and the shmem pagemaps it added

  step('memory');
  const track = mmOwner !== undefined ? undefined : env.inc.taskTracking(pid, vmas, vmFlags, ctx.pageSize);
  const mem = mmOwner !== undefined ? NO_MEMORY : await dumpMemory(ctx, vmas, { pagesId: index + 1, ...options.memory, track, pageServer: env.pageServer, postCopy: options.postCopy, defer: env.defer });
  if (mem.deferred) env.deferred.push(mem.deferred);

  step('registers');
  threadInfo.clear_tid_addr = pstate.tidAddress;
  env.tidAddresses.set(task.pid, pstate.tidAddress);
  for (const th of others) env.tidAddresses.set(th.pid, selfStates.get(th.pid)!.tidAddress);

  step('cure');
  parasite.finish();
  env.setParasite(undefined);

  // Kernel objects as kobjIdsOf numbered them; namespaces as collectNamespaces did.
  const ids: Msg = { vm_id: kobj.vm, files_id: kobj.files, fs_id: kobj.fs, sighand_id: kobj.sighand, ...env.ns.idsOf(pid) };
  const core: Msg = { mtype: arch.image.march, [arch.image.threadInfoField]: threadInfo, tc, thread_core: threadCore };
  const mm: Msg = {
    mm_start_code: stat.startCode, mm_end_code: stat.endCode, mm_start_data: stat.startData, mm_end_data: stat.endData,
    mm_start_stack: stat.startStack, mm_start_brk: stat.startBrk, mm_brk: brk, mm_arg_start: stat.argStart,
    mm_arg_end: stat.argEnd, mm_env_start: stat.envStart, mm_env_end: stat.envEnd, exe_file_id: filesOut.exeFileId,
    mm_saved_auxv: auxv, vmas, dumpable: pstate.dumpable, thp_disabled: pstate.thpDisabled !== 0,
  };
  const images: ImageList = [
    [`core-${vpid}.img`, 'CORE', [core]],
    ...extraCores.map((x): [string, string, Msg[]] => [`core-${x.tid}.img`, 'CORE', [x.core]]),
    [`ids-${vpid}.img`, 'IDS', [ids]],
    ...(mmOwner === undefined ? [[`mm-${vpid}.img`, 'MM', [mm]] as [string, string, Msg[]]] : []),
    // With a page server the receiver writes the pagemap (and the pages); a copy stays here for
    // the next iteration (what its parent covers).
    ...(mmOwner !== undefined ? [] : [[env.pageServer ? sentPagemapFile(vpid) : `pagemap-${vpid}.img`, 'PAGEMAP', mem.pagemap] as [string, string, Msg[]]]),
    ...(tableOwner === undefined ? [[`fdinfo-${ids.files_id}.img`, 'FDINFO', filesOut.fdinfo] as [string, string, Msg[]]] : []),
    [`fs-${vpid}.img`, 'FS', [filesOut.fs]],
    ...filesOut.extraImages.map((x): [string, string, Msg[]] => [x.file, x.magic, x.entries]),
  ];
  const { pgid, sid } = env.ns.pgidSid(pid, stat);
  const pstree: Msg = { pid: vpid, ppid: t.ppid === 0 ? 0 : env.ns.nsPid(t.ppid), pgid, sid, threads: threads.map((th) => env.ns.nsPid(th.pid)) };
  const m = mem.stats;
  return {
    images, pstree, ttyInfo: filesOut.ttyInfo, vmas,
    mem: { pagesScanned: m.pagesScanned, pagesWritten: m.pagesWritten, pagesSkippedParent: m.pagesSkippedParent, pagesSkippedZero: m.pagesSkippedZero, pagesSkippedFile: m.pagesSkippedFile, elapsedMs: m.elapsedMs, pipeBufs: m.pipeBufs },
  };
}

/** The memory result of a task whose address space was dumped with an earlier task. */
const NO_MEMORY = { pagemap: [] as Msg[], stats: { pagesScanned: 0, pagesWritten: 0, pagesSkippedParent: 0, pagesSkippedZero: 0, pagesSkippedFile: 0, elapsedMs: 0, pipeBufs: 0 }, deferred: undefined as Deferred | undefined };

/** What an iterative dump knows before freezing: parent dir, tracking method, the tasks' uffds. */
interface Incremental {
  parentDir?: string;
  method?: TrackMethod;
  note: MemTrackNote;
  ignoreFds(pid: number): Set<number>;
  uffdOf(pid: number): number | undefined;
  taskTracking(pid: number, vmas: Msg[], vmFlags: Map<bigint, Set<string>>, pageSize: number): TaskTracking | undefined;
}

function prepareIncremental(options: DumpOptions, imagesDir: string, pid: number): Incremental {
  let parentDir: string | undefined;
  if (options.parentImagesDir !== undefined) {
    parentDir = path.resolve(imagesDir, options.parentImagesDir);
    if (!fs.existsSync(path.join(parentDir, 'inventory.img'))) {
      throw new DumpError('check-task', pid, `no previous images in ${parentDir} (--prev-images-dir ${options.parentImagesDir} is relative to the images dir)`, { hint: 'give the previous (pre-)dump directory, e.g. ../1' });
    }
    if (fs.existsSync(path.join(parentDir, INCOMPLETE_MARKER))) throw new DumpError('check-task', pid, `the previous images in ${parentDir} are incomplete (a failed dump)`);
  }
  const wanted = options.trackMem || parentDir !== undefined;
  let method: TrackMethod | undefined;
  if (wanted) {
    const sup = detectMemTrack();
    method = sup.method;
    if (!method && options.trackMem) {
      const why = sup.forced ? `${sup.forced} (the only method CRIU_TS_MEM_TRACK allows): ${sup.forced === 'soft-dirty' ? sup.softDirty : sup.uffdWp}` : `soft-dirty: ${sup.softDirty}; uffd-wp: ${sup.uffdWp}`;
      throw new DumpError('check-task', pid, `cannot track memory changes on this kernel: ${why}`, {
        hint: 'the kernel lacks the feature: --track-mem needs soft-dirty bits (CONFIG_MEM_SOFT_DIRTY) or userfaultfd write-protect with PAGEMAP_SCAN (Linux 6.7+); dump without --track-mem (and without a parent), see `criu check --feature mem_dirty_track`',
      });
    }
  }
  const parentNote = parentDir ? readMemTrackNote(parentDir) : undefined;
  const uffds = new Map<number, number | undefined>();
  const uffdOf = (p: number) => {
    if (!uffds.has(p)) uffds.set(p, trackedUffd(p));
    return uffds.get(p);
  };
  return {
    parentDir, method, note: { method: method ?? 'soft-dirty', uffd: {} },
    ignoreFds: (p) => { const fd = uffdOf(p); return new Set(fd === undefined ? [] : [fd]); },
    uffdOf,
    taskTracking(p, vmas, vmFlags, pageSize) {
      if (!parentDir) return undefined;
      // Changes are known only if the parent started a tracking period with this method.
      let m: TrackMethod | undefined;
      // uffd-wp: only if the parent itself started the period on this very uffd.
      if (method === 'uffd-wp') m = uffdOf(p) !== undefined && parentNote?.method === 'uffd-wp' && parentNote.uffd[String(p)] === uffdOf(p) ? 'uffd-wp' : undefined;
      else if (method === 'soft-dirty') m = !parentNote || parentNote.method === 'soft-dirty' ? 'soft-dirty' : undefined;
      const registered = m === 'uffd-wp' ? uffdRegisteredVmas(vmas, vmFlags) : new Set<bigint>();
      return { method: m, coverage: ParentCoverage.load(parentDir, p, pageSize), registered };
    },
  };
}

/** Time since boot in microseconds, from /proc/uptime (centisecond precision), as CRIU records it. */
function uptimeUs(): bigint {
  const m = /^(\d+)\.(\d+)/.exec(fs.readFileSync('/proc/uptime', 'latin1'));
  if (!m) throw new Error('cannot parse /proc/uptime');
  return BigInt(m[1]) * 1_000_000n + BigInt(m[2].padEnd(2, '0').slice(0, 2)) * 10_000n;
}

/** The task's resident anonymous memory (RssAnon), 0 if unknown: what its pages image will hold, about. */
function rssAnonBytes(pid: number): number {
  try {
    const m = /^RssAnon:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Pipes a dump may hold pages in: one descriptor each (the write end is closed once filled),
 * within the open-file limit with room to spare; at most 4096 (4 GiB in 1 MiB pipes).
 */
function deferPipeBudget(): number {
  let soft = 1024;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'latin1'));
    if (m) soft = m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch { /* keep the usual default */ }
  let open = 64;
  try { open = fs.readdirSync('/proc/self/fd').length; } catch { /* estimate */ }
  return Math.max(0, Math.min(4096, soft - open - 256));
}

/** What a dump, a pre-dump or a page server leaves in an images directory. */
const IMAGES_DIR_ENTRY = /^(.*\.(img|log)|parent|criu-ts\..*)$/;

/**
 * The images directory ends up 0700 when it is ours: created here (whatever the umask), or an
 * existing one that is empty or holds only images and logs (a previous dump, a page server's).
 * Any other directory (e.g. the current one, `-D` defaulting to it) keeps its mode, with a
 * warning if others can enter it: changing the mode of a directory the user keeps other things
 * in would be worse (the images are 0600 anyway).
 */
function takeImagesDir(dir: string, before: string[] | undefined, log: Logger): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ours = !before || before.every((f) => IMAGES_DIR_ENTRY.test(f)) || before.includes('inventory.img') || before.includes(INCOMPLETE_MARKER);
  const mode = fs.statSync(dir).mode & 0o777;
  if (ours) {
    if (mode !== 0o700) fs.chmodSync(dir, 0o700);
  } else if (mode & 0o077) {
    log.warn(`dump: the images directory ${dir} holds other files and stays mode ${mode.toString(8)}: others may list the images (each is 0600)`);
  }
}

function ghostLimitOf(options: DumpOptions): bigint | undefined {
  return options.ghostLimit === undefined ? undefined : BigInt(options.ghostLimit);
}

function readStatusOrFail(pid: number) {
  try {
    return readStatus(pid);
  } catch (e) {
    throw new DumpError('check-task', pid, `no such process (${(e as Error).message})`, { hint: 'check the PID', cause: e });
  }
}

/** A hint for causes we recognise anywhere in the error's cause chain. */
function hintFor(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 6; c = (c as { cause?: unknown }).cause, depth++) {
    // Node's fs errors carry a negative errno and a code; ours (SysError) a positive errno.
    const n = Math.abs(Number((c as { errno?: number }).errno ?? 0));
    const code = (c as { code?: unknown }).code;
    const is = (num: number, name: string) => n === num || code === name;
    if (is(28, 'ENOSPC') || is(122, 'EDQUOT') || /ENOSPC|no space left/i.test(String((c as Error).message))) {
      return "the images directory's filesystem is full: free space or dump elsewhere";
    }
    if (is(1, 'EPERM') || is(13, 'EACCES')) return 'permission denied: dumping needs root or CAP_CHECKPOINT_RESTORE + CAP_SYS_PTRACE over the task';
  }
  return undefined;
}

/** Message types a dump writes; building their codecs ahead keeps that work out of the frozen window. */
const WRITTEN_TYPES = ['inventory_entry', 'pstree_entry', 'core_entry', 'task_kobj_ids_entry', 'mm_entry', 'pagemap_head',
  'pagemap_entry', 'fdinfo_entry', 'memfd_inode_entry', 'file_entry', 'fs_entry', 'seccomp_entry', 'timens_entry', 'stats_entry', 'pipe_data_entry', 'tty_info_entry'];

function warmImageCodecs(): void {
  for (const t of WRITTEN_TYPES) {
    try {
      // Encoding a full sample builds every nested plan the real images will use.
      encodeMessage(t, sampleOf(planOf(t), 0));
    } catch { /* a missing schema shows up, with context, when the image is written */ }
  }
}

/** A valid record of a message plan with every field set (zeros, one element per repeated field). */
function sampleOf(plan: MessagePlan, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of plan.fields) {
    let v: unknown;
    if (f.kind === 'message') {
      if (depth > 6) { if (f.required) return out; continue; }
      v = sampleOf(f.message!(), depth + 1);
    } else if (f.kind === 'enum') {
      v = f.enumByName!.values().next().value;
    } else {
      v = ({ uint64: 0n, int64: 0n, sint64: 0n, fixed64: 0n, sfixed64: 0n, string: 'x', bytes: Buffer.alloc(1), bool: false } as Record<string, unknown>)[f.kind] ?? 0;
    }
    out[f.name] = f.repeated ? [v] : v;
  }
  return out;
}
