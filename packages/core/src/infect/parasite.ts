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
import { InfectError } from './errors.js';
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

export class Parasite {
  private finished = false;

  private constructor(
    private readonly task: FrozenTask,
    private readonly base: bigint,
    private readonly size: number,
    private readonly sock: ControlSocket,
  ) {}

  /** Maps, relocates and starts the parasite; returns once it has connected back. */
  static inject(task: FrozenTask, opts: { timeoutMs?: number } = {}): Parasite {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const pageSize = sys.pageSize();
    const blob = loadBlob(task.arch);
    const argsOff = (blob.bytes.length + 15) & ~15;
    const size = Math.ceil((argsOff + ARGS_LAYOUT.size + STACK_SIZE) / pageSize) * pageSize;
    const base = task.syscall('mmap', 0, size, PROT_RWX, MAP_PRIVATE_ANON, -1, 0);
    let listener: ControlSocket | undefined;
    let sock: ControlSocket | undefined;
    let started = false;
    try {
      const { listener: l, name } = ControlSocket.listen(timeoutMs);
      listener = l;
      const image = Buffer.concat([Buffer.from(relocateBlob(blob, base, task.arch.littleEndian)), Buffer.alloc(argsOff - blob.bytes.length), encodeArgs(pageSize, name)]);
      const written = sys.writeMemory(task.pid, base, image);
      if (written !== image.length) throw new InfectError(task.pid, 'write parasite', `wrote ${written} of ${image.length} bytes`);
      task.startCall(base + BigInt(blob.entry), base + BigInt(size), base + BigInt(argsOff));
      started = true;
      try {
        sock = listener.accept(timeoutMs);
      } catch (e) {
        throw new InfectError(task.pid, 'parasite connect', `the parasite did not connect (${(e as Error).message}); task status: ${JSON.stringify(task.pollStatus())}`, { cause: e });
      }
      const p = new Parasite(task, base, size, sock);
      p.expect(PCMD.READY, 0);
      return p;
    } catch (e) {
      sock?.close();
      if (started) stopAndCure(task);
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

  /** Stops the parasite, unmaps it and cures the task (still frozen afterwards). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    try {
      this.request(PCMD.FINI, Buffer.alloc(0));
      this.expect(PCMD.FINI, 0);
      const ret = this.task.waitCallTrap('parasite fini');
      if (ret !== 0n) throw new InfectError(this.task.pid, 'parasite fini', `parasite exited with ${ret}`);
    } catch (e) {
      this.sock.close();
      stopAndCure(this.task);
      throw e;
    } finally {
      this.sock.close();
      this.task.cure();
      this.task.syscall('munmap', this.base, this.size);
    }
  }

  /** Tears the parasite down after an error, without talking to it. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.sock.close(); // the parasite sees the socket close and returns to its trap
    stopAndCure(this.task);
    try { this.task.syscall('munmap', this.base, this.size); } catch { /* best effort */ }
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

/** After a failure while the parasite ran: stop the task wherever it is and put it back. */
function stopAndCure(task: FrozenTask, graceMs = 2000): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + graceMs;
  let st = task.pollStatus();
  // The parasite returns to its trap once its socket closes; give it a moment, then force a stop.
  while (!st && Date.now() < deadline) {
    Atomics.wait(sleeper, 0, 0, 2);
    st = task.pollStatus();
  }
  if (!st) task.interruptRunning();
  task.cure();
}
