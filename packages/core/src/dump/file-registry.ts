/**
 * Assigns CRIU file ids and collects the file_entry records of files.img. Open descriptors
 * that share one struct file (dup, fork) get one id; files reached without a descriptor
 * (mapped files, cwd, root, exe) are registered by path.
 *
 * One registry serves a whole dump (every task), like CRIU's global id space: a file inherited
 * by two tasks gets one id, and a terminal's tty_info_entry is written once.
 */
import { sys, KCMP } from '@criu/sys';
import type { Msg } from '@criu/images';

/** fd_types values of file_entry.type (fdinfo.proto). */
export const FD_TYPE = Object.freeze({
  REG: 1, PIPE: 2, FIFO: 3, INETSK: 4, UNIXSK: 5, EVENTFD: 6, EVENTPOLL: 7, INOTIFY: 8,
  SIGNALFD: 9, PACKETSK: 10, TTY: 11, FANOTIFY: 12, NETLINKSK: 13, NS: 14, TUNF: 15, EXT: 16,
  TIMERFD: 17, MEMFD: 18, BPFMAP: 19, PIDFD: 20,
});

/** The payload field of file_entry for each type. */
const PAYLOAD_FIELD: Record<number, string> = {
  [FD_TYPE.REG]: 'reg', [FD_TYPE.PIPE]: 'pipe', [FD_TYPE.FIFO]: 'fifo', [FD_TYPE.INETSK]: 'isk', [FD_TYPE.UNIXSK]: 'usk',
  [FD_TYPE.EVENTFD]: 'efd', [FD_TYPE.EVENTPOLL]: 'epfd', [FD_TYPE.SIGNALFD]: 'sgfd',
  [FD_TYPE.TTY]: 'tty', [FD_TYPE.TIMERFD]: 'tfd', [FD_TYPE.MEMFD]: 'memfd', [FD_TYPE.EXT]: 'ext',
  [FD_TYPE.INOTIFY]: 'ify', [FD_TYPE.NS]: 'nsf',
};

/** An open file description already given an id, found again through one of its fds. */
interface OpenFile { pid: number; fd: number; gen: string; id: number }

export class FileRegistry {
  private nextId = 1;
  private readonly entries: Msg[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly openFiles = new Map<string, OpenFile[]>();
  private readonly ttyInfos = new Map<number, Msg>();
  /** Ids of file-backed mappings already resolved, by "pid:start-end", and by "pid:dev:inode:path" of the file (see mappedFileId). */
  readonly vmaIds = new Map<string, number>();
  /** Indexes of the pty masters the dumped tree holds (their slaves are inside the dump). */
  ptyMasters: ReadonlySet<number> = new Set();

  /**
   * Returns the id of the file known by `key` (e.g. "path:/usr/lib/libc.so.6" or
   * "file:<kcmp class>"), creating its entry with `make(id)` the first time. Entries that
   * `make` registers itself (a tty's reg file) come before this one in files.img, as in CRIU.
   */
  intern(key: string, type: number, make: (id: number) => Msg): number {
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const id = this.nextId++;
    this.push(type, id, make(id));
    this.byKey.set(key, id);
    return id;
  }

  /** The id `key` was interned with, if any. */
  lookup(key: string): number | undefined {
    return this.byKey.get(key);
  }

  /**
   * The id of the open file description behind `pid`'s descriptor `fd`. Descriptors with the
   * same `gen` (st_dev, st_ino, position) are compared with kcmp(KCMP_FILE); the first one
   * seen owns the entry, made with `make(id)` (or written later with pushEntry when `make`
   * returns undefined). Every task compared must still exist (frozen).
   */
  internOpenFile(pid: number, fd: number, gen: string, type: number, make: (id: number) => Msg | undefined): { id: number; created: boolean } {
    const same = this.openFiles.get(gen) ?? [];
    for (const f of same) {
      if (sys.kcmp(f.pid, pid, KCMP.FILE, f.fd, fd) === 0) return { id: f.id, created: false };
    }
    const id = this.nextId++;
    same.push({ pid, fd, gen, id });
    this.openFiles.set(gen, same);
    const payload = make(id);
    if (payload) this.push(type, id, payload);
    return { id, created: true };
  }

  /** Writes the entry of an id whose `make` returned nothing (an entry CRIU writes later). */
  pushEntry(type: number, id: number, payload: Msg): void {
    this.push(type, id, payload);
  }

  /**
   * Records the tty_info_entry with id `id` the first time it is seen; returns it then, and
   * undefined when a terminal was already recorded (tty-info.img holds each terminal once).
   */
  addTtyInfo(id: number, make: () => Msg): Msg | undefined {
    if (this.ttyInfos.has(id)) return undefined;
    const info = make();
    this.ttyInfos.set(id, info);
    return info;
  }

  /** Every tty_info_entry recorded so far, for tty-info.img. */
  ttyInfoEntries(): Msg[] {
    return [...this.ttyInfos.values()];
  }

  /** A fresh id for an object that is not a file_entry (ids share one number space in CRIU). */
  reserveId(): number {
    return this.nextId++;
  }

  /** file_entry records for files.img, in the order CRIU writes them. */
  fileEntries(): Msg[] {
    return this.entries;
  }

  private push(type: number, id: number, payload: Msg): void {
    const field = PAYLOAD_FIELD[type];
    if (!field) throw new Error(`file type ${type} has no file_entry payload mapping`);
    this.entries.push({ type, id, [field]: payload });
  }
}
