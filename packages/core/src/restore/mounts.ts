/**
 * Mount namespaces (restore side): when the root task's mount namespace has a mountpoints image,
 * the root task gets a new mount namespace (unshare, injected) and its mount tree is rebuilt
 * there before any file is opened: `root` (CRIU's --root) bound on a staging directory, then
 * every mount, parents and bind sources first (kernel filesystems mounted afresh, tmpfs with its
 * archive unpacked from the host through /proc/PID/root, binds inside the tree, external mounts
 * from `external.mounts`), then per-mount flags, superblock read-only and sharing, and finally
 * pivot_root into it. Every check on the images is made before anything is created.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeImageEntries, type Msg } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { Logger } from '../util/log.js';
import { RestoreError } from './errors.js';
import { SCRATCH, type Scratch } from './scratch.js';

const CLONE_NEWNS = 0x20000;
const MS_RDONLY = 0x1, MS_NOSUID = 0x2, MS_NODEV = 0x4, MS_NOEXEC = 0x8, MS_REMOUNT = 0x20, MS_NOATIME = 0x400, MS_NODIRATIME = 0x800;
const MS_BIND = 0x1000, MS_REC = 0x4000, MS_UNBINDABLE = 1 << 17, MS_PRIVATE = 1 << 18, MS_SHARED = 1 << 20, MS_RELATIME = 0x200000, MS_STRICTATIME = 0x1000000, MS_NOSYMFOLLOW = 0x100;
const MNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_NOSYMFOLLOW;
const MNT_DETACH = 2;
// Four argument strings of one mount(2) call, apart in the scratch area.
const ARG = [SCRATCH.args, SCRATCH.args + 8192, SCRATCH.args + 16384, SCRATCH.args + 24576];

/** fstype codes (mnt.proto) of filesystems mounted afresh, by name for mount(2). */
const FRESH: Record<number, string> = {
  1: 'proc', 2: 'sysfs', 4: 'binfmt_misc', 5: 'tmpfs', 6: 'devpts', 8: 'pstore', 9: 'securityfs', 10: 'fusectl',
  11: 'debugfs', 12: 'cgroup', 14: 'mqueue', 19: 'tracefs', 23: 'cgroup2',
};
const TMPFS = 5;

interface Mount {
  record: number;
  mntId: number;
  parentId: number;
  fstype: number;
  rootDev: number;
  flags: number;
  sbFlags: number;
  root: string;
  mountpoint: string;
  source: string;
  options: string;
  shared: number;
  master: number;
  extKey?: string;
  /** What the restore does for it. */
  how: { kind: 'root' } | { kind: 'external'; hostPath: string } | { kind: 'fresh'; fsType: string; archive?: string } | { kind: 'bind'; from: Mount; subPath: string };
}

export interface MountNsPlan {
  file: string;
  root: string;
  /** In the order they are mounted: the root mount first. */
  mounts: Mount[];
}

/**
 * Reads and checks mountpoints-<id>.img of the root task's mount namespace. Undefined when the
 * images have none (the tree lived in the dumper's mount namespace).
 */
export function readMountNamespace(imagesDir: string, tasks: Array<{ pid: number; ids: Msg; files: Map<number, Msg> }>, opts: { root?: string; external?: ReadonlyMap<string, string> }): MountNsPlan | undefined {
  const id = Number(tasks[0].ids.mnt_ns_id ?? 0);
  const file = `mountpoints-${id}.img`;
  if (!id || !fs.existsSync(path.join(imagesDir, file))) return undefined;
  for (const t of tasks.slice(1)) {
    if (Number(t.ids.mnt_ns_id ?? 0) !== id) {
      throw new RestoreError('read-images', `task ${t.pid} is in mount namespace ${String(t.ids.mnt_ns_id)}, the root task in ${id}: nested mount namespaces are not supported yet`, { file: `ids-${t.pid}.img`, field: 'mnt_ns_id' });
    }
  }
  let entries: Msg[];
  try {
    entries = decodeImageEntries(fs.readFileSync(path.join(imagesDir, file)), { file }).entries.map((e) => e.message as Msg);
  } catch (e) {
    throw new RestoreError('read-images', `cannot decode it: ${(e as Error).message}`, { file, cause: e });
  }
  const mounts = entries.map((m, record): Mount => {
    const need = <T>(field: string, ok: (v: unknown) => boolean = (v) => v !== undefined && v !== null): T => {
      const v = m[field];
      if (!ok(v)) throw new RestoreError('read-images', `${v === undefined ? 'required value missing' : `invalid value ${JSON.stringify(v)}`}`, { file, record, field });
      return v as T;
    };
    const num = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
    const str = (v: unknown) => typeof v === 'string';
    const abs = (v: unknown) => typeof v === 'string' && v.startsWith('/') && !v.split('/').includes('..');
    return {
      record, mntId: need('mnt_id', num), parentId: need('parent_mnt_id', num), fstype: need('fstype', num), rootDev: need('root_dev', num),
      flags: need('flags', num), sbFlags: Number(m.sb_flags ?? 0), root: need('root', abs), mountpoint: need('mountpoint', abs),
      source: need('source', str), options: need('options', str), shared: Number(m.shared_id ?? 0), master: Number(m.master_id ?? 0),
      ...(typeof m.ext_key === 'string' && m.ext_key ? { extKey: m.ext_key } : {}),
      how: { kind: 'root' },
    };
  });
  const byId = new Map<number, Mount>();
  for (const m of mounts) {
    if (byId.has(m.mntId)) throw new RestoreError('read-images', `mount id ${m.mntId} appears twice`, { file, record: m.record, field: 'mnt_id' });
    byId.set(m.mntId, m);
  }
  const tops = mounts.filter((m) => !byId.has(m.parentId));
  if (tops.length !== 1 || tops[0].mountpoint !== '/') {
    throw new RestoreError('read-images', `${tops.length} mounts have no parent in the image (${tops.map((m) => `${m.mntId} at ${m.mountpoint}`).join(', ')}); want one, at /`, { file, record: (tops.find((m) => m.mountpoint !== '/') ?? tops[1] ?? tops[0])?.record, field: 'parent_mnt_id' });
  }
  const top = tops[0];
  if (!opts.root) throw new RestoreError('read-images', `the tree has a mount namespace of its own: its root directory must be given`, { file, record: top.record, hint: 'restore with --root DIR (RestoreOptions.root)' });
  if (!fs.statSync(opts.root, { throwIfNoEntry: false })?.isDirectory()) throw new RestoreError('read-images', `--root ${opts.root} is not a directory`, { file, record: top.record });

  const within = (inner: string, outer: string) => outer === '/' || inner === outer || inner.startsWith(`${outer}/`);
  const rel = (inner: string, outer: string) => (outer === '/' ? inner : inner.slice(outer.length)) || '/';
  // In mountinfo order (CRIU writes the image last-mounted first).
  const ordered = [...mounts].sort((a, b) => a.mntId - b.mntId);
  for (const m of ordered) {
    const where = { file, record: m.record };
    if (m.master) throw new RestoreError('read-images', `mount ${m.mntId} at ${m.mountpoint} is a slave (master_id ${m.master}); restoring slave mounts is not supported yet`, { ...where, field: 'master_id' });
    if (m.extKey !== undefined) {
      const hostPath = opts.external?.get(m.extKey);
      if (!hostPath) throw new RestoreError('read-images', `external mount ${m.mntId} at ${m.mountpoint} has key '${m.extKey}', which is not given`, { ...where, field: 'ext_key', hint: `restore with --external mnt[${m.extKey}]:HOST_PATH` });
      m.how = { kind: 'external', hostPath };
      continue;
    }
    if (m === top) continue;
    if (m.mountpoint === '/') throw new RestoreError('read-images', `mount ${m.mntId} is stacked on the root mount at /; that is not supported`, { ...where, field: 'mountpoint' });
    // A bind mount: of the first whole mount of a kernel filesystem of that device, or of the root.
    const primary = ordered.find((o) => o.rootDev === m.rootDev && o.root === '/' && o.extKey === undefined && FRESH[o.fstype] !== undefined);
    const from = primary && primary !== m ? primary : m.rootDev === top.rootDev && top.extKey === undefined && within(m.root, top.root) ? top : undefined;
    if (from) {
      m.how = { kind: 'bind', from, subPath: rel(m.root, from.root) };
      continue;
    }
    const fsType = FRESH[m.fstype];
    if (fsType === undefined || m.root !== '/') {
      throw new RestoreError('read-images', `mount ${m.mntId} at ${m.mountpoint} (fstype ${m.fstype}, root ${m.root}) cannot be restored: not a filesystem mounted afresh, and no mount of the image is its bind source`, { ...where, field: fsType === undefined ? 'fstype' : 'root' });
    }
    let archive: string | undefined;
    if (m.fstype === TMPFS) {
      archive = `tmpfs-dev-${m.rootDev}.tar.gz.img`;
      if (!fs.existsSync(path.join(imagesDir, archive))) throw new RestoreError('read-images', `the contents of the tmpfs at ${m.mountpoint} are missing (${archive})`, { ...where, field: 'root_dev' });
    }
    m.how = { kind: 'fresh', fsType, ...(archive ? { archive: path.join(imagesDir, archive) } : {}) };
  }
  // Files are reopened by name from inside: each must be on a mount of the namespace.
  for (const t of tasks.slice(0, 1)) {
    let i = 0;
    for (const f of t.files.values()) {
      const reg = f.reg as Msg | undefined;
      const mnt = reg?.mnt_id;
      if (reg && mnt !== undefined && Number(mnt) !== -1 && !byId.has(Number(mnt))) {
        throw new RestoreError('read-images', `file ${String(reg.name)} is on mount ${String(mnt)}, which ${file} does not have`, { file: 'files.img', record: i, field: 'reg.mnt_id' });
      }
      i++;
    }
  }
  // Ghost files are recreated by a host path next to their old name: not inside a restored namespace yet.
  const remaps = path.join(imagesDir, 'remap-fpath.img');
  if (fs.existsSync(remaps) && decodeImageEntries(fs.readFileSync(remaps), { file: 'remap-fpath.img' }).entries.length) {
    throw new RestoreError('read-images', `deleted files (ghost files) in a mount namespace of the tree's own are not supported yet`, { file: 'remap-fpath.img', record: 0 });
  }
  // Parents and bind sources first; among the ready ones, in the original order.
  const order: Mount[] = [];
  const placed = new Set<Mount>();
  while (order.length < ordered.length) {
    const next = ordered.find((m) => !placed.has(m) && (m === top || placed.has(byId.get(m.parentId)!)) && (m.how.kind !== 'bind' || placed.has(m.how.from)));
    if (!next) {
      const stuck = ordered.find((m) => !placed.has(m))!;
      throw new RestoreError('read-images', `mount ${stuck.mntId} at ${stuck.mountpoint} cannot be placed (its parent or bind source forms a loop)`, { file, record: stuck.record, field: 'parent_mnt_id' });
    }
    placed.add(next);
    order.push(next);
  }
  return { file, root: path.resolve(opts.root), mounts: order };
}

/**
 * Gives the root task (just cloned, nothing rebuilt yet) its new mount namespace, as planned.
 * Its children, cloned after this, are born in it. Call it once the task is in its other
 * namespaces: a fresh proc shows the mounter's pid namespace, sysfs its network namespace,
 * mqueue its ipc namespace.
 */
export function restoreMountNamespace(task: FrozenTask, scratch: Scratch, plan: MountNsPlan, log: Logger): void {
  const pid = task.pid;
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-root-'));
  const fail = (m: Mount | undefined, what: string, errno: number) =>
    new RestoreError('clone', `${what} failed with errno ${errno}${m ? ` (mount ${m.mntId} at ${m.mountpoint})` : ''}`, { file: plan.file, ...(m ? { record: m.record } : {}) });
  const call = (m: Mount | undefined, what: string, name: string, ...args: Array<number | bigint>) => {
    const r = task.rawSyscall(name, ...args);
    if (r < 0n) throw fail(m, what, Number(-r));
    return r;
  };
  // scratch.str places one string per call at a fixed spot: two strings need two places.
  const str2 = (a: string, b: string): [bigint, bigint] => [scratch.str(a, ARG[0]), scratch.str(b, ARG[1])];
  const at = (m: Mount) => path.join(staging, m.mountpoint);
  const hostView = (p: string) => `/proc/${pid}/root${p}`;
  try {
    call(undefined, 'unshare(CLONE_NEWNS)', 'unshare', CLONE_NEWNS);
    call(undefined, 'making every mount private', 'mount', 0, scratch.str('/'), 0, MS_REC | MS_PRIVATE, 0);
    for (const m of plan.mounts) {
      const target = at(m);
      if (m.how.kind === 'root') {
        const [src, dst] = str2(plan.root, staging);
        call(m, `binding the root ${plan.root}`, 'mount', src, dst, 0, MS_BIND, 0);
        continue;
      }
      // The mountpoint, made from the host through the task's root (it sees the new mounts).
      const sourcePath = m.how.kind === 'external' ? m.how.hostPath : m.how.kind === 'bind' ? hostView(path.join(at(m.how.from), m.how.subPath)) : undefined;
      makeMountpoint(hostView(target), sourcePath ? !fs.statSync(sourcePath, { throwIfNoEntry: false })?.isDirectory() : false);
      if (m.how.kind === 'fresh') {
        // Read-only comes last (a tmpfs is filled first); the rest of the flags now.
        const fsType = m.how.fsType;
        const flags = m.flags & MNT_FLAGS & (m.fstype === TMPFS ? ~MS_RDONLY : ~0);
        const src = scratch.str(m.source || fsType, ARG[0]);
        const dst = scratch.str(target, ARG[1]);
        const type = scratch.str(fsType, ARG[2]);
        const data = scratch.str(m.options, ARG[3]);
        call(m, `mounting ${fsType}`, 'mount', src, dst, type, flags, data);
        if (m.how.archive) unpackTmpfs(m.how.archive, hostView(target), plan.file, m.record);
      } else {
        const from = m.how.kind === 'external' ? m.how.hostPath : path.join(at(m.how.from), m.how.subPath);
        // A bind of a shared mount joins its peer group: share the source first.
        if (m.how.kind === 'bind' && m.shared && m.shared === m.how.from.shared && m.how.from.how.kind !== 'root') call(m.how.from, 'making it shared', 'mount', 0, scratch.str(at(m.how.from)), 0, MS_SHARED, 0);
        const [src, dst] = str2(from, target);
        call(m, `binding ${from}`, 'mount', src, dst, 0, MS_BIND, 0);
      }
      log.debug(`mount ${m.mntId} at ${m.mountpoint}: ${m.how.kind}`);
    }
    // Flags, the leaves first (a read-only parent does not stop its children's remount).
    for (const m of [...plan.mounts].reverse()) {
      const target = scratch.str(at(m));
      if (m.fstype === TMPFS && m.sbFlags & MS_RDONLY && m.how.kind === 'fresh') {
        call(m, 'making the tmpfs read-only', 'mount', 0, target, 0, MS_REMOUNT | MS_RDONLY, scratch.str(m.options, ARG[3]));
      }
      call(m, 'setting its flags', 'mount', 0, target, 0, MS_REMOUNT | MS_BIND | (m.flags & MNT_FLAGS), 0);
      if (m.shared && m.how.kind !== 'root') call(m, 'making it shared', 'mount', 0, target, 0, MS_SHARED, 0);
      else if (m.flags & MS_UNBINDABLE && m.how.kind !== 'root') call(m, 'making it unbindable', 'mount', 0, target, 0, MS_UNBINDABLE, 0);
    }
    call(undefined, `chdir to ${staging}`, 'chdir', scratch.str(staging));
    call(undefined, 'pivot_root', 'pivot_root', scratch.str('.'), scratch.str('.', ARG[1]));
    call(undefined, 'detaching the old root', 'umount2', scratch.str('.'), MNT_DETACH);
    call(undefined, 'chdir to /', 'chdir', scratch.str('/'));
    const top = plan.mounts[0];
    if (top.shared) call(top, 'making it shared', 'mount', 0, scratch.str('/'), 0, MS_SHARED, 0);
    log.info(`task ${pid}: mount namespace rebuilt from ${plan.file}: ${plan.mounts.length} mounts, root ${plan.root}`);
  } finally {
    // On the host the staging directory is an empty directory (the mounts are in the task's namespace).
    try { fs.rmdirSync(staging); } catch (e) { log.warn(`cannot remove ${staging}: ${(e as Error).message}`); }
  }
}

function makeMountpoint(p: string, file: boolean): void {
  if (fs.existsSync(p)) return;
  if (file) {
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.closeSync(fs.openSync(p, 'a', 0o644));
  } else {
    fs.mkdirSync(p, { recursive: true, mode: 0o755 });
  }
}

function unpackTmpfs(archive: string, dir: string, file: string, record: number): void {
  const r = spawnSync('tar', ['--extract', '--gzip', '--numeric-owner', '--preserve-permissions', '--xattrs', '--directory', dir, '--file', archive], { encoding: 'latin1' });
  if (r.error || r.status !== 0) {
    throw new RestoreError('clone', `unpacking ${path.basename(archive)} with tar failed: ${r.error?.message ?? `exit ${r.status}: ${r.stderr.trim()}`}`, { file, record, field: 'root_dev' });
  }
}
