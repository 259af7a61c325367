/**
 * Terminal state for tty-info.img: termios, locked termios, window size, exclusive mode,
 * session and foreground group, read with ioctls on a descriptor the dumper holds.
 */
import type * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { sys, hostArch, TTY_IOCTL, type TtyIoctls } from '@criu/sys';
import type { Msg } from '@criu/images';
import { kernelEncodeDev } from './files-kinds.js';

/** ioctl structures are in host byte order. */
const LE = os.endianness() === 'LE';

/** TtyType (tty.proto). */
export const TTY_TYPE = Object.freeze({ UNKNOWN: 0, PTY: 1, CONSOLE: 2, VT: 3, CTTY: 4, EXT_TTY: 5, SERIAL: 6 });

/** CRIU's tty_info id of /dev/tty (its fixed index for the ctty driver, times 2). */
export const CTTY_INFO_ID = 2012;

/** CRIU's tty_info id of a pty: index * 2, +1 for the master side. */
export function ptyInfoId(index: number, master: boolean): number {
  return index * 2 + (master ? 1 : 0);
}

const NCCS = 19;

function ttyArch(): TtyIoctls {
  if (hostArch() === null) throw new Error(`terminal ioctls are not known for this CPU`);
  return TTY_IOCTL;
}

/** ioctl(fd, req, buf); returns the errno (0 on success). */
function ioctl(fd: number, req: number, buf: Buffer): number {
  return sys.trySyscall('ioctl', fd, req, buf).errno;
}

function u16(b: Buffer, o: number): number {
  return LE ? b.readUInt16LE(o) : b.readUInt16BE(o);
}

function flag(fd: number, req: number): boolean {
  const b = Buffer.alloc(4);
  return ioctl(fd, req, b) === 0 && b.readInt32LE(0) !== 0; // any non-zero int reads as non-zero in either order
}

/**
 * termios_entry from struct termios. CRIU copies the 19 c_cc bytes into the start of its u32
 * array (and restores them the same way), so the bytes are packed four to a word here, and the
 * rest of the 19 words is zero.
 */
function termiosEntry(b: Buffer, a: TtyIoctls): Msg {
  const le = LE;
  const cc = Buffer.alloc(NCCS * 4);
  b.copy(cc, 0, a.termios.cc, a.termios.cc + NCCS);
  const words: number[] = [];
  for (let i = 0; i < NCCS; i++) words.push(le ? cc.readUInt32LE(i * 4) : cc.readUInt32BE(i * 4));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  return {
    c_iflag: u32(0), c_oflag: u32(4), c_cflag: u32(8), c_lflag: u32(12), c_line: b[a.termios.line],
    c_ispeed: a.termios.ispeed !== undefined ? u32(a.termios.ispeed) : 0,
    c_ospeed: a.termios.ospeed !== undefined ? u32(a.termios.ospeed) : 0,
    c_cc: words,
  };
}

/** The session and foreground group of the task's controlling terminal, from /proc/PID/stat. */
function cttyOf(pid: number): { ttyNr: number; sid: number; tpgid: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] = state (3), f[3] = session (6), f[4] = tty_nr (7), f[5] = tpgid (8)
  return { sid: Number(f[3]), ttyNr: Number(f[4]), tpgid: Number(f[5]) };
}

export class TtyError extends Error {
  constructor(readonly pid: number, readonly fd: number, reason: string) {
    super(`task ${pid} fd ${fd}: terminal: ${reason}`);
    this.name = 'TtyError';
  }
}

/** An int a "get" ioctl fills, or undefined when it fails (ENOTTY: not this side, no session). */
function intIoctl(fd: number, req: number): number | undefined {
  const b = Buffer.alloc(4);
  if (ioctl(fd, req, b) !== 0) return undefined;
  return LE ? b.readInt32LE(0) : b.readInt32BE(0);
}

/** The pty index of a master descriptor (TIOCGPTN). */
export function ptyMasterIndex(pid: number, fd: number, lfd: number): number {
  const n = intIoctl(lfd, ttyArch().TIOCGPTN);
  if (n === undefined) throw new TtyError(pid, fd, 'TIOCGPTN failed on the pty master');
  return n;
}

/**
 * Refuses a pty whose queues hold data nobody has read yet (tty-data.img is not written): bytes
 * the slave wrote that the master has not read, and bytes the master wrote that wait in the
 * slave's line discipline. `lfd` is a dumper-side descriptor of either end. A limit: in
 * canonical mode the kernel counts complete lines only, so an unfinished line typed into the
 * slave is not seen (and not restored); switching the mode to count it would change it.
 */
export function checkPtyQueues(pid: number, fd: number, lfd: number, master: boolean, index: number): void {
  const n = intIoctl(lfd, ttyArch().TIOCINQ) ?? 0;
  if (n > 0) {
    throw new TtyError(pid, fd, `pty ${index}: ${n} byte(s) written to its ${master ? 'slave' : 'master'} side are not read yet; dumping queued terminal data is not supported yet (let the program drain it)`);
  }
}

/**
 * tty_info_entry of one side of a pty that `lfd` (a dumper-side descriptor) refers to. Both
 * sides report the slave's termios and window size; each its own exclusive bit; the master its
 * lock and packet mode.
 */
export function ptyInfo(pid: number, fd: number, lfd: number, st: fs.BigIntStats, index: number, master: boolean, devTty = false): Msg {
  const a = ttyArch();
  const t = Buffer.alloc(a.termios.size);
  let err = ioctl(lfd, a.TCGETS, t);
  if (err) throw new TtyError(pid, fd, `TCGETS failed with errno ${err}`);
  const tl = Buffer.alloc(a.termios.size);
  err = ioctl(lfd, a.TIOCGLCKTRMIOS, tl);
  if (err) throw new TtyError(pid, fd, `TIOCGLCKTRMIOS failed with errno ${err}`);
  const ws = Buffer.alloc(8);
  err = ioctl(lfd, a.TIOCGWINSZ, ws);
  if (err) throw new TtyError(pid, fd, `TIOCGWINSZ failed with errno ${err}`);

  let sid = 0, pgrp = 0;
  if (master) {
    // From the master side the kernel tells anyone the slave's session and foreground group.
    sid = intIoctl(lfd, a.TIOCGSID) ?? 0;
    pgrp = sid ? intIoctl(lfd, a.TIOCGPGRP) ?? 0 : 0;
  } else if (devTty) {
    // /dev/tty is the task's controlling terminal: its session's.
    const ctty = cttyOf(pid);
    sid = ctty.sid;
    pgrp = ctty.tpgid > 0 ? ctty.tpgid : 0;
  } else {
    // TIOCGSID/TIOCGPGRP on a slave only answer for the caller's own controlling terminal;
    // /proc tells the same for the task: a terminal that is its ctty belongs to its session.
    const ctty = cttyOf(pid);
    if (ctty.ttyNr !== 0 && ctty.ttyNr === kernelEncodeDev(st.rdev)) {
      sid = ctty.sid;
      pgrp = ctty.tpgid > 0 ? ctty.tpgid : 0;
    }
  }
  const info: Msg = {
    id: devTty ? CTTY_INFO_ID : ptyInfoId(index, master),
    type: devTty ? TTY_TYPE.CTTY : TTY_TYPE.PTY,
    locked: flag(lfd, a.TIOCGPTLCK),
    exclusive: flag(lfd, a.TIOCGEXCL),
    packet_mode: flag(lfd, a.TIOCGPKT),
    sid,
    pgrp,
    rdev: Number(st.rdev & 0xffffffffn),
    termios: termiosEntry(t, a),
    termios_locked: termiosEntry(tl, a),
    winsize: { ws_row: u16(ws, 0), ws_col: u16(ws, 2), ws_xpixel: u16(ws, 4), ws_ypixel: u16(ws, 6) },
    pty: { index },
    dev: Number(st.dev & 0xffffffffn),
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
  if (devTty) delete info.pty; // CRIU names no index for /dev/tty
  return info;
}

/**
 * tty_info_entry of /dev/tty open in a task whose controlling terminal is a pty slave: the
 * descriptor reaches the slave, so it reports the slave's state.
 */
export function cttyInfo(pid: number, fd: number, lfd: number, st: fs.BigIntStats): Msg {
  return ptyInfo(pid, fd, lfd, st, 0, false, true);
}

/** tty_info_entry of a pty slave that `lfd` (a dumper-side descriptor) refers to. */
export function ptySlaveInfo(pid: number, fd: number, lfd: number, st: fs.BigIntStats, index: number): Msg {
  return ptyInfo(pid, fd, lfd, st, index, false);
}
