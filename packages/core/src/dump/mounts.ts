/**
 * Mount namespaces (dump side): when the dumped tree lives in a mount namespace of its own, its
 * mount table goes into mountpoints-<id>.img (mnt_entry per mount, as /proc/PID/mountinfo shows
 * it from the root task's root) and the contents of its tmpfs mounts into
 * tmpfs-dev-<dev>.tar.gz.img (a gzip'ed tar made by the system `tar`). Kernel filesystems
 * (proc, sysfs, devpts, mqueue, cgroup ...) are mounted afresh at restore; bind mounts must come
 * from a mount of the same namespace; mounts declared external (`--external mnt[MP]:KEY`) are
 * written with their key only. Anything else is refused here, naming the mount and its type.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMountinfo, type MountInfo } from '../proc/mountinfo.js';
import { DumpError } from './errors.js';
import type { Msg } from './model.js';

/** fstype codes of mnt.proto. */
export const FSTYPE: Record<string, number> = {
  proc: 1, sysfs: 2, devtmpfs: 3, binfmt_misc: 4, tmpfs: 5, devpts: 6, pstore: 8, securityfs: 9,
  fusectl: 10, debugfs: 11, cgroup: 12, mqueue: 14, fuse: 15, overlay: 17, autofs: 18, tracefs: 19, cgroup2: 23,
};

/** Kernel filesystems with nothing to save: the restore mounts a new instance. */
export const FRESH_FS = new Set(['proc', 'sysfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2', 'binfmt_misc', 'tracefs', 'debugfs', 'securityfs', 'pstore', 'fusectl', 'tmpfs']);

// MS_* mount flags (the same on every architecture).
export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, SYNCHRONOUS: 0x10, MANDLOCK: 0x40, DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100, NOATIME: 0x400, NODIRATIME: 0x800, UNBINDABLE: 1 << 17, SLAVE: 1 << 19, SHARED: 1 << 20,
  RELATIME: 0x200000, STRICTATIME: 0x1000000, LAZYTIME: 0x2000000,
} as const;

const MNT_OPTS: Record<string, number> = {
  ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, noatime: MS.NOATIME,
  nodiratime: MS.NODIRATIME, relatime: MS.RELATIME, nosymfollow: MS.NOSYMFOLLOW,
};
const SB_OPTS: Record<string, number> = { ro: MS.RDONLY, sync: MS.SYNCHRONOUS, dirsync: MS.DIRSYNC, mand: MS.MANDLOCK, lazytime: MS.LAZYTIME };

/** Per-mount flags of mountinfo's 6th field; no atime option at all means strictatime. */
export function mountFlagsOf(opts: string): number {
  let f = 0;
  for (const o of opts.split(',')) f |= MNT_OPTS[o] ?? 0;
  if (!(f & (MS.RELATIME | MS.NOATIME))) f |= MS.STRICTATIME;
  return f;
}

/** Superblock flags and the remaining filesystem options of mountinfo's super options. */
export function superOptionsOf(fsType: string, opts: string): { sbFlags: number; options: string } {
  let sbFlags = 0;
  const rest: string[] = [];
  for (const o of opts.split(',')) {
    if (!o || o === 'rw') continue;
    if (SB_OPTS[o] !== undefined) sbFlags |= SB_OPTS[o];
    else rest.push(o);
  }
  // A devpts of a container is its own instance; the restore must not reuse the host's.
  if (fsType === 'devpts' && !rest.includes('newinstance')) rest.push('newinstance');
  return { sbFlags, options: rest.join(',') };
}

/** st_dev "major:minor" in the kernel's encoding, as mnt_entry.root_dev and the tmpfs image name use it. */
export function kdevOf(dev: string): number {
  const [maj, min] = dev.split(':').map(Number);
  return ((maj << 20) | min) >>> 0;
}

/** shared:N / master:N of mountinfo's optional fields (0: none). */
function propagationOf(m: MountInfo): { shared: number; master: number } {
  const num = (k: string) => Number(m.optional.find((o) => o.startsWith(`${k}:`))?.slice(k.length + 1) ?? 0);
  return { shared: num('shared'), master: num('master') };
}

export interface MountNsDump {
  /** mnt_ns_id of ids-N.img. */
  id: number;
  /** Mount ids of the namespace: a file on any other mount cannot be reached from inside. */
  mntIds: Set<number>;
  images: Array<{ file: string; magic: string; entries: Msg[] }>;
  /** tmpfs archives to write (dev → mountpoint to archive) once the tasks are frozen. */
  tmpfs: Map<number, string>;
}

/**
 * True when the tree's mount namespace is ours, or a copy of it with the same mounts (e.g. `ip
 * netns exec` gives every command its own copy with /sys remounted): every path resolves the
 * same way, nothing to dump. Compared as sets: a copied namespace lists its mounts in another order.
 */
export function sameMountNs(pid: number): boolean {
  if (fs.readlinkSync(`/proc/${pid}/ns/mnt`) === fs.readlinkSync('/proc/self/ns/mnt')) return true;
  const key = (p: number) => readMountinfo(p).map((m) => `${m.mountPoint} ${m.root} ${m.fsType} ${m.source}`).sort().join('\n');
  try {
    return key(pid) === key(process.pid);
  } catch {
    return false;
  }
}

/**
 * Reads and checks the mount table of the tree's mount namespace. Returns undefined when the
 * tree shares the dumper's mounts (nothing to dump). `id`: the namespace's id (dump/namespaces.ts numbers them).
 */
export function collectMounts(tasks: Array<{ pid: number; zombie?: boolean }>, externalMounts: ReadonlyMap<string, string> | undefined, id: number): MountNsDump | undefined {
  const live = tasks.filter((t) => !t.zombie);
  const root = live[0].pid;
  const ns = fs.readlinkSync(`/proc/${root}/ns/mnt`);
  for (const t of live.slice(1)) {
    let theirs: string | undefined;
    try { theirs = fs.readlinkSync(`/proc/${t.pid}/ns/mnt`); } catch { continue; }
    if (theirs !== ns) {
      throw new DumpError('freeze', t.pid, `task ${t.pid}: its mount namespace (${theirs}) is not the one of the root task ${root} (${ns}); nested mount namespaces are not supported yet`);
    }
  }
  if (sameMountNs(root)) return undefined;

  const list = readMountinfo(root);
  const refuse = (m: MountInfo, why: string, hint?: string) =>
    new DumpError('freeze', root, `task ${root}: mount ${m.mntId} at ${m.mountPoint} (${m.fsType}, source ${m.source}, root ${m.root}) ${why}`, hint ? { hint } : {});
  const ids = new Set(list.map((m) => m.mntId));
  const roots = list.filter((m) => !ids.has(m.parentId));
  if (roots.length !== 1 || roots[0].mountPoint !== '/') {
    throw new DumpError('freeze', root, `task ${root}: its mount table has ${roots.length} top mounts (${roots.map((m) => m.mountPoint).join(', ')}); want exactly one, at /`);
  }
  const top = roots[0];
  const ext = externalMounts ?? new Map<string, string>();
  const entries: Msg[] = [];
  const tmpfs = new Map<number, string>();
  const within = (inner: string, outer: string) => outer === '/' || inner === outer || inner.startsWith(`${outer}/`);

  list.forEach((m) => {
    const { sbFlags, options } = superOptionsOf(m.fsType, m.superOptions);
    const prop = propagationOf(m);
    const e: Msg = {
      fstype: FSTYPE[m.fsType] ?? 0, mnt_id: m.mntId, root_dev: kdevOf(m.dev), parent_mnt_id: m.parentId,
      // CRIU keeps the propagation in the flags too.
      flags: (mountFlagsOf(m.options) | (prop.shared ? MS.SHARED : 0) | (prop.master ? MS.SLAVE : 0) | (m.optional.includes('unbindable') ? MS.UNBINDABLE : 0)) >>> 0, root: m.root, mountpoint: m.mountPoint, source: m.source, options,
      shared_id: prop.shared, master_id: prop.master, sb_flags: sbFlags,
    };
    entries.push(e);
    const key = ext.get(m.mountPoint);
    if (key !== undefined) {
      e.ext_key = key || m.mountPoint;
      return;
    }
    const external = `declare it external: --external mnt[${m.mountPoint}]:KEY`;
    if (prop.master) {
      const from = list.some((o) => propagationOf(o).shared === prop.master) ? 'another mount of the namespace' : 'outside the namespace';
      throw refuse(m, `is a slave mount (master:${prop.master}, receiving mount events from ${from}); that is not supported yet`, `make it private, or ${external}`);
    }
    if (m === top) return; // the restore binds --root here
    if (['overlay', 'fuse', 'autofs', 'nsfs', 'fuseblk'].includes(m.fsType) || m.fsType.startsWith('fuse.')) {
      throw refuse(m, 'cannot be dumped: its filesystem type is not supported', external);
    }
    // A bind mount: of the first whole mount of a kernel filesystem of that device, or of the root.
    const primary = list.find((o) => o.dev === m.dev && o.root === '/' && FRESH_FS.has(o.fsType) && !ext.has(o.mountPoint));
    const source = primary && primary !== m ? primary : m.dev === top.dev && within(m.root, top.root) ? top : undefined;
    if (source) return;
    if (!FRESH_FS.has(m.fsType)) {
      throw refuse(m, 'is a bind mount from outside the mount namespace, or a filesystem that cannot be mounted afresh', external);
    }
    if (m.root !== '/') {
      throw refuse(m, 'shows a part of a filesystem that no mount of the namespace shows whole', external);
    }
    if (m.fsType === 'tmpfs') {
      if (list.some((o) => o.parentId === m.mntId && o.mountPoint === m.mountPoint)) {
        throw refuse(m, 'is covered by another mount at the same place: its contents cannot be read', external);
      }
      tmpfs.set(kdevOf(m.dev), m.mountPoint);
    }
  });
  // CRIU lists the mounts last-mounted first.
  entries.reverse();
  return { id, mntIds: ids, images: [{ file: `mountpoints-${id}.img`, magic: 'MNTS', entries }], tmpfs };
}

/**
 * Archives every tmpfs of the namespace (through the root task's root) into
 * tmpfs-dev-<dev>.tar.gz.img: numeric owners, permissions, device nodes, this mount only.
 */
export function dumpTmpfs(pid: number, ns: MountNsDump, imagesDir: string): void {
  for (const [dev, mountPoint] of ns.tmpfs) {
    const file = path.join(imagesDir, `tmpfs-dev-${dev}.tar.gz.img`);
    const dir = `/proc/${pid}/root${mountPoint}`;
    // tar would create the file with the umask's mode: it is an image like any other, 0600 from the start.
    fs.writeFileSync(file, '', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    const r = spawnSync('tar', ['--create', '--gzip', '--numeric-owner', '--preserve-permissions', '--one-file-system', '--sparse', '--xattrs',
      '--directory', dir, '--file', file, '.'], { encoding: 'latin1' });
    // Exit 1 is GNU tar's "file changed as we read it": frozen tasks change nothing, but a
    // directory that is a mountpoint of another filesystem (runc's /sys/fs/cgroup/<controller>
    // on a tmpfs) reads differently through the mount; its contents are skipped anyway.
    if (r.error || (r.status !== 0 && !(r.status === 1 && /file changed as we read it/.test(r.stderr)))) {
      throw new DumpError('files', pid, `archiving the tmpfs at ${mountPoint} with tar failed: ${r.error?.message ?? `exit ${r.status}: ${r.stderr.trim()}`}`, { file });
    }
    fs.chmodSync(file, 0o600);
  }
}
