/**
 * `restore()`: brings a dumped process back from CRIU images. A helper program started detached
 * and held under ptrace clone3()s the task-to-be with the dumped PID; the restorer then rebuilds
 * that child by injected syscalls (mappings, memory read from the pages image by the task itself,
 * files, signals, limits, mm fields ...) and ends with an rt_sigreturn frame that gives it its
 * registers. Any failure kills every task the restore created.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys, packCloneArgs, PTRACE_O, WAIT, SIGNALS, PTRACE_EVENT, type WaitStatus } from '@criu/sys';
import { decodeImageEntries, type Msg } from '@criu/images';
import type { Arch } from '../arch/types.js';
import { hostArch } from '../arch/host.js';
import { FrozenTask } from '../infect/frozen-task.js';
import { readMaps } from '../proc/maps.js';
import { readStatus } from '../proc/status.js';
import { Logger } from '../util/log.js';
import { RestoreError } from './errors.js';
import { need, type TaskImages } from './images-in.js';
import { planRestore } from './plan.js';
import { SharedFiles } from './shared-files.js';
import { externalTtySources, openExternalTtys, openPtys, setForeground, takeCtty, takeForeground } from './files-tty.js';
import { regFileName, restoreFiles } from './files.js';
import { GhostFiles } from './ghost-files.js';
import { restoreFileLocks } from './file-locks.js';
import type { RestoreOptions, RestoreResult } from './options.js';
import { Scratch, SCRATCH, findFreeRange } from './scratch.js';
import { killThreads } from '../dump/threads.js';
import { restorePosixTimers } from './posix-timers.js';
import { makeZombie } from './zombies.js';
import { RESTORE_STEPS, type RestoreStep } from './steps.js';
import { placeVdso, installVdsoProxy } from './vdso.js';
import { enterTimeNamespace } from './timens.js';
import { lazyVmasOf, registerLazy, splitLazyRuns } from './lazy.js';
import { fillAnonByUffd } from './fill-uffd.js';
import { CgroupMover, planCgroups } from './cgroups.js';
import { CLONE_NEWPID, closeBridges, forgetBridges, holdsBridge, hostPidOfChild, hostTidOf, openBridge, restorerPidfd, setupRootNamespaces } from './namespaces.js';
import { readMountNamespace, restoreMountNamespace } from './mounts.js';

const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
const MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_FIXED_NOREPLACE = 0x100000;
const VMA_AREA_VSYSCALL = 1 << 2, VMA_AREA_VDSO = 1 << 3, VMA_AREA_VVAR = 1 << 12;
const VMA_FILE_PRIVATE = 1 << 6, VMA_FILE_SHARED = 1 << 7, VMA_ANON_SHARED = 1 << 8, VMA_ANON_PRIVATE = 1 << 9, VMA_AREA_MEMFD = 1 << 14;
const VMA_AREA_SYSVIPC = 1 << 10, VMA_AREA_AIORING = 1 << 13;
// These open flags have the same values on x86_64 and ppc64 (O_DIRECTORY and O_DIRECT do not).
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const F_SETFD = 2, F_DUPFD_CLOEXEC = 1030, FD_CLOEXEC = 1;
const PR_SET_PDEATHSIG = 1, PR_SET_DUMPABLE = 4, PR_SET_NAME = 15, PR_SET_MM = 35, PR_SET_MM_MAP = 14;
const PR_SET_CHILD_SUBREAPER = 36, PR_SET_THP_DISABLE = 41;
const SIGKILL = 9, SIGSTOP = 19;
const TASK_STOPPED = 3;
const SS_DISABLE = 2;
const SIGCHLD = 17;
const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800;

interface Vma { start: bigint; end: bigint; pgoff: bigint; shmid: number; prot: number; flags: number; status: number; madv: bigint; fdflags?: number }

/** Sleeps without giving up the thread (ptrace must stay on this thread). */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const arch: Arch = options.arch ?? hostArch();
  const imagesDir = path.resolve(options.imagesDir);
  const log = options.logger ?? new Logger(options.logLevel ?? 2, options.logFile ? path.resolve(imagesDir, options.logFile) : undefined);
  const faultAt = options.faultAt ?? process.env.CRIU_TS_FAULT_STEP;
  const pageSize = sys.pageSize();
  let current: RestoreStep = 'read-images';
  const step = (name: RestoreStep) => {
    current = name;
    const index = RESTORE_STEPS.indexOf(name);
    log.info(`restore step ${index + 1}/${RESTORE_STEPS.length}: ${name}`);
    options.onProgress?.({ step: name, index, total: RESTORE_STEPS.length });
    if (faultAt === name) throw new RestoreError(name, `injected fault at step "${name}"`);
  };

  let helper: FrozenTask | undefined;
  // The helper program starts while the images are read (a shell, setsid and an exec: ~15-20 ms).
  // A shell job stays in the caller's session (and group): the helper too, not setsid'd.
  let launch: Promise<number> | undefined = launchHelper(arch, options.shellJob ?? false);
  // Logged as soon as its pid is known: a failure before start-helper must not leave it behind.
  launch.then((p) => log.info(`restore helper ${p} launched`), () => { /* reported at the start-helper step */ });
  const rts: RTask[] = [];
  const shared = new SharedFiles(options.inheritFds);
  let ghosts: GhostFiles | undefined;
  let lazyTotal = 0;
  let cgMover: CgroupMover | undefined;
  // The task being rebuilt (its pid in the images): errors from here on name it.
  let inTask: number | undefined;
  try {
    step('read-images');
    // Every check on the images alone: the same planRestore() the fuzzer runs. Then those that
    // look at this host too.
    const planned = planRestore(imagesDir, { march: arch.image.march, threadInfoField: arch.image.threadInfoField, pageSize, shellJob: options.shellJob ?? false, lazyPages: !!options.lazyPages, inheritFds: options.inheritFds });
    const { tree, anonSizes, locks, ptys: ptyPlan, clocks, namespaces: nsPlan } = planned;
    const plan = planned.tasks.map((t) => ({ img: t.images, vmas: t.vmas as Vma[] }));
    const posixTimers = new Map(planned.tasks.map((t) => [t.images.pid, t.posixTimers]));
    const pid = plan[0].img.pid;
    ghosts = new GhostFiles(imagesDir, tree.tasks[0].files, (m) => log.warn(m));
    const extSources = externalTtySources(ptyPlan, options.inheritFds ?? []);
    if (options.shellJob) joinCallerSession(tree, log);
    checkCpu(imagesDir, arch, options.cpuCap);
    const cgPlan = await planCgroups(imagesDir, plan.map(({ img }) => ({ pid: img.pid, set: Number((img.core.thread_core as Msg | undefined)?.cg_set ?? 0) })), options.manageCgroups ?? 'soft', options.cgroupRoots ?? []);
    // A mount namespace of the tree's own: rebuilt in the root task before anything is opened.
    const mountNs = readMountNamespace(imagesDir, tree.tasks, { root: options.root, external: options.external?.mounts });

    step('check-pid');
    // A new pid namespace has every pid free.
    if (!nsPlan.newPidNs) {
      for (const { img } of plan) {
        inTask = img.pid;
        for (const tid of [img.pid, ...img.threadCores.map((c) => c.tid)]) waitPidFree(tid, options.pidWaitMs ?? 5000);
      }
      inTask = undefined;
      for (const z of tree.zombies) waitPidFree(z.pid, options.pidWaitMs ?? 5000);
    }

    step('start-helper');
    const launched = launch;
    launch = undefined;
    helper = await startHelper(arch, launched);
    log.info(`restore helper ${helper.pid} started`);
    if (clocks) enterTimeNamespace(helper, clocks, log);

    step('clone');
    // Pty pairs exist before the tasks: a session leader takes its terminal before its children.
    const ptys = openPtys(ptyPlan, (fd) => shared.own(fd), (msg) => log.warn(msg));
    for (const p of ptys) for (const [id, fd] of p.byFile) shared.hold(id, fd);
    const extTtys = openExternalTtys(extSources, (fd) => shared.own(fd));
    for (const t of extTtys) {
      for (const id of t.ext.files) shared.hold(id, t.fd);
      log.info(`pty ${t.ext.index} (outside the tree): the restored tasks get ${t.from}`);
    }
    for (const id of ptyPlan.devTty) shared.openInTask(id, '/dev/tty');
    // One scratch address free in every task: each task starts as a copy of the helper (the root
    // cloned from it, every other task from its parent before anything is rebuilt).
    const helperMaps = readMaps(helper.pid);
    // Tasks sharing an address space share the scratch area: each gets its own frame slots.
    const frameSlots = frameSlotsOf(plan.map((t) => t.img));
    const maxThreads = Math.max(...plan.map((t) => frameSlots.get(t.img.pid)! + t.img.threadCores.length + 1));
    const scratchSize = Math.ceil((SCRATCH.frame + (maxThreads + 1) * arch.maxRestoreFrameSize) / pageSize) * pageSize;
    const scratchBase = findFreeRange([...helperMaps, ...plan.flatMap((t) => t.vmas)], scratchSize, pageSize);
    helper.syscall('mmap', scratchBase, scratchSize, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    const helperScratch = new Scratch(helper.pid, scratchBase, scratchSize);
    helperScratch.put(SCRATCH.code, arch.syscallTrapCode);
    // Tasks in a new pid namespace take descriptors from us through an inherited pidfd of ours.
    const bridgeFd = nsPlan.newPidNs ? openBridge(helper, 1 + Math.max(2, ...plan.map((t) => t.img.fdinfo.reduce((m, e) => Math.max(m, Number(e.fd)), 0)))) : undefined;
    for (const [i, { img, vmas }] of plan.entries()) {
      inTask = img.pid;
      const ppid = Number(img.pstree.ppid ?? 0);
      const parent = i === 0 ? undefined : rts.find((r) => r.img.pid === ppid)!;
      // An address space / descriptor table / fs info / signal handlers shared with the parent:
      // the child is born sharing it (a CLONE_VM child sees the parent's memory rebuilt later).
      const share = img.sharesWithParent;
      const flags = (share?.vm ? CLONE_VM : 0) | (share?.sighand ? CLONE_SIGHAND : 0) | (share?.files ? CLONE_FILES : 0) | (share?.fs ? CLONE_FS : 0);
      // The root goes into the namespaces of its own the images name (planNamespaces).
      const task = cloneTask(parent ? parent.task : helper, parent ? parent.scratch : helperScratch, img.pid, arch, 'clone', flags | (i === 0 ? nsPlan.cloneFlags : 0), nsPlan.newPidNs && i > 0);
      const mmOwner = img.mmOf !== undefined ? rts.find((r) => r.img.pid === img.mmOf) : undefined;
      const rt: RTask = { img, vmas, task, threads: [task], scratch: new Scratch(task.pid, scratchBase, scratchSize), mapped: [], frames: [], ...(mmOwner ? { mmOwner } : {}) };
      rts.push(rt);
      task.useCodeAt(scratchBase + BigInt(SCRATCH.code), false);
      if (bridgeFd !== undefined) holdsBridge(task.pid, bridgeFd);
      if (i === 0 && (nsPlan.cloneFlags || nsPlan.netFd)) setupRootNamespaces(task, rt.scratch, nsPlan, bridgeFd);
      if (task.pid !== img.pid) log.info(`task ${img.pid} is ${task.pid} on the host`);
      if (i === 0 && mountNs) restoreMountNamespace(task, rt.scratch, mountNs, log);
      setSessionAndGroup(rt, parent);
      for (const p of ptys) if (p.pair.sid === img.pid) takeCtty(task, p);
      log.info(`task ${img.pid} created${parent ? ` by its parent ${parent.img.pid}` : ''}${share?.vm ? ', sharing its address space' : ''}${share?.sighand ? ', sharing its signal handlers' : ''}${share?.files ? ', sharing its descriptor table' : ''}${share?.fs ? ', sharing its fs info' : ''}`);
      for (const z of tree.zombies.filter((x) => Number(x.pstree.ppid) === img.pid)) {
        makeZombie(cloneTask(task, rt.scratch, z.pid, arch, 'clone', 0, nsPlan.newPidNs), task, rt.scratch, z, img.pstree, arch, scratchBase + BigInt(SCRATCH.code));
        log.info(`zombie ${z.pid} created by ${img.pid} (wait status 0x${z.exitStatus.toString(16)})`);
      }
    }
    inTask = undefined;
    for (const p of ptys) {
      const leader = rts.find((r) => r.img.pid === p.pair.sid);
      if (leader) setForeground(leader.task, leader.scratch, p);
    }
    // The job takes the foreground of the caller's terminal, from its first task in that session.
    const callerSid = Number(sys.syscall('getsid', 0));
    for (const t of extTtys) {
      if (!t.ctty) {
        log.info(`pty ${t.ext.index} (outside the tree): ${t.from} is not the caller's controlling terminal: its foreground group stays`);
        continue;
      }
      const ids = new Set(t.ext.files);
      const rt = rts.find((r) => Number(r.img.pstree.sid) === callerSid && r.img.fdinfo.some((e) => ids.has(Number(e.id))));
      if (!rt) {
        log.info(`pty ${t.ext.index} (outside the tree): no task holding it is in the caller's session ${callerSid}: the foreground group stays`);
        continue;
      }
      takeForeground(rt.task, rt.scratch, t, Number(rt.img.pstree.pgid));
      log.info(`pty ${t.ext.index} (outside the tree): group ${rt.img.pstree.pgid} of task ${rt.img.pid} is the foreground of ${t.from}`);
    }
    // Cgroups before any memory is charged: every task is still a copy of the helper.
    if (cgPlan) {
      cgMover = new CgroupMover(cgPlan, log);
      // Host pids: in a pid namespace of its own the task's pid there is not ours.
      for (const rt of rts) cgMover.move(rt.task.pid, Number((rt.img.core.thread_core as Msg | undefined)?.cg_set ?? 0));
    }
    // Hooks get the root task's PID as we see it.
    const hostPid = rts[0]?.task.pid ?? pid;
    await options.onHook?.('setup-namespaces', hostPid);
    await options.onHook?.('post-setup-namespaces', hostPid);

    for (const rt of rts) {
      const { task, img, vmas, scratch } = rt;
      const tpid = img.pid;
      inTask = tpid;
      const mmFile = `mm-${tpid}.img`;

      // Memory: rebuilt once, by the first task of the address space; the others share it.
      if (rt.mmOwner) {
        log.info(`task ${tpid}: address space restored with task ${rt.mmOwner.img.pid}`);
      } else {
        step('unmap-helper');
        const childMaps = readMaps(task.pid);
        const keep = (name: string) => name === '[vdso]' || name === '[vvar]' || name === '[vvar_vclock]' || name === '[vsyscall]';
        for (const m of childMaps) {
          if (m.start === scratchBase || keep(m.name)) continue;
          log.debug(`task ${tpid}: unmap helper mapping ${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.name}`);
          task.syscall('munmap', m.start, m.end - m.start);
        }

        step('vdso');
        const vdsoCtx = { arch, img, pageSize, mode: options.vdso ?? 'auto', log };
        const proxy = placeVdso(task, childMaps, vmas, vdsoCtx);
        if (proxy) rt.mapped.push(proxy.vma as Vma);

        step('map-vmas');
        const runs = [...img.pages.runs, ...(img.pages.remote ?? []), ...(img.parentPages ?? []).flatMap((p) => p.runs)];
        const hasPages = (v: Vma) => runs.some((r) => r.vaddr < v.end && r.vaddr + BigInt(r.nrPages * pageSize) > v.start);
        const fdsByFile = new Map<string, number>();
        let ourPidfd = -1;
        for (const v of vmas) {
          if (v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL)) continue;
          const fill = hasPages(v);
          const prot = fill ? v.prot | PROT_READ | PROT_WRITE : v.prot;
          if (v.status & (VMA_AREA_SYSVIPC | VMA_AREA_AIORING)) {
            throw new RestoreError('map-vmas', `${v.status & VMA_AREA_SYSVIPC ? 'SysV shared memory' : 'an AIO ring'} at 0x${v.start.toString(16)} is not supported yet`, { file: mmFile, field: 'vmas.status' });
          }
          let fd = -1;
          const anonShared = (v.status & VMA_ANON_SHARED) !== 0 && !(v.status & VMA_AREA_MEMFD);
          if (v.status & VMA_AREA_MEMFD || anonShared) {
            // Shared anonymous memory (or a memfd): one object for every task that maps it.
            const key = anonShared ? `anon:${v.shmid}` : `memfd:${v.shmid}`;
            fd = fdsByFile.get(key) ?? -1;
            if (fd < 0) {
              const lfd = anonShared ? shared.anonShmem(v.shmid, anonSizes.get(v.shmid)!, imagesDir) : shared.mappedMemfd(img.files, v.shmid, imagesDir);
              if (ourPidfd < 0) ourPidfd = restorerPidfd(task);
              fd = Number(task.syscall('pidfd_getfd', ourPidfd, lfd, 0));
              fdsByFile.set(key, fd);
            }
          } else if (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) {
            // A writable shared mapping needs the file open read-write; others read-only.
            const mode = v.status & VMA_FILE_SHARED && v.prot & PROT_WRITE ? 2 : 0;
            const key = `${v.shmid}:${mode}`;
            fd = fdsByFile.get(key) ?? -1;
            if (fd < 0) {
              const name = regFileName(img, v.shmid, `vma at 0x${v.start.toString(16)}`);
              fd = ghosts.open(v.shmid, name, (p) => Number(task.syscall('openat', AT_FDCWD, scratch.str(p), mode | O_CLOEXEC, 0)));
              fdsByFile.set(key, fd);
            }
          } else if (!(v.status & VMA_ANON_PRIVATE)) {
            throw new RestoreError('map-vmas', `mapping kind 0x${v.status.toString(16)} at 0x${v.start.toString(16)} is not supported yet`, { file: mmFile, field: 'vmas.status' });
          }
          const flags = (v.flags & ~(MAP_FIXED | MAP_FIXED_NOREPLACE | (fd < 0 ? 0 : MAP_ANONYMOUS))) | MAP_FIXED | (fd < 0 ? MAP_ANONYMOUS : 0);
          task.syscall('mmap', v.start, v.end - v.start, prot, flags, fd, fd < 0 ? 0 : v.pgoff);
          rt.mapped.push(v);
        }
        for (const fd of fdsByFile.values()) task.syscall('close', fd);
        if (ourPidfd >= 0) task.syscall('close', ourPidfd);

        step('fill-memory');
        const remote = img.pages.remote ?? [];
        if (remote.length && !options.lazyPages) {
          throw new RestoreError('read-images', `${remote.reduce((n, r) => n + r.nrPages, 0)} pages of task ${img.pid} are not in the images but on the dump side (PE_LAZY entries of a \`criu dump --lazy-pages\`)`, { file: `pagemap-${img.pid}.img`, record: remote[0].entry, field: 'flags', hint: 'restore with --lazy-pages and `criu lazy-pages --page-server --address A --port P` pointed at the dump' });
        }
        const withRemote = remote.length ? [...img.pages.runs, ...remote].sort((a, b) => (a.vaddr < b.vaddr ? -1 : a.vaddr > b.vaddr ? 1 : 0)) : img.pages.runs;
        const lazy = options.lazyPages ? lazyVmasOf(vmas.filter((v) => v !== proxy?.vma), withRemote) : [];
        const { eager, lazyPages } = splitLazyRuns(withRemote, lazy, pageSize);
        const stray = eager.find((r) => r.offset === undefined);
        if (stray) throw new RestoreError('read-images', `pages at 0x${stray.vaddr.toString(16)} of task ${img.pid} are on the dump side (PE_LAZY) but not in memory the lazy-pages daemon serves`, { file: `pagemap-${img.pid}.img`, record: stray.entry, field: 'flags' });
        await fillMemory(task, scratch, { ...img, pages: { ...img.pages, runs: eager } }, vmas.filter((v) => v !== proxy?.vma), pageSize, log, mountNs !== undefined);
        if (lazy.length) {
          const ufd = registerLazy(task, scratch, lazy);
          try {
            await options.lazyPages!.handOver(img.pid, ufd, { lazyPages, ranges: lazy.map((v) => ({ start: v.start, end: v.end })) });
          } finally {
            sys.syscall('close', ufd);
          }
          lazyTotal += lazyPages;
          log.info(`task ${img.pid}: ${lazyPages} pages in ${lazy.length} vma(s) left to the lazy-pages server`);
        }
        if (proxy) installVdsoProxy(task, proxy, vdsoCtx);

        step('protect');
        for (const v of rt.mapped) {
          if (hasPages(v) && (v.prot & (PROT_READ | PROT_WRITE)) !== (PROT_READ | PROT_WRITE)) {
            task.syscall('mprotect', v.start, v.end - v.start, v.prot);
          }
          for (let bit = 0n; bit < 64n; bit++) {
            if (v.madv & (1n << bit)) task.syscall('madvise', v.start, v.end - v.start, bit);
          }
        }
      }

      step('files');
      if (rt === rts[0]) shared.prepare(tree, imagesDir);
      restoreFiles(task, scratch, img, options.shellJob ?? false, shared, ghosts);
      restoreFileLocks(task, scratch, locks, arch.littleEndian, img.pid);
    }
    inTask = undefined;
    shared.closeAll();
    closeBridges(rts.map((r) => r.task));

    for (const rt of rts) {
      const { task, img, scratch } = rt;
      inTask = img.pid;
      step('task-state');
      restoreTaskState(task, scratch, img, arch, ghosts, { mm: !rt.mmOwner, sigactions: !img.sharesWithParent?.sighand });

      step('threads');
      for (const { tid } of img.threadCores) rt.threads.push(createThread(task, scratch, tid, arch, nsPlan.newPidNs));
      restorePosixTimers(task, scratch, posixTimers.get(img.pid)!, `core-${img.pid}.img`, process.env.CRIU_TS_TIMER_IDS !== 'sequential');
      const cores = [{ tid: img.pid, core: img.core }, ...img.threadCores];
      const dumpable = img.mm.dumpable !== undefined ? Number(img.mm.dumpable) : 1;
      cores.forEach(({ tid, core }, i) => restoreThreadState(rt.threads[i], img.pid, tid, scratch, core, arch, `core-${tid}.img`, i === 0 ? dumpable : undefined));
      queueSignals(task, scratch, (img.core.tc as Msg).signals_s as Msg | undefined, img.pid);

      step('registers');
      rt.frames = cores.map(({ core }, i) => {
        const ti = core[arch.image.threadInfoField] as Msg;
        const thc = core.thread_core as Msg;
        const mask = i === 0 ? BigInt((core.tc as Msg).blk_sigset as bigint) : BigInt((thc.blk_sigset as bigint | undefined) ?? 0n);
        const sas = thc.sas as Msg | undefined;
        const altstack = sas && !(Number(sas.ss_flags) & SS_DISABLE) ? { sp: BigInt(sas.ss_sp as bigint), size: BigInt(sas.ss_size as bigint), flags: Number(sas.ss_flags) } : undefined;
        const frameAddr = (scratchBase + BigInt(SCRATCH.frame + (frameSlots.get(img.pid)! + i) * arch.maxRestoreFrameSize) + 63n) & ~63n;
        const { frame, sp } = arch.restoreFrame(ti, mask, frameAddr, altstack);
        if (frame.length + 64 > arch.maxRestoreFrameSize) throw new RestoreError('registers', `signal frame of ${frame.length} bytes does not fit`);
        scratch.put(Number(frameAddr - scratchBase), frame);
        for (const call of arch.preSigreturnSyscalls(ti)) rt.threads[i].syscall(call.name, ...call.args);
        return { ti, sp };
      });
    }

    inTask = undefined;
    // Every task holds its files and exe: the ghosts' temporary names go, the tasks keep deleted files.
    ghosts.cleanup();

    step('jump');
    for (const [k, rt] of rts.entries()) {
      inTask = rt.img.pid;
      const memOf = rt.mmOwner ?? rt;
      const exec = memOf.vmas.find((v) => v.prot & PROT_EXEC && !(v.status & (VMA_AREA_VDSO | VMA_AREA_VSYSCALL)));
      if (!exec) throw new RestoreError('jump', `task ${rt.img.pid} has no executable mapping to run rt_sigreturn from`, { file: `mm-${memOf.img.pid}.img` });
      rt.frames.forEach(({ ti, sp }, i) => sigreturn(rt.threads[i], arch, exec.start, sp, ti));
      // Back in their own registers: drop the scratch area, once every task of the address
      // space has left its frame there.
      rt.task.useCodeAt(exec.start, true);
      if (!rts.slice(k + 1).some((o) => (o.mmOwner ?? o) === memOf)) rt.task.syscall('munmap', scratchBase, scratchSize);
    }

    inTask = undefined;
    // The tasks are whole and still stopped: the caller's last word before they run.
    await options.onHook?.('post-restore', hostPid);
    await options.onHook?.('network-unlock', hostPid);
    await options.onHook?.('pre-resume', hostPid);
    step('finish');
    // Every thread of every task goes at once.
    for (const rt of [...rts].reverse()) {
      // A task dumped stopped stops again before running any of its code. Always with SIGSTOP:
      // SIGTSTP & co would be discarded in an orphaned process group.
      if ((rt.img.core.tc as Msg).task_state === TASK_STOPPED) sys.kill(rt.task.pid, SIGSTOP);
      for (const t of rt.threads) t.release();
    }
    // The root's pid here (in a new pid namespace it is 1 there).
    const rootPid = rts[0].task.pid;
    rts.length = 0;
    if (lazyTotal > 0) options.lazyPages?.resumed?.();
    // The helper's job is done; the root is reparented to init, as after `criu restore -d`.
    helper.kill();
    helper = undefined;
    if (options.pidfile) fs.writeFileSync(path.resolve(imagesDir, options.pidfile), `${rootPid}`);
    log.info(`restored ${plan.length} task(s), root ${pid}${rootPid !== pid ? ` (${rootPid} on the host)` : ''}`);
    if (options.detach === false) {
      while (fs.existsSync(`/proc/${rootPid}`) && !isZombie(rootPid)) await new Promise((r) => setTimeout(r, 50));
      return { pid: rootPid, exit: {}, lazyPages: lazyTotal };
    }
    return { pid: rootPid, lazyPages: lazyTotal };
  } catch (e) {
    shared.closeAll();
    forgetBridges(rts.map((r) => r.task.pid));
    try { ghosts?.cleanup(); } catch (ce) { log.error(`removing ghost files failed: ${(ce as Error).message}`); }
    // Every task created dies: leaves first; the root's parent, the helper, reaps it at once.
    for (const rt of [...rts].reverse()) {
      try { killThreads(rt.threads); } catch (ke) { log.error(`killing ${rt.img.pid} failed: ${(ke as Error).message}`); }
    }
    if (rts.length) {
      try { helper?.syscall('wait4', rts[0].task.pid, 0, 0x40000000 /* __WALL */, 0); } catch { /* init will */ }
    }
    if (helper) {
      try { helper.kill(); } catch (ke) { log.error(`killing the helper ${helper.pid} failed: ${(ke as Error).message}`); }
    }
    cgMover?.cleanup();
    if (launch) {
      // Failed before the helper was taken over: it only waits to be traced; stop it.
      try { killHelper(await launch); } catch { /* it did not start */ }
    }
    const err = (e instanceof RestoreError ? e : new RestoreError(current, (e as Error).message, { cause: e })).inTask(inTask);
    log.error(err.message);
    throw err;
  } finally {
    if (!options.logger) log.close();
  }
}

/** One task being restored. */
interface RTask {
  img: TaskImages;
  vmas: Vma[];
  task: FrozenTask;
  /** Main thread first. */
  threads: FrozenTask[];
  scratch: Scratch;
  mapped: Vma[];
  frames: Array<{ ti: Msg; sp: bigint }>;
  /** The task whose address space this one shares (CLONE_VM): memory and mm are restored there. */
  mmOwner?: RTask;
}

/**
 * The first frame slot of each task in the scratch area: tasks sharing an address space share
 * the area, so each takes the slots after those of the earlier tasks of that address space.
 */
function frameSlotsOf(tasks: TaskImages[]): Map<number, number> {
  const used = new Map<number, number>(); // by the pid of the address space's first task
  const out = new Map<number, number>();
  for (const t of tasks) {
    const key = t.mmOf ?? t.pid;
    const first = used.get(key) ?? 0;
    out.set(t.pid, first);
    used.set(key, first + t.threadCores.length + 1);
  }
  return out;
}

/**
 * Creates task `pid` as a child of `parent` (the helper, or a not yet rebuilt task: a copy of the
 * helper with the scratch area) by clone3 with set_tid; it stops at birth, traced by us.
 * With CLONE_NEWPID it is pid 1 of a new namespace (no set_tid); `inNewPidNs`: `parent` is in
 * the new namespace, `pid` is the pid there and the task's host pid is found in /proc.
 */
function cloneTask(parent: FrozenTask, scratch: Scratch, pid: number, arch: Arch, stepName: RestoreStep, flags = 0, inNewPidNs = false): FrozenTask {
  const tids = Buffer.alloc(4);
  tids.writeInt32LE(pid, 0);
  const tidsAddr = scratch.put(SCRATCH.args + 256, tids);
  const newNs = (flags & CLONE_NEWPID) !== 0;
  const cloneArgs = packCloneArgs({ flags, exitSignal: SIGCHLD, ...(newNs ? {} : { setTid: tidsAddr, setTidSize: 1 }) });
  const cloneArgsAddr = scratch.put(SCRATCH.args, cloneArgs);
  const child = parent.rawSyscall('clone3', cloneArgsAddr, cloneArgs.length);
  if (child < 0n) {
    const errno = Number(-child);
    throw new RestoreError(stepName, `clone3 with set_tid ${pid} failed with errno ${errno}`, {
      hint: errno === 17 ? `PID ${pid} is taken by another process` : errno === 1 ? 'creating a task with a chosen PID needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN' : undefined,
    });
  }
  if (newNs) {
    waitNewChild(Number(child));
    return FrozenTask.adopt(Number(child), arch);
  }
  if (Number(child) !== pid) throw new RestoreError(stepName, `clone3 gave PID ${child}, not ${pid}`);
  const host = inNewPidNs ? hostPidOfChild(parent.pid, pid) : pid;
  if (host === undefined) throw new RestoreError(stepName, `the new task ${pid} of ${parent.pid} is not among its children`);
  waitNewChild(host);
  return FrozenTask.adopt(host, arch);
}

/**
 * Session and process group, right after the task is created and before it creates children
 * that share them: setsid for a session leader, setpgid for a group leader, and joining an
 * existing group (whose leader was created before, in pstree order) otherwise.
 */
function setSessionAndGroup(rt: RTask, parent: RTask | undefined): void {
  const pid = rt.img.pid;
  const sid = Number(rt.img.pstree.sid), pgid = Number(rt.img.pstree.pgid);
  if (sid === pid) rt.task.syscall('setsid');
  else if (pgid === pid) rt.task.syscall('setpgid', 0, 0);
  else if (parent && pgid !== Number(parent.img.pstree.pgid)) {
    const r = rt.task.rawSyscall('setpgid', 0, pgid);
    if (r < 0n) throw new RestoreError('clone', `task ${pid} cannot join process group ${pgid} (errno ${-r})`, { file: 'pstree.img', field: 'pgid' });
  }
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return true;
  }
}

/** The PID must be free; a task that is dying (or a zombie init has not reaped yet) gets time. */
function waitPidFree(pid: number, waitMs: number): void {
  const deadline = Date.now() + waitMs;
  while (fs.existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline) {
      let comm = '?';
      try { comm = fs.readFileSync(`/proc/${pid}/comm`, 'latin1').trim(); } catch { /* gone */ }
      throw new RestoreError('check-pid', `PID ${pid} is in use (by "${comm}")`, { hint: `the dumped task's PID is taken; stop process ${pid} or restore in a new PID namespace` });
    }
    sleepMs(20);
  }
}

/**
 * CRIU's --shell-job: a root task that did not lead its session joins the caller's, and, when
 * it did not lead its group either, the caller's group; every task (and zombie) of that session
 * or group follows it (pstree values rewritten before any task is created).
 */
function joinCallerSession(tree: { tasks: Array<{ pid: number; pstree: Msg }>; zombies: Array<{ pstree: Msg }> }, log: Logger): void {
  const root = tree.tasks[0];
  const oldSid = Number(root.pstree.sid), oldPgid = Number(root.pstree.pgid);
  if (oldSid === root.pid) return; // it makes a session of its own (setsid), as CRIU does
  const sid = Number(sys.syscall('getsid', 0)), pgid = Number(sys.syscall('getpgid', 0));
  const all = [...tree.tasks, ...tree.zombies];
  if (oldSid !== sid) {
    log.info(`shell job: session ${oldSid} -> ${sid} (the caller's)`);
    for (const t of all) if (Number(t.pstree.sid) === oldSid) t.pstree.sid = sid;
  }
  if (oldPgid !== root.pid && oldPgid !== pgid) {
    log.info(`shell job: process group ${oldPgid} -> ${pgid} (the caller's)`);
    for (const t of all) if (Number(t.pstree.pgid) === oldPgid) t.pstree.pgid = pgid;
  }
}

/**
 * Starts the helper program detached from us (never a child_process child: libuv would reap
 * its ptrace stops), with only stdio open: a shell starts it in the background and exits. It
 * gets a session of its own, except for a shell job (`keepSession`), which stays in ours.
 * Resolves with the helper's PID.
 */
function launchHelper(arch: Arch, keepSession: boolean): Promise<number> {
  let prog: string;
  try {
    prog = arch.restoreHelperPath();
  } catch (e) {
    return Promise.reject(new RestoreError('start-helper', `no restore helper: ${(e as Error).message}`, { cause: e }));
  }
  const closeInherited = 'for f in /proc/$$/fd/*; do f=${f##*/}; [ "$f" -gt 2 ] && eval "exec $f>&-" 2>/dev/null; done';
  return new Promise((resolve, reject) => {
    const sh = spawn('bash', ['-c', `${closeInherited}; ${keepSession ? 'exec' : 'setsid'} '${prog}' </dev/null >/dev/null 2>&1 & echo $!`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    sh.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    sh.on('error', (e) => reject(new RestoreError('start-helper', `could not start the restore helper: ${e.message}`, { cause: e })));
    sh.on('close', () => {
      const pid = Number(out.trim());
      if (Number.isInteger(pid) && pid > 0) resolve(pid);
      else reject(new RestoreError('start-helper', `could not start the restore helper (${out.trim()})`));
    });
  });
}

/**
 * Kills a helper we have not taken over and waits (at most 2 s) until it is dead: not our child,
 * so there is no wait4; a failed restore must not return while it still runs.
 */
function killHelper(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { return; /* gone */ }
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    let stat: string;
    try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return; }
    if (/^\S+ \(.*\) [ZX]/.test(stat)) return;
    sleepMs(2);
  }
}

/** Waits for the launched helper to run its program, then seizes it. */
async function startHelper(arch: Arch, launched: Promise<number>): Promise<FrozenTask> {
  const prog = arch.restoreHelperPath();
  const helperPid = await launched;
  // `echo $!` names the process before setsid(1) has exec'd the helper: wait for the exec, or we
  // would clone setsid's half-torn-down image.
  const realProg = fs.realpathSync(prog);
  const deadline = Date.now() + 5000;
  for (;;) {
    let exe = '';
    try { exe = fs.readlinkSync(`/proc/${helperPid}/exe`); } catch { /* not yet, or gone */ }
    if (exe === realProg) break;
    if (Date.now() > deadline) {
      killHelper(helperPid);
      throw new RestoreError('start-helper', `the restore helper (${helperPid}) did not start (${exe || 'no exe'})`);
    }
    sleepMs(2);
  }
  try {
    return FrozenTask.freeze(helperPid, arch, PTRACE_O.TRACESYSGOOD | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE);
  } catch (e) {
    killHelper(helperPid);
    throw e;
  }
}

/** A child auto-attached through PTRACE_O_TRACEFORK starts with a PTRACE_EVENT_STOP. */
function waitNewChild(pid: number): void {
  for (;;) {
    const st: WaitStatus | null = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind === 'exited' || st.kind === 'signaled') throw new RestoreError('clone', `the new task ${pid} died at birth`);
    if (st.kind === 'stopped') {
      if (st.event === PTRACE_EVENT.STOP || st.signal === SIGSTOP) return;
      sys.ptrace.cont(pid, 0);
    }
  }
}


const MAP_HUGETLB = 0x40000;
/** Plain anonymous private memory: what userfaultfd can fill (fill-uffd.ts). */
const isPlainAnon = (v: Vma) => (v.status & VMA_ANON_PRIVATE) !== 0 && !(v.flags & MAP_HUGETLB) &&
  !(v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL | VMA_AREA_SYSVIPC | VMA_AREA_AIORING | VMA_AREA_MEMFD | VMA_ANON_SHARED | VMA_FILE_PRIVATE | VMA_FILE_SHARED));

/**
 * Pages from pages-N.img: anonymous private memory copied in by us through the task's
 * userfaultfd (fill-uffd.ts), the rest read by the task itself, one preadv per batch of
 * consecutive runs. An iterative dump's images (parents first) all go by preadv, each
 * overwriting what the one before filled.
 */
async function fillMemory(task: FrozenTask, scratch: Scratch, img: TaskImages, vmas: Vma[], pageSize: number, log: Logger, ownRoot = false): Promise<void> {
  if (img.parentPages?.length) {
    for (const pages of [...img.parentPages, img.pages]) fillFrom(task, scratch, pages, vmas, pageSize, ownRoot);
    return;
  }
  const runs = await fillAnonByUffd(task, scratch, img.pages.runs, vmas.filter(isPlainAnon), img.pages.file, pageSize, log);
  fillFrom(task, scratch, { ...img.pages, runs }, vmas, pageSize, ownRoot);
}

/**
 * An image file opened for the task: by the task itself, or (`ownRoot`: a task in a restored
 * mount namespace, where the images directory is out of sight) by us and passed by pidfd_getfd.
 */
function openImageInTask(task: FrozenTask, scratch: Scratch, file: string, ownRoot: boolean): number {
  if (!ownRoot) return Number(task.syscall('openat', AT_FDCWD, scratch.str(file), O_CLOEXEC, 0));
  const lfd = fs.openSync(file, 'r');
  try {
    const pidfd = restorerPidfd(task);
    try {
      return Number(task.syscall('pidfd_getfd', pidfd, lfd, 0));
    } finally {
      task.syscall('close', pidfd);
    }
  } finally {
    fs.closeSync(lfd);
  }
}

function fillFrom(task: FrozenTask, scratch: Scratch, pages: TaskImages['pages'], vmas: Vma[], pageSize: number, ownRoot: boolean): void {
  const img = { pages };
  const skip = vmas.filter((v) => v.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL));
  const runs = img.pages.runs.filter((r) => !skip.some((v) => r.vaddr >= v.start && r.vaddr < v.end));
  if (!runs.length) return;
  const fd = openImageInTask(task, scratch, img.pages.file, ownRoot);
  try {
    let i = 0;
    while (i < runs.length) {
      // A batch: runs whose data follow each other in the file, at most IOV_MAX of them.
      const first = runs[i];
      const iov = Buffer.alloc(SCRATCH.iovMax * 16);
      let n = 0, bytes = 0, expectOffset = first.offset!;
      while (i < runs.length && n < SCRATCH.iovMax && runs[i].offset === expectOffset && bytes < 1 << 30) {
        const len = runs[i].nrPages * pageSize;
        iov.writeBigUInt64LE(runs[i].vaddr, n * 16);
        iov.writeBigUInt64LE(BigInt(len), n * 16 + 8);
        expectOffset += len;
        bytes += len;
        n++;
        i++;
      }
      const iovAddr = scratch.put(SCRATCH.iov, iov.subarray(0, n * 16));
      const got = Number(task.syscall('preadv', fd, iovAddr, n, first.offset!, 0));
      if (got !== bytes) {
        // A short read: finish run by run with pread64.
        let done = got, off = first.offset! + got;
        for (let k = i - n; k < i; k++) {
          const len = runs[k].nrPages * pageSize;
          const start = runs[k].offset! - first.offset!;
          if (start + len <= done) continue;
          const skipIn = Math.max(0, done - start);
          let pos = skipIn;
          while (pos < len) {
            const r = Number(task.syscall('pread64', fd, runs[k].vaddr + BigInt(pos), len - pos, off));
            if (r <= 0) throw new RestoreError('fill-memory', `pages image ended early at offset ${off}`, { file: path.basename(img.pages.file) });
            pos += r; off += r; done += r;
          }
        }
      }
    }
  } finally {
    task.syscall('close', fd);
  }
}

/**
 * `own.mm`: the task has its own address space (mm fields, exe, THP flag are set here);
 * `own.sigactions`: its own signal handlers (not shared with the parent by CLONE_SIGHAND).
 */
function restoreTaskState(task: FrozenTask, scratch: Scratch, img: TaskImages, arch: Arch, ghosts: GhostFiles, own = { mm: true, sigactions: true }): void {
  const pid = task.pid;
  const coreFile = `core-${pid}.img`;
  const tc = img.core.tc as Msg;
  void arch;

  // Session and group were set when the task was created (setSessionAndGroup).

  // rlimits (from outside: prlimit64 works on another task).
  const rl = ((tc.rlimits as Msg | undefined)?.rlimits as Msg[] | undefined) ?? [];
  rl.forEach((l, res) => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(BigInt(l.cur as bigint), 0);
    b.writeBigUInt64LE(BigInt(l.max as bigint), 8);
    const r = sys.trySyscall('prlimit64', pid, res, b, 0);
    if (r.errno) {
      // Raising a hard limit needs CAP_SYS_RESOURCE; CRIU also carries on here.
    }
  });

  // Signal handlers: entry i is signal i+1, skipping SIGKILL and SIGSTOP.
  const sas = (tc.sigactions as Msg[] | undefined) ?? [];
  let sig = 1;
  // Shared handlers (CLONE_SIGHAND) are the parent's, set once there.
  if (own.sigactions) sas.forEach((sa, i) => {
    if (sig === SIGKILL || sig === SIGSTOP) sig++;
    if (sig === SIGKILL || sig === SIGSTOP) sig++;
    const handler = BigInt(sa.sigaction as bigint), flags = BigInt(sa.flags as bigint), mask = BigInt(sa.mask as bigint);
    if (handler !== 0n || flags !== 0n || mask !== 0n) {
      const k = Buffer.alloc(32);
      k.writeBigUInt64LE(handler, 0); k.writeBigUInt64LE(flags, 8); k.writeBigUInt64LE(BigInt(sa.restorer as bigint), 16); k.writeBigUInt64LE(mask, 24);
      const r = task.rawSyscall('rt_sigaction', sig, scratch.arg(k), 0, 8);
      if (r < 0n) throw new RestoreError('task-state', `rt_sigaction(${sig}) failed with errno ${-r}`, { file: coreFile, record: 0, field: `tc.sigactions[${i}]` });
    }
    sig++;
  });

  // itimers
  const timers = tc.timers as Msg | undefined;
  (['real', 'virt', 'prof'] as const).forEach((k, which) => {
    const t = timers?.[k] as Msg | undefined;
    if (!t) return;
    const v = [t.isec, t.iusec, t.vsec, t.vusec].map((x) => BigInt(x as bigint));
    if (v.every((x) => x === 0n)) return;
    // A periodic timer that expired while the task was frozen reads 0 until its signal is taken;
    // arming it with 0 would disarm it, so it restarts with one interval (as CRIU does).
    if (v[2] === 0n && v[3] === 0n) { v[2] = v[0]; v[3] = v[1]; }
    const b = Buffer.alloc(32);
    v.forEach((x, j) => b.writeBigUInt64LE(x, j * 8));
    task.syscall('setitimer', which, scratch.arg(b), 0);
  });

  // CRIU's encoding (dump/task-state.ts imagePersonality): the decimal digits are the hex ones.
  const persDigits = String(Number(tc.personality ?? 0));
  if (persDigits.length > 8) throw new RestoreError('task-state', `personality ${persDigits} is not a personality as CRIU records it (at most 8 digits, the hex digits of /proc/PID/personality)`, { file: coreFile, record: 0, field: 'tc.personality' });
  const personality = parseInt(persDigits, 16);
  if (personality !== 0) task.syscall('personality', personality);
  if (tc.child_subreaper) task.syscall('prctl', PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // The rest belongs to the address space: done by the first task that has it.
  if (!own.mm) return;
  if (img.mm.thp_disabled) task.syscall('prctl', PR_SET_THP_DISABLE, 1, 0, 0, 0);

  // mm fields, auxv and the exe link in one prctl(PR_SET_MM_MAP).
  const mm = img.mm;
  const mmFile = `mm-${pid}.img`;
  const exeId = Number(need(mm.exe_file_id, mmFile, 'exe_file_id'));
  const exeName = regFileName(img, exeId, 'exe file');
  const exeFd = ghosts.open(exeId, exeName, (p) => Number(task.syscall('openat', AT_FDCWD, scratch.str(p, SCRATCH.args + 2048), O_CLOEXEC, 0)));
  // Up to its AT_NULL only: the saved array is as long as the dumping kernel's, which may be
  // longer than this kernel's (6.12's is, against 6.1's) and PR_SET_MM_MAP refuses that.
  const saved = ((mm.mm_saved_auxv as bigint[] | undefined) ?? []).map((x) => BigInt(x));
  let end = 0;
  while (end + 1 < saved.length && saved[end] !== 0n) end += 2;
  let auxv = saved.slice(0, end);
  // Entries this kernel does not know (6.12's AT_RSEQ_* on 6.1) may not fit its array either:
  // they go (a process reads its auxv from its stack; this copy is only /proc/PID/auxv).
  const known = ownAuxvTypes();
  if (auxv.length > known.size * 2) auxv = auxv.filter((_, j) => j % 2 === 1 ? known.has(auxv[j - 1]) : known.has(auxv[j]));
  const auxBuf = Buffer.alloc((auxv.length + 2) * 8);
  auxv.forEach((x, j) => auxBuf.writeBigUInt64LE(x, j * 8));
  const auxAddr = scratch.put(SCRATCH.args + 1024, auxBuf);
  const map = Buffer.alloc(104);
  ['mm_start_code', 'mm_end_code', 'mm_start_data', 'mm_end_data', 'mm_start_brk', 'mm_brk', 'mm_start_stack', 'mm_arg_start', 'mm_arg_end', 'mm_env_start', 'mm_env_end']
    .forEach((k, j) => map.writeBigUInt64LE(BigInt(need(mm[k] as bigint, mmFile, k)), j * 8));
  map.writeBigUInt64LE(auxAddr, 88);
  map.writeUInt32LE(auxBuf.length, 96);
  map.writeInt32LE(exeFd, 100);
  const r = task.rawSyscall('prctl', PR_SET_MM, PR_SET_MM_MAP, scratch.arg(map), map.length, 0);
  task.syscall('close', exeFd);
  if (r < 0n) throw new RestoreError('task-state', `prctl(PR_SET_MM_MAP) failed with errno ${-r}`, { file: mmFile, hint: Number(-r) === 1 ? 'needs CAP_SYS_RESOURCE or CAP_CHECKPOINT_RESTORE' : 'an mm field points outside the restored mappings' });
}

/** The auxv entry types this kernel gives a process (read from ours). */
function ownAuxvTypes(): Set<bigint> {
  const b = fs.readFileSync('/proc/self/auxv');
  const out = new Set<bigint>();
  for (let i = 0; i + 16 <= b.length; i += 16) out.add(b.readBigUInt64LE(i));
  return out;
}

/** Queues siginfo records as pending signals of the process (shared) or of thread `tid`. */
function queueSignals(task: FrozenTask, scratch: Scratch, list: Msg | undefined, tgid: number, tid?: number): void {
  // Injected: the pids are the ones the task sees (its pid namespace's).
  for (const s of ((list?.signals as Msg[] | undefined) ?? [])) {
    const si = Buffer.from(s.siginfo as Buffer);
    const signo = si.readInt32LE(0);
    const addr = scratch.arg(si);
    if (tid === undefined) task.syscall('rt_sigqueueinfo', tgid, signo, addr);
    else task.syscall('rt_tgsigqueueinfo', tgid, tid, signo, addr);
  }
}

/**
 * What each thread holds for itself: name, nice, parent-death signal, robust futex list, rseq,
 * clear_child_tid, credentials (raw syscalls change only the calling thread's), private signals.
 */
function restoreThreadState(t: FrozenTask, tgid: number, tid: number, scratch: Scratch, core: Msg, arch: Arch, coreFile: string, dumpable?: number): void {
  const thc = core.thread_core as Msg;
  const tc = core.tc as Msg | undefined;
  const ti = core[arch.image.threadInfoField] as Msg;
  const comm = (thc.comm ?? tc?.comm) as string | undefined;
  if (comm) t.syscall('prctl', PR_SET_NAME, scratch.str(comm), 0, 0, 0);
  const nice = Number(thc.sched_nice ?? 0);
  if (nice !== 0) t.syscall('setpriority', 0, 0, nice);
  restoreSched(t, scratch, thc, coreFile, arch.littleEndian);
  if (thc.pdeath_sig) t.syscall('prctl', PR_SET_PDEATHSIG, Number(thc.pdeath_sig), 0, 0, 0);
  if (Number(thc.futex_rla_len ?? 0) > 0) t.syscall('set_robust_list', BigInt(thc.futex_rla as bigint), Number(thc.futex_rla_len));
  const rseq = thc.rseq_entry as Msg | undefined;
  if (rseq && BigInt(rseq.rseq_abi_pointer as bigint) !== 0n) {
    t.syscall('rseq', BigInt(rseq.rseq_abi_pointer as bigint), Number(rseq.rseq_abi_size), 0, Number(rseq.signature));
  }
  if (ti.clear_tid_addr !== undefined) t.syscall('set_tid_address', BigInt(ti.clear_tid_addr as bigint));
  // Credentials after everything that needs privilege inside the task (PR_SET_MM_MAP's exe link);
  // changing them resets dumpable, so that comes after.
  restoreCreds(t, scratch, thc.creds as Msg | undefined, coreFile);
  if (dumpable !== undefined) t.syscall('prctl', PR_SET_DUMPABLE, dumpable, 0, 0, 0);
  queueSignals(t, scratch, thc.signals_p as Msg | undefined, tgid, tid);
}

const SCHED_OTHER = 0, SCHED_FIFO = 1, SCHED_RR = 2, SCHED_BATCH = 3, SCHED_IDLE = 5, SCHED_RESET_ON_FORK = 0x40000000;

/** The thread's scheduling policy and real-time priority (its nice is set before: the policy keeps it). */
function restoreSched(t: FrozenTask, scratch: Scratch, thc: Msg, coreFile: string, littleEndian: boolean): void {
  const policy = Number(thc.sched_policy ?? SCHED_OTHER);
  const prio = Number(thc.sched_prio ?? 0);
  const base = policy & ~SCHED_RESET_ON_FORK;
  if (![SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE].includes(base) || (policy & ~SCHED_RESET_ON_FORK & ~7) !== 0) {
    throw new RestoreError('threads', `thread ${t.pid}: unknown scheduling policy ${policy}`, { file: coreFile, field: 'thread_core.sched_policy' });
  }
  const rt = base === SCHED_FIFO || base === SCHED_RR;
  if (rt ? !(prio >= 1 && prio <= 99) : prio !== 0) {
    throw new RestoreError('threads', `thread ${t.pid}: priority ${prio} is invalid for policy ${base}`, { file: coreFile, field: 'thread_core.sched_prio' });
  }
  if (policy === SCHED_OTHER) return; // what every new thread has
  const param = Buffer.alloc(4);
  if (littleEndian) param.writeInt32LE(prio, 0);
  else param.writeInt32BE(prio, 0);
  const r = t.rawSyscall('sched_setscheduler', 0, policy, scratch.arg(param));
  if (r < 0n) {
    throw new RestoreError('threads', `thread ${t.pid}: sched_setscheduler(policy ${policy}, priority ${prio}) failed with errno ${-r}`, {
      file: coreFile, field: 'thread_core.sched_policy',
      hint: Number(-r) === 1 ? 'real-time policies need CAP_SYS_NICE (and an RLIMIT_RTPRIO, or a real-time budget in the cgroup)' : undefined,
    });
  }
}

const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000; // VM FS FILES SIGHAND THREAD SYSVSEM

/** Creates a thread with the dumped TID inside the rebuilt task; it stops at birth, traced by us. */
function createThread(task: FrozenTask, scratch: Scratch, tid: number, arch: Arch, inNewPidNs = false): FrozenTask {
  const tids = Buffer.alloc(4);
  tids.writeInt32LE(tid, 0);
  const tidsAddr = scratch.put(SCRATCH.args + 256, tids);
  const args = packCloneArgs({ flags: CLONE_THREAD_FLAGS, setTid: tidsAddr, setTidSize: 1 });
  const r = task.rawSyscall('clone3', scratch.put(SCRATCH.args, args), args.length);
  if (r < 0n) {
    const errno = Number(-r);
    throw new RestoreError('threads', `clone3 of thread ${tid} failed with errno ${errno}`, { hint: errno === 17 ? `TID ${tid} is taken by another task` : undefined });
  }
  if (Number(r) !== tid) throw new RestoreError('threads', `clone3 gave TID ${r}, not ${tid}`);
  const host = inNewPidNs ? hostTidOf(task.pid, tid) : tid;
  if (host === undefined) throw new RestoreError('threads', `the new thread ${tid} of ${task.pid} is not among its threads`);
  waitNewChild(host);
  const t = FrozenTask.adopt(host, arch);
  t.useCodeAt(scratch.base + BigInt(SCRATCH.code), false);
  return t;
}

const PR_CAPBSET_DROP = 24, PR_SET_SECUREBITS = 28, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;
const SECBIT_NO_SETUID_FIXUP = 1 << 2;
const CAP_VERSION_3 = 0x20080522;

function caps64(words: unknown): bigint {
  const w = (words as number[] | undefined) ?? [];
  return BigInt(w[0] ?? 0) | (BigInt(w[1] ?? 0) << 32n);
}

/**
 * Gives the task its dumped credentials. Nothing is changed when they equal the restorer's own;
 * a restore never grants capabilities (or, without CAP_SETUID/CAP_SETGID, ids) the caller lacks.
 */
function restoreCreds(task: FrozenTask, scratch: Scratch, creds: Msg | undefined, coreFile: string): void {
  if (!creds) return;
  const me = readStatus(process.pid);
  const ids = ['uid', 'euid', 'suid', 'fsuid'].map((k) => Number(creds[k]));
  const gids = ['gid', 'egid', 'sgid', 'fsgid'].map((k) => Number(creds[k]));
  const groups = ((creds.groups as number[] | undefined) ?? []).map(Number);
  const want = { inh: caps64(creds.cap_inh), prm: caps64(creds.cap_prm), eff: caps64(creds.cap_eff), bnd: caps64(creds.cap_bnd), amb: caps64(creds.cap_amb) };
  const sameIds = ids.join() === [me.uid[0], me.uid[1], me.uid[2], me.uid[3]].join() && gids.join() === [me.gid[0], me.gid[1], me.gid[2], me.gid[3]].join()
    && groups.join() === me.groups.join();
  const sameCaps = want.inh === me.capInh && want.prm === me.capPrm && want.eff === me.capEff && want.bnd === me.capBnd && want.amb === me.capAmb;
  if (sameIds && sameCaps && Number(creds.secbits ?? 0) === 0) return;
  const extra = (want.prm | want.eff | want.inh | want.amb) & ~me.capEff;
  if (extra) {
    throw new RestoreError('task-state', `the image gives the task capabilities the restorer lacks (mask 0x${extra.toString(16)})`, { file: coreFile, field: 'thread_core.creds', hint: 'restore as a user who holds them' });
  }
  const CAP_SETGID = 6n, CAP_SETUID = 7n;
  if (!sameIds && (!(me.capEff & (1n << CAP_SETUID)) || !(me.capEff & (1n << CAP_SETGID)))) {
    throw new RestoreError('task-state', `the image has other user/group ids (uid ${ids[0]} gid ${gids[0]}) and the restorer cannot change ids (no CAP_SETUID/CAP_SETGID)`, { file: coreFile, field: 'thread_core.creds', hint: 'restore as root, or with CAP_SETUID and CAP_SETGID' });
  }
  const lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'latin1').trim());
  for (let c = 0; c <= lastCap; c++) {
    if (!(want.bnd & (1n << BigInt(c))) && me.capBnd & (1n << BigInt(c))) task.syscall('prctl', PR_CAPBSET_DROP, c, 0, 0, 0);
  }
  const g = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((x, i) => g.writeUInt32LE(x, i * 4));
  task.syscall('setgroups', groups.length, scratch.arg(g));
  task.syscall('setresgid', gids[0], gids[1], gids[2]);
  task.syscall('setfsgid', gids[3]);
  // Keep the capabilities through the uid change; the dumped securebits are set at the end.
  task.syscall('prctl', PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0);
  task.syscall('setresuid', ids[0], ids[1], ids[2]);
  task.syscall('setfsuid', ids[3]);
  const capArgs = Buffer.alloc(8 + 24);
  capArgs.writeUInt32LE(CAP_VERSION_3, 0);
  capArgs.writeInt32LE(0, 4);
  [want.eff, want.prm, want.inh].forEach((v, i) => {
    capArgs.writeUInt32LE(Number(v & 0xffffffffn), 8 + i * 4);
    capArgs.writeUInt32LE(Number(v >> 32n), 20 + i * 4);
  });
  // The dumped securebits while CAP_SETPCAP is still held, then the dumped capability sets.
  task.syscall('prctl', PR_SET_SECUREBITS, Number(creds.secbits ?? 0), 0, 0, 0);
  const hdr = scratch.arg(capArgs);
  task.syscall('capset', hdr, hdr + 8n);
  for (let c = 0; c <= lastCap; c++) {
    if (want.amb & (1n << BigInt(c))) task.syscall('prctl', PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
  }
}

/**
 * The final jump: rt_sigreturn from the task's own code (one word borrowed for the `syscall`
 * instruction and put back at the syscall-entry stop), then wait at the syscall-exit stop, where
 * the task holds exactly its dumped registers, signal mask and sigaltstack.
 */
function sigreturn(task: FrozenTask, arch: Arch, codeAddr: bigint, sp: bigint, ti: Msg): void {
  const pid = task.pid;
  const original = sys.ptrace.peekData(pid, codeAddr);
  const code = arch.syscallTrapCode;
  sys.ptrace.pokeData(pid, codeAddr, arch.littleEndian ? code.readBigUInt64LE(0) : code.readBigUInt64BE(0));
  let restored = false;
  try {
    sys.ptrace.setRegset(pid, 1 /* NT_PRSTATUS */, arch.sigreturnRegs(task.savedRegs, codeAddr, sp, ti));
    sys.ptrace.syscall(pid, 0);
    waitSyscallStop(pid, 'entry');
    sys.ptrace.pokeData(pid, codeAddr, original);
    restored = true;
    sys.ptrace.syscall(pid, 0);
    waitSyscallStop(pid, 'exit');
  } finally {
    if (!restored) {
      try { sys.ptrace.pokeData(pid, codeAddr, original); } catch { /* the task is being killed */ }
    }
  }
  const regs = sys.ptrace.getRegset(pid, 1, arch.gpRegsSize);
  task.setSavedState(Buffer.from(regs), sys.ptrace.getSigMask(pid));
}

function waitSyscallStop(pid: number, which: string): void {
  for (;;) {
    const st = sys.waitpid(pid, WAIT.__WALL);
    if (!st) continue;
    if (st.kind === 'exited' || st.kind === 'signaled') throw new RestoreError('jump', `the task died at rt_sigreturn ${which} (${st.kind === 'signaled' ? `signal ${st.signal}` : `exit ${st.code}`})`);
    if (st.kind === 'stopped' && st.syscallStop) return;
    if (st.kind === 'stopped' && st.event === undefined && st.signal !== SIGNALS.SIGTRAP) {
      throw new RestoreError('jump', `the task stopped with signal ${st.signal} during rt_sigreturn ${which}`);
    }
    sys.ptrace.syscall(pid, 0);
  }
}

function readImageFileSync(file: string) {
  return decodeImageEntries(fs.readFileSync(file), { file: path.basename(file) });
}

/** Refuses, before anything is created, an image whose CPU had features this one lacks. */
function checkCpu(imagesDir: string, arch: Arch, cpuCap: string[] | undefined): void {
  const file = path.join(imagesDir, 'cpuinfo.img');
  if (cpuCap?.includes('none') || !fs.existsSync(file)) return;
  if (cpuCap && !cpuCap.includes('image') && !cpuCap.includes('cpu')) return;
  if (!arch.cpuinfoMissing) return;
  let entry: Msg;
  try {
    const img = readImageFileSync(file);
    entry = img.entries[0]?.message as Msg;
  } catch (e) {
    throw new RestoreError('read-images', (e as Error).message, { file: 'cpuinfo.img', cause: e });
  }
  if (!entry) throw new RestoreError('read-images', 'no cpuinfo record', { file: 'cpuinfo.img' });
  const missing = arch.cpuinfoMissing(entry);
  if (missing.length) {
    throw new RestoreError('read-images', `this CPU lacks features the dumped task's CPU had: ${missing.join(', ')}`, {
      file: 'cpuinfo.img', hint: 'restore on a CPU at least as capable, or pass --cpu-cap=none to skip the check at your own risk',
    });
  }
}
