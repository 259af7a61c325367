/**
 * Reads and checks what restore needs from a set of images. Every problem becomes a
 * RestoreError naming the step, file, record and field.
 *
 * - readTreeImagesFrom(source): the images of every task of the tree, checked for presence,
 *   kind, tree order and sharing.
 * - checkPlan(task): the checks on one task's images restore makes before it creates anything
 *   (mappings, page runs, descriptors, task state), with no side effect.
 * Both work on a directory or on images held in memory (memorySource); plan.ts joins them into
 * planRestore(), which restore() runs first and the fuzzer feeds damaged image sets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, ImageFormatError, type DecodedImage, pageRuns, PE_LAZY, PE_PRESENT, PE_PARENT, type Msg, type PageRun } from '@criu/images';
import { INCOMPLETE_MARKER } from '../dump/dump.js';
import { RestoreError } from './errors.js';
import { readPosixTimers, type PosixTimer } from './posix-timers.js';

export interface TaskImages {
  /** core_entry of every thread but the main one (which is `core`), in pstree order. */
  threadCores: Array<{ tid: number; core: Msg }>;
  pid: number;
  pstree: Msg;
  core: Msg;
  ids: Msg;
  mm: Msg;
  /**
   * PE_PRESENT runs and where they are in pages-<id>.img (`file`: a path for a directory source);
   * `remote`: PE_LAZY runs without data here (a post-copy dump: the dump side serves them).
   */
  pages: { file: string; runs: PageRun[]; remote?: PageRun[] };
  /** Incremental dumps: PE_PARENT pages found in the parent images (recursively), one entry per pages file. */
  parentPages?: Array<{ file: string; runs: PageRun[] }>;
  /** Empty for a task that shares its parent's descriptor table (the parent's are restored once). */
  fdinfo: Msg[];
  fs: Msg;
  /**
   * Kernel objects shared with the parent task (same vm_id / files_id / fs_id / sighand_id):
   * created by clone() with CLONE_VM / CLONE_FILES / CLONE_FS / CLONE_SIGHAND.
   */
  sharesWithParent?: { vm: boolean; files: boolean; fs: boolean; sighand: boolean };
  /**
   * The earlier task whose address space this one shares (same vm_id): the task has no mm,
   * pagemap or pages images; `mm` is that task's and `pages` is empty.
   */
  mmOf?: number;
  /** file_entry records by id. */
  files: Map<number, Msg>;
}

/** Where images come from: a directory, or a map of file name to bytes. */
export interface ImageSource {
  /** For messages: the directory, or '<memory>'. */
  readonly label: string;
  has(name: string): boolean;
  read(name: string): Uint8Array;
  /** Optional: a decode cache (see memorySource). */
  decoded?(name: string, bytes: Uint8Array, decode: () => DecodedImage): DecodedImage;
  size(name: string): number;
  /** What restore opens for `name` (a path for a directory). */
  locate(name: string): string;
}

export function dirSource(dir: string): ImageSource {
  const p = (name: string) => path.join(dir, name);
  return {
    label: dir,
    has: (name) => fs.existsSync(p(name)),
    read: (name) => {
      try {
        return fs.readFileSync(p(name));
      } catch (e) {
        throw new RestoreError('read-images', `cannot read the image (${(e as Error).message})`, { cause: e, file: name, hint: permissionHint(e) });
      }
    },
    size: (name) => fs.statSync(p(name)).size,
    locate: p,
  };
}

/**
 * Images held in memory. With `cache`, each buffer is decoded once and the result reused for the
 * same buffer object (buffers must then never be changed in place): a fuzzer that damages one
 * file of a set re-decodes only that one.
 */
export type DecodeCache = WeakMap<Uint8Array, Map<string, DecodedImage | Error>>;

export function memorySource(files: ReadonlyMap<string, Uint8Array>, cache?: DecodeCache): ImageSource {
  return {
    label: '<memory>',
    decoded: cache && ((name, bytes, decode) => {
      let byName = cache.get(bytes);
      if (!byName) cache.set(bytes, (byName = new Map()));
      let d = byName.get(name);
      if (d === undefined) {
        try { d = decode(); } catch (e) { d = e as Error; }
        byName.set(name, d);
      }
      if (d instanceof Error) throw d;
      return d;
    }),
    has: (name) => files.has(name),
    read: (name) => files.get(name)!,
    size: (name) => files.get(name)!.length,
    locate: (name) => name,
  };
}

function permissionHint(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' ? 'image files are 0600: restore as the user who dumped, or as root' : undefined;
}

/** The decoded image `name` (of kind `magic`), its records with their extra payloads. */
function decoded(src: ImageSource, name: string, magic: string): DecodedImage {
  if (!src.has(name)) throw new RestoreError('read-images', 'image missing', { file: name, hint: 'the image set is incomplete' });
  const bytes = src.read(name);
  let img: DecodedImage;
  try {
    const decode = () => decodeImageEntries(bytes, { file: name });
    img = src.decoded ? src.decoded(name, bytes, decode) : decode();
  } catch (e) {
    const ie = e as ImageFormatError;
    throw new RestoreError('read-images', ie instanceof ImageFormatError ? ie.reason : (e as Error).message, { cause: e, file: name, record: ie.recordIndex, field: ie.field, hint: 'the image is damaged' });
  }
  if (img.magic !== magic) throw new RestoreError('read-images', `expected a ${magic} image, found ${img.magic}`, { file: name });
  return img;
}

function read(src: ImageSource, name: string, magic: string): Msg[] {
  return decoded(src, name, magic).entries.map((e) => e.message);
}

function one(entries: Msg[], file: string): Msg {
  if (entries.length !== 1) throw new RestoreError('read-images', `expected 1 record, found ${entries.length}`, { file });
  return entries[0];
}

export function need<T>(v: T | undefined | null, file: string, field: string, record = 0): T {
  if (v === undefined || v === null) throw new RestoreError('read-images', 'required value missing', { file, field, record });
  return v;
}

function checkInventory(src: ImageSource): void {
  if (src.has(INCOMPLETE_MARKER)) {
    throw new RestoreError('read-images', 'the images directory is marked incomplete: its dump did not finish', { file: INCOMPLETE_MARKER, hint: 'dump again' });
  }
  const inv = one(read(src, 'inventory.img', 'INVENTORY'), 'inventory.img');
  if (inv.img_version !== 2) throw new RestoreError('read-images', `unsupported img_version ${inv.img_version}`, { file: 'inventory.img', field: 'img_version' });
  if (!inv.fdinfo_per_id) throw new RestoreError('read-images', 'too old image (no fdinfo_per_id)', { file: 'inventory.img', field: 'fdinfo_per_id' });
}

function readFiles(src: ImageSource): Map<number, Msg> {
  const files = new Map<number, Msg>();
  read(src, 'files.img', 'FILES').forEach((f, i) => {
    const id = need(f.id as number | undefined, 'files.img', 'id', i);
    if (files.has(id)) throw new RestoreError('read-images', `file id ${id} appears twice`, { file: 'files.img', record: i, field: 'id' });
    files.set(id, f);
  });
  return files;
}

const TASK_ALIVE = 1, TASK_DEAD = 2, TASK_STOPPED = 3, TASK_ZOMBIE = 6;

/** A zombie of the tree: re-created as its parent's child that exits with this wait status. */
export interface ZombieImages {
  pid: number;
  pstree: Msg;
  /** The wait status its parent collects (exit code << 8, or the killing signal). */
  exitStatus: number;
  comm?: string;
}

/** The zombie behind pstree.img record `record`, or undefined for a task with a body. */
function zombieOf(src: ImageSource, pstree: Msg, record: number): ZombieImages | undefined {
  const pid = need(pstree.pid as number, 'pstree.img', 'pid', record);
  const coreFile = `core-${pid}.img`;
  if (!Number.isInteger(pid) || pid <= 0 || !src.has(coreFile)) return undefined; // reported by taskImagesOf
  const core = one(read(src, coreFile, 'CORE'), coreFile);
  const tc = need(core.tc as Msg | undefined, coreFile, 'tc');
  if (tc.task_state !== TASK_DEAD && tc.task_state !== TASK_ZOMBIE) return undefined;
  const exitStatus = Number(need(tc.exit_code as number | undefined, coreFile, 'tc.exit_code'));
  if (!Number.isInteger(exitStatus) || exitStatus < 0 || exitStatus > 0xffff || ((exitStatus & 0x7f) !== 0 && (exitStatus & 0xff00) !== 0) || (exitStatus & 0x7f) === 0x7f) {
    throw new RestoreError('read-images', `zombie ${pid}: ${exitStatus} is not the wait status of a dead task`, { file: coreFile, field: 'tc.exit_code' });
  }
  return { pid, pstree, exitStatus, comm: typeof tc.comm === 'string' ? tc.comm : undefined };
}

/** A whole image set: every task of pstree.img (in its order) and the pipes' buffered data. */
export interface TreeImages {
  tasks: TaskImages[];
  /** Zombies, in pstree order (each after its parent, which is one of `tasks`). */
  zombies: ZombieImages[];
  /** pipes-data.img by pipe_id: the pipe's buffer size and its data. */
  pipesData: Map<number, { size: number; data: Buffer }>;
}

/** The images of every task of the tree (in pstree order), checked as restore needs them. */
export function readTreeImagesFrom(src: ImageSource, march: number, threadInfoField: string, pageSize: number): TreeImages {
  checkInventory(src);
  const tree = read(src, 'pstree.img', 'PSTREE');
  if (tree.length === 0) throw new RestoreError('read-images', 'no task in the tree', { file: 'pstree.img' });
  let files: Map<number, Msg> | undefined;
  const earlier: TaskImages[] = [];
  const all = tree.map((e, i) => {
    const zombie = i === 0 ? undefined : zombieOf(src, e, i);
    if (zombie) return { zombie };
    const task = taskImagesOf(src, e, i, () => (files ??= readFiles(src)), march, threadInfoField, pageSize, earlier);
    earlier.push(task);
    return { task };
  });
  const tasks = all.flatMap((x) => (x.task ? [x.task] : []));
  const zombies = all.flatMap((x) => (x.zombie ? [x.zombie] : []));
  const pids = new Set<number>();
  all.forEach((x, i) => {
    const t = x.task ?? x.zombie!;
    // A dead task's thread list means nothing (CRIU leaves it uninitialised).
    for (const tid of x.task ? [t.pid, ...x.task.threadCores.map((c) => c.tid)] : [t.pid]) {
      if (pids.has(tid)) throw new RestoreError('read-images', `pid ${tid} appears twice in the tree`, { file: 'pstree.img', record: i });
      pids.add(tid);
    }
    const ppid = Number(t.pstree.ppid ?? 0);
    const before = all.slice(0, i).flatMap((o) => (o.task ? [o.task.pid] : []));
    if (i === 0 ? ppid !== 0 && all.some((o) => o.task?.pid === ppid) : !before.includes(ppid)) {
      const zombieParent = all.some((o) => o.zombie?.pid === ppid);
      throw new RestoreError('read-images', zombieParent ? `task ${t.pid}: its parent ${ppid} is a zombie` : `task ${t.pid}: its parent ${ppid} is not listed before it`, { file: 'pstree.img', record: i, field: 'ppid' });
    }
  });
  checkSharedKobjs(tasks);
  const pipesData = new Map<number, { size: number; data: Buffer }>();
  if (src.has('pipes-data.img')) {
    decoded(src, 'pipes-data.img', 'PIPES_DATA').entries.forEach((e, i) => {
      const id = Number(need(e.message.pipe_id, 'pipes-data.img', 'pipe_id', i));
      const data = e.extra?.kind === 'bytes' && e.extra.data ? Buffer.from(e.extra.data) : Buffer.alloc(0);
      if (data.length !== Number(e.message.bytes ?? 0)) throw new RestoreError('read-images', `pipe ${id}: ${data.length} bytes of data, the record says ${e.message.bytes}`, { file: 'pipes-data.img', record: i });
      pipesData.set(id, { size: Number(e.message.size ?? 0), data });
    });
  }
  return { tasks, zombies, pipesData };
}

/**
 * Tasks sharing a kernel object have the same id in their ids-N.img. An address space,
 * descriptor table, fs info or signal handlers shared with the parent are rebuilt by clone()
 * with CLONE_VM / CLONE_FILES / CLONE_FS / CLONE_SIGHAND; sharing with any other task cannot be
 * (clone() shares only what the caller holds).
 */
function checkSharedKobjs(tasks: TaskImages[]): void {
  const kinds: Array<[string, keyof NonNullable<TaskImages['sharesWithParent']>, string]> = [
    ['vm_id', 'vm', 'address space'], ['sighand_id', 'sighand', 'signal handlers'], ['files_id', 'files', 'descriptor table'], ['fs_id', 'fs', 'fs info'],
  ];
  tasks.forEach((t, i) => {
    const parent = tasks.find((p) => p.pid === Number(t.pstree.ppid ?? 0));
    const shares = { vm: false, files: false, fs: false, sighand: false };
    for (const [field, kind, what] of kinds) {
      const id = t.ids[field];
      if (id === undefined) continue;
      const other = tasks.slice(0, i).find((o) => o.ids[field] === id);
      if (!other) continue;
      const where = { file: `ids-${t.pid}.img`, field };
      if (!parent || parent.ids[field] !== id) {
        throw new RestoreError('read-images', `task ${t.pid} shares its ${what} with task ${other.pid} (${field} ${id}), which is not its parent; only sharing with the parent can be restored`, where);
      }
      shares[kind] = true;
    }
    // The kernel has no signal handlers shared without the address space (CLONE_SIGHAND needs CLONE_VM).
    if (shares.sighand && !shares.vm) {
      throw new RestoreError('read-images', `task ${t.pid} shares its signal handlers with its parent but not its address space`, { file: `ids-${t.pid}.img`, field: 'sighand_id' });
    }
    if (shares.vm || shares.files || shares.fs) {
      t.sharesWithParent = shares;
      // One table: its descriptors are the parent's, restored once.
      if (shares.files) t.fdinfo = [];
    }
  });
}

/** One task's images (`pstree`: its pstree.img record number `record`). */
function taskImagesOf(src: ImageSource, pstree: Msg, record: number, filesOf: () => Map<number, Msg>, march: number, threadInfoField: string, pageSize: number, earlier: TaskImages[] = []): TaskImages {
  const pid = need(pstree.pid as number, 'pstree.img', 'pid', record);
  if (!Number.isInteger(pid) || pid <= 0 || pid > 4194304) throw new RestoreError('read-images', `invalid pid ${pid}`, { file: 'pstree.img', field: 'pid', record });
  const threads = (pstree.threads as number[] | undefined) ?? [pid];
  if (threads[0] !== pid) throw new RestoreError('read-images', `the first thread of task ${pid} is ${threads[0]}`, { file: 'pstree.img', field: 'threads', record });
  const threadCores = threads.slice(1).map((tid, i) => {
    if (!Number.isInteger(tid) || tid <= 0 || tid > 4194304 || threads.indexOf(tid) !== i + 1) {
      throw new RestoreError('read-images', `invalid or repeated thread id ${tid}`, { file: 'pstree.img', field: 'threads', record });
    }
    const file = `core-${tid}.img`;
    const c = one(read(src, file, 'CORE'), file);
    if (c.mtype !== march) throw new RestoreError('read-images', `image is for machine type ${c.mtype}, this arch is ${march}`, { file, field: 'mtype' });
    need(c[threadInfoField], file, threadInfoField);
    need(c.thread_core, file, 'thread_core');
    return { tid, core: c };
  });

  const coreFile = `core-${pid}.img`;
  const core = one(read(src, coreFile, 'CORE'), coreFile);
  if (core.mtype !== march) throw new RestoreError('read-images', `image is for machine type ${core.mtype}, this arch is ${march}`, { file: coreFile, field: 'mtype', hint: 'images are not portable between architectures' });
  need(core[threadInfoField], coreFile, threadInfoField);
  const tc = need(core.tc as Msg | undefined, coreFile, 'tc');
  if (tc.task_state !== TASK_ALIVE && tc.task_state !== TASK_STOPPED) throw new RestoreError('read-images', `task state ${tc.task_state} is not supported (alive 1, dead 2, stopped 3)`, { file: coreFile, field: 'tc.task_state' });
  need(core.thread_core, coreFile, 'thread_core');

  const ids = one(read(src, `ids-${pid}.img`, 'IDS'), `ids-${pid}.img`);
  const filesId = need(ids.files_id as number | undefined, `ids-${pid}.img`, 'files_id');
  const fdinfoFile = `fdinfo-${filesId}.img`;
  // An address space shared with an earlier task (the parent: checkSharedKobjs) is in its images.
  const mmOwner = ids.vm_id === undefined ? undefined : earlier.find((o) => o.ids.vm_id === ids.vm_id);
  if (mmOwner) {
    for (const f of [`mm-${pid}.img`, `pagemap-${pid}.img`]) {
      if (src.has(f)) throw new RestoreError('read-images', `task ${pid} shares its address space with task ${mmOwner.pid} (vm_id ${ids.vm_id}), yet has a ${f} of its own`, { file: f, hint: 'the image set mixes two dumps' });
    }
    const fdinfo = read(src, fdinfoFile, 'FDINFO');
    const fsImg = one(read(src, `fs-${pid}.img`, 'FS'), `fs-${pid}.img`);
    return { pid, pstree, core, threadCores, ids, mm: mmOwner.mm, mmOf: mmOwner.pid, pages: { file: mmOwner.pages.file, runs: [] }, fdinfo, fs: fsImg, files: filesOf() };
  }
  const mm = one(read(src, `mm-${pid}.img`, 'MM'), `mm-${pid}.img`);
  const pmFile = `pagemap-${pid}.img`;
  const pm = read(src, pmFile, 'PAGEMAP');
  const pagesId = need(pm[0]?.pages_id as number | undefined, pmFile, 'pages_id');
  const runs = pageRuns(pm, pageSize);
  const holes = runs.filter((r) => r.flags & PE_PARENT);
  let parentPages: Array<{ file: string; runs: PageRun[] }> | undefined;
  if (holes.length) {
    if (!src.has('parent')) throw new RestoreError('read-images', 'pages are in a parent image (PE_PARENT) but there is no "parent" link', { file: pmFile, record: holes[0].entry, field: 'flags', hint: 'restore from the directory of an iterative dump whose parent images are still there' });
    parentPages = parentRuns(src.locate('parent'), pid, pageSize, holes.map((h) => ({ vaddr: h.vaddr, nrPages: h.nrPages })), 1);
  }
  const pagesName = `pages-${pagesId}.img`;
  const present = runs.filter((r) => r.flags & PE_PRESENT);
  const needBytes = present.reduce((n, r) => Math.max(n, (r.offset ?? 0) + r.nrPages * pageSize), 0);
  const have = src.has(pagesName) ? src.size(pagesName) : -1;
  if (have < needBytes) {
    throw new RestoreError('read-images', have < 0 ? 'pages image missing' : `pages image has ${have} bytes, the pagemap needs ${needBytes}`, { file: pagesName, hint: 'the image set is truncated or damaged' });
  }
  const fdinfo = read(src, fdinfoFile, 'FDINFO');
  const fsImg = one(read(src, `fs-${pid}.img`, 'FS'), `fs-${pid}.img`);
  const files = filesOf();
  const remote = runs.filter((r) => (r.flags & PE_LAZY) && !(r.flags & (PE_PRESENT | PE_PARENT)));
  return { pid, pstree, core, threadCores, ids, mm, pages: { file: src.locate(pagesName), runs: present, ...(remote.length ? { remote } : {}) }, parentPages, fdinfo, fs: fsImg, files };
}

const MAX_PARENT_DEPTH = 64;

/** Finds the pages of `want` (PE_PARENT holes of the child) in the chain of parent directories. */
function parentRuns(link: string, pid: number, pageSize: number, want: Array<{ vaddr: bigint; nrPages: number }>, depth: number): Array<{ file: string; runs: PageRun[] }> {
  const rel = 'parent/'.repeat(depth);
  const pmFile = `${rel}pagemap-${pid}.img`;
  if (depth > MAX_PARENT_DEPTH) throw new RestoreError('read-images', `more than ${MAX_PARENT_DEPTH} parent images (a "parent" link loop?)`, { file: pmFile });
  let dir: string;
  try {
    dir = fs.realpathSync(link);
  } catch (e) {
    throw new RestoreError('read-images', `the parent images are gone (${(e as Error).message})`, { file: rel.slice(0, -1), hint: 'keep the previous (pre-)dump directories until the restore' });
  }
  const src = dirSource(dir);
  const pm = read(src, `pagemap-${pid}.img`, 'PAGEMAP');
  const pagesId = need(pm[0]?.pages_id as number | undefined, pmFile, 'pages_id');
  const runs = pageRuns(pm, pageSize);
  const ps = BigInt(pageSize);
  const found: PageRun[] = [];
  const deeper: Array<{ vaddr: bigint; nrPages: number }> = [];
  let i = 0;
  for (const w of want) {
    let at = w.vaddr;
    const end = w.vaddr + BigInt(w.nrPages) * ps;
    while (i > 0 && runs[i - 1].vaddr + BigInt(runs[i - 1].nrPages) * ps > at) i--;
    while (at < end) {
      while (i < runs.length && runs[i].vaddr + BigInt(runs[i].nrPages) * ps <= at) i++;
      const r = runs[i];
      if (!r || r.vaddr > at || !(r.flags & (PE_PRESENT | PE_PARENT))) {
        throw new RestoreError('read-images', `page ${hex(at)} is marked PE_PARENT but the parent images do not have it`, { file: pmFile, hint: 'the parent images do not belong to this dump' });
      }
      const rEnd = r.vaddr + BigInt(r.nrPages) * ps;
      const stop = rEnd < end ? rEnd : end;
      const nrPages = Number((stop - at) / ps);
      if (r.flags & PE_PRESENT) found.push({ entry: r.entry, vaddr: at, nrPages, flags: PE_PRESENT, offset: r.offset! + Number((at - r.vaddr) / ps) * pageSize });
      else deeper.push({ vaddr: at, nrPages });
      at = stop;
    }
  }
  const out: Array<{ file: string; runs: PageRun[] }> = [];
  if (found.length) {
    const pagesName = `pages-${pagesId}.img`;
    const needBytes = found.reduce((n, r) => Math.max(n, r.offset! + r.nrPages * pageSize), 0);
    const have = src.has(pagesName) ? src.size(pagesName) : -1;
    if (have < needBytes) throw new RestoreError('read-images', have < 0 ? 'pages image missing' : `pages image has ${have} bytes, the pagemap needs ${needBytes}`, { file: rel + pagesName });
    out.push({ file: src.locate(pagesName), runs: found });
  }
  if (deeper.length) {
    if (!src.has('parent')) throw new RestoreError('read-images', 'pages are in a parent image (PE_PARENT) but there is no "parent" link', { file: pmFile, field: 'flags' });
    out.push(...parentRuns(src.locate('parent'), pid, pageSize, deeper, depth + 1));
  }
  return out;
}

// ---- checkPlan: what restore checks on each task before it creates anything

export const VMA_STATUS = Object.freeze({
  REGULAR: 1 << 0, STACK: 1 << 1, VSYSCALL: 1 << 2, VDSO: 1 << 3, HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6, FILE_SHARED: 1 << 7, ANON_SHARED: 1 << 8, ANON_PRIVATE: 1 << 9, VVAR: 1 << 12,
  SYSVIPC: 1 << 10, AIORING: 1 << 13, MEMFD: 1 << 14,
});
const SPECIAL = VMA_STATUS.VDSO | VMA_STATUS.VVAR | VMA_STATUS.VSYSCALL;
const FD_TYPE_REG = 1, FD_TYPE_MEMFD = 18;
/** Highest user address any supported arch hands out (x86_64 5-level paging: 2^56). */
const USER_ADDR_LIMIT = 1n << 56n;
/** The rt_sigaction table: signals 1..64 without SIGKILL and SIGSTOP. */
const MAX_SIGACTIONS = 64;
const RLIM_NLIMITS = 16;
const SIGINFO_SIZE = 128;
const MM_MAP_FIELDS = ['mm_start_code', 'mm_end_code', 'mm_start_data', 'mm_end_data', 'mm_start_brk', 'mm_brk', 'mm_start_stack', 'mm_arg_start', 'mm_arg_end', 'mm_env_start', 'mm_env_end'] as const;

/** One mapping as restore builds it. */
export interface PlannedVma { start: bigint; end: bigint; pgoff: bigint; shmid: number; prot: number; flags: number; status: number; madv: bigint; fdflags?: number; fileName?: string }

export interface PlannedFd { fd: number; id: number; cloexec: boolean; type: number; name?: string; flags: number; pos: bigint }

/** One task as restore will build it. */
export interface RestorePlan {
  images: TaskImages;
  /**
   * Sorted, non-overlapping, each of a supported kind, file mappings resolved to a path. Empty
   * for a task sharing an earlier task's address space (`images.mmOf`): that task maps it.
   */
  vmas: PlannedVma[];
  /** Sorted by fd, each naming a file of files.img (regular files resolved to a path). */
  fds: PlannedFd[];
  cwd: string;
  root: string;
  /** Undefined for a task sharing an earlier task's address space (the exe link is the mm's). */
  exe?: string;
  /** Pages restore will read into the task (present runs outside vDSO/vvar/vsyscall). */
  pagesToFill: number;
  /** Its POSIX timers, checked (core-N.img tc.timers.posix). */
  posixTimers: PosixTimer[];
}

export interface PlanOptions {
  march: number;
  threadInfoField: string;
  pageSize: number;
}

function isInt(v: unknown): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

function big(v: unknown, file: string, field: string, record = 0): bigint {
  if (v === undefined || v === null) throw new RestoreError('read-images', 'required value missing', { file, field, record });
  if (!isInt(v)) throw new RestoreError('read-images', `expected an integer, found ${typeof v}`, { file, field, record });
  return BigInt(v);
}

function int(v: unknown, file: string, field: string, record = 0): number {
  const b = big(v, file, field, record);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) throw new RestoreError('read-images', `value ${b} out of range`, { file, field, record });
  return Number(b);
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

function regFile(img: TaskImages, id: number, what: string, file: string, field: string, record = 0): string {
  const f = img.files.get(id);
  if (!f) throw new RestoreError('read-images', `${what}: no file with id ${id} in files.img`, { file, field, record });
  if (f.type !== FD_TYPE_REG || !f.reg) throw new RestoreError('read-images', `${what}: file ${id} is of type ${f.type}, not a regular file`, { file: 'files.img', field: 'type' });
  const name = (f.reg as Msg).name;
  if (typeof name !== 'string' || name === '' || name.includes('\0')) throw new RestoreError('read-images', `${what}: file ${id} has no usable path`, { file: 'files.img', field: 'reg.name' });
  return name;
}

/**
 * The checks on one task of readTreeImagesFrom (planRestore runs it on each). Descriptor kinds
 * and their payloads are checked for the whole tree by checkTreeFiles.
 */
export function checkPlan(img: TaskImages, opts: PlanOptions): RestorePlan {
  const { pid } = img;
  const coreFile = `core-${pid}.img`;
  // A task sharing an earlier task's address space maps nothing: that task's mm is checked there.
  const memory = img.mmOf === undefined ? checkMemory(img, opts) : { vmas: [], pagesToFill: 0, exe: undefined };

  // Descriptors: unique, each naming a file of files.img.
  const fdinfoFile = `fdinfo-${img.ids.files_id}.img`;
  const seen = new Set<number>();
  const fds: PlannedFd[] = img.fdinfo.map((e, i) => {
    const fd = int(e.fd, fdinfoFile, 'fd', i);
    if (fd < 0 || fd > 1 << 20) throw new RestoreError('read-images', `invalid fd ${fd}`, { file: fdinfoFile, record: i, field: 'fd' });
    if (seen.has(fd)) throw new RestoreError('read-images', `fd ${fd} appears twice`, { file: fdinfoFile, record: i, field: 'fd' });
    seen.add(fd);
    const id = int(e.id, fdinfoFile, 'id', i);
    const f = img.files.get(id);
    if (!f) throw new RestoreError('read-images', `fd ${fd}: no file with id ${id} in files.img`, { file: fdinfoFile, record: i, field: 'id' });
    const type = int(f.type, 'files.img', 'type');
    const reg = f.reg as Msg | undefined;
    let name: string | undefined;
    if (type === FD_TYPE_REG) name = regFile(img, id, `fd ${fd}`, fdinfoFile, 'id', i);
    return {
      fd, id, type, name, cloexec: (Number(e.flags ?? 0) & 1) !== 0,
      flags: reg?.flags === undefined ? 0 : int(reg.flags, 'files.img', 'reg.flags'),
      pos: reg?.pos === undefined ? 0n : big(reg.pos, 'files.img', 'reg.pos'),
    };
  }).sort((a, b) => a.fd - b.fd);

  const fsFile = `fs-${pid}.img`;
  const cwd = regFile(img, int(img.fs.cwd_id, fsFile, 'cwd_id'), 'cwd', fsFile, 'cwd_id');
  const root = regFile(img, int(img.fs.root_id, fsFile, 'root_id'), 'root', fsFile, 'root_id');
  if (img.fs.umask !== undefined) int(img.fs.umask, fsFile, 'umask');

  // Task state restore feeds to syscalls: the task's, then each thread's.
  const tc = img.core.tc as Msg;
  const sas = (tc.sigactions as Msg[] | undefined) ?? [];
  if (sas.length > MAX_SIGACTIONS) throw new RestoreError('read-images', `${sas.length} signal actions (at most ${MAX_SIGACTIONS})`, { file: coreFile, field: 'tc.sigactions' });
  sas.forEach((sa, i) => ['sigaction', 'flags', 'restorer', 'mask'].forEach((k) => big(sa[k], coreFile, `tc.sigactions[${i}].${k}`)));
  big(tc.blk_sigset, coreFile, 'tc.blk_sigset');
  const rl = ((tc.rlimits as Msg | undefined)?.rlimits as Msg[] | undefined) ?? [];
  if (rl.length > RLIM_NLIMITS) throw new RestoreError('read-images', `${rl.length} rlimits (at most ${RLIM_NLIMITS})`, { file: coreFile, field: 'tc.rlimits' });
  rl.forEach((l, i) => { big(l.cur, coreFile, `tc.rlimits[${i}].cur`); big(l.max, coreFile, `tc.rlimits[${i}].max`); });
  const timers = tc.timers as Msg | undefined;
  for (const k of ['real', 'virt', 'prof']) {
    const t = timers?.[k] as Msg | undefined;
    if (t) for (const x of ['isec', 'iusec', 'vsec', 'vusec']) big(t[x], coreFile, `tc.timers.${k}.${x}`);
  }
  const posixTimers = readPosixTimers(tc, coreFile, [pid, ...img.threadCores.map((c) => c.tid)]);
  checkSignals(tc.signals_s, coreFile, 'tc.signals_s');
  for (const { tid, core } of [{ tid: pid, core: img.core }, ...img.threadCores]) checkThread(core, `core-${tid}.img`, opts.threadInfoField);

  return { images: img, ...memory, fds, cwd, root, posixTimers };
}

const SS_DISABLE = 2;

/** What restore feeds to each thread's syscalls from its core_entry. */
function checkThread(core: Msg, coreFile: string, threadInfoField: string): void {
  const ti = core[threadInfoField] as Msg;
  if (typeof ti !== 'object' || ti === null) throw new RestoreError('read-images', 'thread info is not a record', { file: coreFile, field: threadInfoField });
  const thc = core.thread_core as Msg;
  if (typeof thc !== 'object' || thc === null) throw new RestoreError('read-images', 'thread_core is not a record', { file: coreFile, field: 'thread_core' });
  checkSignals(thc.signals_p, coreFile, 'thread_core.signals_p');
  if (thc.blk_sigset !== undefined) big(thc.blk_sigset, coreFile, 'thread_core.blk_sigset');
  const sas = thc.sas as Msg | undefined;
  if (sas) {
    const flags = int(sas.ss_flags, coreFile, 'thread_core.sas.ss_flags');
    if (!(flags & SS_DISABLE)) { big(sas.ss_sp, coreFile, 'thread_core.sas.ss_sp'); big(sas.ss_size, coreFile, 'thread_core.sas.ss_size'); }
  }
  const rseq = thc.rseq_entry as Msg | undefined;
  if (rseq) for (const k of ['rseq_abi_pointer', 'rseq_abi_size', 'signature']) big(rseq[k], coreFile, `thread_core.rseq_entry.${k}`);
  if (thc.futex_rla_len !== undefined && int(thc.futex_rla_len, coreFile, 'thread_core.futex_rla_len') > 0) big(thc.futex_rla, coreFile, 'thread_core.futex_rla');
}

function checkSignals(list: unknown, coreFile: string, field: string): void {
  ((((list as Msg | undefined)?.signals) as Msg[] | undefined) ?? []).forEach((s, i) => {
    const si = s.siginfo as Uint8Array | undefined;
    if (!(si instanceof Uint8Array) || si.length !== SIGINFO_SIZE) throw new RestoreError('read-images', `pending signal ${i}: siginfo of ${si?.length ?? 0} bytes, expected ${SIGINFO_SIZE}`, { file: coreFile, field: `${field}[${i}].siginfo` });
  });
}

/** The task's address space: mm fields, mappings and page runs. */
function checkMemory(img: TaskImages, opts: PlanOptions): Pick<RestorePlan, 'vmas' | 'pagesToFill' | 'exe'> {
  const { pid } = img;
  const ps = BigInt(opts.pageSize);
  const mmFile = `mm-${pid}.img`;
  const mm = img.mm;

  // mm fields for PR_SET_MM_MAP, the exe link and auxv.
  for (const k of MM_MAP_FIELDS) big(mm[k], mmFile, k);
  const exe = regFile(img, int(mm.exe_file_id, mmFile, 'exe_file_id'), 'exe file', mmFile, 'exe_file_id');
  const auxv = (mm.mm_saved_auxv as unknown[] | undefined) ?? [];
  auxv.forEach((x, i) => big(x, mmFile, `mm_saved_auxv[${i}]`));

  // Mappings: complete, aligned, in order, not overlapping, of a kind restore can build.
  const vmas: PlannedVma[] = [];
  ((mm.vmas as Msg[] | undefined) ?? []).forEach((m, i) => {
    const f = (k: string) => `vmas[${i}].${k}`;
    const v: PlannedVma = {
      start: big(m.start, mmFile, f('start')), end: big(m.end, mmFile, f('end')), pgoff: big(m.pgoff, mmFile, f('pgoff')),
      shmid: int(m.shmid, mmFile, f('shmid')), prot: int(m.prot, mmFile, f('prot')), flags: int(m.flags, mmFile, f('flags')),
      status: int(m.status, mmFile, f('status')), madv: m.madv === undefined ? 0n : big(m.madv, mmFile, f('madv')),
      fdflags: m.fdflags === undefined ? undefined : int(m.fdflags, mmFile, f('fdflags')),
    };
    const where = `mapping ${hex(v.start)}-${hex(v.end)}`;
    if (v.start >= v.end) throw new RestoreError('read-images', `${where} is empty or inverted`, { file: mmFile, field: f('end') });
    if (v.start % ps || v.end % ps) throw new RestoreError('read-images', `${where} is not page aligned`, { file: mmFile, field: f('start') });
    if (v.end > USER_ADDR_LIMIT && !(v.status & VMA_STATUS.VSYSCALL)) throw new RestoreError('read-images', `${where} lies outside user space`, { file: mmFile, field: f('end') });
    if (v.pgoff % ps) throw new RestoreError('read-images', `${where}: file offset ${hex(v.pgoff)} is not page aligned`, { file: mmFile, field: f('pgoff') });
    if (v.prot & ~7) throw new RestoreError('read-images', `${where}: unknown protection bits ${hex(BigInt(v.prot))}`, { file: mmFile, field: f('prot') });
    const prev = vmas[vmas.length - 1];
    if (prev && v.start < prev.end) {
      throw new RestoreError('read-images', `${where} ${v.start < prev.start ? 'is out of order' : 'overlaps'} ${hex(prev.start)}-${hex(prev.end)}`, { file: mmFile, field: f('start') });
    }
    if (!(v.status & SPECIAL)) {
      if (v.status & (VMA_STATUS.SYSVIPC | VMA_STATUS.AIORING)) {
        throw new RestoreError('map-vmas', `${where}: ${v.status & VMA_STATUS.SYSVIPC ? 'SysV shared memory' : 'AIO rings'} are not supported yet`, { file: mmFile, field: f('status') });
      } else if (v.status & VMA_STATUS.MEMFD) {
        // Shared anonymous memory or a memfd: shmid is the id of a MEMFD file (memfd.img inode).
        const mf = img.files.get(v.shmid);
        if (!mf) throw new RestoreError('read-images', `${where}: no file with id ${v.shmid} in files.img`, { file: mmFile, field: f('shmid') });
        if (Number(mf.type) !== FD_TYPE_MEMFD || typeof mf.memfd !== 'object' || mf.memfd === null) {
          throw new RestoreError('read-images', `${where}: file ${v.shmid} of files.img is of type ${mf.type}, not a memfd`, { file: mmFile, field: f('shmid') });
        }
        int((mf.memfd as Msg).inode_id, 'files.img', 'memfd.inode_id');
        if (!(v.flags & 1 /* MAP_SHARED */)) throw new RestoreError('map-vmas', `${where}: private memfd mappings are not supported yet`, { file: mmFile, field: f('flags') });
      } else if (v.status & VMA_STATUS.ANON_SHARED) {
        if (!(v.flags & 1 /* MAP_SHARED */)) throw new RestoreError('read-images', `${where}: shared anonymous mapping without MAP_SHARED`, { file: mmFile, field: f('flags') });
      } else if (v.status & (VMA_STATUS.FILE_PRIVATE | VMA_STATUS.FILE_SHARED)) {
        v.fileName = regFile(img, v.shmid, where, mmFile, f('shmid'));
      } else if (!(v.status & VMA_STATUS.ANON_PRIVATE)) {
        throw new RestoreError('map-vmas', `${where}: mapping kind ${hex(BigInt(v.status))} is not supported yet`, { file: mmFile, field: f('status') });
      }
    }
    vmas.push(v);
  });
  if (vmas.filter((v) => v.status & VMA_STATUS.VDSO).length > 1) throw new RestoreError('read-images', 'more than one vDSO mapping', { file: mmFile, field: 'vmas.status' });

  // Page runs: aligned, in order, each inside mappings with no gap.
  const pmFile = `pagemap-${pid}.img`;
  let prevEnd = 0n;
  let pagesToFill = 0;
  let vi = 0;
  img.pages.runs.forEach((r) => {
    const where = { file: pmFile, record: r.entry, field: 'vaddr' };
    if (!Number.isSafeInteger(r.nrPages) || r.nrPages <= 0) throw new RestoreError('read-images', `page run at ${hex(r.vaddr)} has ${r.nrPages} pages`, { ...where, field: 'nr_pages' });
    const end = r.vaddr + BigInt(r.nrPages) * ps;
    if (r.vaddr % ps) throw new RestoreError('read-images', `page run at ${hex(r.vaddr)} is not page aligned`, where);
    if (r.vaddr < prevEnd) throw new RestoreError('read-images', `page run at ${hex(r.vaddr)} overlaps or precedes the one before`, where);
    prevEnd = end;
    while (vi < vmas.length && vmas[vi].end <= r.vaddr) vi++;
    let at = r.vaddr;
    let k = vi;
    while (at < end) {
      const v = vmas[k];
      if (!v || v.start > at) throw new RestoreError('read-images', `page run ${hex(r.vaddr)}-${hex(end)} is not inside the mappings (nothing mapped at ${hex(at)})`, { ...where, hint: 'mm and pagemap images do not match' });
      at = v.end;
      k++;
    }
    if (!(vmas[vi].status & SPECIAL)) pagesToFill += r.nrPages;
  });

  return { vmas, pagesToFill, exe };
}
