// struct clone_args for clone3(2), packed in host byte order. Pure data: the engine injects
// clone3 into another process, so every pointer field is an address in *that* process.
import { SysArgError } from './errors.js';
import { readU64, writeI32, readI32, writeU64 } from './native.js';

/** sizeof(struct clone_args) with set_tid and cgroup (CLONE_ARGS_SIZE_VER2). */
export const CLONE_ARGS_SIZE = 88;
/** The kernel's limit on set_tid entries (MAX_PID_NS_LEVEL). */
export const MAX_SET_TID = 32;

export interface CloneArgs {
  flags?: bigint | number;
  /** Where the kernel stores the new pidfd (CLONE_PIDFD). */
  pidfd?: bigint | number;
  childTid?: bigint | number;
  parentTid?: bigint | number;
  exitSignal?: number;
  /** Lowest address of the child's stack area (not its top). */
  stack?: bigint | number;
  stackSize?: bigint | number;
  tls?: bigint | number;
  /** Address of a pid_t array (see packTidArray): [0] is the pid in the innermost namespace. */
  setTid?: bigint | number;
  setTidSize?: number;
  /** cgroup2 directory fd (CLONE_INTO_CGROUP). */
  cgroup?: number;
}

const FIELDS = ['flags', 'pidfd', 'childTid', 'parentTid', 'exitSignal', 'stack', 'stackSize', 'tls', 'setTid', 'setTidSize', 'cgroup'] as const;

function u64(name: string, v: bigint | number | undefined): bigint {
  if (v === undefined) return 0n;
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : NaN;
  if (typeof b !== 'bigint' || b < 0n || b >= 1n << 64n) throw new SysArgError(name, `${String(v)} is not an unsigned 64-bit value`);
  return b;
}

/** Packs struct clone_args (88 bytes). */
export function packCloneArgs(args: CloneArgs): Buffer {
  const size = args.setTidSize ?? 0;
  if (!Number.isInteger(size) || size < 0 || size > MAX_SET_TID) throw new SysArgError('setTidSize', `${size} is outside 0..${MAX_SET_TID}`);
  if (size > 0 && !args.setTid) throw new SysArgError('setTid', 'setTidSize > 0 needs the address of the pid array');
  const sig = args.exitSignal ?? 0;
  if (!Number.isInteger(sig) || sig < 0 || sig > 64) throw new SysArgError('exitSignal', `${sig} is not a signal number`);
  const buf = Buffer.alloc(CLONE_ARGS_SIZE);
  FIELDS.forEach((f, i) => writeU64(buf, u64(f, args[f] as bigint | number | undefined), 8 * i));
  return buf;
}

/** Reads a packed struct clone_args back (all fields as bigint). */
export function unpackCloneArgs(buf: Buffer): Required<{ [K in keyof CloneArgs]: bigint }> {
  if (buf.length < CLONE_ARGS_SIZE) throw new SysArgError('buf', `clone_args needs ${CLONE_ARGS_SIZE} bytes, got ${buf.length}`);
  return Object.fromEntries(FIELDS.map((f, i) => [f, readU64(buf, 8 * i)])) as Required<{ [K in keyof CloneArgs]: bigint }>;
}

/** The pid_t array that set_tid points to. */
export function packTidArray(tids: readonly number[]): Buffer {
  if (tids.length === 0 || tids.length > MAX_SET_TID) throw new SysArgError('tids', `needs 1..${MAX_SET_TID} entries, got ${tids.length}`);
  const buf = Buffer.alloc(4 * tids.length);
  tids.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t > 0x3fffffff) throw new SysArgError(`tids[${i}]`, `${t} is not a pid`);
    writeI32(buf, t, 4 * i);
  });
  return buf;
}

export function unpackTidArray(buf: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 4 <= buf.length; i += 4) out.push(readI32(buf, i));
  return out;
}
