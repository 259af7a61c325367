/**
 * Open files that more than one restored task holds, and the files the restorer makes itself.
 * Each must come back as ONE open file description: the restorer holds it (a regular file or an
 * epoll opened by the first task that uses it and taken from there with pidfd_getfd; a pipe end
 * created here with pipe2 and filled with its pipes-data bytes; an eventfd, timerfd or signalfd
 * created here), and every task that needs it takes it from the restorer with pidfd_getfd.
 */
import * as fs from 'node:fs';
import { sys, F, O } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';
import type { TreeImages } from './images-in.js';
import * as path from 'node:path';
import { createEventfd, createSignalfd, createTimerfd } from './files-anon.js';
import { MemfdMaker, openFifo, readImage } from './files-kinds.js';
import { createUnixSockets } from './files-unix.js';
import { createInotify } from './files-inotify.js';
import { createInetSockets } from './files-inet.js';

export const FD_TYPE_REG = 1, FD_TYPE_PIPE = 2, FD_TYPE_FIFO = 3, FD_TYPE_INETSK = 4, FD_TYPE_UNIXSK = 5, FD_TYPE_EVENTFD = 6, FD_TYPE_EVENTPOLL = 7;
export const FD_TYPE_INOTIFY = 8, FD_TYPE_SIGNALFD = 9, FD_TYPE_TTY = 11, FD_TYPE_TIMERFD = 17, FD_TYPE_MEMFD = 18;

/** file_entry types restore handles, with the payload field each must carry. */
export const RESTORABLE: ReadonlyMap<number, string> = new Map([
  [FD_TYPE_REG, 'reg'], [FD_TYPE_PIPE, 'pipe'], [FD_TYPE_EVENTFD, 'efd'], [FD_TYPE_EVENTPOLL, 'epfd'],
  [FD_TYPE_SIGNALFD, 'sgfd'], [FD_TYPE_TIMERFD, 'tfd'], [FD_TYPE_MEMFD, 'memfd'], [FD_TYPE_FIFO, 'fifo'],
  [FD_TYPE_UNIXSK, 'usk'], [FD_TYPE_INETSK, 'isk'], [FD_TYPE_INOTIFY, 'ify'], [FD_TYPE_TTY, 'tty'],
]);
const O_ACCMODE = 3, O_RDONLY = 0, O_WRONLY = 1;
const O_NONBLOCK = 0o4000;
const DEFAULT_PIPE_SIZE = 65536;

export class SharedFiles {
  /** Our descriptor of each shared file id. */
  private readonly held = new Map<number, number>();
  /** How many tasks use each file id. */
  private readonly users = new Map<number, number>();
  /** Every descriptor we own (pipe ends nobody took included). */
  private readonly owned: number[] = [];

  /**
   * `inherited`: CRIU's --inherit-fd. A pipe whose key `pipe:[PIPE_ID]` is there is not made
   * anew: its ends are the caller's descriptor (e.g. the stdio pipes runc hands over).
   */
  constructor(private readonly inherited: ReadonlyArray<{ key: string; fd: number }> = []) {}

  /**
   * Counts users of each file and creates every pipe (filled with its data) and every file the
   * restorer makes itself. `imagesDir` defaults to the directory of the first task's pages.
   */
  prepare(tree: TreeImages, imagesDir = path.dirname(tree.tasks[0].pages.file)): void {
    for (const t of tree.tasks) {
      for (const id of new Set(t.fdinfo.map((e) => Number(e.id)))) this.users.set(id, (this.users.get(id) ?? 0) + 1);
    }
    const files = tree.tasks[0].files;
    const byPipe = new Map<number, Msg[]>();
    for (const id of this.users.keys()) {
      const f = files.get(id);
      if (!f || Number(f.type) !== FD_TYPE_PIPE) continue;
      const p = f.pipe as Msg | undefined;
      if (!p) throw new RestoreError('files', `file ${id} is a pipe without a pipe record`, { file: 'files.img', field: 'pipe' });
      const pipeId = Number(p.pipe_id);
      byPipe.set(pipeId, [...(byPipe.get(pipeId) ?? []), { ...p, id }]);
    }
    for (const [pipeId, ends] of byPipe) {
      const inh = this.inherited.find((x) => x.key === `pipe:[${pipeId}]`);
      if (inh) this.inheritPipe(pipeId, ends, inh.fd);
      else this.createPipe(pipeId, ends, tree.pipesData.get(pipeId));
    }
    // Files made here whatever the number of their users: the task takes them from us.
    const memfds = this.memfdMaker(imagesDir);
    const fifos = new Map<number, Array<{ id: number; reg: Msg }>>();
    for (const id of this.users.keys()) {
      const f = files.get(id);
      if (!f) continue;
      const type = Number(f.type);
      if (type === FD_TYPE_MEMFD) this.held.set(id, memfds.open(f.memfd as Msg));
      if (type === FD_TYPE_FIFO) {
        const fifo = f.fifo as Msg;
        const reg = files.get(Number(fifo.regf_id))?.reg as Msg | undefined;
        if (!reg) throw new RestoreError('read-images', `FIFO ${id}: no reg_file_entry ${fifo.regf_id}`, { file: 'files.img', field: 'fifo.regf_id' });
        const pipeId = Number(fifo.pipe_id);
        fifos.set(pipeId, [...(fifos.get(pipeId) ?? []), { id, reg }]);
      }
      if (type === FD_TYPE_EVENTFD) this.held.set(id, this.own(createEventfd(f.efd as Msg)));
      else if (type === FD_TYPE_TIMERFD) this.held.set(id, this.own(createTimerfd(f.tfd as Msg)));
      else if (type === FD_TYPE_SIGNALFD) this.held.set(id, this.own(createSignalfd(f.sgfd as Msg)));
      else if (type === FD_TYPE_INOTIFY) this.held.set(id, this.own(createInotify(f.ify as Msg)));
    }
    const unixIds = [...this.users.keys()].filter((id) => Number(files.get(id)?.type) === FD_TYPE_UNIXSK);
    if (unixIds.length) {
      const entries = new Map<number, Msg>();
      for (const [id, f] of files) if (Number(f.type) === FD_TYPE_UNIXSK && f.usk) entries.set(id, f.usk as Msg);
      const queues = new Map<number, Buffer[]>();
      readImage(imagesDir, 'sk-queues.img', 'SK_QUEUES', true).forEach(({ message: m, data: d }, i) => {
        const bytes = d ?? Buffer.alloc(0);
        if (bytes.length !== Number(m.length ?? 0)) throw new RestoreError('read-images', `packet for ${m.id_for}: ${bytes.length} bytes, the record says ${m.length}`, { file: 'sk-queues.img', record: i });
        const id = Number(m.id_for);
        queues.set(id, [...(queues.get(id) ?? []), bytes]);
      });
      for (const [id, fd] of createUnixSockets(unixIds, entries, queues, (fd) => this.own(fd))) this.held.set(id, fd);
    }
    const inetIds = [...this.users.keys()].filter((id) => Number(files.get(id)?.type) === FD_TYPE_INETSK);
    if (inetIds.length) {
      const entries = new Map<number, Msg>();
      for (const id of inetIds) entries.set(id, files.get(id)!.isk as Msg);
      for (const [id, fd] of createInetSockets(inetIds, entries, (fd) => this.own(fd))) this.held.set(id, fd);
    }
    if (fifos.size) {
      const data = new Map<number, { size: number; data: Buffer }>();
      readImage(imagesDir, 'fifo-data.img', 'FIFO_DATA', true).forEach(({ message: m, data: d }, i) => {
        const bytes = d ?? Buffer.alloc(0);
        if (bytes.length !== Number(m.bytes ?? 0)) throw new RestoreError('read-images', `FIFO ${m.pipe_id}: ${bytes.length} bytes of data, the record says ${m.bytes}`, { file: 'fifo-data.img', record: i });
        data.set(Number(m.pipe_id), { size: Number(m.size ?? 0), data: bytes });
      });
      for (const [pipeId, ends] of fifos) {
        for (const [id, fd] of openFifo(pipeId, ends, data.get(pipeId), (fd) => this.own(fd))) this.held.set(id, fd);
      }
    }
  }

  private memfds?: MemfdMaker;

  /** One maker for the whole restore: a memfd inode both mapped and open is created once. */
  private memfdMaker(imagesDir: string): MemfdMaker {
    this.memfds ??= new MemfdMaker(imagesDir, (fd) => this.own(fd));
    return this.memfds;
  }

  /**
   * Our read-write descriptor of the memfd inode behind file `id` (a MEMFD file_entry) that a
   * vma maps (shared anonymous memory); the task takes it from us and maps it.
   */
  mappedMemfd(files: Map<number, Msg>, id: number, imagesDir: string): number {
    const f = files.get(id);
    const m = f?.memfd as Msg | undefined;
    if (!f || Number(f.type) !== FD_TYPE_MEMFD || !m) throw new RestoreError('map-vmas', `file ${id} is not a memfd`, { file: 'files.img', field: 'type' });
    return this.memfdMaker(imagesDir).inodeFd(Number(m.inode_id));
  }

  /** Our descriptor of the object of VMA_ANON_SHARED mappings with `shmid` (`size`: the largest pgoff + length). */
  anonShmem(shmid: number, size: bigint, imagesDir: string): number {
    return this.memfdMaker(imagesDir).anonFd(shmid, size);
  }

  /** Files each task opens itself by path (/dev/tty: only the task's own session can). */
  private readonly byPath = new Map<number, string>();
  openInTask(id: number, p: string): void {
    this.byPath.set(id, p);
  }
  pathInTask(id: number): string | undefined {
    return this.byPath.get(id);
  }

  /** Holds `fd`, made by the restorer (a pty side), as file `id`: the tasks take it from us. */
  hold(id: number, fd: number): void {
    if (!this.owned.includes(fd)) this.owned.push(fd);
    this.held.set(id, fd);
  }

  /** Records a descriptor the restorer made, closed with the others. */
  own(fd: number): number {
    this.owned.push(fd);
    return fd;
  }

  private createPipe(pipeId: number, ends: Msg[], saved: { size: number; data: Buffer } | undefined): void {
    const [r, w] = sys.pipe2(O.CLOEXEC).map((fd) => this.own(fd));
    const want = Math.max(saved?.size ?? 0, saved?.data.length ?? 0);
    if (want > DEFAULT_PIPE_SIZE && sys.fcntl(w, F.GETPIPE_SZ) < want) {
      try {
        sys.fcntl(w, F.SETPIPE_SZ, want);
      } catch (e) {
        throw new RestoreError('files', `pipe ${pipeId}: cannot grow its buffer to ${want} bytes: ${(e as Error).message}`, { file: 'pipes-data.img', hint: 'see /proc/sys/fs/pipe-max-size' });
      }
    }
    if (saved?.data.length) {
      let off = 0;
      while (off < saved.data.length) off += fs.writeSync(w, saved.data, off, saved.data.length - off);
    }
    let usedR = false, usedW = false;
    for (const e of ends) {
      const flags = Number(e.flags ?? 0);
      const mode = flags & O_ACCMODE;
      let fd: number;
      if (mode === O_RDONLY && !usedR) { fd = r; usedR = true; }
      else if (mode === O_WRONLY && !usedW) { fd = w; usedW = true; }
      else {
        // Another open file description of the same pipe: open it again, as through /proc.
        fd = this.own(fs.openSync(`/proc/self/fd/${mode === O_WRONLY ? w : r}`, mode | O_NONBLOCK));
      }
      sys.fcntl(fd, F.SETFL, flags & O_NONBLOCK);
      this.held.set(Number(e.id), fd);
    }
  }

  /**
   * The ends of an inherited pipe: the caller's descriptor when it has the access mode the end
   * had, else the same pipe opened again with that mode. Its saved data stays out: whatever
   * the other side wrote meanwhile is in the pipe already.
   */
  private inheritPipe(pipeId: number, ends: Msg[], fd: number): void {
    let have: number;
    try {
      have = sys.fcntl(fd, F.GETFL);
    } catch (e) {
      throw new RestoreError('files', `inherited descriptor ${fd} for pipe:[${pipeId}] is not open: ${(e as Error).message}`, { file: 'files.img', field: 'pipe.pipe_id' });
    }
    for (const e of ends) {
      const flags = Number(e.flags ?? 0);
      const mode = flags & O_ACCMODE;
      const mine = mode === (have & O_ACCMODE) ? this.own(sys.fcntl(fd, F.DUPFD_CLOEXEC, 0)) : this.own(fs.openSync(`/proc/self/fd/${fd}`, mode | O_NONBLOCK));
      sys.fcntl(mine, F.SETFL, flags & O_NONBLOCK);
      this.held.set(Number(e.id), mine);
    }
  }

  /** Our descriptor of file `id` when we hold it (the task must take it from us). */
  heldFd(id: number): number | undefined {
    return this.held.get(id);
  }

  /** Whether another task will need file `id` too. */
  isShared(id: number): boolean {
    return (this.users.get(id) ?? 0) > 1;
  }

  /** Takes the task's descriptor `fd` (file `id`, just opened there) so other tasks can have it. */
  take(pid: number, fd: number, id: number): void {
    const pidfd = sys.pidfdOpen(pid);
    try {
      this.held.set(id, this.own(sys.pidfdGetfd(pidfd, fd)));
    } finally {
      sys.close(pidfd);
    }
  }

  closeAll(): void {
    for (const fd of this.owned.splice(0)) {
      try { sys.close(fd); } catch { /* already closed */ }
    }
    this.held.clear();
    this.memfds = undefined;
  }
}

/** Every descriptor of every task is of a kind restore handles (before anything is created). */
export function checkTreeFiles(tree: TreeImages, _shellJob: boolean): void {
  for (const t of tree.tasks) {
    const fdinfoFile = `fdinfo-${t.ids.files_id}.img`;
    t.fdinfo.forEach((e, i) => {
      const fd = Number(e.fd), id = Number(e.id);
      const f = t.files.get(id);
      if (!f) throw new RestoreError('read-images', `task ${t.pid} fd ${fd}: no file with id ${id}`, { file: fdinfoFile, record: i, field: 'id' });
      const type = Number(f.type);
      const payload = RESTORABLE.get(type);
      if (!payload) throw new RestoreError('files', `task ${t.pid} fd ${fd}: file type ${type} is not supported yet`, { file: 'files.img', field: 'type' });
      if (typeof f[payload] !== 'object' || f[payload] === null) throw new RestoreError('read-images', `task ${t.pid} fd ${fd}: file ${id} of type ${type} has no ${payload} record`, { file: 'files.img', field: payload });
    });
  }
}
