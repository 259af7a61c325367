/**
 * Pseudo-terminals held inside the restored tree. The restorer opens a new pair per dumped pty
 * (/dev/ptmx, then each slave file through TIOCGPTPEER), applies the dumped termios, locked
 * termios, window size, packet mode, exclusive and lock bits with ioctls on its own
 * descriptors, and hands every descriptor to the tasks like any shared file (pidfd_getfd).
 * The session leader of a pty's session takes it as controlling terminal (TIOCSCTTY, injected
 * right after its setsid, before it creates the rest of its session) and sets the foreground
 * group (TIOCSPGRP) once every task exists.
 *
 * A terminal from outside the tree (a pty whose master is not in the dump) under --shell-job is
 * the restorer's own, as CRIU does it: its descriptors are copies of the restorer's stdin (or of
 * the --inherit-fd descriptor given for `tty[RDEV:DEV]`), which gets the dumped termios and window
 * size, and, when it is the caller's controlling terminal, the first task in the caller's
 * session that holds it makes its group the terminal's foreground (the restored job runs in the
 * foreground of the caller's shell).
 *
 * Index: the restorer asks for the dumped index (devpts hands out the lowest free one, so it
 * opens /dev/ptmx until it gets it or passes it). CRIU fails when the index is taken; here the
 * pair then comes back under another index, with a warning: the program's descriptors work the
 * same, only a /dev/pts/N name it remembered is stale.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { sys, hostArch, TTY_IOCTL, type TtyIoctls } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';
import type { ImageSource, TreeImages } from './images-in.js';
import { readImage } from './files-kinds.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { Scratch } from './scratch.js';
import { restorerPidfd } from './namespaces.js';

const FD_TYPE_TTY = 11;
const TTY_TYPE_PTY = 1, TTY_TYPE_CTTY = 4;
const TTY_TYPE_NAMES = ['UNKNOWN', 'PTY', 'CONSOLE', 'VT', 'CTTY', 'EXT_TTY', 'SERIAL'];
const O_ACCMODE = 3, O_RDWR = 2, O_NONBLOCK = 0o4000, O_NOCTTY = 0o400, O_CLOEXEC = 0o2000000;
const F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
const NCCS = 19;
const SIGTTOU = 22; // the generic Linux number, that of x86_64 and ppc64
const LE = os.endianness() === 'LE';

/** One side's open file in the images. */
interface PtyFile { id: number; flags: number; master: boolean }

/** A dumped pty pair to rebuild. */
export interface PtyPair {
  index: number;
  files: PtyFile[];
  master?: Msg;
  slave?: Msg;
  /** The session whose controlling terminal it is (0: none) and its foreground group. */
  sid: number;
  pgrp: number;
}

/** A terminal from outside the tree, taken from the restorer (--shell-job). */
export interface ExtTty {
  index: number;
  files: number[];
  info: Msg;
  /** CRIU's --inherit-fd key: tty[rdev:dev] in hex. */
  key: string;
}

export interface PtyPlan {
  pairs: PtyPair[];
  external: ExtTty[];
  /** Files of /dev/tty: each task opens its own, once its session has its terminal back. */
  devTty: number[];
}

function ttyArch(): TtyIoctls {
  if (hostArch() === null) throw new RestoreError('files', `terminal ioctls are not known for this CPU`);
  return TTY_IOCTL;
}

/**
 * Reads tty-info.img and checks every tty file the tasks use: a pty whose master is in the dump
 * too. Other terminals (an external one under --shell-job, consoles, ...) are refused.
 */
export function planPtys(tree: TreeImages, images: string | ImageSource, shellJob: boolean): PtyPlan {
  const files = tree.tasks[0].files;
  const used = new Set<number>();
  for (const t of tree.tasks) for (const e of t.fdinfo) if (Number(files.get(Number(e.id))?.type) === FD_TYPE_TTY) used.add(Number(e.id));
  if (!used.size) return { pairs: [], external: [], devTty: [] };
  const devTty: number[] = [];
  const infos = new Map<number, { info: Msg; record: number }>();
  readImage(images, 'tty-info.img', 'TTY_INFO').forEach(({ message }, i) => infos.set(Number(message.id), { info: message, record: i }));
  const data = readImage(images, 'tty-data.img', 'TTY_DATA', true);
  if (data.length) throw new RestoreError('files', `queued terminal data (tty ${data[0].message.tty_id}) is not supported yet`, { file: 'tty-data.img', record: 0 });
  const pairs = new Map<number, PtyPair>();
  for (const id of used) {
    const tty = files.get(id)!.tty as Msg | undefined;
    if (!tty) throw new RestoreError('read-images', `file ${id} is a terminal without a tty record`, { file: 'files.img', field: 'tty' });
    const infoId = Number(tty.tty_info_id);
    const found = infos.get(infoId);
    if (!found) throw new RestoreError('read-images', `terminal file ${id}: no tty_info_entry ${infoId}`, { file: 'tty-info.img', field: 'id' });
    const { info, record } = found;
    const type = Number(info.type);
    if (type === TTY_TYPE_CTTY) {
      devTty.push(id);
      continue;
    }
    if (type !== TTY_TYPE_PTY) {
      throw new RestoreError('files', `terminal file ${id}: restoring a ${TTY_TYPE_NAMES[type] ?? `type ${type}`} terminal is not supported yet`, { file: 'tty-info.img', record, field: 'type' });
    }
    const pty = info.pty as Msg | undefined;
    if (!pty) throw new RestoreError('read-images', `terminal file ${id}: a pty without its index`, { file: 'tty-info.img', record, field: 'pty' });
    const index = Number(pty.index);
    const master = (infoId & 1) === 1;
    if (infoId !== index * 2 + (master ? 1 : 0)) throw new RestoreError('read-images', `tty_info ${infoId} names pty index ${index}`, { file: 'tty-info.img', record, field: 'pty.index' });
    const pair = pairs.get(index) ?? { index, files: [], sid: 0, pgrp: 0 };
    pairs.set(index, pair);
    if (master && pair.files.some((f) => f.master)) throw new RestoreError('files', `pty ${index}: two open files of its master are not supported`, { file: 'files.img', field: 'tty' });
    pair.files.push({ id, flags: Number(tty.flags ?? 0), master });
    if (master) pair.master = info; else pair.slave = info;
  }
  const external: ExtTty[] = [];
  for (const pair of [...pairs.values()]) {
    if (!pair.master) {
      if (!shellJob) {
        throw new RestoreError('files', `pty ${pair.index}'s master is not in the dump: a terminal outside the tree is restored only with --shell-job (it becomes the restorer's terminal)`, { file: 'tty-info.img', field: 'id' });
      }
      const info = pair.slave!;
      termiosOf(info.termios as Msg | undefined, 'termios', infos.get(Number(info.id))!.record);
      external.push({ index: pair.index, files: pair.files.map((f) => f.id), info, key: `tty[${(Number(info.rdev) >>> 0).toString(16)}:${(Number(info.dev ?? 0) >>> 0).toString(16)}]` });
      pairs.delete(pair.index);
      continue;
    }
    // The master tells the session to anyone; a slave only to a task whose ctty it is.
    for (const info of [pair.master, pair.slave]) {
      if (info && Number(info.sid) && !pair.sid) { pair.sid = Number(info.sid); pair.pgrp = Number(info.pgrp ?? 0); }
    }
    if (pair.sid && !tree.tasks.some((t) => t.pid === pair.sid)) {
      throw new RestoreError('files', `pty ${pair.index} is the controlling terminal of session ${pair.sid}, whose leader is not in the dump`, { file: 'tty-info.img', field: 'sid' });
    }
    for (const info of [pair.master, pair.slave]) if (info) termiosOf(info.termios as Msg | undefined, 'termios', infos.get(Number(info.id))!.record);
  }
  // /dev/tty needs its task's session to get a terminal back here.
  for (const t of tree.tasks) {
    for (const e of t.fdinfo) {
      if (!devTty.includes(Number(e.id))) continue;
      const sid = Number(t.pstree.sid);
      if (![...pairs.values()].some((p) => p.sid === sid)) {
        throw new RestoreError('files', `task ${t.pid} fd ${e.fd}: restoring /dev/tty is not supported: the controlling terminal of session ${sid} is not a pty of the dump${shellJob ? '' : ' (an outside terminal needs --shell-job)'}`, { file: 'tty-info.img', field: 'sid' });
      }
    }
  }
  return { pairs: [...pairs.values()], external, devTty };
}

/** struct termios (host layout) from a termios_entry; its 19 c_cc bytes packed in the words. */
function termiosOf(t: Msg | undefined, field: string, record: number): Buffer | undefined {
  if (!t) return undefined;
  const a = ttyArch();
  const words = (t.c_cc as number[] | undefined) ?? [];
  if (words.length * 4 < NCCS) throw new RestoreError('read-images', `${field}.c_cc has ${words.length} words, too few for ${NCCS} control characters`, { file: 'tty-info.img', record, field: `${field}.c_cc` });
  const b = Buffer.alloc(a.termios.size);
  const w32 = (o: number, v: unknown) => (LE ? b.writeUInt32LE(Number(v ?? 0) >>> 0, o) : b.writeUInt32BE(Number(v ?? 0) >>> 0, o));
  w32(0, t.c_iflag); w32(4, t.c_oflag); w32(8, t.c_cflag); w32(12, t.c_lflag);
  const cc = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => (LE ? cc.writeUInt32LE(w >>> 0, i * 4) : cc.writeUInt32BE(w >>> 0, i * 4)));
  cc.copy(b, a.termios.cc, 0, NCCS);
  b[a.termios.line] = Number(t.c_line ?? 0) & 0xff;
  if (a.termios.ispeed !== undefined) w32(a.termios.ispeed, t.c_ispeed);
  if (a.termios.ospeed !== undefined) w32(a.termios.ospeed, t.c_ospeed);
  return b;
}

function ioctlOrFail(fd: number, req: number, arg: Buffer | number, what: string, index: number): void {
  const r = sys.trySyscall('ioctl', fd, req, arg);
  if (r.errno) throw new RestoreError('files', `pty ${index}: ${what} failed with errno ${r.errno}`, { file: 'tty-info.img' });
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeInt32LE(v, 0); else b.writeInt32BE(v, 0);
  return b;
}

function ptyIndexOf(fd: number, a: TtyIoctls): number {
  const b = Buffer.alloc(4);
  const r = sys.trySyscall('ioctl', fd, a.TIOCGPTN, b);
  if (r.errno) throw new RestoreError('files', `TIOCGPTN on /dev/ptmx failed with errno ${r.errno}`);
  return LE ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

/** Opens /dev/ptmx, for index `want` when it is free (see the top of the file). */
function openPtmx(want: number, a: TtyIoctls): { fd: number; index: number } {
  const tried: number[] = [];
  try {
    for (;;) {
      let fd: number;
      try {
        fd = fs.openSync('/dev/ptmx', O_RDWR | O_NOCTTY | O_CLOEXEC);
      } catch (e) {
        throw new RestoreError('files', `pty ${want}: cannot open /dev/ptmx: ${(e as Error).message}`, { cause: e });
      }
      tried.push(fd);
      const got = ptyIndexOf(fd, a);
      // devpts gives the lowest free index: past `want` means it is taken.
      if (got >= want || tried.length > want + 1) {
        tried.pop();
        return { fd, index: got };
      }
    }
  } finally {
    for (const fd of tried) sys.close(fd);
  }
}

/** The restorer's descriptors of one rebuilt pair. */
export interface OpenPty { pair: PtyPair; index: number; byFile: Map<number, number>; slave: number }

/**
 * Makes every planned pair with its state; `own` records each descriptor (closed with the other
 * shared files). Returns the descriptor of each tty file id, and a slave of each pair.
 */
export function openPtys(plan: PtyPlan, own: (fd: number) => number, warn: (msg: string) => void): OpenPty[] {
  const a = ttyArch();
  const out: OpenPty[] = [];
  for (const pair of plan.pairs) {
    const { fd: mfd, index } = openPtmx(pair.index, a);
    own(mfd);
    if (index !== pair.index) warn(`pty ${pair.index} is taken: restored as pty ${index} (/dev/pts/${index})`);
    ioctlOrFail(mfd, a.TIOCSPTLCK, int32(0), 'unlocking the slave (TIOCSPTLCK)', pair.index);
    const byFile = new Map<number, number>();
    let slave = -1;
    for (const f of pair.files) {
      if (f.master) {
        byFile.set(f.id, mfd);
        sys.fcntl(mfd, F_SETFL, f.flags & O_NONBLOCK);
        continue;
      }
      const r = sys.trySyscall('ioctl', mfd, a.TIOCGPTPEER, (f.flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC);
      if (r.errno) throw new RestoreError('files', `pty ${pair.index}: opening its slave (TIOCGPTPEER) failed with errno ${r.errno}`, { file: 'files.img', field: 'tty' });
      const sfd = own(Number(r.ret));
      byFile.set(f.id, sfd);
      if (slave < 0) slave = sfd;
    }
    if (slave < 0 && pair.sid) {
      // The session leader needs a slave descriptor for TIOCSCTTY, even if no task keeps one.
      const r = sys.trySyscall('ioctl', mfd, a.TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (r.errno) throw new RestoreError('files', `pty ${pair.index}: opening its slave (TIOCGPTPEER) failed with errno ${r.errno}`);
      slave = own(Number(r.ret));
    }
    const info = pair.slave ?? pair.master!;
    const rec = (m: Msg) => `tty_info ${m.id}`;
    // The master's ioctls reach the slave's termios and window size.
    const t = termiosOf(info.termios as Msg | undefined, 'termios', 0);
    if (t) ioctlOrFail(mfd, a.TCSETS, t, `setting the termios of ${rec(info)} (TCSETS)`, pair.index);
    const tl = termiosOf(info.termios_locked as Msg | undefined, 'termios_locked', 0);
    // Locked termios need CAP_SYS_ADMIN: only when some are locked.
    if (tl && tl.some((x) => x !== 0)) ioctlOrFail(mfd, a.TIOCSLCKTRMIOS, tl, `setting the locked termios of ${rec(info)}`, pair.index);
    const ws = info.winsize as Msg | undefined;
    if (ws) ioctlOrFail(mfd, a.TIOCSWINSZ, winsizeOf(ws), 'setting the window size (TIOCSWINSZ)', pair.index);
    const m = pair.master!;
    if (m.packet_mode) ioctlOrFail(mfd, a.TIOCPKT, int32(1), 'packet mode (TIOCPKT)', pair.index);
    if (m.exclusive) ioctlOrFail(mfd, a.TIOCEXCL, 0, 'exclusive mode of the master (TIOCEXCL)', pair.index);
    if (pair.slave?.exclusive && slave >= 0) ioctlOrFail(slave, a.TIOCEXCL, 0, 'exclusive mode of the slave (TIOCEXCL)', pair.index);
    // Last: a locked pty opens no more slaves.
    if (m.locked) ioctlOrFail(mfd, a.TIOCSPTLCK, int32(1), 'locking the slave (TIOCSPTLCK)', pair.index);
    out.push({ pair, index, byFile, slave });
  }
  return out;
}

/** Runs `fn` with the restorer's descriptor `lfd` copied into `task` (closed afterwards). */
function withFdInTask(task: FrozenTask, lfd: number, fn: (fd: number) => void): void {
  const pidfd = restorerPidfd(task);
  let fd = -1;
  try {
    fd = Number(task.syscall('pidfd_getfd', pidfd, lfd, 0));
    fn(fd);
  } finally {
    if (fd >= 0) task.syscall('close', fd);
    task.syscall('close', pidfd);
  }
}

/** The session leader `task` takes pty `p` as its controlling terminal (right after setsid). */
export function takeCtty(task: FrozenTask, p: OpenPty): void {
  const a = ttyArch();
  withFdInTask(task, p.slave, (fd) => {
    const r = task.rawSyscall('ioctl', fd, a.TIOCSCTTY, 0);
    if (r < 0n) throw new RestoreError('clone', `task ${task.pid} cannot take pty ${p.index} as its controlling terminal (TIOCSCTTY: errno ${-r})`, { file: 'tty-info.img', field: 'sid' });
  });
}

/** The session leader sets the foreground process group of its terminal (every group exists). */
export function setForeground(task: FrozenTask, scratch: Scratch, p: OpenPty): void {
  if (!p.pair.pgrp || p.pair.pgrp === task.pid) return; // TIOCSCTTY made the leader's group foreground
  const a = ttyArch();
  withFdInTask(task, p.slave, (fd) => {
    const r = task.rawSyscall('ioctl', fd, a.TIOCSPGRP, scratch.arg(int32(p.pair.pgrp)));
    if (r < 0n) throw new RestoreError('clone', `task ${task.pid} cannot make group ${p.pair.pgrp} the foreground of pty ${p.index} (TIOCSPGRP: errno ${-r})`, { file: 'tty-info.img', field: 'pgrp' });
  });
}

/** The restorer's descriptor standing for one outside terminal. */
export interface OpenExtTty { ext: ExtTty; fd: number; from: string; ctty: boolean }

/** Where an outside terminal comes from: the caller's descriptor and how to name it. */
export interface ExtTtySource {
  ext: ExtTty; src: number; from: string;
  /** It is our controlling terminal (else nobody takes its foreground: it is no session's of ours). */
  ctty: boolean;
}

/**
 * Which of the caller's descriptors each outside terminal becomes (the --inherit-fd one named by
 * its key, else our stdin), checked to be a terminal before anything is created.
 */
export function externalTtySources(plan: PtyPlan, inherited: ReadonlyArray<{ key: string; fd: number }>): ExtTtySource[] {
  if (!plan.external.length) return [];
  const a = ttyArch();
  return plan.external.map((ext) => {
    const inh = inherited.find((x) => x.key === ext.key);
    const src = inh ? inh.fd : 0;
    const from = inh ? `inherited descriptor ${src} (${ext.key})` : 'the restorer\'s stdin';
    const r = sys.trySyscall('ioctl', src, a.TCGETS, Buffer.alloc(a.termios.size));
    if (r.errno) {
      throw new RestoreError('files', `pty ${ext.index} is a terminal outside the tree: --shell-job gives the restored tasks the restorer's terminal, but ${from} is not a terminal (errno ${r.errno})`, { file: 'tty-info.img', field: 'id', hint: inh ? undefined : `run the restore from the terminal the job should use, or pass --inherit-fd fd[N]:${ext.key}` });
    }
    const sid = Buffer.alloc(4);
    const g = sys.trySyscall('ioctl', src, a.TIOCGSID, sid);
    const ctty = !g.errno && (LE ? sid.readInt32LE(0) : sid.readInt32BE(0)) === Number(sys.syscall('getsid', 0));
    return { ext, src, from, ctty };
  });
}

/**
 * The outside terminals become the restorer's (see the top of the file): a copy of the source
 * descriptor, with the dumped termios and window size applied to it.
 */
export function openExternalTtys(sources: ExtTtySource[], own: (fd: number) => number): OpenExtTty[] {
  if (!sources.length) return [];
  const a = ttyArch();
  return sources.map(({ ext, src, from, ctty }) => {
    const fd = own(sys.fcntl(src, F_DUPFD_CLOEXEC, 0));
    const t = termiosOf(ext.info.termios as Msg | undefined, 'termios', 0);
    if (t) ioctlOrFail(fd, a.TCSETS, t, `setting the dumped termios on ${from} (TCSETS)`, ext.index);
    const tl = termiosOf(ext.info.termios_locked as Msg | undefined, 'termios_locked', 0);
    if (tl && tl.some((x) => x !== 0)) ioctlOrFail(fd, a.TIOCSLCKTRMIOS, tl, `setting the dumped locked termios on ${from}`, ext.index);
    const ws = ext.info.winsize as Msg | undefined;
    if (ws) ioctlOrFail(fd, a.TIOCSWINSZ, winsizeOf(ws), `setting the dumped window size on ${from} (TIOCSWINSZ)`, ext.index);
    return { ext, fd, from, ctty };
  });
}

/**
 * `task` (in the terminal's session, the caller's) makes its process group the foreground one
 * of outside terminal `t`, as a shell does for the job it runs. SIGTTOU is blocked first: the
 * task is still in the background; its dumped mask is set later.
 */
export function takeForeground(task: FrozenTask, scratch: Scratch, t: OpenExtTty, pgid: number): void {
  const a = ttyArch();
  const set = Buffer.alloc(8);
  const bit = 1n << BigInt(SIGTTOU - 1);
  if (LE) set.writeBigUInt64LE(bit); else set.writeBigUInt64BE(bit);
  task.syscall('rt_sigprocmask', 0 /* SIG_BLOCK */, scratch.arg(set), 0, 8);
  withFdInTask(task, t.fd, (fd) => {
    const r = task.rawSyscall('ioctl', fd, a.TIOCSPGRP, scratch.arg(int32(pgid)));
    if (r < 0n) throw new RestoreError('clone', `task ${task.pid} cannot make its group ${pgid} the foreground of ${t.from} (TIOCSPGRP: errno ${-r})`, { file: 'tty-info.img', field: 'pgrp' });
  });
}

function winsizeOf(ws: Msg): Buffer {
  const b = Buffer.alloc(8);
  const w16 = (o: number, v: unknown) => (LE ? b.writeUInt16LE(Number(v) & 0xffff, o) : b.writeUInt16BE(Number(v) & 0xffff, o));
  w16(0, ws.ws_row); w16(2, ws.ws_col); w16(4, ws.ws_xpixel); w16(6, ws.ws_ypixel);
  return b;
}
