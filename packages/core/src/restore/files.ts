/**
 * A task's descriptors, cwd, root and umask, rebuilt by syscalls injected into it. Each file kind
 * is opened the way it must be; a file that several tasks share comes from the restorer
 * (SharedFiles) as one open file description through pidfd_getfd.
 */
import * as fs from 'node:fs';
import type { Msg } from '@criu/images';
import type { FrozenTask } from '../infect/frozen-task.js';
import { RestoreError } from './errors.js';
import { need, type TaskImages } from './images-in.js';
import type { Scratch } from './scratch.js';
import type { SharedFiles } from './shared-files.js';
import { epollEvent } from './files-anon.js';
import type { GhostFiles } from './ghost-files.js';
import { bridgeOf, restorerPidfd } from './namespaces.js';

// These open flags have the same values on x86_64 and ppc64 (O_DIRECTORY and O_DIRECT do not).
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = -100;
const FD_TYPE_REG = 1, FD_TYPE_EVENTPOLL = 7, FD_TYPE_TTY = 11;
const EPOLL_CTL_ADD = 1, F_SETFL = 4;
const F_SETFD = 2, F_DUPFD_CLOEXEC = 1030, FD_CLOEXEC = 1;

/** The path of a regular-file entry (mapped files, exe, cwd, root). */
export function regFileName(img: TaskImages, id: number, what: string): string {
  const f = img.files.get(id);
  if (!f) throw new RestoreError('map-vmas', `${what}: no file with id ${id}`, { file: 'files.img', field: 'id' });
  if (f.type !== FD_TYPE_REG || !f.reg) throw new RestoreError('files', `${what}: file ${id} is of type ${f.type}, not a regular file`, { file: 'files.img', field: 'type' });
  return (f.reg as Msg).name as string;
}

export function restoreFiles(task: FrozenTask, scratch: Scratch, img: TaskImages, shellJob: boolean, shared: SharedFiles, ghosts?: GhostFiles): void {
  // A table shared with the parent (CLONE_FILES) is the parent's, restored once by the parent; so
  // is shared fs info (CLONE_FS): setting it again would, e.g., chroot twice.
  if (!img.sharesWithParent?.files) restoreFds(task, scratch, img, shellJob, shared, ghosts);
  if (!img.sharesWithParent?.fs) restoreFs(task, scratch, img, ghosts);
}

function restoreFds(task: FrozenTask, scratch: Scratch, img: TaskImages, shellJob: boolean, shared: SharedFiles, ghosts?: GhostFiles): void {
  const pid = task.pid;
  // (A bridge to the restorer stays: see restore/namespaces.ts.)
  const bridge = bridgeOf(pid);
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`).map(Number)) if (fd !== bridge) task.syscall('close', fd);
  const fdinfoFile = `fdinfo-${img.ids.files_id}.img`;
  const opened = new Map<number, number>();
  const entries = [...img.fdinfo].sort((a, b) => Number(a.fd) - Number(b.fd));
  const maxFd = entries.reduce((m, e) => Math.max(m, Number(e.fd)), 2);
  // A pidfd of the restorer inside the task, above every fd it will have, to take shared files from us.
  let pidfd = -1;
  const takeFromUs = (lfd: number): number => {
    if (pidfd < 0) {
      const p = restorerPidfd(task);
      pidfd = Number(task.syscall('fcntl', p, F_DUPFD_CLOEXEC, maxFd + 1));
      task.syscall('close', p);
    }
    return Number(task.syscall('pidfd_getfd', pidfd, lfd, 0));
  };
  /** Moves the task's descriptor `got` to `fd` with the right close-on-exec flag. */
  const place = (got: number, fd: number, cloexec: boolean) => {
    if (got !== fd) {
      task.syscall('dup3', got, fd, cloexec ? O_CLOEXEC : 0);
      task.syscall('close', got);
    } else {
      task.syscall('fcntl', fd, F_SETFD, cloexec ? FD_CLOEXEC : 0);
    }
  };
  const epolls: Array<{ fd: number; ep: Msg }> = [];
  entries.forEach((e, i) => {
    const fd = Number(need(e.fd, fdinfoFile, 'fd', i));
    const id = Number(need(e.id, fdinfoFile, 'id', i));
    const cloexec = (Number(e.flags ?? 0) & 1) !== 0;
    const known = opened.get(id);
    if (known !== undefined) {
      task.syscall('dup3', known, fd, cloexec ? O_CLOEXEC : 0);
      return;
    }
    const held = shared.heldFd(id);
    if (held !== undefined) {
      place(takeFromUs(held), fd, cloexec);
      opened.set(id, fd);
      return;
    }
    const f = img.files.get(id);
    if (!f) throw new RestoreError('files', `fd ${fd}: no file with id ${id}`, { file: 'files.img', record: i, field: 'id' });
    const own = f.type === FD_TYPE_TTY ? shared.pathInTask(id) : undefined;
    if (own !== undefined) {
      // /dev/tty: the task opens it itself; its session got its terminal when it was created.
      const flags = Number((f.tty as Msg).flags ?? 0) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
      const r = task.rawSyscall('openat', AT_FDCWD, scratch.str(own), flags | (cloexec ? O_CLOEXEC : 0), 0);
      if (r < 0n) throw new RestoreError('files', `fd ${fd}: cannot open ${own} (errno ${-r})`, { file: 'files.img', field: 'tty' });
      place(Number(r), fd, cloexec);
      opened.set(id, fd);
      return;
    }
    if (f.type === FD_TYPE_TTY) {
      throw new RestoreError('files', `fd ${fd}: terminal file ${id} was not prepared (not a pty of the dump${shellJob ? '' : ', nor an outside terminal under --shell-job'})`, { file: 'files.img', field: 'tty' });
    }
    if (f.type === FD_TYPE_EVENTPOLL) {
      const ep = f.epfd as Msg;
      place(Number(task.syscall('epoll_create1', O_CLOEXEC)), fd, cloexec);
      const fl = Number(ep.flags ?? 0) & ~3;
      if (fl) task.syscall('fcntl', fd, F_SETFL, fl);
      opened.set(id, fd);
      epolls.push({ fd, ep });
      if (shared.isShared(id)) shared.take(pid, fd, id);
      return;
    }
    if (f.type !== FD_TYPE_REG || !f.reg) throw new RestoreError('files', `fd ${fd}: file type ${f.type} is not supported yet`, { file: 'files.img', field: 'type' });
    const reg = f.reg as Msg;
    const name = reg.name as string;
    const flags = Number(reg.flags ?? 0) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    const openAt = (p: string) => task.rawSyscall('openat', AT_FDCWD, scratch.str(p), flags | (cloexec ? O_CLOEXEC : 0), 0);
    const r = ghosts ? ghosts.open(id, name, openAt) : openAt(name);
    if (r < 0n) throw new RestoreError('files', `fd ${fd}: cannot open ${name} (errno ${-r})`, { file: 'files.img', field: 'reg.name', hint: Number(-r) === 2 ? 'the file was removed or renamed since the dump' : undefined });
    if (reg.pos !== undefined && BigInt(reg.pos as bigint) !== 0n) task.syscall('lseek', Number(r), BigInt(reg.pos as bigint), 0);
    place(Number(r), fd, cloexec);
    opened.set(id, fd);
    // Other tasks hold the same open file description: they will take it from us.
    if (shared.isShared(id)) shared.take(pid, fd, id);
  });
  if (pidfd >= 0) task.syscall('close', pidfd);
  // Every descriptor is in place: each epoll gets its targets, by their descriptor numbers.
  for (const { fd, ep } of epolls) {
    for (const [k, t] of ((ep.tfd as Msg[] | undefined) ?? []).entries()) {
      const r = task.rawSyscall('epoll_ctl', fd, EPOLL_CTL_ADD, Number(t.tfd), scratch.arg(epollEvent(Number(t.events), BigInt(t.data as bigint))));
      if (r < 0n) throw new RestoreError('files', `fd ${fd}: cannot add descriptor ${t.tfd} to the epoll (errno ${-r})`, { file: 'files.img', field: `epfd.tfd[${k}]` });
    }
  }
}

/** cwd, root, umask. */
function restoreFs(task: FrozenTask, scratch: Scratch, img: TaskImages, ghosts?: GhostFiles): void {
  const fsFile = `fs-${img.pid}.img`;
  const cwdId = Number(need(img.fs.cwd_id, fsFile, 'cwd_id'));
  const cwd = regFileName(img, cwdId, 'cwd');
  const root = regFileName(img, Number(need(img.fs.root_id, fsFile, 'root_id')), 'root');
  if (root !== '/') task.syscall('chroot', scratch.str(root));
  const chdir = (p: string) => task.rawSyscall('chdir', scratch.str(p));
  const r = ghosts ? ghosts.open(cwdId, cwd, chdir) : chdir(cwd);
  if (r < 0n) throw new RestoreError('files', `cannot enter the working directory ${cwd} (errno ${-r})`, { file: fsFile, field: 'cwd_id' });
  if (img.fs.umask !== undefined) task.syscall('umask', Number(img.fs.umask));
}

