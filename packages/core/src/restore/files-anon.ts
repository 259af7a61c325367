/**
 * eventfd, timerfd and signalfd files rebuilt in the restorer from their file_entry records
 * (the task takes them with pidfd_getfd), and the epoll targets a task adds to its own epolls.
 */
import * as os from 'node:os';
import { sys, IOCTL, STRUCTS } from '@criu/sys';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';

const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const F_SETFL = 4;
const EFD_SEMAPHORE = 1;
const TFD_TIMER_ABSTIME = 1;
const NSEC = 1_000_000_000n;

function setFlags(fd: number, flags: number): void {
  sys.syscall('fcntl', fd, F_SETFL, flags & ~3);
}

function guarded<T>(what: string, field: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new RestoreError('files', `${what}: ${(e as Error).message}`, { cause: e, file: 'files.img', field });
  }
}

/** An eventfd with the counter, semaphore mode and flags of `e` (eventfd_file_entry). */
export function createEventfd(e: Msg): number {
  return guarded(`eventfd ${e.id}`, 'efd', () => {
    const flags = Number(e.flags ?? 0);
    const fd = Number(sys.syscall('eventfd2', 0, O_CLOEXEC | O_NONBLOCK | (flags & EFD_SEMAPHORE)));
    const counter = BigInt((e.counter as bigint | number | undefined) ?? 0n);
    if (counter !== 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(counter);
      if (Number(sys.syscall('write', fd, b, 8)) !== 8) throw new Error('short write of the counter');
    }
    setFlags(fd, flags);
    return fd;
  });
}

function clockNow(clockid: number): bigint {
  const ts = Buffer.alloc(16);
  sys.syscall('clock_gettime', clockid, ts);
  return ts.readBigInt64LE(0) * NSEC + ts.readBigInt64LE(8);
}

/**
 * A timerfd armed as `e` (timerfd_entry) says, with its pending ticks. The value is the time
 * left at dump: an absolute timer gets it added to the clock now (as CRIU does); a periodic
 * timer recorded with no time left (expired, not read) is armed one interval ahead, not disarmed.
 */
export function createTimerfd(e: Msg): number {
  return guarded(`timerfd ${e.id}`, 'tfd', () => {
    const clockid = Number(e.clockid);
    const settime = Number(e.settime_flags ?? 0);
    const fd = Number(sys.syscall('timerfd_create', clockid, O_CLOEXEC | O_NONBLOCK));
    const big = (k: string) => BigInt((e[k] as bigint | number | undefined) ?? 0n);
    const interval = big('isec') * NSEC + big('insec');
    let value = big('vsec') * NSEC + big('vnsec');
    if (value === 0n && interval !== 0n) value = interval;
    if (value !== 0n && settime & TFD_TIMER_ABSTIME) value += clockNow(clockid);
    const its = Buffer.alloc(32);
    its.writeBigInt64LE(interval / NSEC, 0);
    its.writeBigInt64LE(interval % NSEC, 8);
    its.writeBigInt64LE(value / NSEC, 16);
    its.writeBigInt64LE(value % NSEC, 24);
    sys.syscall('timerfd_settime', fd, settime, its, null);
    const ticks = big('ticks');
    if (ticks !== 0n) {
      const t = Buffer.alloc(8);
      t.writeBigUInt64LE(ticks);
      sys.syscall('ioctl', fd, IOCTL.TFD_IOC_SET_TICKS, t);
    }
    setFlags(fd, Number(e.flags ?? 0));
    return fd;
  });
}

/** A signalfd for the signals of `e` (signalfd_entry). */
export function createSignalfd(e: Msg): number {
  return guarded(`signalfd ${e.id}`, 'sgfd', () => {
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(BigInt((e.sigmask as bigint | number | undefined) ?? 0n));
    const fd = Number(sys.syscall('signalfd4', -1, mask, 8, O_CLOEXEC | O_NONBLOCK));
    setFlags(fd, Number(e.flags ?? 0));
    return fd;
  });
}

/** struct epoll_event as the host kernel reads it (its layout is per arch: @criu/sys STRUCTS). */
export function epollEvent(events: number, data: bigint): Buffer {
  const { size, data: at } = STRUCTS.epollEvent;
  const b = Buffer.alloc(size);
  if (os.endianness() === 'BE') {
    b.writeUInt32BE(events >>> 0, 0);
    b.writeBigUInt64BE(data, at);
  } else {
    b.writeUInt32LE(events >>> 0, 0);
    b.writeBigUInt64LE(data, at);
  }
  return b;
}
