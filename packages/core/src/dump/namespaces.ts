/**
 * Namespaces: criu-ts restores tasks into the namespaces of the restorer (the images name one of
 * each kind, as CRIU's do for a tree that lives in the dumper's namespaces). A task in a pid,
 * mount, network, uts, ipc, user or cgroup namespace of its own would silently come back in the
 * host's, so such a tree is refused at dump time, naming the task and the namespace. Mount
 * namespaces are the exception: dump/mounts.ts dumps them (or refuses them mount by mount).
 * (Time namespaces are handled apart: their clock offsets are dumped and restored.)
 */
import * as fs from 'node:fs';
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
