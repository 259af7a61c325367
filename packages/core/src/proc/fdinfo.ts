import * as fs from 'node:fs';

/** /proc/PID/fdinfo/FD: position, open flags (octal in the file), mount id, plus raw lines. */
export interface FdInfo {
  fd: number;
  pos: bigint;
  flags: number;
  mntId: number;
  ino?: number;
  /** Every other "key: value" line (eventfd-count, tfd, inotify ...), for file kinds that need them. */
  extra: Map<string, string>;
  /** The "lock:" lines (file locks taken through this open file), whole. */
  locks: string[];
}

export function parseFdInfo(fd: number, text: string): FdInfo {
  const info: FdInfo = { fd, pos: 0n, flags: 0, mntId: -1, extra: new Map(), locks: [] };
  for (const line of text.split('\n')) {
    const m = /^([\w-]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'pos') info.pos = BigInt(m[2]);
    else if (m[1] === 'flags') info.flags = parseInt(m[2], 8);
    else if (m[1] === 'mnt_id') info.mntId = Number(m[2]);
    else if (m[1] === 'ino') info.ino = Number(m[2]);
    else if (m[1] === 'lock') info.locks.push(line);
    else info.extra.set(m[1], m[2]);
  }
  return info;
}

/** The task's open descriptors, in increasing order. */
export function listFds(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
}

export function readFdInfo(pid: number, fd: number): FdInfo {
  return parseFdInfo(fd, fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
}
