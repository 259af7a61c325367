/**
 * The restorer's scratch area inside the task being rebuilt: the syscall trap code, room for
 * the arguments of injected syscalls (paths, structs, iovec arrays) and the final signal frame.
 * It lives at an address no dumped mapping uses, and is unmapped after rt_sigreturn.
 */
import { sys } from '@criu/sys';

export const SCRATCH = Object.freeze({
  code: 0,
  args: 4096,          // one syscall's argument blob (paths, structs)
  argsSize: 60 * 1024,
  iov: 64 * 1024,      // iovec arrays for preadv
  iovMax: 1024,
  frame: 128 * 1024,   // the rt_sigreturn frame
});

export class Scratch {
  constructor(readonly pid: number, readonly base: bigint, readonly size: number) {}

  /** Writes `data` into the area at `offset`; returns its address in the task. */
  put(offset: number, data: Buffer): bigint {
    if (offset + data.length > this.size) throw new RangeError(`scratch overflow: ${offset}+${data.length} > ${this.size}`);
    const n = sys.writeMemory(this.pid, this.base + BigInt(offset), data);
    if (n !== data.length) throw new Error(`short write into the task's scratch area (${n} of ${data.length})`);
    return this.base + BigInt(offset);
  }

  /** A NUL-terminated string as an argument. */
  str(s: string, offset: number = SCRATCH.args): bigint {
    const b = Buffer.from(s + '\0', 'utf8');
    if (b.length > SCRATCH.argsSize) throw new RangeError('path too long');
    return this.put(offset, b);
  }

  arg(data: Buffer): bigint {
    if (data.length > SCRATCH.argsSize) throw new RangeError('argument too large');
    return this.put(SCRATCH.args, data);
  }
}

export const SCRATCH_SIZE = 256 * 1024;

/**
 * A free range of `size` bytes (page aligned) that none of the given ranges overlaps, searched
 * upwards from 1 GiB so it stays clear of non-PIE executables and low mappings.
 */
export function findFreeRange(taken: ReadonlyArray<{ start: bigint; end: bigint }>, size: number, pageSize: number): bigint {
  const sorted = [...taken].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const len = BigInt(Math.ceil(size / pageSize) * pageSize);
  let cand = 0x40000000n;
  for (const r of sorted) {
    if (r.end <= cand) continue;
    if (r.start >= cand + len) break;
    cand = (r.end + BigInt(pageSize) - 1n) & ~(BigInt(pageSize) - 1n);
  }
  if (cand + len > 0x7ff000000000n) throw new Error('no free address range for the restorer');
  return cand;
}
