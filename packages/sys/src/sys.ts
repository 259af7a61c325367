// Sys: one backend-bound entry point to everything in this package. `createSys()` is cheap: the
// backend is loaded on the first call that needs it.
import { hostArch, syscallName, syscallNumber, type Arch } from './arch.js';
import { auxvPageSize } from './auxv.js';
import { SysArgError, SysError } from './errors.js';
import type { BackendName, FfiBackend, SyscallResult } from './ffi/backend.js';
import { loadBackend, resolveBackendName } from './ffi/load.js';
import * as fds from './fds.js';
import * as memory from './memory.js';
import { recvWithFds, sendWithFds } from './unix-msg.js';
import type { RemoteRange } from './memory.js';
import { Ptrace } from './ptrace.js';
import type { SysArg, SyscallRunner } from './runner.js';
import { waitpid, waitpidAsync, type WaitStatus } from './wait.js';

export interface SysOptions {
  /** FFI backend; default: env CRIU_TS_FFI, else 'koffi'. */
  backend?: BackendName;
}

const MAX_ARGS = 6;
const I64_MIN = -(1n << 63n);
const U64_END = 1n << 64n;

export class Sys implements SyscallRunner {
  private cachedPageSize: number | undefined;
  /** ptrace requests; all of them must be made from the thread that attached. */
  readonly ptrace: Ptrace;
  /** The host arch (null on an unsupported one: only numeric syscalls work there). */
  readonly arch: Arch | null = hostArch();
  private readonly wanted: BackendName | undefined;
  private loaded: FfiBackend | undefined;

  constructor(options: SysOptions = {}) {
    if (options.backend !== undefined) resolveBackendName(options.backend); // fail early on a typo
    this.wanted = options.backend;
    this.ptrace = new Ptrace(this);
  }

  /** The FFI backend, loaded now if it was not yet. */
  get backend(): FfiBackend {
    if (!this.loaded) this.loaded = loadBackend(resolveBackendName(this.wanted));
    return this.loaded;
  }
  get backendName(): BackendName {
    return this.loaded?.name ?? resolveBackendName(this.wanted);
  }

  /** The syscall number for a name (or a number passed through). */
  nr(nrOrName: number | string): number {
    if (typeof nrOrName === 'number') {
      if (!Number.isInteger(nrOrName) || nrOrName < 0) throw new SysArgError('nr', `${nrOrName} is not a syscall number`);
      return nrOrName;
    }
    const nr = syscallNumber(nrOrName, this.arch);
    if (nr === undefined) throw new SysArgError('nr', `no syscall '${nrOrName}' on ${this.arch ?? process.arch}`);
    return nr;
  }

  /** Calls a syscall by name or number; returns its result, throws SysError on failure. */
  syscall(nrOrName: number | string, ...args: SysArg[]): bigint {
    return this.call(nrOrName, args);
  }

  /** Like syscall(), but returns { ret, errno } instead of throwing on failure. */
  trySyscall(nrOrName: number | string, ...args: SysArg[]): SyscallResult {
    const nr = this.nr(nrOrName);
    const a = this.args(args);
    const res = this.backend.syscall(nr, a);
    void args; // Buffers stay alive across the call
    return res;
  }

  /** syscall() on a helper thread. Refuses ptrace, which must run on the tracing thread. */
  syscallAsync(nrOrName: number | string, ...args: SysArg[]): Promise<bigint> {
    return this.callAsync(nrOrName, args);
  }

  call(nrOrName: number | string, args: readonly SysArg[], detail?: () => string): bigint {
    const nr = this.nr(nrOrName);
    const { ret, errno } = this.backend.syscall(nr, this.args(args));
    if (ret === -1n) throw this.error(nr, nrOrName, args, errno, detail);
    return ret;
  }

  async callAsync(nrOrName: number | string, args: readonly SysArg[], detail?: () => string): Promise<bigint> {
    const nr = this.nr(nrOrName);
    if (nr === syscallNumber('ptrace', this.arch)) {
      throw new SysArgError('nr', 'ptrace requests must be made from the thread that attached; they cannot run async');
    }
    const { ret, errno } = await this.backend.syscallAsync(nr, this.args(args));
    if (ret === -1n) throw this.error(nr, nrOrName, args, errno, detail);
    return ret; // `args` (and its Buffers) stayed referenced by this frame until now
  }

  address(buf: Uint8Array): bigint {
    return this.backend.address(asBuffer(buf));
  }

  /** Page size from AT_PAGESZ, else libc getpagesize(). */
  pageSize(): number {
    // Read once: a process's page size does not change, and this is asked all through a dump.
    this.cachedPageSize ??= auxvPageSize() ?? this.backend.pageSize();
    return this.cachedPageSize;
  }

  // --- wait
  waitpid(pid: number, options?: number): WaitStatus | null {
    return waitpid(this, pid, options);
  }
  waitpidAsync(pid: number, options?: number): Promise<WaitStatus | null> {
    return waitpidAsync(this, pid, options);
  }

  // --- memory of other processes
  processVmReadv(pid: number, local: Buffer | readonly Buffer[], remote: RemoteRange | readonly RemoteRange[], flags = 0): number {
    return memory.processVmReadv(this, pid, local, remote, flags);
  }
  processVmWritev(pid: number, local: Buffer | readonly Buffer[], remote: RemoteRange | readonly RemoteRange[], flags = 0): number {
    return memory.processVmWritev(this, pid, local, remote, flags);
  }
  readMemory(pid: number, addr: bigint | number, len: number): Buffer {
    return memory.readMemory(this, pid, addr, len);
  }
  writeMemory(pid: number, addr: bigint | number, data: Buffer): number {
    return memory.writeMemory(this, pid, addr, data);
  }

  // --- processes and fds
  getpid(): number {
    return Number(this.call('getpid', []));
  }
  gettid(): number {
    return Number(this.call('gettid', []));
  }
  kill(pid: number, signal: number): void {
    this.call('kill', [pid, signal], () => `${pid}, ${signal}`);
  }
  tgkill(tgid: number, tid: number, signal: number): void {
    this.call('tgkill', [tgid, tid, signal], () => `${tgid}, ${tid}, ${signal}`);
  }
  close(fd: number): void {
    fds.close(this, fd);
  }
  pidfdOpen(pid: number, flags = 0): number {
    return fds.pidfdOpen(this, pid, flags);
  }
  pidfdSendSignal(pidfd: number, signal: number, flags = 0): void {
    fds.pidfdSendSignal(this, pidfd, signal, flags);
  }
  pidfdGetfd(pidfd: number, targetFd: number, flags = 0): number {
    return fds.pidfdGetfd(this, pidfd, targetFd, flags);
  }
  kcmp(pid1: number, pid2: number, type: number, idx1: SysArg = 0, idx2: SysArg = 0): number {
    return fds.kcmp(this, pid1, pid2, type, idx1, idx2);
  }
  memfdCreate(name: string, flags = 0): number {
    return fds.memfdCreate(this, name, flags);
  }
  pipe2(flags = 0): [number, number] {
    return fds.pipe2(this, flags);
  }
  splice(fdIn: number, offIn: bigint | number | null, fdOut: number, offOut: bigint | number | null, len: number, flags = 0): number {
    return fds.splice(this, fdIn, offIn, fdOut, offOut, len, flags);
  }
  spliceAsync(fdIn: number, offIn: bigint | number | null, fdOut: number, offOut: bigint | number | null, len: number, flags = 0): Promise<number> {
    return fds.spliceAsync(this, fdIn, offIn, fdOut, offOut, len, flags);
  }
  vmsplice(fd: number, bufs: Buffer | readonly Buffer[], flags = 0): number {
    return fds.vmsplice(this, fd, bufs, flags);
  }
  tee(fdIn: number, fdOut: number, len: number, flags = 0): number {
    return fds.tee(this, fdIn, fdOut, len, flags);
  }
  fcntl(fd: number, cmd: number, arg: SysArg = 0): number {
    return fds.fcntl(this, fd, cmd, arg);
  }
  prctl(option: number, a2: SysArg = 0, a3: SysArg = 0, a4: SysArg = 0, a5: SysArg = 0): bigint {
    return fds.prctl(this, option, a2, a3, a4, a5);
  }
  /** sendmsg of one message with descriptors attached (SCM_RIGHTS); returns the bytes sent. */
  sendWithFds(fd: number, data: Buffer, fdsToSend: readonly number[] = [], flags = 0): number {
    return sendWithFds(this, fd, data, fdsToSend, flags);
  }
  /** recvmsg of one message into `data`, with up to `maxFds` descriptors. */
  recvWithFds(fd: number, data: Buffer, maxFds = 0, flags = 0): { n: number; fds: number[] } {
    return recvWithFds(this, fd, data, maxFds, flags);
  }

  // --- internals
  private args(args: readonly SysArg[]): bigint[] {
    if (args.length > MAX_ARGS) throw new SysArgError('args', `a syscall takes at most ${MAX_ARGS} arguments, got ${args.length}`);
    const out: bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];
    for (let i = 0; i < args.length; i++) out[i] = this.arg(args[i], i);
    return out;
  }

  private arg(v: SysArg, i: number): bigint {
    if (typeof v === 'bigint') {
      if (v < I64_MIN || v >= U64_END) throw new SysArgError(`args[${i}]`, `${v} does not fit in 64 bits`);
      return BigInt.asIntN(64, v);
    }
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new SysArgError(`args[${i}]`, `${v} is not a safe integer (pass a bigint)`);
      return BigInt(v);
    }
    if (v === null || v === undefined) return 0n;
    if (v instanceof Uint8Array) return this.backend.address(asBuffer(v));
    throw new SysArgError(`args[${i}]`, `unsupported argument type ${typeof v}`);
  }

  private error(nr: number, asked: number | string, args: readonly SysArg[], errno: number, detail?: () => string): SysError {
    const name = typeof asked === 'string' ? asked : syscallName(nr, this.arch) ?? `syscall_${nr}`;
    return new SysError(name, errno, detail ? detail() : args.map(showArg).join(', '));
  }
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function showArg(v: SysArg): string {
  if (v === null || v === undefined) return 'NULL';
  if (v instanceof Uint8Array) return `<buffer ${v.byteLength}>`;
  return String(v);
}

/** A Sys bound to the given (or the default) backend. */
export function createSys(options?: SysOptions): Sys {
  return new Sys(options);
}
