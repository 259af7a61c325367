/**
 * What kind of file a descriptor is, from /proc alone (no parasite, nothing changed), and
 * whether this dumper can handle it. `checkFilesSupported` runs before anything is frozen.
 */
import * as fs from 'node:fs';
import { listFds, readFdInfo, type FdInfo } from '../proc/fdinfo.js';
import { readMaps, type MapsEntry } from '../proc/maps.js';

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
  | { kind: 'pty-master' }                            // /dev/ptmx: its index is in fdinfo (tty-index) or TIOCGPTN
  | { kind: 'ctty' }                                  // /dev/tty: the task's controlling terminal
  | { kind: 'pipe'; inode: number }                   // an unnamed pipe (pipe:[inode])
  | { kind: 'socket'; inode: number }                 // unix (unixSocketRefusal), TCP/UDP (inetSocketRefusal), the parasite's own socket
  | { kind: 'eventfd' } | { kind: 'timerfd' } | { kind: 'signalfd' } | { kind: 'epoll' } | { kind: 'inotify' }
  | { kind: 'memfd' }                                 // a memfd used through descriptors (not mapped)
  | { kind: 'fifo'; inode: number }                   // a named pipe with a path
  | { kind: 'unsupported'; what: string; reason?: string };

const DELETED = ' (deleted)';

/** CRIU's default --ghost-limit: a deleted file bigger than this is refused. */
export const GHOST_LIMIT = 1n << 20n;

/**
 * Why a deleted (unlinked) file cannot be dumped, or undefined when it can: regular files with
 * no name left (st_nlink 0) up to GHOST_LIMIT bytes and removed directories are, as ghost images.
 */
export function deletedFileRefusal(st: fs.BigIntStats, limit: bigint = GHOST_LIMIT): string | undefined {
  const type = Number(st.mode) & S_IFMT;
  if (type === S_IFDIR) return st.nlink === 0n ? undefined : 'is not supported yet (a directory moved away: needs a link remap)';
  if (type !== S_IFREG) return 'is not supported yet (unlinked files need ghost images)';
  if (st.nlink !== 0n) return 'is not supported yet (unlinked but still linked under another name: needs a link remap)';
  if (st.size > limit) return `is too big for a ghost image (${st.size} bytes, the limit is ${limit}: see --ghost-limit)`;
  return undefined;
}

const ANON_SUPPORTED: Record<string, 'eventfd' | 'timerfd' | 'signalfd' | 'epoll' | 'inotify'> = {
  '[eventfd]': 'eventfd', '[timerfd]': 'timerfd', '[signalfd]': 'signalfd', '[eventpoll]': 'epoll', 'inotify': 'inotify',
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
export function classifyLink(link: string, st: fs.BigIntStats | undefined, sameFileAt: (p: string) => boolean, ghostLimit = GHOST_LIMIT): FdClass {
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
    const why = deletedFileRefusal(st, ghostLimit);
    if (why) return { kind: 'unsupported', what: type === S_IFDIR ? 'deleted directory' : 'deleted file', reason: why };
    return { kind: 'reg' }; // its contents go into a ghost image
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
      if (maj === TTYAUX_MAJOR && min === 2) return { kind: 'pty-master' };
      if (maj === TTYAUX_MAJOR && min === 0) return { kind: 'ctty' };
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

const SS_UNCONNECTED = 1, SS_CONNECTED = 3;
const SO_ACCEPTCON = 1 << 16;
const UNIX_TYPES: Record<number, string> = { 1: 'stream', 2: 'datagram', 5: 'seqpacket' };

/**
 * Why a unix socket cannot be dumped (undefined when it can), from the task's /proc/PID/net/unix:
 * unnamed, path-bound (absolute paths) and abstract sockets of the three types, unconnected,
 * connected or listening. What needs sock_diag (pending connections, peers) is checked later.
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
    const name = cols.length > 7 ? cols.slice(7).join(' ') : undefined;
    if (!UNIX_TYPES[type]) return `is not supported yet (socket type ${type})`;
    if (name !== undefined && !name.startsWith('/') && !name.startsWith('@')) return `is not supported yet (bound to the relative path ${name})`;
    if (flags & SO_ACCEPTCON) return undefined;
    if (state !== SS_CONNECTED && state !== SS_UNCONNECTED) return `is not supported yet (state ${state}: connecting)`;
    return undefined;
  }
  return 'is not supported yet (not in /proc/PID/net/unix)';
}

const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE',
  8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV',
};
export const TCP_LISTEN = 10, TCP_CLOSE = 7;

/** An address of /proc/net/{tcp,udp}{,6} ("0100007F:1F90": native-endian words) as text. */
export function procInetAddr(hex: string): string {
  const [a, p] = hex.split(':');
  const port = parseInt(p, 16);
  const bytes = Buffer.alloc(a.length / 2);
  for (let w = 0; w < a.length / 8; w++) bytes.writeUInt32LE(parseInt(a.slice(w * 8, w * 8 + 8), 16) >>> 0, w * 4);
  if (bytes.length === 4) return `${[...bytes].join('.')}:${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]:${port}`;
}

/** The row of an inet socket in the task's /proc/PID/net tables, or undefined. */
export function inetRow(pid: number, inode: number): { proto: 'tcp' | 'udp'; v6: boolean; local: string; remote: string; state: number; txq: number; rxq: number } | undefined {
  for (const file of ['tcp', 'tcp6', 'udp', 'udp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${file}`, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const cols = line.trim().split(/\s+/);
      if (cols[9] !== String(inode)) continue;
      const [tx, rx] = cols[4].split(':').map((x) => parseInt(x, 16));
      return { proto: file.startsWith('tcp') ? 'tcp' : 'udp', v6: file.endsWith('6'), local: cols[1], remote: cols[2], state: parseInt(cols[3], 16), txq: tx, rxq: rx };
    }
  }
  return undefined;
}

/**
 * Why a TCP or UDP socket cannot be dumped (undefined when it can): TCP listeners with an
 * empty accept queue, unconnected TCP sockets, unconnected UDP sockets with nothing queued.
 */
export function inetSocketRefusal(pid: number, inode: number): string | undefined {
  const r = inetRow(pid, inode);
  if (!r) return 'is not supported yet (not in /proc/PID/net/tcp, tcp6, udp or udp6)';
  const local = procInetAddr(r.local), remote = procInetAddr(r.remote);
  const state = TCP_STATES[r.state] ?? `state ${r.state}`;
  if (r.proto === 'tcp') {
    if (r.state === TCP_LISTEN) {
      return r.rxq > 0 ? `is not supported yet (listening on ${local} with ${r.rxq} connection(s) waiting in its accept queue)` : undefined;
    }
    if (r.state === TCP_CLOSE) return undefined;
    return `is not supported yet (TCP connection ${local} -> ${remote}, ${state}: established connections need TCP_REPAIR)`;
  }
  if (r.state !== TCP_CLOSE) return `is not supported yet (UDP socket ${local} connected to ${remote})`;
  if (r.rxq > 0) return `is not supported yet (UDP socket ${local} has ${r.rxq} bytes of datagrams queued)`;
  return undefined;
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
export function classifyFd(pid: number, fd: number, ghostLimit = GHOST_LIMIT): { link: string; st?: fs.BigIntStats; cls: FdClass } {
  const link = readLinkOrFail(pid, `fd ${fd}`, `/proc/${pid}/fd/${fd}`);
  const st = statOrUndefined(`/proc/${pid}/fd/${fd}`);
  return { link, st, cls: classifyLink(link, st, () => !!st && nameStillNames(pid, link, st), ghostLimit) };
}

/** The pty index of the task's controlling terminal (/proc/PID/stat tty_nr), if it is a pty slave. */
export function cttyPtyIndex(pid: number): number | undefined {
  let text: string;
  try { text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return undefined; }
  const nr = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[4]);
  const maj = (nr >> 8) & 0xfff, min = (nr & 0xff) | ((nr >> 12) & 0xfff00);
  if (maj < PTY_SLAVE_MAJOR_FIRST || maj >= PTY_SLAVE_MAJOR_FIRST + PTY_MAJOR_COUNT) return undefined;
  return (maj - PTY_SLAVE_MAJOR_FIRST) * 256 + min;
}

/**
 * The indexes of the pty masters that the tasks `pids` hold (from /proc/PID/fdinfo's tty-index):
 * a slave of one of them is a terminal inside the dumped tree, dumped without --shell-job.
 */
export function ptyMastersOf(pids: number[]): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    let fds: number[];
    try { fds = listFds(pid); } catch { continue; /* exited: the file check reports it */ }
    for (const fd of fds) {
      try {
        const st = statOrUndefined(`/proc/${pid}/fd/${fd}`);
        if (!st || (Number(st.mode) & S_IFMT) !== S_IFCHR || devMajor(st.rdev) !== TTYAUX_MAJOR || devMinor(st.rdev) !== 2) continue;
        const m = /^tty-index:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
        if (m) out.add(Number(m[1]));
      } catch { /* closed meanwhile */ }
    }
  }
  return out;
}

/**
 * The error to throw for an unsupported class (undefined when it is supported). `ptyMasters`:
 * indexes of the pty masters held in the dumped tree (a slave of those needs no --shell-job).
 */
export function refusal(pid: number, fd: number | string, link: string, cls: FdClass, shellJob: boolean, ptyMasters?: ReadonlySet<number>): UnsupportedFileError | undefined {
  switch (cls.kind) {
    case 'reg':
    case 'pipe':
    case 'eventfd':
    case 'timerfd':
    case 'signalfd':
    case 'epoll':
    case 'inotify':
    case 'memfd':
    case 'fifo':
      return undefined;
    case 'pty-master':
      return undefined;
    case 'ctty': {
      const index = cttyPtyIndex(pid);
      if (index !== undefined && ptyMasters?.has(index)) return undefined;
      return new UnsupportedFileError(pid, fd, link, 'controlling terminal /dev/tty', 'is not supported yet (only when the controlling terminal is a pty whose master is in the dumped tree)');
    }
    case 'pty-slave':
      if (shellJob || ptyMasters?.has(cls.index)) return undefined;
      return new UnsupportedFileError(pid, fd, link, 'terminal', 'needs --shell-job: the task is attached to a shell terminal (CRIU: "Task attached to shell terminal. Consider using --shell-job option")');
    case 'socket': {
      const kind = socketKind(pid, cls.inode);
      if (kind === 'TCP socket' || kind === 'UDP socket') {
        const why = inetSocketRefusal(pid, cls.inode);
        return why ? new UnsupportedFileError(pid, fd, link, kind, why) : undefined;
      }
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
export function checkFilesSupported(pid: number, shellJob: boolean, ghostLimit = GHOST_LIMIT, ptyMasters?: ReadonlySet<number>, ignoreFds?: ReadonlySet<number>): void {
  let fds: number[];
  try {
    fds = listFds(pid).filter((fd) => !ignoreFds?.has(fd));
  } catch (e) {
    throw new FilesDumpError(pid, 'fds', `cannot list /proc/${pid}/fd: ${(e as Error).message}`, { cause: e });
  }
  for (const fd of fds) {
    let c: ReturnType<typeof classifyFd>;
    try {
      c = classifyFd(pid, fd, ghostLimit);
    } catch (e) {
      if (!fs.existsSync(`/proc/${pid}/fd/${fd}`) && fs.existsSync(`/proc/${pid}`)) continue; // closed meanwhile
      throw e;
    }
    const err = refusal(pid, fd, c.link, c.cls, shellJob, ptyMasters);
    if (err) throw err;
    // Leases and other locks that cannot be taken again are refused here, before the freeze.
    let info: FdInfo | undefined;
    try { info = readFdInfo(pid, fd); } catch { /* closed meanwhile */ }
    if (info?.locks.length) parseLockLines(pid, fd, c.link, info.locks);
  }
  for (const what of ['exe', 'cwd', 'root'] as const) {
    const link = readLinkOrFail(pid, what, `/proc/${pid}/${what}`);
    const st = statOrUndefined(`/proc/${pid}/${what}`);
    if (!st) throw new FilesDumpError(pid, what, `cannot stat /proc/${pid}/${what}`);
    if (link.endsWith(DELETED) && !nameStillNames(pid, link, st)) {
      // A removed executable or working directory comes back from a ghost image; root does not.
      const why = what !== 'root' ? deletedFileRefusal(st, ghostLimit) : 'is not supported yet (unlinked files need ghost images)';
      if (why) throw new UnsupportedFileError(pid, what, link, what === 'exe' ? 'deleted executable' : 'deleted directory', why);
    }
  }
  // Mapped files that were unlinked (the exe was checked above): the ones a ghost image cannot
  // hold are refused now.
  let maps: MapsEntry[] = [];
  try { maps = readMaps(pid); } catch { /* the vma step reports it */ }
  for (const m of maps) {
    if (!m.name.endsWith(DELETED) || m.inode === 0 || !m.name.startsWith('/') || /^\/(memfd:|SYSV|dev\/zero |\[aio\])/.test(m.name)) continue;
    const range = `${m.start.toString(16)}-${m.end.toString(16)}`;
    const st = statOrUndefined(`/proc/${pid}/map_files/${range}`);
    if (!st || nameStillNames(pid, m.name, st)) continue;
    const why = deletedFileRefusal(st, ghostLimit);
    if (why) throw new UnsupportedFileError(pid, `mapping ${range}`, m.name, 'deleted file', why);
  }
}

export interface LockLine { kind: 'POSIX' | 'FLOCK' | 'OFDLCK'; write: boolean; start: bigint; end: bigint | 'EOF' }

/**
 * The locks of one fdinfo text. Throws UnsupportedFileError for leases, delegations and
 * mandatory locks. A lock the task is still waiting for ("->") is not held: skipped (the
 * interrupted flock/fcntl call is restarted after a restore).
 */
export function parseLockLines(pid: number, fd: number, link: string, lines: string[]): LockLine[] {
  const out: LockLine[] = [];
  for (const line of lines) {
    if (!line.startsWith('lock:')) continue;
    // "lock:" "1:" ["->"] KIND ADVISORY|MANDATORY READ|WRITE PID MAJ:MIN:INO START END|EOF
    const words = line.slice(5).trim().split(/\s+/);
    if (words[1] === '->') continue;
    const [kind, mode, rw, , , start, end] = words.slice(1);
    if (kind !== 'POSIX' && kind !== 'FLOCK' && kind !== 'OFDLCK') {
      throw new UnsupportedFileError(pid, fd, link, kind === 'LEASE' ? 'file lease' : kind === 'DELEG' ? 'file delegation' : `${kind} lock`);
    }
    if (mode !== 'ADVISORY') throw new UnsupportedFileError(pid, fd, link, `${mode.toLowerCase()} ${kind} lock`);
    if (rw !== 'READ' && rw !== 'WRITE') throw new UnsupportedFileError(pid, fd, link, `${kind} lock of type ${rw}`);
    out.push({ kind, write: rw === 'WRITE', start: BigInt(start), end: end === 'EOF' ? 'EOF' : BigInt(end) });
  }
  return out;
}
