/**
 * planRestore(): the checks restore() makes on the images alone before it creates anything, with
 * no side effect. restore() runs it first (on the images directory); the fuzzer runs it on damaged
 * image sets held in memory. The checks that look at this host as well (ghost files, cgroups,
 * mounts, CPU features) follow in restore() and read the directory.
 */
import * as fs from 'node:fs';
import { RestoreError } from './errors.js';
import { checkPlan, dirSource, readTreeImagesFrom, type ImageSource, type PlanOptions, type RestorePlan, type TreeImages } from './images-in.js';
import { checkTreeFiles } from './shared-files.js';
import { checkFileLocks, readFileLocks, type FileLock } from './file-locks.js';
import { planPtys, type PtyPlan } from './files-tty.js';
import { clockOffsets } from './timens.js';
import type { TimensOffsets } from '../proc/timens.js';
import { planNamespaces, type NamespacePlan } from './namespaces.js';
import type { InheritFd } from '../ns/external.js';

const VMA_ANON_SHARED = 1 << 8, VMA_AREA_MEMFD = 1 << 14;

export interface TreePlanOptions extends PlanOptions {
  /** --shell-job. */
  shellJob?: boolean;
  /** A lazy restore (--lazy-pages): refuses what it cannot do yet. */
  lazyPages?: boolean;
  /** --inherit-fd: an external network namespace is joined through one of these. */
  inheritFds?: InheritFd[];
}

export interface TreePlan {
  tree: TreeImages;
  /** One per task with a body, in tree.tasks order (zombies are tree.zombies). */
  tasks: RestorePlan[];
  /** Each shared anonymous memory object (VMA_ANON_SHARED shmid): as large as the furthest any task maps it. */
  anonSizes: Map<number, bigint>;
  /** filelocks.img, each naming a task and one of its descriptors. */
  locks: FileLock[];
  /** The pty pairs and /dev/tty files the tasks use (tty-info.img). */
  ptys: PtyPlan;
  /** The offsets of a time namespace when the dumped clocks are ahead of this kernel's (timens-0.img). */
  clocks?: TimensOffsets;
  /** The root task's own pid, uts, ipc and (external) network namespaces. */
  namespaces: NamespacePlan;
}

/** A check of planRestore itself failed on unexpected input: a bug to fix, never a user error. */
export class ImageCheckBug extends RestoreError {
  constructor(cause: unknown) {
    super('read-images', `unexpected failure while checking the images: ${(cause as Error)?.message ?? String(cause)}`, { cause, hint: 'this is a bug in criu-ts: please report it with the images' });
    this.name = 'ImageCheckBug';
  }
}

/**
 * Reads the tree's images (a directory or an ImageSource) and checks each task as restore will
 * build it. Throws RestoreError (the step, file, record and field involved); never anything else.
 */
export function planRestore(source: ImageSource | string, opts: TreePlanOptions): TreePlan {
  try {
    const src = typeof source === 'string' ? checkedDir(source) : source;
    const tree = readTreeImagesFrom(src, opts.march, opts.threadInfoField, opts.pageSize);
    // Without UFFD_FEATURE_EVENT_FORK a child would lose the parent's lazy pages.
    if (opts.lazyPages && tree.tasks.length > 1) throw new RestoreError('read-images', `a lazy restore of a tree of ${tree.tasks.length} tasks is not supported yet (one task only)`, { file: 'pstree.img' });
    // Threads restored over lazy memory lost a ptrace stop in testing (threads4): refused for now.
    if (opts.lazyPages && tree.tasks[0].threadCores.length > 0) throw new RestoreError('read-images', `a lazy restore of a multi-threaded task (${tree.tasks[0].threadCores.length + 1} threads) is not supported yet`, { file: 'pstree.img' });
    checkTreeFiles(tree, opts.shellJob ?? false);
    const tasks = tree.tasks.map((img) => checkPlan(img, opts));
    const anonSizes = new Map<number, bigint>();
    for (const t of tasks) {
      for (const v of t.vmas) {
        if (!(v.status & VMA_ANON_SHARED) || v.status & VMA_AREA_MEMFD) continue;
        const end = v.pgoff + (v.end - v.start);
        if (end > (anonSizes.get(v.shmid) ?? 0n)) anonSizes.set(v.shmid, end);
      }
    }
    const locks = readFileLocks(src);
    checkFileLocks(locks, tree.tasks);
    const ptys = planPtys(tree, src, opts.shellJob ?? false);
    const namespaces = planNamespaces(src, tree.tasks, opts.inheritFds);
    if (namespaces.newPidNs && opts.lazyPages) throw new RestoreError('read-images', 'a lazy restore of a tree in a pid namespace of its own is not supported yet', { file: 'pstree.img' });
    return { tree, tasks, anonSizes, locks, ptys, clocks: clockOffsets(src), namespaces };
  } catch (e) {
    if (e instanceof RestoreError) throw e;
    throw new ImageCheckBug(e);
  }
}

function checkedDir(dir: string): ImageSource {
  if (!fs.existsSync(dir)) throw new RestoreError('read-images', `no images directory ${dir}`, { hint: 'check the -D/--images-dir path' });
  return dirSource(dir);
}
