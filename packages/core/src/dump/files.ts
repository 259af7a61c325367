/**
 * Files of a task, as CRIU 4.1 dumps them: file_entry records (files.img, through the shared
 * FileRegistry), fdinfo_entry per descriptor (fdinfo-N.img), fs_entry (cwd, root, umask), the
 * exe file id for mm, file ids of mapped files (vma_entry.shmid), and tty_info_entry records.
 *
 * Id order follows CRIU: mapped files in address order, then descriptors, then exe (usually
 * already known as the first mapping), cwd and root. Mapped files, exe, cwd and root share ids
 * when they are the same file (st_dev, st_ino, mount); descriptors share an id when they are
 * the same open file description (kcmp KCMP_FILE), never with the path-registered ones.
 */
import * as fs from 'node:fs';
import { sys, SOCKOPT } from '@criu/sys';
import type { Msg } from '@criu/images';
import { FD_TYPE } from './file-registry.js';
import type { TaskDumpContext } from './model.js';
import type { MapsEntry } from '../proc/maps.js';
import { listFds, readFdInfo, type FdInfo } from '../proc/fdinfo.js';
import { readStatus } from '../proc/status.js';
import { readBuildIdFromFd } from './files-build-id.js';
import { CTTY_INFO_ID, checkPtyQueues, cttyInfo, ptyInfo, ptyInfoId, ptyMasterIndex } from './files-tty.js';
import { pipeDataOf } from './pipes.js';
import {
  FilesDumpError, S_IFDIR, S_IFMT, S_IFREG, UnsupportedFileError, classifyLink, deletedFileRefusal, devMajor, devMinor, nameStillNames, refusal,
} from './files-kinds.js';
import { ghostsOf } from './files-ghost.js';
import { locksOf, parseLockLines } from './file-locks.js';
import { eventfdEntry, eventpollEntry, signalfdEntry, timerfdEntry } from './files-anon.js';
import { inotifyEntry } from './files-inotify.js';
import { fileImagesOf } from './files-images.js';
import { peekQueue, sockOpts, unixDiag, unixNameText, unixPath, unixSkEntry } from './files-unix.js';
import { inetRow, unixSocketRefusal } from './files-kinds.js';
import { AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, inetDiag, inetDiagRefusal, inetSkEntry } from './files-inet.js';

export { UnsupportedFileError, FilesDumpError, checkFilesSupported, classifyFd, ptyMastersOf } from './files-kinds.js';
export { checkUnixSockets } from './files-unix.js';

const UNIX_LISTEN = 10;
export { TtyError } from './files-tty.js';

const O_ACCMODE = 0o3;
const O_WRONLY = 0o1;
const O_APPEND = 0o2000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const FD_CLOEXEC = 1;
const F_GETSIG = 11;
const F_GETOWN_EX = 16;
const F_GETOWNER_UIDS = 17;
const SOL_SOCKET = 1;

export interface FilesResult {
  /** fdinfo_entry per descriptor, by fd number, for fdinfo-<files_id>.img. */
  fdinfo: Msg[];
  /** fs_entry for fs-<pid>.img. */
  fs: Msg;
  /** mm_entry.exe_file_id. */
  exeFileId: number;
  /** tty_info_entry records first seen in this task, for tty-info.img. */
  ttyInfo: Msg[];
  /**
   * Further images of this task (none yet: reserved for tty data). Images shared by the whole
   * dump (memfd.img, fifo-data.img, sk-queues.img, memfd contents, remap-fpath.img and
   * ghost-file-N.img, filelocks.img) are written by collectFiles itself (see files-images.ts,
   * files-ghost.ts, file-locks.ts): they grow with every task.
   */
  extraImages: Array<{ file: string; magic: string; entries: Msg[] }>;
}

type FownEntry = { uid: number; euid: number; signum: number; pid_type: number; pid: number };
const NO_FOWN: FownEntry = Object.freeze({ uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 });

/** reg_file_entry (regfile.proto) the way dump_one_reg_file fills it (mnt_id only with a mount ns of the tree's own). */
function regFileEntry(id: number, name: string, flags: number, pos: bigint, fown: FownEntry, st: fs.BigIntStats, buildIdFd: () => number | undefined, mntId?: number): Msg {
  const e: Msg = { id, flags, pos, fown: { ...fown }, name, mode: Number(st.mode) };
  // In a dumped mount namespace: the mount the file is on (its name is relative to the namespace's root).
  if (mntId !== undefined) e.mnt_id = mntId;
  const isReg = (Number(st.mode) & S_IFMT) === S_IFREG;
  // CRIU skips the size (and build-id) of write-only O_APPEND files such as logs.
  const checkSize = !((flags & O_ACCMODE) === O_WRONLY && (flags & O_APPEND));
  if (isReg && checkSize) {
    e.size = st.size;
    const fd = buildIdFd();
    if (fd !== undefined) {
      const words = readBuildIdFromFd(fd, st.size);
      if (words) e.build_id = words;
    }
  }
  return e;
}

function openRead(p: string, dir = false): number | undefined {
  try {
    return fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | (dir ? fs.constants.O_DIRECTORY : 0));
  } catch {
    return undefined;
  }
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try { fs.closeSync(fd); } catch { /* already closed */ }
}

/** mnt_id of our own descriptor `fd` (/proc/self/fdinfo). */
function mntIdOf(fd: number): number {
  try {
    return readFdInfo(process.pid, fd).mntId;
  } catch {
    return -1;
  }
}

// Ghost files are recreated next to their old name, which in a restored mount namespace is not
// a host path: not done yet.
const GHOST_IN_MNTNS = 'is not supported yet in a mount namespace of the tree\'s own (ghost files)';

/**
 * A file of a task in a dumped mount namespace must be on one of its mounts (a file opened
 * before the task moved there, e.g. on the host's root, cannot be reopened from inside).
 */
function checkInNamespace(ctx: TaskDumpContext, what: string, name: string, mntId: number): number {
  if (!ctx.mountIds!.has(mntId)) {
    throw new UnsupportedFileError(ctx.pid, what, name, 'file outside the mount namespace', `is on mount ${mntId}, which is not in the task's mount namespace: it cannot be reopened there`);
  }
  return mntId;
}

/**
 * Registers a file reached by a path through /proc (exe, cwd, root, map_files entry): opens
 * it read-only, keys it by (st_dev, st_ino, mnt_id), writes its reg_file_entry the first time.
 */
function internSpecial(ctx: TaskDumpContext, what: string, procPath: string): number {
  const { pid } = ctx;
  let name: string;
  try {
    name = fs.readlinkSync(procPath);
  } catch (e) {
    throw new FilesDumpError(pid, what, `cannot read ${procPath}: ${(e as Error).message}`, { cause: e });
  }
  const fd = openRead(procPath);
  let st: fs.BigIntStats;
  try {
    st = fd !== undefined ? fs.fstatSync(fd, { bigint: true }) : fs.statSync(procPath, { bigint: true });
  } catch (e) {
    closeQuietly(fd);
    throw new FilesDumpError(pid, what, `cannot stat ${procPath} (${name}): ${(e as Error).message}`, { cause: e });
  }
  try {
    let ghost = false;
    if (name.endsWith(' (deleted)') && !nameStillNames(pid, name, st)) {
      // A mapped file, the executable or the working directory that was unlinked: a ghost image holds it.
      const why = what !== 'root' ? (fd === undefined ? 'cannot be read' : ctx.mountIds ? GHOST_IN_MNTNS : deletedFileRefusal(st, ctx.ghostLimit)) : 'is not supported yet (unlinked files need ghost images)';
      if (why) throw new UnsupportedFileError(pid, what, name, (Number(st.mode) & S_IFMT) === S_IFDIR ? 'deleted directory' : 'deleted file', why);
      ghost = true;
      name = name.slice(0, -' (deleted)'.length);
    }
    if (!name.startsWith('/')) throw new UnsupportedFileError(pid, what, name, 'file without a path');
    const mntId = fd !== undefined ? mntIdOf(fd) : -1;
    const mntIdField = ctx.mountIds ? checkInNamespace(ctx, what, name, mntId) : undefined;
    const key = `special:${st.dev}:${st.ino}:${mntId}`;
    return ctx.files.intern(key, FD_TYPE.REG, (id) => {
      ctx.log.debug(`files: ${what} of ${pid} is ${name}${ghost ? ' (deleted: ghost file)' : ''} (id ${id})`);
      if (ghost) ghostsOf(ctx.files).add(id, fd!, st);
      return regFileEntry(id, name, 0, 0n, NO_FOWN, st, () => fd, mntIdField);
    });
  } finally {
    closeQuietly(fd);
  }
}

/** True for mappings CRIU dumps as file-backed vmas of a regular file. */
function isFileMapping(m: MapsEntry): boolean {
  return m.inode !== 0 && m.name.startsWith('/') && !m.name.startsWith('/memfd:') && !m.name.startsWith('/SYSV') &&
    !m.name.startsWith('/[aio]') && !m.name.startsWith('/dev/zero');
}

/**
 * The file id of a file-backed mapping (its vma_entry.shmid): the reg_file_entry of the mapped
 * file, shared with every other mapping, exe, cwd or root that is the same file.
 */
export function mappedFileId(ctx: TaskDumpContext, m: MapsEntry): number {
  const range = `${m.start.toString(16)}-${m.end.toString(16)}`;
  const key = `${ctx.pid}:${range}`;
  const known = ctx.files.vmaIds.get(key);
  if (known !== undefined) return known;
  // Another mapping of the same file (device, inode and path in this task: so the same mount
  // too) has its id already: no need to open it again (a shared library has 4-5 mappings, and
  // this runs while the task is frozen).
  const same = m.inode !== 0 && !m.name.endsWith(' (deleted)') ? `${ctx.pid}:${m.dev}:${m.inode}:${m.name}` : undefined;
  const sameId = same === undefined ? undefined : ctx.files.vmaIds.get(same);
  const id = sameId ?? internSpecial(ctx, `mapping ${range}`, `/proc/${ctx.pid}/map_files/${range}`);
  ctx.files.vmaIds.set(key, id);
  if (same !== undefined) ctx.files.vmaIds.set(same, id);
  return id;
}

function fownOf(lfd: number, flags: number): FownEntry {
  if (flags & O_PATH) return { ...NO_FOWN };
  const fown: FownEntry = { ...NO_FOWN };
  const sig = sys.trySyscall('fcntl', lfd, F_GETSIG, 0);
  if (sig.errno === 0) fown.signum = Number(sig.ret);
  const owner = Buffer.alloc(8);
  if (sys.trySyscall('fcntl', lfd, F_GETOWN_EX, owner).errno !== 0) return fown;
  const type = owner.readInt32LE(0);
  const opid = owner.readInt32LE(4);
  if (opid === 0) return fown;
  const uids = Buffer.alloc(8);
  if (sys.trySyscall('fcntl', lfd, F_GETOWNER_UIDS, uids).errno === 0) {
    fown.uid = uids.readUInt32LE(0);
    fown.euid = uids.readUInt32LE(4);
  }
  fown.pid_type = type;
  fown.pid = opid;
  return fown;
}


interface FdState { fd: number; lfd: number; link: string; st: fs.BigIntStats; info: FdInfo }

/** The raw text of /proc/PID/fdinfo/FD (for the kinds that need more than FdInfo parses). */
function fdinfoText(pid: number, fd: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
  } catch (e) {
    throw new FilesDumpError(pid, `fd ${fd}`, `cannot read /proc/${pid}/fdinfo/${fd}: ${(e as Error).message}`, { cause: e });
  }
}

/** A glibc dev_t as the kernel's internal one (what fdinfo's "sdev:" prints). */
function kernelDev(dev: bigint): number {
  return ((devMajor(dev) << 20) | devMinor(dev)) >>> 0;
}

/** Everything about the task's files; see FilesResult. The parasite must be running. */
export async function collectFiles(ctx: TaskDumpContext): Promise<FilesResult> {
  const { pid, log } = ctx;

  // 1. mapped files, in address order (CRIU meets them first, while collecting vmas).
  for (const m of ctx.maps) {
    if (!isFileMapping(m)) continue;
    let st: fs.Stats;
    try {
      st = fs.statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`);
    } catch {
      continue; // gone or unreadable: the vma step reports it
    }
    if ((st.mode & S_IFMT) === S_IFREG) mappedFileId(ctx, m);
  }

  // 2. descriptors (none for a task whose table, shared with an earlier task, is dumped already).
  let fds: number[];
  try {
    fds = ctx.fdsDumpedWith !== undefined ? [] : listFds(pid).filter((fd) => !ctx.ignoreFds?.has(fd)); // criu-ts's own (memory tracking uffd)
  } catch (e) {
    throw new FilesDumpError(pid, 'fds', `cannot list /proc/${pid}/fd: ${(e as Error).message}`, { cause: e });
  }
  const lfds = ctx.parasite.receiveFds(fds);
  const fdinfo: Msg[] = [];
  const ttyInfo: Msg[] = [];
  try {
    const states: FdState[] = fds.map((fd, i) => {
      const lfd = lfds[i];
      try {
        return { fd, lfd, link: fs.readlinkSync(`/proc/self/fd/${lfd}`), st: fs.fstatSync(lfd, { bigint: true }), info: readFdInfo(pid, fd) };
      } catch (e) {
        throw new FilesDumpError(pid, `fd ${fd}`, `cannot inspect it: ${(e as Error).message}`, { cause: e });
      }
    });
    const mntOf = (s: FdState) => (ctx.mountIds ? checkInNamespace(ctx, `fd ${s.fd}`, s.link, s.info.mntId) : undefined);
    for (const s of states) {
      const cls = classifyLink(s.link, s.st, () => nameStillNames(pid, s.link, s.st), ctx.ghostLimit);
      // The parasite's own socket, by its descriptor number (a restored task's sockets may also
      // have been made by this process, so the peer's pid cannot tell them apart).
      if (cls.kind === 'socket' && s.fd === ctx.parasite.taskFd) {
        log.debug(`files: fd ${s.fd} of ${pid} is the parasite's control socket, skipped`);
        continue;
      }
      const err = refusal(pid, s.fd, s.link, cls, ctx.shellJob, ctx.files.ptyMasters);
      if (err) throw err;

      const flags = s.info.flags & ~O_CLOEXEC;
      const fdFlags = s.info.flags & O_CLOEXEC ? FD_CLOEXEC : 0;
      const fown = fownOf(s.lfd, flags);
      const gen = `${s.st.dev}:${s.st.ino}:${s.info.pos}`;
      let type: number;
      let id: number;
      if (cls.kind === 'pty-slave' || cls.kind === 'pty-master') {
        // Each side: a tty_file_entry on the reg_file_entry of the path it was opened by, and
        // the side's tty_info_entry (index * 2, + 1 for the master) once per dump.
        type = FD_TYPE.TTY;
        const master = cls.kind === 'pty-master';
        const index = master ? ptyMasterIndex(pid, s.fd, s.lfd) : cls.index;
        // A pty inside the tree must have nothing queued: tty-data.img is not written.
        if (master || ctx.files.ptyMasters.has(index)) checkPtyQueues(pid, s.fd, s.lfd, master, index);
        const infoId = ptyInfoId(index, master);
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (tid) => {
          const regfId = ctx.files.intern(`tty-regf:${tid}`, FD_TYPE.REG, (rid) =>
            regFileEntry(rid, s.link, flags, s.info.pos, fown, s.st, () => undefined, mntOf(s)));
          const info = ctx.files.addTtyInfo(infoId, () => ptyInfo(pid, s.fd, s.lfd, s.st, index, master));
          if (info) ttyInfo.push(info);
          return { id: tid, tty_info_id: infoId, flags, fown: { ...fown }, regf_id: regfId };
        }));
      } else if (cls.kind === 'ctty') {
        // /dev/tty (refusal() let it through: the task's ctty is a pty inside the tree).
        type = FD_TYPE.TTY;
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (tid) => {
          const regfId = ctx.files.intern(`tty-regf:${tid}`, FD_TYPE.REG, (rid) =>
            regFileEntry(rid, s.link, flags, s.info.pos, fown, s.st, () => undefined, mntOf(s)));
          const info = ctx.files.addTtyInfo(CTTY_INFO_ID, () => cttyInfo(pid, s.fd, s.lfd, s.st));
          if (info) ttyInfo.push(info);
          return { id: tid, tty_info_id: CTTY_INFO_ID, flags, fown: { ...fown }, regf_id: regfId };
        }));
      } else if (cls.kind === 'pipe') {
        // Each end (each open file description) is its own pipe_entry; pipe_id is the inode.
        type = FD_TYPE.PIPE;
        ({ id } = ctx.files.internOpenFile(pid, s.fd, `${gen}:${flags & O_ACCMODE}`, type, (pid_) =>
          ({ id: pid_, pipe_id: cls.inode, flags, fown: { ...fown } })));
        try {
          pipeDataOf(ctx.files).capture(cls.inode, s.lfd, flags);
        } catch (e) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot read the data buffered in ${s.link}: ${(e as Error).message}`, { cause: e });
        }
      } else if (cls.kind === 'inotify') {
        const text = fdinfoText(pid, s.fd);
        type = FD_TYPE.INOTIFY;
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (iid) => inotifyEntry(pid, s.fd, iid, flags, { ...fown }, text)));
      } else if (cls.kind === 'eventfd' || cls.kind === 'timerfd' || cls.kind === 'signalfd' || cls.kind === 'epoll') {
        const text = fdinfoText(pid, s.fd);
        const f = { ...fown };
        if (cls.kind === 'eventfd') {
          type = FD_TYPE.EVENTFD;
          ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (eid) => eventfdEntry(pid, s.fd, eid, flags, f, text)));
        } else if (cls.kind === 'timerfd') {
          type = FD_TYPE.TIMERFD;
          ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (tid) => timerfdEntry(pid, s.fd, tid, flags, f, text)));
        } else if (cls.kind === 'signalfd') {
          type = FD_TYPE.SIGNALFD;
          ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (sid) => signalfdEntry(pid, s.fd, sid, flags, f, text)));
        } else {
          type = FD_TYPE.EVENTPOLL;
          const target = (tfd: number) => {
            const t = states.find((x) => x.fd === tfd);
            return t && { ino: t.st.ino, sdev: kernelDev(t.st.dev) };
          };
          ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (pid_) => eventpollEntry(pid, s.fd, pid_, flags, f, text, target)));
        }
      } else if (cls.kind === 'socket' && inetRow(pid, cls.inode)) {
        // A TCP listener or an unconnected TCP/UDP socket (refusal() let only those through).
        const row = inetRow(pid, cls.inode)!;
        type = FD_TYPE.INETSK;
        const proto = row.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
        let d: ReturnType<typeof inetDiag>;
        try {
          d = inetDiag(row.v6 ? AF_INET6 : AF_INET, proto, cls.inode);
        } catch (e) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot query ${s.link} through inet_diag: ${(e as Error).message}`, { cause: e });
        }
        const why = inetDiagRefusal(d, proto);
        if (why) throw new UnsupportedFileError(pid, s.fd, s.link, proto === IPPROTO_TCP ? 'TCP socket' : 'UDP socket', why);
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (iid) => {
          try {
            return inetSkEntry(iid, s.lfd, d, proto, flags, { ...fown });
          } catch (e) {
            throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot read the options of ${s.link}: ${(e as Error).message}`, { cause: e });
          }
        }));
      } else if (cls.kind === 'socket') {
        // A unix socket (refusal() and checkUnixSockets let only restorable ones through).
        type = FD_TYPE.UNIXSK;
        const images = fileImagesOf(ctx.files);
        let d: ReturnType<typeof unixDiag>;
        try {
          d = unixDiag(cls.inode);
        } catch (e) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot query ${s.link} through sock_diag: ${(e as Error).message}`, { cause: e });
        }
        if (d.peer) {
          const why = unixSocketRefusal(pid, d.peer);
          if (why) throw new UnsupportedFileError(pid, s.fd, s.link, 'unix socket', `is not supported yet (its peer socket:[${d.peer}] ${why.replace(/^is not supported yet \((.*)\)$/, '$1')})`);
        }
        if (d.state === UNIX_LISTEN && d.rqueue > 0) {
          throw new UnsupportedFileError(pid, s.fd, s.link, 'unix socket', `is not supported yet (listening on ${unixNameText(d.name)} with ${d.rqueue} connection(s) waiting in its accept queue)`);
        }
        // The mode and owner of a path-bound socket's file (seen from the task's root).
        const file = unixPath(d.name);
        let perms: { mode: number; uid: number; gid: number } | undefined;
        if (file !== undefined) {
          try {
            const st = fs.statSync(`/proc/${pid}/root${file}`);
            perms = { mode: st.mode, uid: st.uid, gid: st.gid };
          } catch (e) {
            throw new UnsupportedFileError(pid, s.fd, s.link, 'unix socket', `is not supported yet (its socket file ${file} is gone: ${(e as Error).message})`);
          }
        }
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (uid) => {
          let queue: Buffer[];
          try {
            // A listener has no data queue (its queue holds connections, refused above).
            queue = d.state === UNIX_LISTEN ? [] : peekQueue(s.lfd, d.type);
          } catch (e) {
            if (/SCM_RIGHTS/.test((e as Error).message)) {
              throw new UnsupportedFileError(pid, s.fd, s.link, 'unix socket', 'is not supported yet (descriptors in flight: SCM_RIGHTS queued on it)');
            }
            throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot read the data queued on ${s.link}: ${(e as Error).message}`, { cause: e });
          }
          for (const b of queue) images.skQueues.push({ message: { id_for: uid, length: b.length }, extra: { kind: 'bytes', data: b } });
          const entry = unixSkEntry(uid, d, flags, { ...fown }, sockOpts(s.lfd), perms);
          images.unixOrder.place(d.ino, d.peer, () => ctx.files.pushEntry(type, uid, entry));
          return undefined;
        }));
      } else if (cls.kind === 'memfd') {
        type = FD_TYPE.MEMFD;
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (mid) => {
          try {
            const inodeId = fileImagesOf(ctx.files).memfdInode(ctx.imagesDir, s.lfd, s.link, s.st, ctx.pageSize);
            return { id: mid, flags, pos: s.info.pos, fown: { ...fown }, inode_id: inodeId };
          } catch (e) {
            throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot save the memfd ${s.link}: ${(e as Error).message}`, { cause: e });
          }
        }));
      } else if (cls.kind === 'fifo') {
        // Like a pipe end, plus the reg_file_entry of the path it was opened by (written first).
        type = FD_TYPE.FIFO;
        if (!nameStillNames(pid, s.link, s.st)) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `${s.link} now names another file than the FIFO open (CRIU: "Unaccessible path opened")`);
        }
        ({ id } = ctx.files.internOpenFile(pid, s.fd, `${gen}:${flags & O_ACCMODE}`, type, (fid) => {
          const regfId = ctx.files.intern(`fifo-regf:${fid}`, FD_TYPE.REG, (rid) => regFileEntry(rid, s.link, flags, s.info.pos, fown, s.st, () => undefined, mntOf(s)));
          return { id: fid, pipe_id: cls.inode, regf_id: regfId };
        }));
        try {
          fileImagesOf(ctx.files).fifoData.capture(cls.inode, s.lfd, flags);
        } catch (e) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot read the data buffered in the FIFO ${s.link}: ${(e as Error).message}`, { cause: e });
        }
      } else {
        if (cls.kind !== 'reg') throw new UnsupportedFileError(pid, s.fd, s.link, cls.kind);
        type = FD_TYPE.REG;
        const named = nameStillNames(pid, s.link, s.st);
        const deleted = s.link.endsWith(' (deleted)') && !named;
        if (!deleted && !named) {
          throw new FilesDumpError(pid, `fd ${s.fd}`, `${s.link} now names another file than the one open (CRIU: "Unaccessible path opened")`);
        }
        ({ id } = ctx.files.internOpenFile(pid, s.fd, gen, type, (rid) => {
          let rfd: number | undefined;
          try {
            const entry = regFileEntry(rid, deleted ? s.link.slice(0, -' (deleted)'.length) : s.link, flags, s.info.pos, fown, s.st, () => (rfd ??= openRead(`/proc/self/fd/${s.lfd}`)), mntOf(s));
            if (deleted) {
              if (ctx.mountIds) throw new UnsupportedFileError(pid, s.fd, s.link, 'deleted file', GHOST_IN_MNTNS);
              // Unlinked: the contents go into a ghost image (classifyLink let only those through).
              rfd ??= openRead(`/proc/self/fd/${s.lfd}`);
              if (rfd === undefined) throw new FilesDumpError(pid, `fd ${s.fd}`, `cannot read the deleted file ${s.link} for its ghost image`);
              ghostsOf(ctx.files).add(rid, rfd, s.st);
              log.debug(`files: fd ${s.fd} of ${pid} is the deleted ${s.link} (id ${rid}): ghost file`);
            }
            return entry;
          } finally {
            closeQuietly(rfd);
          }
        }));
      }
      if (s.info.locks.length) locksOf(ctx.files).add(pid, s.fd, id, parseLockLines(pid, s.fd, s.link, s.info.locks));
      fdinfo.push({ id, flags: fdFlags, type, fd: s.fd });
    }
  } finally {
    for (const lfd of lfds) closeQuietly(lfd);
  }

  // 3. exe, cwd, root.
  const exeFileId = internSpecial(ctx, 'exe', `/proc/${pid}/exe`);
  const cwdId = internSpecial(ctx, 'cwd', `/proc/${pid}/cwd`);
  const rootId = internSpecial(ctx, 'root', `/proc/${pid}/root`);

  let umask: number | undefined;
  try {
    umask = ctx.parasite.taskState().umask;
  } catch (e) {
    umask = readStatus(pid).umask;
    if (umask === undefined) throw new FilesDumpError(pid, 'umask', `neither the parasite nor /proc/${pid}/status told it`, { cause: e });
  }
  fileImagesOf(ctx.files).unixOrder.flush();
  await fileImagesOf(ctx.files).flush(ctx.imagesDir);
  await ghostsOf(ctx.files).flush(ctx.imagesDir);
  await locksOf(ctx.files).flush(ctx.imagesDir);
  log.info(`files: task ${pid}: ${fdinfo.length} descriptors, cwd id ${cwdId}, root id ${rootId}, exe id ${exeFileId}`);
  return { fdinfo, fs: { cwd_id: cwdId, root_id: rootId, umask }, exeFileId, ttyInfo, extraImages: [] };
}
