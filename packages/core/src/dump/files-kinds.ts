/**
 * What kind of file a descriptor is, from /proc alone (no parasite, nothing changed), and
 * whether this dumper can handle it. `checkFilesSupported` runs before anything is frozen.
 */
import * as fs from 'node:fs';
import { listFds } from '../proc/fdinfo.js';

/** A descriptor (or cwd/root/exe) that the dump cannot handle (yet). */
export class UnsupportedFileError extends Error {
  constructor(
    readonly pid: number,
    /** The descriptor number, or 'cwd' / 'root' / 'exe' / a mapping. */
    readonly fd: number | string,
    /** What /proc/PID/fd/N points to ("socket:[7890]", "/tmp/x (deleted)"). */
    readonly target: string,
    /** A human name of the kind ("TCP socket", "pipe", "deleted file"). */
    readonly kind: string,
    reason = 'is not supported yet',
  ) {
    super(`task ${pid} ${typeof fd === 'number' ? `fd ${fd}` : fd}: ${target} (${kind}) ${reason}`);
    this.name = 'UnsupportedFileError';
  }
}

/** Reading a file's state failed (it vanished, /proc refused, ...). */
export class FilesDumpError extends Error {
  constructor(readonly pid: number, readonly what: string, reason: string, options?: { cause?: unknown }) {
    super(`task ${pid} ${what}: ${reason}`, options);
    this.name = 'FilesDumpError';
  }
}

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

const MEM_MAJOR = 1;
const TTY_MAJOR = 4;
const TTYAUX_MAJOR = 5;
const MISC_MAJOR = 10;
const AUTOFS_MINOR = 235;
const TUN_MINOR = 200;
const PTY_MASTER_MAJOR_FIRST = 128;
const PTY_SLAVE_MAJOR_FIRST = 136;
const PTY_MAJOR_COUNT = 8;

/** major/minor of a glibc-encoded dev_t (what fs.Stats gives). */
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}
/** The kernel's new_encode_dev (what /proc/PID/stat prints as tty_nr). */
export function kernelEncodeDev(dev: bigint): number {
  const maj = devMajor(dev);
  const min = devMinor(dev);
  return (min & 0xff) | (maj << 8) | ((min & ~0xff) << 12);
}

/** How a descriptor will be dumped, or why it cannot be. */
export type FdClass =
  | { kind: 'reg' }                                   // regular file, directory, symlink, mem/autofs char device
  | { kind: 'pty-slave'; index: number }              // a pseudo-terminal's slave side
  | { kind: 'pipe'; inode: number }                   // an unnamed pipe (pipe:[inode])
  | { kind: 'socket'; inode: number }                 // unix socketpairs (see unixSocketRefusal) and the parasite's own socket
  | { kind: 'eventfd' } | { kind: 'timerfd' } | { kind: 'signalfd' } | { kind: 'epoll' }
  | { kind: 'memfd' }                                 // a memfd used through descriptors (not mapped)
  | { kind: 'fifo'; inode: number }                   // a named pipe with a path
  | { kind: 'unsupported'; what: string; reason?: string };

const DELETED = ' (deleted)';

const ANON_SUPPORTED: Record<string, 'eventfd' | 'timerfd' | 'signalfd' | 'epoll'> = {
  '[eventfd]': 'eventfd', '[timerfd]': 'timerfd', '[signalfd]': 'signalfd', '[eventpoll]': 'epoll',
};

const ANON_KINDS: Record<string, string> = {
  '[eventfd]': 'eventfd', '[eventpoll]': 'epoll', 'inotify': 'inotify', '[fanotify]': 'fanotify',
  '[signalfd]': 'signalfd', '[timerfd]': 'timerfd', '[pidfd]': 'pidfd', 'bpf-map': 'BPF map',
  'bpf-prog': 'BPF program', '[io_uring]': 'io_uring', '[userfaultfd]': 'userfaultfd',
  '[perf_event]': 'perf event', '[eventfd-count]': 'eventfd',
};

/**
 * Classifies a descriptor from its /proc link text and the stat of the file behind it.
 * `exists(path)` tells whether a " (deleted)" name still names this very file.
 */
export function classifyLink(link: string, st: fs.BigIntStats | undefined, sameFileAt: (p: string) => boolean): FdClass {
  const sock = /^socket:\[(\d+)\]$/.exec(link);
  if (sock) return { kind: 'socket', inode: Number(sock[1]) };
  const pipe = /^pipe:\[(\d+)\]$/.exec(link);
  if (pipe) return { kind: 'pipe', inode: Number(pipe[1]) };
  if (link.startsWith('anon_inode:')) {
    const a = link.slice('anon_inode:'.length);
    const known = ANON_SUPPORTED[a];
    if (known) return { kind: known };
    return { kind: 'unsupported', what: ANON_KINDS[a] ?? `anonymous inode ${a}` };
  }
  if (link.startsWith('/memfd:')) {
    if (st && (Number(st.mode) & S_IFMT) !== S_IFREG) return { kind: 'unsupported', what: 'memfd' };
    return { kind: 'memfd' };
  }
  if (/^[a-z_]+:\[\d+\]$/.test(link)) return { kind: 'unsupported', what: 'namespace file' };
  if (!link.startsWith('/')) return { kind: 'unsupported', what: 'unknown file kind' };
  if (!st) return { kind: 'unsupported', what: 'file that cannot be stat-ed' };

  const type = Number(st.mode) & S_IFMT;
  if (link.endsWith(DELETED) && !sameFileAt(link)) {
    return { kind: 'unsupported', what: type === S_IFDIR ? 'deleted directory' : 'deleted file', reason: 'is not supported yet (unlinked files need ghost images)' };
  }
  switch (type) {
    case S_IFREG: case S_IFDIR: case S_IFLNK:
      return { kind: 'reg' };
    case S_IFCHR: {
      const maj = devMajor(st.rdev);
      const min = devMinor(st.rdev);
      if (maj === MEM_MAJOR) return { kind: 'reg' };
      if (maj === MISC_MAJOR && min === AUTOFS_MINOR) return { kind: 'reg' };
      if (maj === MISC_MAJOR && min === TUN_MINOR) return { kind: 'unsupported', what: 'tun device' };
      if (maj >= PTY_SLAVE_MAJOR_FIRST && maj < PTY_SLAVE_MAJOR_FIRST + PTY_MAJOR_COUNT) {
        const m = /^\/dev\/pts\/(\d+)$/.exec(link);
        return { kind: 'pty-slave', index: m ? Number(m[1]) : (maj - PTY_SLAVE_MAJOR_FIRST) * 256 + min };
      }
      if (maj >= PTY_MASTER_MAJOR_FIRST && maj < PTY_MASTER_MAJOR_FIRST + PTY_MAJOR_COUNT) return { kind: 'unsupported', what: 'pty master' };
      if (maj === TTYAUX_MAJOR && min === 2) return { kind: 'unsupported', what: 'pty master' };
      if (maj === TTYAUX_MAJOR && min === 0) return { kind: 'unsupported', what: 'controlling terminal /dev/tty' };
      if (maj === TTYAUX_MAJOR && min === 1) return { kind: 'unsupported', what: 'console' };
      if (maj === TTY_MAJOR) return { kind: 'unsupported', what: min < 64 ? 'virtual terminal' : 'serial terminal' };
      return { kind: 'unsupported', what: `character device ${maj}:${min}` };
    }
    case S_IFIFO:
      return { kind: 'fifo', inode: Number(st.ino) };
    case S_IFBLK:
      return { kind: 'unsupported', what: `block device ${devMajor(st.rdev)}:${devMinor(st.rdev)}` };
    case S_IFSOCK:
      return { kind: 'unsupported', what: 'socket' };
    default:
      return { kind: 'unsupported', what: 'unknown file kind' };
  }
}

/** Where in the task's /proc/PID/net/* tables a socket inode appears, as a human kind. */
const SOCKET_TABLES: Array<[file: string, inodeColumn: number, kind: string]> = [
  ['tcp', 9, 'TCP socket'], ['tcp6', 9, 'TCP socket'], ['udp', 9, 'UDP socket'], ['udp6', 9, 'UDP socket'],
  ['udplite', 9, 'UDP-Lite socket'], ['udplite6', 9, 'UDP-Lite socket'], ['raw', 9, 'raw socket'], ['raw6', 9, 'raw socket'],
  ['unix', 6, 'unix socket'], ['packet', 8, 'packet socket'], ['netlink', 9, 'netlink socket'],
];

export function socketKind(pid: number, inode: number): string {
  const want = String(inode);
  for (const [file, col, kind] of SOCKET_TABLES) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${file}`, 'latin1');
    } catch {
      continue;
    }
    const lines = text.split('\n');
    for (let i = 1; i < lines.length; i++) {
      const cols = lines[i].trim().split(/\s+/);
      if (cols[col] === want) return kind;
    }
  }
  return 'socket';
}

const SS_CONNECTED = 3;
const SO_ACCEPTCON = 1 << 16;
const UNIX_TYPES: Record<number, string> = { 1: 'stream', 2: 'datagram', 5: 'seqpacket' };

/**
 * Why a unix socket cannot be dumped (undefined when it can): only unnamed sockets of a
 * socketpair (connected, or whose peer is gone) are, from the task's /proc/PID/net/unix.
 */
export function unixSocketRefusal(pid: number, inode: number): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/net/unix`, 'latin1');
  } catch {
    return 'is not supported yet (cannot read /proc/PID/net/unix)';
  }
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]
    const cols = line.trim().split(/\s+/);
    if (cols[6] !== String(inode)) continue;
    const flags = parseInt(cols[3], 16), type = parseInt(cols[4], 16), state = parseInt(cols[5], 16);
    if (cols.length > 7) return `is not supported yet (bound to ${cols.slice(7).join(' ')}: only socketpairs are)`;
    if (flags & SO_ACCEPTCON) return 'is not supported yet (listening: only socketpairs are)';
    if (!UNIX_TYPES[type]) return `is not supported yet (socket type ${type})`;
    if (state !== SS_CONNECTED && state !== 1 /* SS_UNCONNECTED: peer closed */) return `is not supported yet (state ${state})`;
    return undefined;
  }
  return 'is not supported yet (not in /proc/PID/net/unix)';
}

function statOrUndefined(p: string): fs.BigIntStats | undefined {
  try {
    return fs.statSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

/** True when `name` (seen from the task's root) is the file `st` describes. */
export function nameStillNames(pid: number, name: string, st: fs.BigIntStats): boolean {
  const at = statOrUndefined(`/proc/${pid}/root${name}`);
  return !!at && at.dev === st.dev && at.ino === st.ino;
}

function readLinkOrFail(pid: number, what: string, p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch (e) {
    throw new FilesDumpError(pid, what, `cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
}

/** Classifies the task's descriptor `fd` from /proc. */
export function classifyFd(pid: number, fd: number): { link: string; st?: fs.BigIntStats; cls: FdClass } {
  const link = readLinkOrFail(pid, `fd ${fd}`, `/proc/${pid}/fd/${fd}`);
  const st = statOrUndefined(`/proc/${pid}/fd/${fd}`);
  return { link, st, cls: classifyLink(link, st, () => !!st && nameStillNames(pid, link, st)) };
}

/** The error to throw for an unsupported class (undefined when it is supported). */
export function refusal(pid: number, fd: number | string, link: string, cls: FdClass, shellJob: boolean): UnsupportedFileError | undefined {
  switch (cls.kind) {
    case 'reg':
    case 'pipe':
    case 'eventfd':
    case 'timerfd':
    case 'signalfd':
    case 'epoll':
    case 'memfd':
    case 'fifo':
      return undefined;
    case 'pty-slave':
      if (shellJob) return undefined;
      return new UnsupportedFileError(pid, fd, link, 'terminal', 'needs --shell-job: the task is attached to a shell terminal (CRIU: "Task attached to shell terminal. Consider using --shell-job option")');
    case 'socket': {
      const kind = socketKind(pid, cls.inode);
      if (kind !== 'unix socket') return new UnsupportedFileError(pid, fd, link, kind);
      const why = unixSocketRefusal(pid, cls.inode);
      return why ? new UnsupportedFileError(pid, fd, link, 'unix socket', why) : undefined;
    }
    case 'unsupported':
      return new UnsupportedFileError(pid, fd, link, cls.what, cls.reason);
  }
}

/**
 * Throws UnsupportedFileError for the first descriptor (or cwd/root/exe) the dump cannot
 * handle. Reads /proc only: call it before freezing anything.
 */
export function checkFilesSupported(pid: number, shellJob: boolean, ignoreFds?: ReadonlySet<number>): void {
  let fds: number[];
  try {
    fds = listFds(pid).filter((fd) => !ignoreFds?.has(fd));
  } catch (e) {
    throw new FilesDumpError(pid, 'fds', `cannot list /proc/${pid}/fd: ${(e as Error).message}`, { cause: e });
  }
  for (const fd of fds) {
    let c: ReturnType<typeof classifyFd>;
    try {
      c = classifyFd(pid, fd);
    } catch (e) {
      if (!fs.existsSync(`/proc/${pid}/fd/${fd}`) && fs.existsSync(`/proc/${pid}`)) continue; // closed meanwhile
      throw e;
    }
    const err = refusal(pid, fd, c.link, c.cls, shellJob);
    if (err) throw err;
  }
  for (const what of ['exe', 'cwd', 'root'] as const) {
    const link = readLinkOrFail(pid, what, `/proc/${pid}/${what}`);
    const st = statOrUndefined(`/proc/${pid}/${what}`);
    if (!st) throw new FilesDumpError(pid, what, `cannot stat /proc/${pid}/${what}`);
    if (link.endsWith(DELETED) && !nameStillNames(pid, link, st)) {
      throw new UnsupportedFileError(pid, what, link, what === 'exe' ? 'deleted executable' : 'deleted directory', 'is not supported yet (unlinked files need ghost images)');
    }
  }
}
