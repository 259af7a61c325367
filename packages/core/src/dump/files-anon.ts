/**
 * eventfd, timerfd, signalfd and epoll descriptors: their file_entry payloads, read from
 * /proc/PID/fdinfo/FD as CRIU 4.1 reads them (eventfd_file_entry, timerfd_entry,
 * signalfd_entry, eventpoll_file_entry with its eventpoll_tfd_entry targets).
 */
import type { Msg } from '@criu/images';
import { FilesDumpError, UnsupportedFileError } from './files-kinds.js';

type Fown = Msg;

/** EFD_SEMAPHORE. CRIU 4.1 does not record it; we keep it in flags' access-mode bits, which
 * CRIU's restore ignores (an eventfd is always O_RDWR, fcntl(F_SETFL) drops O_ACCMODE). Only
 * kernels whose fdinfo has an "eventfd-semaphore" line (6.4 on) show it; older ones lose it. */
export const EFD_SEMAPHORE = 1;

function field(text: string, key: string): string | undefined {
  const re = new RegExp(`^${key}:[ \\t]*(.*)$`, 'm');
  return re.exec(text)?.[1].trim();
}

function need(pid: number, fd: number, text: string, key: string): string {
  const v = field(text, key);
  if (v === undefined) throw new FilesDumpError(pid, `fd ${fd}`, `no "${key}" in /proc/${pid}/fdinfo/${fd}`);
  return v;
}

export function eventfdEntry(pid: number, fd: number, id: number, flags: number, fown: Fown, text: string): Msg {
  const counter = BigInt(`0x${need(pid, fd, text, 'eventfd-count')}`);
  const sem = field(text, 'eventfd-semaphore') === '1';
  return { id, flags: flags | (sem ? EFD_SEMAPHORE : 0), fown, counter };
}

function timespec(pid: number, fd: number, text: string, key: string): [bigint, bigint] {
  const m = /^\((-?\d+),\s*(-?\d+)\)$/.exec(need(pid, fd, text, key));
  if (!m) throw new FilesDumpError(pid, `fd ${fd}`, `cannot parse "${key}" in /proc/${pid}/fdinfo/${fd}`);
  return [BigInt(m[1]), BigInt(m[2])];
}

/**
 * timerfd_entry. A periodic timer that expired and was not read since is not re-armed by the
 * kernel until a read (its fdinfo value is 0): its value is recorded as one interval, or the
 * restore (CRIU's too) would disarm it.
 */
export function timerfdEntry(pid: number, fd: number, id: number, flags: number, fown: Fown, text: string): Msg {
  const [vsec, vnsec] = timespec(pid, fd, text, 'it_value');
  const [isec, insec] = timespec(pid, fd, text, 'it_interval');
  const ticks = BigInt(need(pid, fd, text, 'ticks'));
  const e: Msg = {
    id, flags, fown, clockid: Number(need(pid, fd, text, 'clockid')), ticks,
    settime_flags: parseInt(need(pid, fd, text, 'settime flags'), 8), vsec, vnsec, isec, insec,
  };
  if (vsec === 0n && vnsec === 0n && (isec !== 0n || insec !== 0n)) {
    e.vsec = isec;
    e.vnsec = insec;
  }
  return e;
}

export function signalfdEntry(pid: number, fd: number, id: number, flags: number, fown: Fown, text: string): Msg {
  return { id, flags, fown, sigmask: BigInt(`0x${need(pid, fd, text, 'sigmask')}`) };
}

/** One "tfd:" line of an epoll's fdinfo. */
export interface EpollTarget { tfd: number; events: number; data: bigint; pos: bigint; ino: bigint; sdev: number }

export function epollTargets(text: string): EpollTarget[] {
  const out: EpollTarget[] = [];
  const re = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*(\d+)\s+ino:\s*([0-9a-f]+)\s+sdev:\s*([0-9a-f]+)/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.push({ tfd: Number(m[1]), events: parseInt(m[2], 16) >>> 0, data: BigInt(`0x${m[3]}`), pos: BigInt(m[4]), ino: BigInt(`0x${m[5]}`), sdev: parseInt(m[6], 16) });
  }
  return out;
}

/**
 * eventpoll_file_entry with its targets. Each target must be the task's own descriptor of
 * that number (same inode and device): `target(tfd)` gives what that descriptor is now.
 */
export function eventpollEntry(pid: number, fd: number, id: number, flags: number, fown: Fown, text: string,
  target: (tfd: number) => { ino: bigint; sdev: number } | undefined): Msg {
  const tfds = epollTargets(text).map((t) => {
    const now = target(t.tfd);
    if (!now || now.ino !== t.ino || now.sdev !== t.sdev) {
      throw new UnsupportedFileError(pid, fd, 'anon_inode:[eventpoll]', 'epoll', `is not supported yet (it watches a file that is no longer its descriptor ${t.tfd})`);
    }
    return { id: 0, tfd: t.tfd, events: t.events, data: t.data, dev: t.sdev, inode: t.ino, pos: t.pos };
  });
  return { id, flags, fown, tfd: tfds };
}
