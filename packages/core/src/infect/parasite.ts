/**
 * Injects the arch's parasite blob into a frozen task, runs it, and drives it over the control
 * socket. Anything that goes wrong leaves the task cured: blob unmapped, code, registers and
 * signal mask put back.
 */
import * as fs from 'node:fs';
import { sys } from '@criu/sys';
import type { Arch } from '../arch/types.js';
import { elfToBlob, relocateBlob, type ParasiteBlob } from '../parasite/elf-blob.js';
import { ControlSocket } from './control-socket.js';
import { InfectError, RemoteSyscallError } from './errors.js';
import type { FrozenTask } from './frozen-task.js';
import {
  ARGS_LAYOUT, MAX_FDS_PER_MSG, MAX_IOVS_PER_MSG, MSG_HEADER_SIZE, PCMD, TASK_STATE_LAYOUT,
  decodeHeader, decodeTaskState, encodeArgs, encodeHeader, type ParasiteTaskState,
} from './protocol.js';

const PROT_RWX = 7;
const MAP_PRIVATE_ANON = 0x22;
const STACK_SIZE = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;

const blobCache = new Map<string, ParasiteBlob>();

function loadBlob(arch: Arch): ParasiteBlob {
  const file = arch.parasiteElfPath();
  let blob = blobCache.get(file);
  if (!blob) {
    blob = elfToBlob(fs.readFileSync(file), { ...arch.elf, file });
    blobCache.set(file, blob);
  }
  return blob;
}

/** A contiguous range of the task's memory. */
export interface MemRange { start: bigint; length: number }

export interface InjectOptions {
  /** Bounds connect, accept and every reply (default 10 s). */
  timeoutMs?: number;
  /**
   * The task's thread state (arch.dumpThreadInfo of its saved registers) for the self-resume
   * frame; read here when not given. `false`: no self-resume frame (a lost dumper then leaves the
   * parasite to return to its trap, which kills an untraced task).
   */
  threadInfo?: Record<string, unknown> | false;
}

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const ECONNREFUSED = 111;
/** Room after the frame for the injected syscalls' arguments (sockaddr_un, stack_t). */
const SCRATCH_ROOM = 256;

/**
 * Where things live in the parasite area:
 *   [blob][args][rt_sigreturn frame (64-byte aligned)][scratch][stack ... top]
 * The frame is there so the parasite can resume the task by itself if the dumper dies.
 */
function areaLayout(blobSize: number, frameRoom: number, pageSize: number) {
  const argsOff = (blobSize + 15) & ~15;
  const frameOff = (argsOff + ARGS_LAYOUT.size + 63) & ~63;
  const scratchOff = frameOff + frameRoom;
  const size = Math.ceil((scratchOff + SCRATCH_ROOM + STACK_SIZE) / pageSize) * pageSize;
  return { argsOff, frameOff, scratchOff, size };
}

export class Parasite {
  private finished = false;

  private constructor(
    private readonly task: FrozenTask,
    private readonly base: bigint,
    private readonly size: number,
    private readonly sock: ControlSocket,
    /** Whether the parasite can resume the task by itself (rt_sigreturn frame in place). */
    readonly selfResume: boolean,
    /** Why there is no self-resume frame, when there is none. */
    readonly selfResumeError?: Error,
    /** The task's end of the control socket (closed by an injected syscall once the task is cured). */
    /** The task's descriptor of the control socket (the files dump must not take it for the task's). */
    readonly taskFd = -1,
  ) {}

  /** Address and size of the parasite's mapping in the task. */
  get area(): { start: bigint; end: bigint } {
    return { start: this.base, end: this.base + BigInt(this.size) };
  }

  /**
   * Maps, relocates and starts the parasite; returns once it has connected back. The control
   * socket is connected by syscalls injected before the parasite starts, and the parasite gets an
   * rt_sigreturn frame of the task's own state: if the dumper dies while the parasite runs, the
   * socket closes and the parasite resumes the task exactly where it was frozen (its mapping stays
   * behind in the task: nobody is left to unmap it).
   */
  /** Loads and checks the arch's parasite ahead of time (so a dump does it before freezing). */
  static preload(arch: Arch): void {
    loadBlob(arch);
  }

  static inject(task: FrozenTask, opts: InjectOptions = {}): Parasite {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const pageSize = sys.pageSize();
    const arch = task.arch;
    const blob = loadBlob(arch);
    const wantFrame = opts.threadInfo !== false;
    const lay = areaLayout(blob.bytes.length, wantFrame ? arch.maxRestoreFrameSize : 0, pageSize);
    const { size } = lay;
    const base = task.syscall('mmap', 0, size, PROT_RWX, MAP_PRIVATE_ANON, -1, 0);
    let listener: ControlSocket | undefined;
    let sock: ControlSocket | undefined;
    let taskFd = -1;
    let started = false;
    let selfResumeError: Error | undefined;
    try {
      const { listener: l, name } = ControlSocket.listen(timeoutMs, task.pid);
      listener = l;
      const code = Buffer.concat([Buffer.from(relocateBlob(blob, base, arch.littleEndian)), Buffer.alloc(lay.argsOff - blob.bytes.length)]);
      writeAll(task, base, code, 'write parasite');

      let sigreturnSp = 0n;
      if (wantFrame) {
        try {
          sigreturnSp = writeResumeFrame(task, base + BigInt(lay.frameOff), base + BigInt(lay.scratchOff), opts.threadInfo || undefined);
        } catch (e) {
          // No frame: the dump works as before, only without the self-resume safety net.
          if (e instanceof InfectError && e.step !== 'self-resume frame') throw e;
          selfResumeError = e as Error;
        }
      }

      // The task connects to us by injected syscalls: a failure is seen here, while the task is
      // still stopped in its own state, never by a parasite left running on its own.
      const addr = Buffer.alloc(110);
      if (arch.littleEndian) addr.writeUInt16LE(AF_UNIX, 0); else addr.writeUInt16BE(AF_UNIX, 0);
      const addrLen = 3 + addr.write(name, 3, 'latin1');
      const addrAt = base + BigInt(lay.scratchOff + 64);
      writeAll(task, addrAt, addr, 'write socket address');
      taskFd = Number(task.syscall('socket', AF_UNIX, SOCK_SEQPACKET, 0));
      const rc = task.rawSyscall('connect', taskFd, addrAt, addrLen);
      if (rc < 0n) {
        const errno = Number(-rc);
        throw new InfectError(task.pid, 'parasite connect', `the task could not connect to the dumper's control socket (errno ${errno})`, {
          hint: errno === ECONNREFUSED ? 'the task may live in another network namespace (abstract unix sockets are per namespace)' : undefined,
        });
      }
      try {
        sock = listener.accept(timeoutMs);
      } catch (e) {
        throw new InfectError(task.pid, 'parasite connect', `accepting the task's connection failed (${(e as Error).message})`, { cause: e });
      }
      writeAll(task, base + BigInt(lay.argsOff), encodeArgs(pageSize, name, taskFd, sigreturnSp), 'write parasite args');
      task.startCall(base + BigInt(blob.entry), base + BigInt(size), base + BigInt(lay.argsOff));
      started = true;
      const p = new Parasite(task, base, size, sock, sigreturnSp !== 0n, selfResumeError, taskFd);
      try {
        p.expect(PCMD.READY, 0);
      } catch (e) {
        throw new InfectError(task.pid, 'parasite connect', `the parasite did not report ready (${(e as Error).message})`, { cause: e });
      }
      return p;
    } catch (e) {
      if (started) {
        // The parasite holds the socket (it closes it itself); stop it before we close ours.
        try { haltAndCure(task, base, size, 200); } catch { /* keep the first error */ }
      } else if (taskFd >= 0) {
        try { task.syscall('close', taskFd); } catch { /* keep the first error */ }
      }
      sock?.close();
      try { task.syscall('munmap', base, size); } catch { /* keep the first error */ }
      throw e;
    } finally {
      listener?.close();
    }
  }

  taskState(): ParasiteTaskState {
    this.request(PCMD.TASK_STATE, Buffer.alloc(0));
    return decodeTaskState(this.expect(PCMD.TASK_STATE, TASK_STATE_LAYOUT.size).data);
  }

  /** Duplicates the task's descriptors into this process (caller closes them). */
  receiveFds(fds: readonly number[]): number[] {
    const out: number[] = [];
    for (let i = 0; i < fds.length; i += MAX_FDS_PER_MSG) {
      const batch = fds.slice(i, i + MAX_FDS_PER_MSG);
      const payload = Buffer.alloc(4 + batch.length * 4);
      payload.writeUInt32LE(batch.length, 0);
      batch.forEach((fd, j) => payload.writeInt32LE(fd, 4 + j * 4));
      this.request(PCMD.SEND_FDS, payload);
      const { fds: got } = this.expect(PCMD.SEND_FDS, 0, batch.length);
      if (got.length !== batch.length) {
        got.forEach((fd) => sys.close(fd));
        out.forEach((fd) => sys.close(fd));
        throw new InfectError(this.task.pid, 'receive fds', `asked for ${batch.length} descriptors, got ${got.length}`);
      }
      out.push(...got);
    }
    return out;
  }

  /** Gives the parasite the write end of the pipe that dumpPages() fills. */
  setPipe(writeFd: number): void {
    this.request(PCMD.SET_PIPE, Buffer.alloc(0), [writeFd]);
    this.expect(PCMD.SET_PIPE, 0);
  }

  /** vmsplices the ranges into the pipe (they must fit in it); returns the bytes moved. */
  dumpPages(ranges: readonly MemRange[]): number {
    if (ranges.length > MAX_IOVS_PER_MSG) throw new RangeError(`at most ${MAX_IOVS_PER_MSG} ranges per call`);
    const payload = Buffer.alloc(8 + ranges.length * 16);
    payload.writeUInt32LE(ranges.length, 0);
    ranges.forEach((r, i) => {
      payload.writeBigUInt64LE(r.start, 8 + i * 16);
      payload.writeBigUInt64LE(BigInt(r.length), 16 + i * 16);
    });
    this.request(PCMD.DUMP_PAGES, payload);
    return Number(this.expect(PCMD.DUMP_PAGES, 8).data.readBigUInt64LE(0));
  }

  /** Changes protections inside the task (e.g. to make a PROT_NONE region readable). */
  mprotect(regions: ReadonlyArray<{ start: bigint; length: bigint; prot: number }>): void {
    const payload = Buffer.alloc(8 + regions.length * 24);
    payload.writeUInt32LE(regions.length, 0);
    regions.forEach((r, i) => {
      payload.writeBigUInt64LE(r.start, 8 + i * 24);
      payload.writeBigUInt64LE(r.length, 16 + i * 24);
      payload.writeBigUInt64LE(BigInt(r.prot), 24 + i * 24);
    });
    this.request(PCMD.MPROTECT, payload);
    this.expect(PCMD.MPROTECT, 0);
  }

  /**
   * Stops the parasite, unmaps it and cures the task (still frozen afterwards). The parasite
   * answers FINI and then waits on the socket; we stop the task there with PTRACE_INTERRUPT (a
   * PTRACE_EVENT_STOP, harmless if we die) rather than let it run into its trap (a SIGTRAP stop,
   * fatal to the task if we died before curing it).
   */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.request(PCMD.FINI, Buffer.alloc(0));
      this.expect(PCMD.FINI, 0);
      const outcome = haltAndCure(this.task, this.base, this.size, 0);
      if (outcome !== 'cured') throw new InfectError(this.task.pid, 'parasite fini', 'the parasite had already resumed the task');
    } catch (e) {
      try { this.cleanUp(haltAndCure(this.task, this.base, this.size, 2000)); } catch { /* keep the first error */ }
      throw e;
    }
    this.cleanUp('cured');
  }

  /** With the task stopped and cured: our socket closed, the task's one too, the area unmapped. */
  private cleanUp(outcome: 'cured' | 'resumed-by-parasite'): void {
    this.sock.close();
    // A parasite that resumed the task closed its socket itself; one we stopped did not.
    if (outcome === 'cured' && this.taskFd >= 0) this.task.syscall('close', this.taskFd);
    dropOwnSigpipe(this.task, this.base);
    this.task.syscall('munmap', this.base, this.size);
  }

  /**
   * Tears the parasite down after an error: stops the task wherever it is (after `graceMs`), and
   * only then closes the socket
   * (a parasite that sees it close resumes the task on its own, which must not happen while we
   * still hold it). Returns what became of the task.
   */
  abort(graceMs = 0): 'cured' | 'resumed-by-parasite' {
    if (this.finished) return 'cured';
    this.finished = true;
    let outcome: 'cured' | 'resumed-by-parasite';
    try {
      // No FINI: the parasite would answer and wait. Stop it wherever it is (a crash already
      // stopped it); its registers are replaced by the task's own anyway.
      outcome = haltAndCure(this.task, this.base, this.size, graceMs);
    } catch (e) {
      this.sock.close();
      throw e;
    }
    try { this.cleanUp(outcome); } catch { /* best effort */ } finally { this.sock.close(); }
    return outcome;
  }

  private request(cmd: number, payload: Buffer, fds: readonly number[] = []): void {
    this.sock.send(Buffer.concat([encodeHeader(cmd, payload.length), payload]), fds);
  }

  private expect(cmd: number, minLen: number, maxFds = 0): { data: Buffer; fds: number[] } {
    const msg = this.sock.recv(MSG_HEADER_SIZE + Math.max(minLen, TASK_STATE_LAYOUT.size), maxFds);
    if (msg.data.length < MSG_HEADER_SIZE) throw new InfectError(this.task.pid, 'parasite reply', `short reply (${msg.data.length} bytes)`);
    const h = decodeHeader(msg.data);
    if (h.cmd !== cmd) throw new InfectError(this.task.pid, 'parasite reply', `expected reply to command ${cmd}, got ${h.cmd}`);
    if (h.status < 0) {
      msg.fds.forEach((fd) => sys.close(fd));
      throw new InfectError(this.task.pid, `parasite command ${cmd}`, `failed with errno ${-h.status}`);
    }
    const data = msg.data.subarray(MSG_HEADER_SIZE);
    if (data.length < minLen) throw new InfectError(this.task.pid, 'parasite reply', `payload of ${data.length} bytes, expected ${minLen}`);
    return { data, fds: msg.fds };
  }
}

/**
 * Writes the rt_sigreturn frame of the task's own state (saved registers, FPU state, signal
 * mask, and its sigaltstack, read by an injected syscall into `scratch`) at `frameAddr`; returns
 * the stack pointer to make rt_sigreturn with.
 */
function writeResumeFrame(task: FrozenTask, frameAddr: bigint, scratch: bigint, threadInfo?: Record<string, unknown>): bigint {
  const arch = task.arch;
  try {
    const ti = threadInfo ?? arch.dumpThreadInfo(task.pid, task.savedRegs);
    const r = task.rawSyscall('sigaltstack', 0, scratch);
    if (r < 0n) throw new Error(`sigaltstack failed with errno ${-r}`);
    const ss = sys.readMemory(task.pid, scratch, 24);
    const le = arch.littleEndian;
    const u64 = (o: number) => (le ? ss.readBigUInt64LE(o) : ss.readBigUInt64BE(o));
    const sigaltstack = { sp: u64(0), flags: le ? ss.readUInt32LE(8) : ss.readUInt32BE(8), size: u64(16) };
    const { frame, sp } = arch.restoreFrame(ti, task.savedSigmask, frameAddr, sigaltstack);
    if (frame.length > arch.maxRestoreFrameSize) throw new Error(`frame of ${frame.length} bytes exceeds the arch's ${arch.maxRestoreFrameSize}`);
    writeAll(task, frameAddr, frame, 'self-resume frame');
    return sp;
  } catch (e) {
    if (e instanceof InfectError && !(e instanceof RemoteSyscallError) && e.step !== 'self-resume frame') throw e; // the task died, ptrace failed ...
    throw new InfectError(task.pid, 'self-resume frame', (e as Error).message, { cause: e });
  }
}

const SIGPIPE_BIT = 1n << 12n; // signal 13

function pendingSignals(pid: number): bigint {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  const get = (k: string) => BigInt('0x' + (new RegExp(`^${k}:\\s+([0-9a-f]+)`, 'm').exec(st)?.[1] ?? '0'));
  return get('SigPnd') | get('ShdPnd');
}

/**
 * A vmsplice into a pipe whose reader we closed (a dump that failed mid-transfer) queues SIGPIPE
 * while the parasite runs with every signal blocked; with the task's own mask back it would kill
 * the task. If SIGPIPE is pending now and was not at the freeze, take it out (rt_sigtimedwait,
 * zero timeout, in the task, using the parasite area for its arguments).
 */
function dropOwnSigpipe(task: FrozenTask, scratch: bigint): void {
  if (!(pendingSignals(task.pid) & SIGPIPE_BIT) || task.pendingAtFreeze & SIGPIPE_BIT) return;
  const args = Buffer.alloc(24); // sigset (8) + timespec {0, 0}
  if (task.arch.littleEndian) args.writeBigUInt64LE(SIGPIPE_BIT, 0); else args.writeBigUInt64BE(SIGPIPE_BIT, 0);
  writeAll(task, scratch, args, 'drop SIGPIPE');
  task.rawSyscall('rt_sigtimedwait', scratch, 0, scratch + 8n, 8);
}

function writeAll(task: FrozenTask, addr: bigint, data: Buffer, step: string): void {
  const written = sys.writeMemory(task.pid, addr, data);
  if (written !== data.length) throw new InfectError(task.pid, step, `wrote ${written} of ${data.length} bytes`);
}

/**
 * After a failure while the parasite ran: stop the task wherever it is and put it back. If it
 * stopped outside the parasite's area, the parasite had already resumed it by rt_sigreturn (it
 * lost its socket): the task runs its own code again, so its current state becomes the one to
 * keep, instead of rewinding it to the registers of the freeze.
 */
function haltAndCure(task: FrozenTask, base: bigint, size: number, graceMs: number): 'cured' | 'resumed-by-parasite' {
  const regs = task.haltCall('parasite teardown', graceMs);
  const ip = task.arch.ip(regs);
  if (ip >= base && ip <= base + BigInt(size)) {
    task.cure();
    return 'cured';
  }
  task.adoptCurrentState();
  task.cure();
  return 'resumed-by-parasite';
}
