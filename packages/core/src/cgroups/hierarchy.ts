// Cgroup facts shared by dump and restore: which cgroup a task is in, per hierarchy
// (/proc/PID/cgroup), and where each hierarchy is mounted in our view (/proc/self/mountinfo).
// A hierarchy is named as /proc/PID/cgroup names it: "cpu,cpuacct" or "name=systemd" for v1,
// "" for the v2 (unified) one.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** hierarchy name → path of the task's cgroup in it (absolute in the hierarchy). */
export function taskCgroups(pid: number | 'self'): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    if (!line) continue;
    // hierarchy-ID:controller-list:path (the path may contain ':')
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const name = line.slice(a + 1, b);
    const p = line.slice(b + 1);
    // A v1 hierarchy with no controller and no name (hierarchy ID > 0, empty list) is not a thing we can move into.
    if (name === '' && line.slice(0, a) !== '0') continue;
    out.set(name, p);
  }
  return out;
}

/** A mount of a cgroup hierarchy: its root inside the hierarchy and where it is mounted. */
export interface CgroupMount {
  /** the hierarchy name ("" for cgroup2) */
  name: string;
  /** controllers and name= of a v1 mount (from its super options) */
  cnames: string[];
  root: string;
  mountPoint: string;
  v2: boolean;
}

const MOUNT_OPTS = new Set(['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'relatime', 'noatime', 'xattr', 'clone_children', 'nsdelegate', 'memory_recursiveprot', 'favordynmods', 'memory_localevents', 'memory_hugetlb_accounting', 'cpuset_v2_mode', 'noprefix']);

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup hierarchies mounted in this process's view (first mount of each wins). */
export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const l = line.slice(0, sep).split(' ');
    const r = line.slice(sep + 3).split(' ');
    const fsType = r[0];
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    const root = unescape(l[3]);
    const mountPoint = unescape(l[4]);
    if (fsType === 'cgroup2') {
      out.push({ name: '', cnames: [], root, mountPoint, v2: true });
      continue;
    }
    const cnames = (r[2] ?? '').split(',').filter((o) => o && !MOUNT_OPTS.has(o) && !o.startsWith('release_agent='));
    out.push({ name: cnames.join(','), cnames, root, mountPoint, v2: false });
  }
  return out;
}

/** The mount of hierarchy `name` (same controller set, in any order), if any. */
export function mountOf(mounts: CgroupMount[], name: string): CgroupMount | undefined {
  if (name === '') return mounts.find((m) => m.v2);
  const want = name.split(',').sort().join(',');
  return mounts.find((m) => !m.v2 && [...m.cnames].sort().join(',') === want);
}

/**
 * The directory of cgroup `cgPath` (absolute in the hierarchy) through mount `m`, or undefined
 * when the mount shows only another part of the hierarchy.
 */
export function dirOf(m: CgroupMount, cgPath: string): string | undefined {
  const rel = path.posix.relative(m.root, path.posix.resolve('/', cgPath));
  if (rel.startsWith('..')) return undefined;
  return path.join(m.mountPoint, rel);
}
