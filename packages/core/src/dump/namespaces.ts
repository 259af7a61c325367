/**
 * Namespaces: criu-ts restores tasks into the namespaces of the restorer (the images name one of
 * each kind, as CRIU's do for a tree that lives in the dumper's namespaces). A task in a pid,
 * mount, network, uts, ipc, user or cgroup namespace of its own would silently come back in the
 * host's, so such a tree is refused at dump time, naming the task and the namespace.
 * (Time namespaces are handled apart: their clock offsets are dumped and restored.)
 */
import * as fs from 'node:fs';
import { readMountinfo } from '../proc/mountinfo.js';
import { DumpError } from './errors.js';

const KINDS: Array<[file: string, what: string]> = [
  ['pid', 'pid namespace'],
  ['pid_for_children', "children's pid namespace (set by unshare(CLONE_NEWPID))"],
  ['mnt', 'mount namespace'],
  ['net', 'network namespace'],
  ['uts', 'uts namespace'],
  ['ipc', 'ipc namespace'],
  ['user', 'user namespace'],
  ['cgroup', 'cgroup namespace'],
];

const nsLink = (pid: number | 'self', file: string): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/${file}`);
  } catch {
    return undefined; // a kernel without that kind (or a task that just exited): nothing to compare
  }
};

/**
 * A mount namespace that is another copy of ours (e.g. `ip netns exec` gives every command its
 * own copy with /sys remounted) resolves every path the same way: the same mounts. They are
 * compared as sets, because copying a namespace lists its mounts in another order.
 */
function sameMounts(pid: number): boolean {
  const key = (p: number | 'self') => {
    const list = readMountinfo(p === 'self' ? process.pid : p);
    return list.map((m) => `${m.mountPoint} ${m.root} ${m.fsType} ${m.source}`).sort().join('\n');
  };
  try {
    return key(pid) === key('self');
  } catch {
    return false;
  }
}

/** Throws a DumpError for the first live task whose namespaces are not the dumper's. */
export function checkNamespaces(tasks: Array<{ pid: number; zombie?: boolean }>): void {
  const ourLinks = new Map(KINDS.map(([file]) => [file, nsLink('self', file === 'pid_for_children' ? 'pid' : file)]));
  for (const t of tasks) {
    if (t.zombie) continue; // a zombie has no namespaces left; its parent's are checked
    for (const [file, what] of KINDS) {
      const theirs = nsLink(t.pid, file);
      const ours = ourLinks.get(file);
      if (!theirs || !ours || theirs === ours) continue;
      if (file === 'mnt') continue; // dumped by collectMounts (dump/mounts.ts)
      throw new DumpError('freeze', t.pid, `task ${t.pid}: its ${what} is not the dumper's (${theirs}, the dumper's ${ours}); dumping namespaces is not supported yet`, {
        hint: 'run the dump from inside the same namespaces (e.g. nsenter -t PID -a criu dump ...)',
      });
    }
  }
}
