/**
 * The parasite control protocol, mirrored from packages/core/parasite/protocol.h (a test
 * compiles the header and checks these offsets). Native-endian LP64 layouts.
 */
export const PARASITE_MAGIC = 0x50415253;
export const PARASITE_VERSION = 3;

export const PCMD = Object.freeze({
  READY: 1, TASK_STATE: 2, SEND_FDS: 3, SET_PIPE: 4, DUMP_PAGES: 5, MPROTECT: 6, FINI: 7, DUMP_PAGES_MULTI: 8,
});
export const MSG_HEADER_SIZE = 16;
export const MAX_FDS_PER_MSG = 250;
export const MAX_IOVS_PER_MSG = 512;
export const NSIG = 64;

export const ARGS_LAYOUT = Object.freeze({ magic: 0, version: 4, pageSize: 8, sockNameLen: 16, sockName: 20, sockFd: 120, sigreturnSp: 128, size: 136, sockNameMax: 100 });

export const TASK_STATE_LAYOUT = Object.freeze({
  sa: 0, saSize: 32, itimers: 2048, itimerSize: 32, sasSp: 2144, sasSize: 2152, sasFlags: 2160,
  umask: 2164, tidAddress: 2168, pdeathSig: 2176, dumpable: 2180, childSubreaper: 2184,
  noNewPrivs: 2188, thpDisabled: 2192, securebits: 2196, brk: 2200, size: 2208,
});

export interface KernelSigaction { handler: bigint; flags: bigint; restorer: bigint; mask: bigint }
export interface ITimer { intervalSec: bigint; intervalUsec: bigint; valueSec: bigint; valueUsec: bigint }

/** What the parasite reports about the task (only the task itself can read these). */
export interface ParasiteTaskState {
  /** Index i is signal i+1; SIGKILL and SIGSTOP are all zero. */
  sigactions: KernelSigaction[];
  /** ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF. */
  itimers: ITimer[];
  sigaltstack: { sp: bigint; size: bigint; flags: number };
  umask: number;
  tidAddress: bigint;
  pdeathSig: number;
  dumpable: number;
  childSubreaper: number;
  noNewPrivs: number;
  thpDisabled: number;
  /** PR_GET_SECUREBITS of the thread the parasite runs in. */
  securebits: number;
  /** brk(0): the current program break. */
  brk: bigint;
}

export function encodeHeader(cmd: number, len: number, status = 0): Buffer {
  const h = Buffer.alloc(MSG_HEADER_SIZE);
  h.writeUInt32LE(cmd, 0);
  h.writeInt32LE(status, 4);
  h.writeUInt32LE(len, 8);
  return h;
}

export function decodeHeader(b: Buffer): { cmd: number; status: number; len: number } {
  return { cmd: b.readUInt32LE(0), status: b.readInt32LE(4), len: b.readUInt32LE(8) };
}

/**
 * parasite_args. `sockFd`: the task's end of the control socket when the dumper connected it by
 * injected syscalls (-1: the parasite connects to `sockName` itself). `sigreturnSp`: non-zero to
 * let the parasite resume the task by rt_sigreturn if the dumper is lost.
 */
export function encodeArgs(pageSize: number, sockName: string, sockFd = -1, sigreturnSp = 0n): Buffer {
  const L = ARGS_LAYOUT;
  const name = Buffer.from(sockName, 'latin1');
  if (name.length > L.sockNameMax) throw new Error(`parasite socket name too long (${name.length})`);
  const b = Buffer.alloc(L.size);
  b.writeUInt32LE(PARASITE_MAGIC, L.magic);
  b.writeUInt32LE(PARASITE_VERSION, L.version);
  b.writeBigUInt64LE(BigInt(pageSize), L.pageSize);
  b.writeUInt32LE(name.length, L.sockNameLen);
  name.copy(b, L.sockName);
  b.writeInt32LE(sockFd, L.sockFd);
  b.writeBigUInt64LE(sigreturnSp, L.sigreturnSp);
  return b;
}

export function decodeTaskState(b: Buffer): ParasiteTaskState {
  const L = TASK_STATE_LAYOUT;
  if (b.length < L.size) throw new Error(`parasite task state: ${b.length} bytes, expected ${L.size}`);
  const u64 = (o: number) => b.readBigUInt64LE(o);
  const sigactions: KernelSigaction[] = [];
  for (let i = 0; i < NSIG; i++) {
    const o = L.sa + i * L.saSize;
    sigactions.push({ handler: u64(o), flags: u64(o + 8), restorer: u64(o + 16), mask: u64(o + 24) });
  }
  const itimers: ITimer[] = [];
  for (let i = 0; i < 3; i++) {
    const o = L.itimers + i * L.itimerSize;
    itimers.push({ intervalSec: u64(o), intervalUsec: u64(o + 8), valueSec: u64(o + 16), valueUsec: u64(o + 24) });
  }
  return {
    sigactions, itimers,
    sigaltstack: { sp: u64(L.sasSp), size: u64(L.sasSize), flags: b.readUInt32LE(L.sasFlags) },
    umask: b.readUInt32LE(L.umask), tidAddress: u64(L.tidAddress), pdeathSig: b.readInt32LE(L.pdeathSig),
    dumpable: b.readInt32LE(L.dumpable), childSubreaper: b.readInt32LE(L.childSubreaper),
    noNewPrivs: b.readInt32LE(L.noNewPrivs), thpDisabled: b.readInt32LE(L.thpDisabled),
    securebits: b.readInt32LE(L.securebits), brk: u64(L.brk),
  };
}
