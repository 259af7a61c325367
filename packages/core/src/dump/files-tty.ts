/**
 * Terminal state for tty-info.img: termios, locked termios, window size, exclusive mode,
 * session and foreground group, read with ioctls on a descriptor the dumper holds.
 */
import type * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { sys } from '@criu/sys';
import type { Msg } from '@criu/images';
import { kernelEncodeDev } from './files-kinds.js';

/** ioctl structures are in host byte order. */
const LE = os.endianness() === 'LE';

/** TtyType (tty.proto). */
export const TTY_TYPE = Object.freeze({ UNKNOWN: 0, PTY: 1, CONSOLE: 2, VT: 3, CTTY: 4, EXT_TTY: 5, SERIAL: 6 });

/** CRIU's tty_info id of a pty: index * 2, +1 for the master side. */
export function ptyInfoId(index: number, master: boolean): number {
  return index * 2 + (master ? 1 : 0);
}

interface TtyArch {
  TCGETS: number; TIOCGLCKTRMIOS: number; TIOCGWINSZ: number; TIOCGEXCL: number; TIOCGPKT: number; TIOCGPTLCK: number;
  /** struct termios as TCGETS fills it. */
  termios: { size: number; line: number; cc: number; ispeed?: number; ospeed?: number };
}

const NCCS = 19;
const X86_64: TtyArch = {
  TCGETS: 0x5401, TIOCGLCKTRMIOS: 0x5456, TIOCGWINSZ: 0x5413, TIOCGEXCL: 0x80045440, TIOCGPKT: 0x80045438, TIOCGPTLCK: 0x80045439,
  termios: { size: 36, line: 16, cc: 17 },
};
const PPC64: TtyArch = {
  TCGETS: 0x402c7413, TIOCGLCKTRMIOS: 0x5456, TIOCGWINSZ: 0x40087468, TIOCGEXCL: 0x40045440, TIOCGPKT: 0x40045438, TIOCGPTLCK: 0x40045439,
  termios: { size: 44, cc: 16, line: 35, ispeed: 36, ospeed: 40 },
};

function ttyArch(): TtyArch {
  if (process.arch === 'x64') return X86_64;
  if (process.arch === 'ppc64') return PPC64;
  throw new Error(`terminal ioctls are not known for ${process.arch}`);
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
function termiosEntry(b: Buffer, a: TtyArch): Msg {
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

/** tty_info_entry of a pty slave that `lfd` (a dumper-side descriptor) refers to. */
export function ptySlaveInfo(pid: number, fd: number, lfd: number, st: fs.BigIntStats, index: number): Msg {
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

  // TIOCGSID/TIOCGPGRP only answer for the caller's own controlling terminal; /proc tells the
  // same for the task: a terminal that is its ctty belongs to its session.
  const ctty = cttyOf(pid);
  const isCtty = ctty.ttyNr !== 0 && ctty.ttyNr === kernelEncodeDev(st.rdev);
  return {
    id: ptyInfoId(index, false),
    type: TTY_TYPE.PTY,
    locked: flag(lfd, a.TIOCGPTLCK),
    exclusive: flag(lfd, a.TIOCGEXCL),
    packet_mode: flag(lfd, a.TIOCGPKT),
    sid: isCtty ? ctty.sid : 0,
    pgrp: isCtty && ctty.tpgid > 0 ? ctty.tpgid : 0,
    rdev: Number(st.rdev & 0xffffffffn),
    termios: termiosEntry(t, a),
    termios_locked: termiosEntry(tl, a),
    winsize: { ws_row: u16(ws, 0), ws_col: u16(ws, 2), ws_xpixel: u16(ws, 4), ws_ypixel: u16(ws, 6) },
    pty: { index },
    dev: Number(st.dev & 0xffffffffn),
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
}
