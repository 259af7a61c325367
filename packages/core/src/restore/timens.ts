/**
 * A new time namespace for the restored tree when the dumped clocks are ahead of the running
 * kernel's (a restore after a reboot or on another machine), so CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME go on from where the task left them instead of going back. On the boot that
 * made the dump the clocks are behind, and the tree stays in the caller's namespace (as CRIU's
 * restore does).
 */
import * as fs from 'node:fs';
import { readImage } from './files-kinds.js';
import { need, type ImageSource } from './images-in.js';
import { CLOCK_BOOTTIME, CLOCK_MONOTONIC, clockNs, fromTimespec, timensOffsetsText, type TimensOffsets } from '../proc/timens.js';
import type { FrozenTask } from '../infect/frozen-task.js';
import type { Logger } from '../util/log.js';
import { RestoreError } from './errors.js';

const CLONE_NEWTIME = 0x80;
const FILE = 'timens-0.img';

/** The offsets a new time namespace needs, or undefined when the clocks need none. */
export function clockOffsets(images: string | ImageSource): TimensOffsets | undefined {
  const [entry] = readImage(images, FILE, 'TIMENS', true);
  if (!entry) return undefined;
  const m = entry.message;
  const ts = (k: string) => {
    const t = need(m[k], FILE, k) as Record<string, unknown>;
    return fromTimespec({ tv_sec: need(t.tv_sec, FILE, `${k}.tv_sec`), tv_nsec: need(t.tv_nsec, FILE, `${k}.tv_nsec`) });
  };
  const dumped = { monotonic: ts('monotonic'), boottime: ts('boottime') };
  const off = { monotonic: dumped.monotonic - clockNs(CLOCK_MONOTONIC), boottime: dumped.boottime - clockNs(CLOCK_BOOTTIME) };
  if (off.monotonic <= 0n && off.boottime <= 0n) return undefined;
  return { monotonic: off.monotonic > 0n ? off.monotonic : 0n, boottime: off.boottime > 0n ? off.boottime : 0n };
}

/** Makes the helper's future children (the restored tree) live in a time namespace with `off`. */
export function enterTimeNamespace(helper: FrozenTask, off: TimensOffsets, log: Logger): void {
  const r = helper.rawSyscall('unshare', CLONE_NEWTIME);
  if (r < 0n) throw new RestoreError('start-helper', `cannot create a time namespace for the restored clocks (errno ${-r})`, { file: FILE, hint: 'the kernel needs CONFIG_TIME_NS' });
  fs.writeFileSync(`/proc/${helper.pid}/timens_offsets`, timensOffsetsText(off));
  const s = (ns: bigint) => `${(Number(ns) / 1e9).toFixed(3)} s`;
  log.info(`the dumped clocks are ahead of this kernel's: the tree gets a time namespace (monotonic +${s(off.monotonic)}, boottime +${s(off.boottime)})`);
}
