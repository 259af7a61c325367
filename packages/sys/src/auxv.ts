// The ELF auxiliary vector from /proc/<pid>/auxv, and the page size it carries. The page size
// is read at run time: ppc64 kernels commonly use 64 KiB pages.
import fs from 'node:fs';
import { AT } from './constants/flags.js';
import { readU64 } from './native.js';

/** auxv entries of a process ('self' by default): type -> value. Needs ptrace access for others. */
export function readAuxv(pid: number | 'self' = 'self'): Map<number, bigint> {
  const raw = fs.readFileSync(`/proc/${pid}/auxv`);
  const out = new Map<number, bigint>();
  for (let off = 0; off + 16 <= raw.length; off += 16) {
    const type = Number(readU64(raw, off));
    if (type === AT.NULL) break;
    out.set(type, readU64(raw, off + 8));
  }
  return out;
}

/** AT_PAGESZ of this process, or undefined if /proc/self/auxv lacks it. */
export function auxvPageSize(): number | undefined {
  const v = readAuxv('self').get(AT.PAGESZ);
  return v ? Number(v) : undefined;
}
