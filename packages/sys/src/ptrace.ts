// ptrace(2) requests. Every request must come from the thread that attached (for a Node program:
// the main JS thread), which is why nothing here is async; wait for stops with waitpid/waitpidAsync.
import { PTRACE, PTRACE_PEEKSIGINFO_SHARED, PTRACE_SYSCALL_INFO, ptraceRequestName } from './constants/ptrace.js';
import { SysArgError } from './errors.js';
import { readI32, readI64, readU32, readU64, writeI32, writeU32, writeU64 } from './native.js';
import type { SysArg, SyscallRunner } from './runner.js';

/** Size of siginfo_t on every Linux arch. */
export const SIGINFO_SIZE = 128;

export interface SigInfo {
  signo: number;
  errno: number;
  code: number;
  /** The whole 128-byte siginfo_t, for fields that depend on signo/code. */
  raw: Buffer;
}

export type SyscallInfo =
  | { op: 'none'; arch: number; instructionPointer: bigint; stackPointer: bigint }
  | { op: 'entry'; arch: number; instructionPointer: bigint; stackPointer: bigint; nr: bigint; args: bigint[] }
  | { op: 'exit'; arch: number; instructionPointer: bigint; stackPointer: bigint; rval: bigint; isError: boolean }
  | { op: 'seccomp'; arch: number; instructionPointer: bigint; stackPointer: bigint; nr: bigint; args: bigint[]; retData: number };

export interface RseqConfiguration {
  rseqAbiPointer: bigint;
  rseqAbiSize: number;
  signature: number;
  flags: number;
}

type Addr = bigint | number;

function hex(v: Addr): string {
  return `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
}

function checkSignal(sig: number): void {
  if (!Number.isInteger(sig) || sig < 0 || sig > 64) throw new SysArgError('signal', `${sig} is not a signal number (0..64)`);
}

export class Ptrace {
  constructor(private readonly r: SyscallRunner) {}

  /** A raw request: ptrace(request, pid, addr, data). */
  request(request: number, pid: number, addr: SysArg = 0, data: SysArg = 0, shown?: string): bigint {
    return this.r.call('ptrace', [request, pid, addr, data], () => `${ptraceRequestName(request)}, ${pid}${shown ? `, ${shown}` : ''}`);
  }

  /** Attaches without stopping the tracee; `options` are PTRACE_O_* bits. */
  seize(pid: number, options = 0): void {
    this.request(PTRACE.SEIZE, pid, 0, options, options ? `0x${options.toString(16)}` : undefined);
  }
  /** Old-style attach (sends SIGSTOP). Prefer seize. */
  attach(pid: number): void {
    this.request(PTRACE.ATTACH, pid);
  }
  /** Stops a seized tracee; wait reports a PTRACE_EVENT_STOP. */
  interrupt(pid: number): void {
    this.request(PTRACE.INTERRUPT, pid);
  }
  cont(pid: number, signal = 0): void {
    checkSignal(signal);
    this.request(PTRACE.CONT, pid, 0, signal);
  }
  /** Resumes until the next syscall entry or exit. */
  syscall(pid: number, signal = 0): void {
    checkSignal(signal);
    this.request(PTRACE.SYSCALL, pid, 0, signal);
  }
  /** Resumes for one instruction (x86_64 and ppc64 both support it). */
  singlestep(pid: number, signal = 0): void {
    checkSignal(signal);
    this.request(PTRACE.SINGLESTEP, pid, 0, signal);
  }
  /** Lets a group-stopped seized tracee stay stopped while still reporting events. */
  listen(pid: number): void {
    this.request(PTRACE.LISTEN, pid);
  }
  detach(pid: number, signal = 0): void {
    checkSignal(signal);
    this.request(PTRACE.DETACH, pid, 0, signal);
  }
  setOptions(pid: number, options: number): void {
    this.request(PTRACE.SETOPTIONS, pid, 0, options, `0x${options.toString(16)}`);
  }

  /** Reads register set `nt` (an NT_* value) into `buf`; returns the number of bytes the kernel filled. */
  getRegsetInto(pid: number, nt: number, buf: Buffer): number {
    const iov = Buffer.alloc(16);
    writeU64(iov, this.r.address(buf), 0);
    writeU64(iov, BigInt(buf.length), 8);
    this.request(PTRACE.GETREGSET, pid, nt, iov, `0x${nt.toString(16)}`);
    void buf; // kept alive past the call: its address is inside iov
    return Number(readU64(iov, 8));
  }
  /** Reads register set `nt`; `maxSize` bounds the buffer, the result is cut to what the kernel wrote. */
  getRegset(pid: number, nt: number, maxSize: number): Buffer {
    if (!Number.isInteger(maxSize) || maxSize <= 0) throw new SysArgError('maxSize', `${maxSize} is not a positive size`);
    const buf = Buffer.alloc(maxSize);
    return buf.subarray(0, this.getRegsetInto(pid, nt, buf));
  }
  /** Writes register set `nt` from `data` (its whole length). */
  setRegset(pid: number, nt: number, data: Buffer): void {
    const iov = Buffer.alloc(16);
    writeU64(iov, this.r.address(data), 0);
    writeU64(iov, BigInt(data.length), 8);
    this.request(PTRACE.SETREGSET, pid, nt, iov, `0x${nt.toString(16)}`);
    void data;
  }

  /** One machine word at `addr` of the tracee's memory. */
  peekData(pid: number, addr: Addr): bigint {
    return this.peek(PTRACE.PEEKDATA, pid, addr);
  }
  peekText(pid: number, addr: Addr): bigint {
    return this.peek(PTRACE.PEEKTEXT, pid, addr);
  }
  /** One word at `offset` of the tracee's struct user. */
  peekUser(pid: number, offset: number): bigint {
    return this.peek(PTRACE.PEEKUSR, pid, offset);
  }
  pokeData(pid: number, addr: Addr, word: bigint): void {
    this.request(PTRACE.POKEDATA, pid, BigInt(addr), word, hex(addr));
  }
  pokeText(pid: number, addr: Addr, word: bigint): void {
    this.request(PTRACE.POKETEXT, pid, BigInt(addr), word, hex(addr));
  }
  pokeUser(pid: number, offset: number, word: bigint): void {
    this.request(PTRACE.POKEUSR, pid, offset, word, `${offset}`);
  }
  private peek(req: number, pid: number, addr: Addr): bigint {
    // The raw syscall stores the word at `data` (only the libc wrapper returns it).
    const out = Buffer.alloc(8);
    this.request(req, pid, BigInt(addr), out, hex(addr));
    return readU64(out, 0);
  }

  /** The message of the last ptrace event (new child's pid, exit status, ...). */
  getEventMsg(pid: number): bigint {
    const out = Buffer.alloc(8);
    this.request(PTRACE.GETEVENTMSG, pid, 0, out);
    return readU64(out, 0);
  }

  getSigInfo(pid: number): SigInfo {
    const raw = Buffer.alloc(SIGINFO_SIZE);
    this.request(PTRACE.GETSIGINFO, pid, 0, raw);
    return decodeSigInfo(raw);
  }
  setSigInfo(pid: number, raw: Buffer): void {
    if (raw.length !== SIGINFO_SIZE) throw new SysArgError('raw', `siginfo must be ${SIGINFO_SIZE} bytes, got ${raw.length}`);
    this.request(PTRACE.SETSIGINFO, pid, 0, raw);
  }
  /** Pending signals without dequeuing them: the thread's queue, or the process-wide one. */
  peekSigInfo(pid: number, opts: { offset?: number; count?: number; shared?: boolean } = {}): SigInfo[] {
    const count = opts.count ?? 32;
    if (!Number.isInteger(count) || count < 1 || count > 4096) throw new SysArgError('count', `${count} is outside 1..4096`);
    const args = Buffer.alloc(16);
    writeU64(args, BigInt(opts.offset ?? 0), 0);
    writeU32(args, opts.shared ? PTRACE_PEEKSIGINFO_SHARED : 0, 8);
    writeI32(args, count, 12);
    const out = Buffer.alloc(SIGINFO_SIZE * count);
    const n = Number(this.request(PTRACE.PEEKSIGINFO, pid, args, out));
    const list: SigInfo[] = [];
    for (let i = 0; i < n; i++) list.push(decodeSigInfo(Buffer.from(out.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE))));
    return list;
  }

  /** The tracee's blocked-signal mask (bit sig-1 set = blocked). */
  getSigMask(pid: number): bigint {
    const out = Buffer.alloc(8);
    this.request(PTRACE.GETSIGMASK, pid, 8, out);
    return readU64(out, 0);
  }
  setSigMask(pid: number, mask: bigint): void {
    const buf = Buffer.alloc(8);
    writeU64(buf, mask, 0);
    this.request(PTRACE.SETSIGMASK, pid, 8, buf, hex(mask));
  }

  /** What the tracee is doing at this stop with respect to syscalls (Linux 5.3+). */
  getSyscallInfo(pid: number): SyscallInfo {
    const buf = Buffer.alloc(88);
    this.request(PTRACE.GET_SYSCALL_INFO, pid, buf.length, buf);
    return decodeSyscallInfo(buf);
  }

  /** Where the tracee registered its rseq area (Linux 5.13+). */
  getRseqConfiguration(pid: number): RseqConfiguration {
    const buf = Buffer.alloc(24);
    this.request(PTRACE.GET_RSEQ_CONFIGURATION, pid, buf.length, buf);
    return { rseqAbiPointer: readU64(buf, 0), rseqAbiSize: readU32(buf, 8), signature: readU32(buf, 12), flags: readU32(buf, 16) };
  }

  /** The classic-BPF program of seccomp filter `index` (0 = most recent), as 8-byte sock_filter records. */
  seccompGetFilter(pid: number, index: number): Buffer {
    const count = Number(this.request(PTRACE.SECCOMP_GET_FILTER, pid, index, 0));
    const buf = Buffer.alloc(count * 8);
    this.request(PTRACE.SECCOMP_GET_FILTER, pid, index, buf);
    return buf;
  }
}

export function decodeSigInfo(raw: Buffer): SigInfo {
  return { signo: readI32(raw, 0), errno: readI32(raw, 4), code: readI32(raw, 8), raw };
}

/** Decodes struct ptrace_syscall_info. */
export function decodeSyscallInfo(buf: Buffer): SyscallInfo {
  const op = buf[0];
  const base = { arch: readU32(buf, 4), instructionPointer: readU64(buf, 8), stackPointer: readU64(buf, 16) };
  const args = () => [0, 1, 2, 3, 4, 5].map((i) => readU64(buf, 32 + 8 * i));
  switch (op) {
    case PTRACE_SYSCALL_INFO.ENTRY:
      return { op: 'entry', ...base, nr: readU64(buf, 24), args: args() };
    case PTRACE_SYSCALL_INFO.EXIT:
      return { op: 'exit', ...base, rval: readI64(buf, 24), isError: buf[32] !== 0 };
    case PTRACE_SYSCALL_INFO.SECCOMP:
      return { op: 'seccomp', ...base, nr: readU64(buf, 24), args: args(), retData: readU32(buf, 80) };
    default:
      return { op: 'none', ...base };
  }
}
