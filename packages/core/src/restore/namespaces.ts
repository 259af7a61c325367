/**
 * Namespaces on restore, as CRIU decides them: the root task's ns ids (ids-N.img) are compared
 * with the dumper's (inventory root_ids); each kind that differs was the root's own, and the
 * root is created in a new one (clone3 CLONE_NEWPID / CLONE_NEWUTS / CLONE_NEWIPC: it becomes
 * pid 1 there, the other tasks get their pids in it by set_tid). Its uts names and ipc sysctls
 * are set from utsns-ID.img / ipcns-var-ID.img by the root itself; an external network namespace
 * (netns-ID.img with ext_key) is joined with setns() on the descriptor the caller passes for that
 * key (CRIU's --inherit-fd fd[N]:KEY).
 *
 * Tasks inside a new pid namespace cannot see the restorer, so they cannot pidfd_open() it to
 * take descriptors from it: each inherits a pidfd of the restorer (the "bridge") from the helper
 * at a descriptor above all the dumped ones, closed once the files are in place.
 */
import * as fs from 'node:fs';
import type { Msg } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { InheritFd } from '../ns/external.js';
import { RestoreError } from './errors.js';
import { dirSource, type ImageSource, type TaskImages } from './images-in.js';
import { readImage } from './files-kinds.js';
import type { Scratch } from './scratch.js';

export const CLONE_NEWIPC = 0x08000000, CLONE_NEWUTS = 0x04000000, CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000;
const O_WRONLY = 1, O_CLOEXEC = 0o2000000, AT_FDCWD = -100, F_DUPFD_CLOEXEC = 1030;
/** __NEW_UTS_LEN: the longest node or domain name. */
const UTS_LEN = 64;

export interface NamespacePlan {
  /** clone3 flags of the root task. */
  cloneFlags: number;
  newPidNs: boolean;
  uts?: { nodename: string; domainname: string; file: string };
  /** Sysctl path under /proc/sys → value, in the order they are written. */
  ipcVars?: { values: Array<[string, string]>; file: string };
  /** The restorer's descriptor of the external network namespace to join. */
  netFd?: { fd: number; key: string };
}

/** The one record of image `file` (of kind `magic`). */
function readOne(src: ImageSource, file: string, magic: string): Msg {
  const entries = readImage(src, file, magic);
  if (entries.length !== 1) throw new RestoreError('read-images', `expected 1 record, found ${entries.length}`, { file });
  return entries[0].message;
}

const KINDS = [
  ['pid_ns_id', 'pid'], ['net_ns_id', 'network'], ['ipc_ns_id', 'ipc'], ['uts_ns_id', 'uts'],
  ['mnt_ns_id', 'mount'], ['user_ns_id', 'user'], ['cgroup_ns_id', 'cgroup'],
] as const;

/** What the images say about namespaces, checked before anything is created. */
export function planNamespaces(images: string | ImageSource, tasks: TaskImages[], inheritFds: InheritFd[] = []): NamespacePlan {
  const src = typeof images === 'string' ? dirSource(images) : images;
  const inv = readOne(src, 'inventory.img', 'INVENTORY');
  const rootIds = inv.root_ids as Msg | undefined;
  const plan: NamespacePlan = { cloneFlags: 0, newPidNs: false };
  if (!rootIds) return plan;
  const root = tasks[0];
  const own = (field: string) => root.ids[field] !== undefined && rootIds[field] !== undefined && Number(root.ids[field]) !== Number(rootIds[field]);
  // Every task is in the root's namespaces: a namespace of its own below the root cannot be made.
  for (const t of tasks.slice(1)) {
    for (const [field, what] of KINDS) {
      if (t.ids[field] !== undefined && root.ids[field] !== undefined && Number(t.ids[field]) !== Number(root.ids[field])) {
        throw new RestoreError('read-images', `task ${t.pid} is in a ${what} namespace (${t.ids[field]}) that is not the root task's (${root.ids[field]}); only the root task's own namespaces can be restored`, { file: `ids-${t.pid}.img`, field });
      }
    }
  }
  for (const [field, what] of KINDS) {
    if (!own(field) || field === 'pid_ns_id' || field === 'uts_ns_id' || field === 'ipc_ns_id' || field === 'net_ns_id') continue;
    // A mount namespace of its own is rebuilt by restore/mounts.ts from its mount table.
    if (field === 'mnt_ns_id' && src.has(`mountpoints-${Number(root.ids[field])}.img`)) continue;
    throw new RestoreError('read-images', `the root task has a ${what} namespace of its own (${root.ids[field]}, the dumper's ${rootIds[field]}); restoring it is not supported yet`, { file: `ids-${root.pid}.img`, field });
  }
  if (own('pid_ns_id')) {
    if (root.pid !== 1) throw new RestoreError('read-images', `the root task has a pid namespace of its own but is not its init (pid ${root.pid})`, { file: 'pstree.img', record: 0, field: 'pid' });
    plan.cloneFlags |= CLONE_NEWPID;
    plan.newPidNs = true;
  }
  if (own('uts_ns_id')) {
    const file = `utsns-${root.ids.uts_ns_id}.img`;
    const e = readOne(src, file, 'UTSNS');
    const name = (field: 'nodename' | 'domainname'): string => {
      const v = e[field];
      if (typeof v !== 'string') throw new RestoreError('read-images', 'required value missing', { file, record: 0, field });
      if (Buffer.byteLength(v) > UTS_LEN || v.includes('\0')) throw new RestoreError('read-images', `${field} '${v.slice(0, 80)}' is not a valid name (at most ${UTS_LEN} bytes, no NUL)`, { file, record: 0, field });
      return v;
    };
    plan.uts = { nodename: name('nodename'), domainname: name('domainname'), file };
    plan.cloneFlags |= CLONE_NEWUTS;
  }
  if (own('ipc_ns_id')) {
    const file = `ipcns-var-${root.ids.ipc_ns_id}.img`;
    plan.ipcVars = { values: ipcSysctls(readOne(src, file, 'IPC_VAR'), file), file };
    plan.cloneFlags |= CLONE_NEWIPC;
  }
  if (own('net_ns_id')) {
    const file = `netns-${root.ids.net_ns_id}.img`;
    const e = readOne(src, file, 'NETNS');
    const key = e.ext_key as string | undefined;
    if (!key) throw new RestoreError('read-images', 'the root task has a network namespace of its own, dumped whole; only an external one (ext_key) can be restored', { file, record: 0, field: 'ext_key' });
    const inherit = inheritFds.find((x) => x.key === key);
    if (!inherit) throw new RestoreError('read-images', `the network namespace is external (key '${key}') and no descriptor was given for it`, { file, record: 0, field: 'ext_key', hint: `pass --inherit-fd fd[N]:${key} with N a descriptor of that network namespace` });
    plan.netFd = { fd: inherit.fd, key };
  }
  return plan;
}

/** ipc_var_entry → the sysctls it sets, checked. */
function ipcSysctls(e: Msg, file: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const num = (field: string, optional = false): string | undefined => {
    const v = e[field];
    if (v === undefined || v === null) {
      if (optional) return undefined;
      throw new RestoreError('read-images', 'required value missing', { file, record: 0, field });
    }
    return String(v);
  };
  const sem = (e.sem_ctls as number[] | undefined) ?? [];
  if (sem.length !== 4) throw new RestoreError('read-images', `sem_ctls has ${sem.length} values, not 4 (semmsl semmns semopm semmni)`, { file, record: 0, field: 'sem_ctls' });
  out.push(['kernel/sem', sem.join(' ')]);
  for (const [p, f] of [['kernel/msgmax', 'msg_ctlmax'], ['kernel/msgmnb', 'msg_ctlmnb'], ['kernel/msgmni', 'msg_ctlmni'], ['kernel/shmmax', 'shm_ctlmax'],
    ['kernel/shmall', 'shm_ctlall'], ['kernel/shmmni', 'shm_ctlmni'], ['kernel/shm_rmid_forced', 'shm_rmid_forced'], ['fs/mqueue/queues_max', 'mq_queues_max'],
    ['fs/mqueue/msg_max', 'mq_msg_max'], ['fs/mqueue/msgsize_max', 'mq_msgsize_max']]) out.push([p, num(f)!]);
  for (const [p, f] of [['fs/mqueue/msg_default', 'mq_msg_default'], ['fs/mqueue/msgsize_default', 'mq_msgsize_default'],
    ['kernel/msg_next_id', 'msg_next_id'], ['kernel/sem_next_id', 'sem_next_id'], ['kernel/shm_next_id', 'shm_next_id']]) {
    const v = num(f, true);
    if (v !== undefined) out.push([p, v]);
  }
  return out;
}

/**
 * The root task, just created in its new namespaces, gives them their state: names, ipc
 * sysctls (through /proc/sys, which follows the writer's ipc namespace), the network namespace.
 */
export function setupRootNamespaces(task: FrozenTask, scratch: Scratch, plan: NamespacePlan, bridgeFd: number | undefined): void {
  if (plan.netFd) {
    const pidfd = restorerPidfd(task, bridgeFd);
    const r = task.rawSyscall('pidfd_getfd', pidfd, plan.netFd.fd, 0);
    task.syscall('close', pidfd);
    if (r < 0n) throw new RestoreError('clone', `the descriptor ${plan.netFd.fd} given for '${plan.netFd.key}' cannot be taken (errno ${-r})`, { hint: 'is it open in the restoring process?' });
    const s = task.rawSyscall('setns', Number(r), CLONE_NEWNET);
    task.syscall('close', Number(r));
    if (s < 0n) throw new RestoreError('clone', `joining the network namespace given for '${plan.netFd.key}' failed (setns: errno ${-s})`, { hint: `descriptor ${plan.netFd.fd} must be a network namespace (e.g. an open /proc/PID/ns/net or /var/run/netns/NAME)` });
  }
  if (plan.uts) {
    for (const [call, value, field] of [['sethostname', plan.uts.nodename, 'nodename'], ['setdomainname', plan.uts.domainname, 'domainname']] as const) {
      const b = Buffer.from(value, 'utf8');
      const r = task.rawSyscall(call, scratch.arg(Buffer.concat([b, Buffer.alloc(1)])), b.length);
      if (r < 0n) throw new RestoreError('clone', `${call}('${value}') failed with errno ${-r}`, { file: plan.uts.file, record: 0, field });
    }
  }
  for (const [p, value] of plan.ipcVars?.values ?? []) {
    const fd = task.rawSyscall('openat', AT_FDCWD, scratch.str(`/proc/sys/${p}`), O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0n) throw new RestoreError('clone', `cannot open /proc/sys/${p} in the new ipc namespace (errno ${-fd})`, { file: plan.ipcVars!.file });
    const b = Buffer.from(value);
    const w = task.rawSyscall('write', Number(fd), scratch.arg(b), b.length);
    task.syscall('close', Number(fd));
    if (w < 0n) throw new RestoreError('clone', `writing '${value}' to /proc/sys/${p} failed with errno ${-w}`, { file: plan.ipcVars!.file });
  }
}

// ---- the bridge: a pidfd of the restorer that tasks in a new pid namespace inherit ----

/** Bridge descriptor by the host pid of a task that holds it. */
const bridges = new Map<number, number>();

/** The helper opens a pidfd of the restorer at a descriptor >= `above`; the tasks it clones inherit it. */
export function openBridge(helper: FrozenTask, above: number): number {
  const p = Number(helper.syscall('pidfd_open', process.pid, 0));
  const fd = Number(helper.syscall('fcntl', p, F_DUPFD_CLOEXEC, above));
  helper.syscall('close', p);
  return fd;
}

export function holdsBridge(hostPid: number, fd: number): void {
  bridges.set(hostPid, fd);
}

/** The bridge descriptor of a task, if it has one (restoreFds must keep it open). */
export function bridgeOf(hostPid: number): number | undefined {
  return bridges.get(hostPid);
}

/** Closes the bridge in every task holding one (a shared table once) and forgets them. */
export function closeBridges(tasks: FrozenTask[]): void {
  for (const t of tasks) {
    const fd = bridges.get(t.pid);
    if (fd === undefined) continue;
    bridges.delete(t.pid);
    try { t.rawSyscall('close', fd); } catch { /* a task being killed */ }
  }
}

/** Forgets the bridges of tasks a failed restore killed. */
export function forgetBridges(hostPids: number[]): void {
  for (const p of hostPids) bridges.delete(p);
}

/** A new descriptor in `task` referring to the restorer (pidfd), through the bridge if it has one. */
export function restorerPidfd(task: FrozenTask, bridgeFd = bridges.get(task.pid)): number {
  if (bridgeFd === undefined) return Number(task.syscall('pidfd_open', process.pid, 0));
  return Number(task.syscall('fcntl', bridgeFd, F_DUPFD_CLOEXEC, 0));
}

// ---- host pids of tasks created inside the new pid namespace ----

const lastNsPid = (file: string): number | undefined => {
  try {
    const m = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(file, 'latin1'));
    const v = m?.[1].trim().split(/\s+/).map(Number);
    return v?.[v.length - 1];
  } catch {
    return undefined;
  }
};

/** The host pid of the child of `parentHost` (any of its threads) whose pid in its namespace is `nsPid`. */
export function hostPidOfChild(parentHost: number, nsPid: number): number | undefined {
  for (const tid of fs.readdirSync(`/proc/${parentHost}/task`)) {
    let text = '';
    try { text = fs.readFileSync(`/proc/${parentHost}/task/${tid}/children`, 'latin1'); } catch { continue; }
    for (const w of text.trim().split(/\s+/).filter(Boolean)) {
      if (lastNsPid(`/proc/${w}/status`) === nsPid) return Number(w);
    }
  }
  return undefined;
}

/** The host tid of the thread of `hostPid` whose tid in its namespace is `nsTid`. */
export function hostTidOf(hostPid: number, nsTid: number): number | undefined {
  for (const tid of fs.readdirSync(`/proc/${hostPid}/task`)) {
    if (lastNsPid(`/proc/${hostPid}/task/${tid}/status`) === nsTid) return Number(tid);
  }
  return undefined;
}
