/**
 * Namespaces of a dumped tree, as CRIU records them.
 *
 * - Every namespace gets an id (ids-N.img, inventory root_ids): the dumper's own first (pid 1,
 *   net 2, ipc 3, uts 4, time 5, mnt 6, user 7, cgroup 8, in CRIU's order), then each namespace a
 *   task holds that was not seen yet, task by task in pstree order, kind by kind in that order.
 * - The root task may be the init (pid 1) of a pid namespace of its own, as a container's init
 *   is: the images then name every task by its pid in that namespace. Its uts and ipc
 *   namespaces may be its own too (utsns-ID.img, ipcns-var-ID.img), and its network namespace
 *   if the caller declared it external (net[INODE]:KEY → netns-ID.img with ext_key).
 * - Its mount namespace may be its own: dump/mounts.ts writes its mount table.
 * - Anything else (a namespace of its own below the root, a root in a foreign pid namespace
 *   without being its init, a user/cgroup namespace of its own) would come back wrong, so
 *   it is refused at dump time, naming the task and the namespace.
 * (Time namespaces are handled apart: their clock offsets are dumped and restored.)
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { Msg } from '@criu/images';
import { readStatus } from '../proc/status.js';
import type { ExternalResources } from '../ns/external.js';
import { inNamespaceOf } from '../ns/enter.js';
import { sameMountNs } from './mounts.js';
import { DumpError } from './errors.js';

/** The ns fields of task_kobj_ids_entry, in the order CRIU numbers them. */
const NS_FIELDS = [
  ['pid', 'pid_ns_id'], ['net', 'net_ns_id'], ['ipc', 'ipc_ns_id'], ['uts', 'uts_ns_id'],
  ['time', 'time_ns_id'], ['mnt', 'mnt_ns_id'], ['user', 'user_ns_id'], ['cgroup', 'cgroup_ns_id'],
] as const;
type NsKind = (typeof NS_FIELDS)[number][0];

/** The dumper's namespaces: the ids CRIU gives them (inventory root_ids). */
export const ROOT_NS_IDS: Record<string, number> = Object.fromEntries(NS_FIELDS.map(([, f], i) => [f, i + 1]));

const WHAT: Record<string, string> = {
  pid: 'pid namespace',
  pid_for_children: "children's pid namespace (set by unshare(CLONE_NEWPID))",
  mnt: 'mount namespace',
  net: 'network namespace',
  uts: 'uts namespace',
  ipc: 'ipc namespace',
  user: 'user namespace',
  cgroup: 'cgroup namespace',
};


const nsLink = (pid: number | 'self', file: string): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid === 'self' ? 'thread-self' : pid}/ns/${file}`);
  } catch {
    return undefined; // a kernel without that kind (or a task that just exited): nothing to compare
  }
};

const inodeOf = (link: string) => /\[(\d+)\]/.exec(link)?.[1] ?? link;

/** What the dump writes about the tree's namespaces. */
export interface TreeNamespaces {
  /** The root is the init of a pid namespace of its own: images name tasks by their pids there. */
  ownPidNs: boolean;
  /** A host pid or tid of the tree → as the tree sees it (the same outside a pid namespace of its own). */
  nsPid(hostPid: number): number;
  /** Process group and session of a task as the tree sees them. */
  pgidSid(hostPid: number, stat: { pgid: number; sid: number }): { pgid: number; sid: number };
  /** The ns fields of ids-N.img for a live task. */
  idsOf(hostPid: number): Msg;
  /** utsns-ID.img, ipcns-var-ID.img, netns-ID.img for the namespaces of the root that are its own. */
  images: Array<[file: string, magic: string, entries: Msg[]]>;
}

interface Task { pid: number; zombie?: boolean; threads: Array<{ pid: number }> }

/**
 * Checks the namespaces of every task of the frozen tree and numbers them; reads what the root's
 * own uts/ipc namespaces hold. Throws a DumpError for anything that cannot be restored.
 */
export function collectNamespaces(tasks: Task[], external?: ExternalResources): TreeNamespaces {
  const root = tasks[0];
  const ours = new Map<string, string | undefined>(NS_FIELDS.map(([k]) => [k, nsLink('self', k)]));
  const refuse = (pid: number, msg: string, hint?: string): never => {
    throw new DumpError('freeze', pid, `task ${pid}: ${msg}`, hint ? { hint } : {});
  };
  const rootLinks = new Map<string, string | undefined>([...NS_FIELDS.map(([k]) => k), 'pid_for_children'].map((k) => [k, nsLink(root.pid, k)]));
  const own = (k: string) => {
    const theirs = rootLinks.get(k), mine = ours.get(k === 'pid_for_children' ? 'pid' : k);
    return !!theirs && !!mine && theirs !== mine;
  };
  const ownPidNs = own('pid');
  const rootStatus = readStatus(root.pid);
  if (ownPidNs) {
    const levels = rootStatus.nsPid;
    if (levels.length > 2) refuse(root.pid, `it is in a pid namespace nested ${levels.length - 1} levels below the dumper's (${rootLinks.get('pid')}); only one level is supported`);
    if (levels[levels.length - 1] !== 1) {
      refuse(root.pid, `its pid namespace (${rootLinks.get('pid')}) is not the dumper's and it is not that namespace's init (its pid there is ${levels[levels.length - 1]})`, 'dump the init (pid 1) of the namespace, or from inside the namespace');
    }
  }
  const externalNet = own('net') ? external?.nets.get(inodeOf(rootLinks.get('net')!)) : undefined;
  if (own('net') && externalNet === undefined) {
    const ino = inodeOf(rootLinks.get('net')!);
    refuse(root.pid, `its network namespace (${rootLinks.get('net')}) is not the dumper's; dumping network namespaces is not supported, only declaring one external`, `pass --external net[${ino}]:KEY and restore with --inherit-fd fd[N]:KEY`);
  }

  // What every task must share with the root (its own namespaces are the root's, or the dumper's).
  for (const t of tasks) {
    if (t.zombie) continue; // a zombie has no namespaces left; its parent's are checked
    for (const k of ['pid', 'pid_for_children', 'net', 'uts', 'ipc', 'mnt', 'user', 'cgroup']) {
      const theirs = nsLink(t.pid, k);
      const want = k === 'pid_for_children' ? rootLinks.get('pid') : rootLinks.get(k);
      if (!theirs || !want || theirs === want) continue;
      if (k === 'mnt' && theirs !== want && sameMountNs(t.pid)) continue;
      const dumpers = ours.get(k === 'pid_for_children' ? 'pid' : k);
      refuse(t.pid, `its ${WHAT[k]} is not the dumper's (${theirs}, the dumper's ${dumpers})${t === root ? '' : ` nor the root's (${want})`}; dumping namespaces is not supported yet${t === root ? '' : ' below the root task'}`, 'run the dump from inside the same namespaces (e.g. nsenter -t PID -a criu dump ...)');
    }
  }
  // Kinds of namespaces the root may not have of its own (yet); its mount namespace is dumped by
  // dump/mounts.ts (or refused there, mount by mount).
  for (const k of ['user', 'cgroup'] as const) {
    if (!own(k)) continue;
    refuse(root.pid, `its ${WHAT[k]} is not the dumper's (${rootLinks.get(k)}, the dumper's ${ours.get(k)}); dumping namespaces is not supported yet`, 'run the dump from inside the same namespaces (e.g. nsenter -t PID -a criu dump ...)');
  }

  // Ids, CRIU's numbering: the dumper's 1..8, then new ones in pstree order.
  const idOfLink = new Map<string, number>();
  NS_FIELDS.forEach(([k], i) => { const l = ours.get(k); if (l) idOfLink.set(`${k}:${l}`, i + 1); });
  let next = NS_FIELDS.length + 1;
  const ids = new Map<number, Msg>();
  for (const t of tasks) {
    if (t.zombie) continue;
    const m: Msg = {};
    for (const [k, field] of NS_FIELDS) {
      let link = nsLink(t.pid, k);
      // Time namespaces are handled apart (timens-0.img); a copy of our mounts is our mounts.
      if (k === 'time' || (k === 'mnt' && link !== ours.get(k) && sameMountNs(t.pid))) link = ours.get(k);
      if (!link) { m[field] = ROOT_NS_IDS[field]; continue; }
      const key = `${k}:${link}`;
      if (!idOfLink.has(key)) idOfLink.set(key, next++);
      m[field] = idOfLink.get(key)!;
    }
    ids.set(t.pid, m);
  }

  // Pids as the tree sees them.
  const nsPids = new Map<number, number>();
  if (ownPidNs) {
    for (const t of tasks) {
      for (const th of t.threads.length ? t.threads : [{ pid: t.pid }]) {
        const st = readStatus(t.pid, th.pid);
        nsPids.set(th.pid, st.nsPid[st.nsPid.length - 1]);
      }
    }
  }
  const rootIds = ids.get(root.pid)!;
  const images: TreeNamespaces['images'] = [];
  if (own('uts')) images.push([`utsns-${rootIds.uts_ns_id}.img`, 'UTSNS', [utsOf(root.pid)]]);
  if (own('ipc')) images.push([`ipcns-var-${rootIds.ipc_ns_id}.img`, 'IPC_VAR', [ipcVarsOf(root.pid)]]);
  if (externalNet !== undefined) images.push([`netns-${rootIds.net_ns_id}.img`, 'NETNS', [{ ext_key: externalNet }]]);

  return {
    ownPidNs,
    nsPid: (hostPid) => (ownPidNs ? nsPids.get(hostPid) ?? nsPidOf(hostPid) : hostPid),
    pgidSid(hostPid, stat) {
      if (!ownPidNs) return stat;
      const st = readStatus(hostPid);
      const pgid = st.nsPgid[st.nsPgid.length - 1] ?? 0, sid = st.nsSid[st.nsSid.length - 1] ?? 0;
      if (!sid) refuse(hostPid, `its session leader (${stat.sid}) is outside its pid namespace; only a tree whose sessions are inside can be restored`, 'the namespace init should call setsid(), as container runtimes do');
      if (!pgid) refuse(hostPid, `its process group leader (${stat.pgid}) is outside its pid namespace`);
      return { pgid, sid };
    },
    idsOf: (hostPid) => ids.get(hostPid) ?? { ...ROOT_NS_IDS },
    images,
  };
}

function nsPidOf(hostPid: number): number {
  const st = readStatus(hostPid);
  return st.nsPid[st.nsPid.length - 1];
}


/** utsns_entry: the node and domain names of the task's uts namespace. */
function utsOf(pid: number): Msg {
  const UTS_LEN = 65;
  const buf = Buffer.alloc(UTS_LEN * 6);
  inNamespaceOf(pid, 'uts', () => sys.syscall('uname', buf));
  const field = (i: number) => {
    const s = buf.subarray(i * UTS_LEN, (i + 1) * UTS_LEN);
    const end = s.indexOf(0);
    return s.subarray(0, end < 0 ? s.length : end).toString('utf8');
  };
  return { nodename: field(1), domainname: field(5) };
}

/** ipc_var_entry: the sysctls of the task's ipc namespace; SysV objects in it are refused. */
function ipcVarsOf(pid: number): Msg {
  return inNamespaceOf(pid, 'ipc', () => {
    for (const kind of ['shm', 'msg', 'sem']) {
      let lines: string[] = [];
      try { lines = fs.readFileSync(`/proc/sysvipc/${kind}`, 'latin1').trim().split('\n').slice(1).filter(Boolean); } catch { /* no SysV IPC in this kernel */ }
      if (lines.length) {
        const what = { shm: 'shared memory segment', msg: 'message queue', sem: 'semaphore set' }[kind];
        throw new DumpError('freeze', pid, `task ${pid}: its ipc namespace holds ${lines.length} SysV ${what}(s); dumping SysV IPC objects is not supported yet`);
      }
    }
    const read = (p: string, optional = false): string | undefined => {
      try {
        return fs.readFileSync(`/proc/sys/${p}`, 'latin1').trim();
      } catch (e) {
        if (optional) return undefined;
        throw new DumpError('freeze', pid, `task ${pid}: cannot read /proc/sys/${p} of its ipc namespace: ${(e as Error).message}`, { cause: e });
      }
    };
    const u32 = (p: string) => Number(read(p));
    const u64 = (p: string) => BigInt(read(p)!);
    const opt = (p: string) => { const v = read(p, true); return v === undefined ? undefined : Number(v); };
    const e: Msg = {
      sem_ctls: read('kernel/sem')!.split(/\s+/).map(Number),
      msg_ctlmax: u32('kernel/msgmax'), msg_ctlmnb: u32('kernel/msgmnb'), msg_ctlmni: u32('kernel/msgmni'),
      auto_msgmni: opt('kernel/auto_msgmni') ?? 0,
      shm_ctlmax: u64('kernel/shmmax'), shm_ctlall: u64('kernel/shmall'), shm_ctlmni: u32('kernel/shmmni'),
      shm_rmid_forced: u32('kernel/shm_rmid_forced'),
      mq_queues_max: u32('fs/mqueue/queues_max'), mq_msg_max: u32('fs/mqueue/msg_max'), mq_msgsize_max: u32('fs/mqueue/msgsize_max'),
    };
    const msgDefault = opt('fs/mqueue/msg_default'), msgsizeDefault = opt('fs/mqueue/msgsize_default');
    if (msgDefault !== undefined) e.mq_msg_default = msgDefault;
    if (msgsizeDefault !== undefined) e.mq_msgsize_default = msgsizeDefault;
    // The next-id knobs only when set (-1 is the kernel's "not set"), as CRIU writes them.
    for (const [p, f] of [['kernel/msg_next_id', 'msg_next_id'], ['kernel/sem_next_id', 'sem_next_id'], ['kernel/shm_next_id', 'shm_next_id']]) {
      const v = opt(p);
      if (v !== undefined && v >= 0) e[f] = v;
    }
    return e;
  });
}
