/**
 * Clocks across a checkpoint. CLOCK_MONOTONIC and CLOCK_BOOTTIME start again at each boot, so a
 * task restored after a reboot (or on another machine) would see them go back. timens-0.img holds
 * both clocks as the task saw them at the dump; a restore that finds them ahead of the running
 * kernel's puts the restored tree in a new time namespace whose offsets make them go on from there.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';

export const CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7;
const NS = 1_000_000_000n;

/** A clock reading in nanoseconds. */
export function clockNs(clock: number): bigint {
  const ts = Buffer.alloc(16);
  sys.syscall('clock_gettime', clock, ts);
  return ts.readBigInt64LE(0) * NS + ts.readBigInt64LE(8);
}

export interface TimensOffsets { monotonic: bigint; boottime: bigint }

/** The offsets of the time namespace `pid` lives in (0 in the initial one), in nanoseconds. */
export function timensOffsets(pid: number): TimensOffsets {
  const out = { monotonic: 0n, boottime: 0n };
  let text: string;
  try { text = fs.readFileSync(`/proc/${pid}/timens_offsets`, 'latin1'); } catch { return out; }
  for (const line of text.split('\n')) {
    const [name, sec, nsec] = line.trim().split(/\s+/);
    if (name !== 'monotonic' && name !== 'boottime') continue;
    out[name] = BigInt(sec) * NS + BigInt(nsec);
  }
  return out;
}

/** The clocks as task `pid` sees them now. */
export function taskClocksNs(pid: number): { monotonic: bigint; boottime: bigint } {
  const off = timensOffsets(pid);
  return { monotonic: clockNs(CLOCK_MONOTONIC) + off.monotonic, boottime: clockNs(CLOCK_BOOTTIME) + off.boottime };
}

export const toTimespec = (ns: bigint) => ({ tv_sec: ns / NS, tv_nsec: ns % NS });
export const fromTimespec = (ts: { tv_sec: unknown; tv_nsec: unknown }) => BigInt(ts.tv_sec as bigint) * NS + BigInt(ts.tv_nsec as bigint);

/** What /proc/PID/timens_offsets takes for these offsets (seconds may be negative, nanoseconds not). */
export function timensOffsetsText(off: TimensOffsets): string {
  const line = (name: string, ns: bigint) => {
    let sec = ns / NS, nsec = ns % NS;
    if (nsec < 0n) { sec -= 1n; nsec += NS; }
    return `${name} ${sec} ${nsec}\n`;
  };
  return line('monotonic', off.monotonic) + line('boottime', off.boottime);
}
