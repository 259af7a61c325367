/**
 * Assigns CRIU file ids and collects the file_entry records of files.img. Open descriptors
 * that share one struct file (dup, fork) get one id; files reached without a descriptor
 * (mapped files, cwd, root, exe) are registered by path.
 */
import type { Msg } from '@criu/images';

/** fd_types values of file_entry.type (fdinfo.proto). */
export const FD_TYPE = Object.freeze({
  REG: 1, PIPE: 2, FIFO: 3, INETSK: 4, UNIXSK: 5, EVENTFD: 6, EVENTPOLL: 7, INOTIFY: 8,
  SIGNALFD: 9, PACKETSK: 10, TTY: 11, FANOTIFY: 12, NETLINKSK: 13, NS: 14, TUNF: 15, EXT: 16,
  TIMERFD: 17, MEMFD: 18, BPFMAP: 19, PIDFD: 20,
});

/** The payload field of file_entry for each type. */
const PAYLOAD_FIELD: Record<number, string> = {
  [FD_TYPE.REG]: 'reg', [FD_TYPE.PIPE]: 'pipe', [FD_TYPE.FIFO]: 'fifo', [FD_TYPE.UNIXSK]: 'usk',
  [FD_TYPE.EVENTFD]: 'efd', [FD_TYPE.EVENTPOLL]: 'epfd', [FD_TYPE.SIGNALFD]: 'sgfd',
  [FD_TYPE.TTY]: 'tty', [FD_TYPE.TIMERFD]: 'tfd', [FD_TYPE.MEMFD]: 'memfd', [FD_TYPE.EXT]: 'ext',
  [FD_TYPE.INOTIFY]: 'ify', [FD_TYPE.NS]: 'nsf',
};

export class FileRegistry {
  private nextId = 1;
  private readonly entries: Msg[] = [];
  private readonly byKey = new Map<string, number>();

  /**
   * Returns the id of the file known by `key` (e.g. "path:/usr/lib/libc.so.6" or
   * "file:<kcmp class>"), creating its entry with `make(id)` the first time.
   */
  intern(key: string, type: number, make: (id: number) => Msg): number {
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const id = this.nextId++;
    const field = PAYLOAD_FIELD[type];
    if (!field) throw new Error(`file type ${type} has no file_entry payload mapping`);
    this.entries.push({ type, id, [field]: make(id) });
    this.byKey.set(key, id);
    return id;
  }

  /** A fresh id for an object that is not a file_entry (ids share one number space in CRIU). */
  reserveId(): number {
    return this.nextId++;
  }

  /** file_entry records for files.img, in id order. */
  fileEntries(): Msg[] {
    return this.entries;
  }
}
