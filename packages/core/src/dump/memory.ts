/**
 * Dumps a frozen task's private memory: picks the pages worth keeping (present or swapped, not
 * the zero page, not still backed by the file in private file mappings; the whole vDSO; never
 * vvar), writes their contents to pages-<id>.img and returns the pagemap-<pid>.img records.
 *
 * Transfer is zero-copy by default: the parasite vmsplices task pages into a pipe and we
 * splice the pipe into the image. The 'vm_readv' method copies through a bounded buffer with
 * process_vm_readv instead.
 */
import { inParallel } from '../util/in-parallel.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys, O, F, SPLICE_F, SysError } from '@criu/sys';
import { PE_LAZY, PE_PARENT, PE_PRESENT, type Msg } from '@criu/images';
import { PCMD } from '../infect/protocol.js';
import type { TaskDumpContext } from './model.js';
import { PagemapScanner, PAGE_IS, type ScanMethod } from './mem-scan.js';
import { MAP, PROT, VMA, vmaCanBeLazy, vmaIsPrivateDumpable } from './vmas.js';
import { maybeChanged, type TaskTracking } from './mem-track.js';
import { PS_TYPE } from '../pageserver/protocol.js';
import type { PageServerClient } from '../pageserver/client.js';
import type { PostCopyPages } from '../pageserver/post-copy.js';

export type TransferMethod = 'parasite' | 'vm_readv';

export interface DumpMemoryOptions {
  pagesId: number;
  /** How page contents travel (default 'parasite'). */
  method?: TransferMethod;
  /** How present pages are found (default 'ioctl', falling back to 'pagemap' on old kernels). */
  scan?: ScanMethod;
  /** Buffer size of the 'vm_readv' method (default 4 MiB). */
  chunkBytes?: number;
  /** Upper bound for the pipe size of the 'parasite' method (default: /proc/sys/fs/pipe-max-size). */
  pipeBytes?: number;
  /** 1: the 'parasite' method moves one pipe per synchronous request (default 4: up to 64 pipes per request, two requests in flight). */
  pipes?: number;
  /** Iterative dump: pages unchanged since the parent images become PE_PARENT entries. */
  track?: TaskTracking;
  /** Send the pages to this page server (as pagemap-<pid>.img) instead of writing pages-<id>.img. */
  pageServer?: PageServerClient;
  /**
   * Post-copy (`criu dump --lazy-pages`): the pages a lazy restore will fetch (anonymous private
   * read-write memory) are kept here, not written; their pagemap entries are PE_LAZY alone.
   */
  postCopy?: PostCopyPages;
  /**
   * The task will be killed after the dump: instead of copying the pages into the image while
   * it is frozen, only vmsplice them into pipes (page references, no copy) and return a
   * `drain` that copies them after the kill — nothing can change a dead task's pages. Used when
   * the pages fit in the budget's pipes and the image's blocks could be reserved up front (so
   * the late copy cannot run out of space); otherwise the copy happens now, as without it.
   */
  defer?: DeferBudget;
}

/** Pipes the deferred transfers of one dump may hold at once (shared by the tasks of a tree). */
export interface DeferBudget {
  pipes: number;
  /** Pipes opened before the freeze (openPipePool), used first: opening ~1000 pipes takes ~50 ms. */
  pool?: Pipe[];
}

/**
 * Opens, before the freeze, the pipes a deferred transfer of about `bytes` will want (within the
 * budget); the rest of the dump takes them from `budget.pool`. closePipePool() closes leftovers.
 */
export function openPipePool(budget: DeferBudget, bytes: number, pageSize: number): void {
  const max = pipeMaxSize(); // read once: reading it per pipe cost ~30 ms for a 1 GiB dump
  const cap = Math.max(pageSize, Math.floor(max / pageSize) * pageSize);
  // A pooled pipe holds two descriptors until used (the budget counts one per pipe).
  const n = Math.min(Math.floor(budget.pipes / 2), Math.ceil(bytes / cap) + 2);
  const pool: Pipe[] = (budget.pool ??= []);
  const ctx = { pageSize } as TaskDumpContext;
  for (let i = 0; i < n; i++) {
    let p: Pipe;
    try {
      [p] = openPipes(ctx, 1, cap, { pagesId: 0, pipeBytes: cap }, max);
    } catch {
      break; // out of descriptors or memory: the transfer opens what it still can, or copies
    }
    if (i === 0 && n > 32) growFdTable(p.r, Math.max(p.r, p.w) + 2 * n + 8);
    pool.push(p);
    if (p.capacity < cap) break; // the user's pipe quota: the transfer will stop deferring there
  }
}

/**
 * Makes the descriptor table big enough for fd `upTo` at once. Growing it one doubling at a time
 * as pipes are opened waits for an RCU grace period at each step (the process has threads):
 * ~50-100 ms for the ~2000 descriptors of a 1 GiB dump, against one wait here. Best effort.
 */
function growFdTable(fd: number, upTo: number): void {
  const r = sys.trySyscall('dup3', fd, upTo, O.CLOEXEC);
  if (r.errno === 0) sys.close(Number(r.ret));
}

export function closePipePool(budget: DeferBudget | undefined): void {
  if (budget?.pool) closePipes(budget.pool.splice(0));
}

export interface MemoryDumpStats {
  /** Pages in the private vmas that were looked at. */
  pagesScanned: number;
  pagesSkippedZero: number;
  /** Pages of private file mappings still backed by the file (restore maps them from it). */
  pagesSkippedFile: number;
  pagesWritten: number;
  /** Unchanged pages left in the parent images (PE_PARENT). */
  pagesSkippedParent: number;
  bytesWritten: number;
  /** Buffer fills: pipe loads (parasite) or read chunks (vm_readv). */
  pipeBufs: number;
  elapsedMs: number;
  /** The scan method that was actually used. */
  scan: ScanMethod;
}

export interface MemoryDumpResult {
  /** pagemap_head then pagemap_entry records, for pagemap-<pid>.img. */
  pagemap: Msg[];
  stats: MemoryDumpStats;
  /** Set when (part of) the copy was deferred (opts.defer): call drain() once after the kill, or discard(). */
  deferred?: Deferred;
}

/** Pages held in pipes for the pages image: drain() copies them in, discard() lets them go. */
export interface Deferred {
  drain(): Promise<void>;
  discard(): void;
}

export class MemoryDumpError extends Error {
  override readonly name = 'MemoryDumpError';
  constructor(readonly pid: number, readonly what: string, reason: string, options?: { cause?: unknown }) {
    super(`task ${pid}: ${what}: ${reason}`, options);
  }
}

/** One pagemap run. */
interface Run { start: bigint; nrPages: number; flags: number }

const MAX_RUN_PAGES = 0x40000000; // nr_pages is a uint32; keep well inside it
const MAX_RANGES = 512; // per parasite request (PARASITE_MAX_IOVS)
const MAX_READV_IOVS = 1024; // IOV_MAX
const MPROTECT_BATCH = 256;
const DEFAULT_PIPES = 4;

function hex(v: bigint): string {
  return '0x' + v.toString(16);
}

function pipeMaxSize(): number {
  try {
    const n = Number(fs.readFileSync('/proc/sys/fs/pipe-max-size', 'latin1').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 1 << 20;
  } catch {
    return 1 << 20;
  }
}

/** Finds the pages to dump; runs come out in address order, coalesced. */
/**
 * Post-copy: the vmas whose pages stay with the dump side. Exactly those a lazy restore leaves
 * to the lazy-pages daemon (restore/lazy.ts: anonymous private read-write memory, not the
 * stack nor locked), so the restore never needs one of their pages itself.
 */
function servedRemotely(v: Msg): boolean {
  return vmaCanBeLazy(v) && (Number(v.status) & VMA.ANON_PRIVATE) !== 0 && Number(v.prot) === (PROT.READ | PROT.WRITE)
    && (Number(v.flags) & MAP.GROWSDOWN) === 0;
}

function planRuns(ctx: TaskDumpContext, vmas: Msg[], scanner: PagemapScanner, stats: MemoryDumpStats, track?: TaskTracking, postCopy = false): { runs: Run[]; holes: Run[]; unreadable: Msg[] } {
  const ps = BigInt(ctx.pageSize);
  const runs: Run[] = [];
  const unreadable: Msg[] = [];
  let added = 0;
  const add = (start: bigint, nrPages: number, flags: number): void => {
    added += nrPages;
    while (nrPages > 0) {
      const last = runs[runs.length - 1];
      if (last && last.flags === flags && last.start + BigInt(last.nrPages) * ps === start && last.nrPages < MAX_RUN_PAGES) {
        const n = Math.min(nrPages, MAX_RUN_PAGES - last.nrPages);
        last.nrPages += n;
        start += BigInt(n) * ps;
        nrPages -= n;
      } else {
        const n = Math.min(nrPages, MAX_RUN_PAGES);
        runs.push({ start, nrPages: n, flags });
        start += BigInt(n) * ps;
        nrPages -= n;
      }
    }
  };

  // PE_PARENT runs carry no data: kept apart, then merged in address order.
  const holes: Run[] = [];
  const addParent = (start: bigint, nrPages: number): void => {
    const last = holes[holes.length - 1];
    if (last && last.start + BigInt(last.nrPages) * ps === start && last.nrPages + nrPages < MAX_RUN_PAGES) last.nrPages += nrPages;
    else holes.push({ start, nrPages, flags: PE_PARENT });
  };

  const sorted = [...vmas].sort((a, b) => (BigInt(a.start as bigint) < BigInt(b.start as bigint) ? -1 : 1));
  let prevEnd = 0n;
  for (const v of sorted) {
    const start = BigInt(v.start as bigint);
    const end = BigInt(v.end as bigint);
    const status = Number(v.status);
    const where = `vma ${hex(start)}-${hex(end)}`;
    if (start < prevEnd) throw new MemoryDumpError(ctx.pid, where, 'overlaps the previous vma');
    prevEnd = end;
    if (start % ps !== 0n || end % ps !== 0n || end <= start) throw new MemoryDumpError(ctx.pid, where, 'is not page aligned');
    // Shared memory objects (FILE_SHARED|AREA_MEMFD) are saved whole, once, by shmem.ts.
    if (status & VMA.AREA_SYSVIPC) throw new MemoryDumpError(ctx.pid, where, 'SysV shared memory is not supported yet');
    if ((status & VMA.ANON_SHARED) && !(status & VMA.AREA_MEMFD)) {
      throw new MemoryDumpError(ctx.pid, where, 'shared anonymous memory must be recorded as a memfd (FILE_SHARED|AREA_MEMFD) vma');
    }
    if (status & VMA.AREA_AIORING) throw new MemoryDumpError(ctx.pid, where, 'AIO rings are not supported yet');
    if (!vmaIsPrivateDumpable(v)) continue;

    const pages = Number((end - start) / ps);
    stats.pagesScanned += pages;
    const flags = postCopy && servedRemotely(v) ? PE_LAZY : PE_PRESENT | (vmaCanBeLazy(v) ? PE_LAZY : 0);
    const before = added;
    if (status & VMA.AREA_VDSO) {
      add(start, pages, flags); // CRIU always dumps the whole vDSO
    } else {
      const filePrivate = (status & VMA.FILE_PRIVATE) !== 0;
      for (const r of scanner.scan(start, end)) {
        if (r.categories & PAGE_IS.PFNZERO) stats.pagesSkippedZero += r.nrPages;
        else if (filePrivate && (r.categories & PAGE_IS.FILE)) stats.pagesSkippedFile += r.nrPages;
        else if (!track || maybeChanged(track, r.categories, start)) add(r.start, r.nrPages, flags);
        else {
          // Unchanged since the parent dump: a hole pointing at the parent, where it has the pages.
          for (const piece of track.coverage.split(r.start, r.start + BigInt(r.nrPages) * ps)) {
            const n = Number((piece.end - piece.start) / ps);
            if (piece.covered) {
              addParent(piece.start, n);
              stats.pagesSkippedParent += n;
            } else add(piece.start, n, flags);
          }
        }
      }
    }
    if (added > before && !(Number(v.prot) & PROT.READ)) unreadable.push(v);
  }
  return { runs, holes, unreadable };
}

/** Walks runs as byte ranges, handing out batches of at most `maxBytes` / `maxRanges`. */
class RangeCursor {
  private i = 0;
  private off = 0n; // bytes already consumed of runs[i]
  constructor(private readonly runs: Run[], private readonly ps: bigint) {}

  get done(): boolean {
    return this.i >= this.runs.length;
  }

  next(maxBytes: number, maxRanges: number): { start: bigint; length: number }[] {
    const out: { start: bigint; length: number }[] = [];
    let budget = BigInt(maxBytes);
    while (!this.done && out.length < maxRanges && budget > 0n) {
      const r = this.runs[this.i];
      const left = BigInt(r.nrPages) * this.ps - this.off;
      const take = left < budget ? left : budget;
      out.push({ start: r.start + this.off, length: Number(take) });
      budget -= take;
      this.off += take;
      if (this.off === BigInt(r.nrPages) * this.ps) {
        this.i++;
        this.off = 0n;
      }
    }
    return out;
  }
}

/** Removes the first `n` bytes from a list of ranges (after a short vmsplice). */
function dropBytes(ranges: { start: bigint; length: number }[], n: number): { start: bigint; length: number }[] {
  const out: { start: bigint; length: number }[] = [];
  for (const r of ranges) {
    if (n >= r.length) {
      n -= r.length;
      continue;
    }
    out.push({ start: r.start + BigInt(n), length: r.length - n });
    n = 0;
  }
  return out;
}

/**
 * The request and reply halves of a parasite command. Parasite.dumpPages() is one synchronous
 * round trip; pipelining needs the halves apart (Parasite keeps them private, so they are
 * looked up at run time and the synchronous path is kept for a Parasite without them).
 */
interface ParasiteWire {
  request(cmd: number, payload: Buffer, fds?: readonly number[]): void;
  expect(cmd: number, minLen: number, maxFds?: number): { data: Buffer; fds: number[] };
}

function wireOf(p: TaskDumpContext['parasite']): ParasiteWire | undefined {
  const w = p as unknown as Partial<ParasiteWire>;
  return typeof w.request === 'function' && typeof w.expect === 'function' ? (w as ParasiteWire) : undefined;
}

function encodeRanges(ranges: readonly { start: bigint; length: number }[]): Buffer {
  const b = Buffer.allocUnsafe(8 + ranges.length * 16);
  b.writeUInt32LE(ranges.length, 0);
  b.writeUInt32LE(0, 4);
  for (let i = 0; i < ranges.length; i++) {
    b.writeBigUInt64LE(ranges[i].start, 8 + i * 16);
    b.writeBigUInt64LE(BigInt(ranges[i].length), 16 + i * 16);
  }
  return b;
}

/** A pipe of the transfer: [read end, write end, usable capacity in bytes]. */
export type Pipe = { r: number; w: number; capacity: number };

function openPipes(ctx: TaskDumpContext, count: number, totalBytes: number, opts: DumpMemoryOptions, maxSize = pipeMaxSize()): Pipe[] {
  const ps = ctx.pageSize;
  const limit = Math.min(opts.pipeBytes ?? Infinity, maxSize);
  let want = ps;
  while (want < totalBytes && want * 2 <= limit) want *= 2;
  const pipes: Pipe[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const [r, w] = sys.pipe2(O.CLOEXEC);
      pipes.push({ r, w, capacity: 0 });
      let size: number;
      try {
        size = sys.fcntl(w, F.SETPIPE_SZ, want);
      } catch (e) {
        if (!SysError.is(e, 'EPERM', 'EBUSY')) throw e;
        size = sys.fcntl(w, F.GETPIPE_SZ); // per-user pipe limits: keep the default size
      }
      pipes[i].capacity = Math.max(ps, Math.floor(Math.min(size, want) / ps) * ps);
    }
  } catch (e) {
    closePipes(pipes);
    throw e;
  }
  return pipes;
}

function closePipes(pipes: Pipe[]): void {
  for (const p of pipes) {
    sys.close(p.r);
    if (p.w >= 0) sys.close(p.w);
  }
}

/** Moves exactly `bytes` from the pipe into the image at `offset`. */
function drainPipe(ctx: TaskDumpContext, pipe: Pipe, imgFd: number, offset: number, bytes: number): void {
  let left = bytes;
  while (left > 0) {
    const n = sys.splice(pipe.r, null, imgFd, BigInt(offset), left, SPLICE_F.MOVE);
    if (n <= 0) throw new MemoryDumpError(ctx.pid, 'splice pages', `splice returned ${n} with ${left} bytes in the pipe`);
    offset += n;
    left -= n;
  }
}

/**
 * Splicers at work at once when held pipes are drained after the kill, each on a thread of
 * libuv's pool. ext4 lets one write into a file at a time, yet two cores fill its page cache
 * faster than one (measured here: ~15-20 % when the memory is backed by the host, ~1.4x when
 * the host must back it again).
 */
const DRAINERS = 2;

/** Moves each held pipe's bytes into the image at its offset, DRAINERS pipes at a time. */
function drainHeld(ctx: TaskDumpContext, held: ReadonlyArray<{ pipe: Pipe; offset: number; bytes: number }>, imgFd: number): Promise<void> {
  return inParallel(held, DRAINERS, async (b) => {
    let left = b.bytes, offset = b.offset;
    while (left > 0) {
      const n = await sys.spliceAsync(b.pipe.r, null, imgFd, BigInt(offset), left, SPLICE_F.MOVE);
      if (n <= 0) throw new MemoryDumpError(ctx.pid, 'splice pages', `splice returned ${n} with ${left} bytes in the pipe`);
      offset += n;
      left -= n;
    }
  });
}

/** Pipes per DUMP_PAGES_MULTI request (the parasite takes up to MAX_FDS_PER_MSG). */
const MULTI_PIPES = 64;
/** DUMP_PAGES_MULTI requests kept in flight. */
const MULTI_INFLIGHT = 2;

/** A DUMP_PAGES_MULTI request: group count, range count, each group's range count, the ranges. */
export function encodeMulti(groups: ReadonlyArray<ReadonlyArray<{ start: bigint; length: number }>>): Buffer {
  const total = groups.reduce((s, g) => s + g.length, 0);
  const head = 8 + ((groups.length * 4 + 7) & ~7);
  const b = Buffer.alloc(head + total * 16);
  b.writeUInt32LE(groups.length, 0);
  b.writeUInt32LE(total, 4);
  let at = head;
  groups.forEach((g, i) => {
    b.writeUInt32LE(g.length, 8 + i * 4);
    for (const r of g) {
      b.writeBigUInt64LE(r.start, at);
      b.writeBigUInt64LE(BigInt(r.length), at + 8);
      at += 16;
    }
  });
  return b;
}

/**
 * The parasite fills up to 64 pipes per request (DUMP_PAGES_MULTI: 64 MiB is one round trip),
 * two requests in flight. While the budget lasts, each pipe stays filled (references to the
 * task's pages, no copy) and the returned drain() splices them into the image later; past it
 * (no budget: the task lives on; or smaller pipes: per-user pipe limits), each answered
 * request's pipes are spliced into the image at once and reused. Image offsets are explicit.
 * Vmsplicing a batch of pipes and then splicing them all was measured 2-4x faster than
 * alternating one pipe at a time with the parasite.
 */
function transferDeferred(ctx: TaskDumpContext, wire: ParasiteWire, runs: Run[], imgFd: number, capacity: number, budget: DeferBudget, stats: MemoryDumpStats): Deferred | undefined {
  const cursor = new RangeCursor(runs, BigInt(ctx.pageSize));
  // keep: held until drain() (budget); else copied as soon as the request is answered.
  type Batch = { pipe: Pipe; bytes: number; offset: number; keep: boolean };
  type Request = { batches: Batch[]; bytes: number; first: bigint };
  const kept: Batch[] = [];
  const inflight: Request[] = [];
  const free: Pipe[] = []; // copied out, ready for the next request
  const mine: Pipe[] = []; // every pipe opened here and not yet closed
  let next = 0;
  const take = (): Pipe => {
    const p = budget.pool?.length ? budget.pool.shift()! : openPipes(ctx, 1, capacity, { pagesId: 0, pipeBytes: capacity }, capacity)[0];
    mine.push(p);
    return p;
  };
  const issue = (): boolean => {
    const batches: Batch[] = [];
    const groups: Array<{ start: bigint; length: number }[]> = [];
    let rangesLeft = MAX_RANGES;
    while (batches.length < MULTI_PIPES && rangesLeft > 0 && !cursor.done) {
      let keep = budget.pipes > 0;
      const pipe = keep ? take() : (free.pop() ?? take());
      if (keep && pipe.capacity < capacity) {
        // A smaller pipe than asked for: the user's pipe quota is spent; stop holding pages.
        budget.pipes = 0;
        keep = false;
      }
      if (keep) budget.pipes--;
      const ranges = cursor.next(pipe.capacity, rangesLeft);
      const bytes = ranges.reduce((s, r) => s + r.length, 0);
      batches.push({ pipe, bytes, offset: next, keep });
      groups.push(ranges);
      rangesLeft -= ranges.length;
      next += bytes;
    }
    if (!batches.length) return false;
    wire.request(PCMD.DUMP_PAGES_MULTI, encodeMulti(groups), batches.map((x) => x.pipe.w));
    // A held pipe's write end is the parasite's business only now (it closes its copy).
    for (const x of batches) {
      if (!x.keep) continue;
      sys.close(x.pipe.w);
      x.pipe.w = -1;
    }
    stats.pipeBufs += batches.length;
    inflight.push({ batches, bytes: batches.reduce((s, x) => s + x.bytes, 0), first: groups[0][0].start });
    return true;
  };
  const closeAll = (): void => closePipes(mine.splice(0));
  try {
    while (inflight.length < MULTI_INFLIGHT && issue());
    while (inflight.length) {
      const r = inflight[0];
      const got = Number(wire.expect(PCMD.DUMP_PAGES_MULTI, 8).data.readBigUInt64LE(0));
      inflight.shift();
      if (got !== r.bytes) throw new MemoryDumpError(ctx.pid, 'dump pages', `the parasite moved ${got} of ${r.bytes} bytes from ${hex(r.first)}`);
      for (const b of r.batches) {
        if (b.keep) kept.push(b);
        else {
          drainPipe(ctx, b.pipe, imgFd, b.offset, b.bytes);
          free.push(b.pipe);
        }
      }
      issue();
    }
    stats.bytesWritten = next;
  } catch (e) {
    for (let k = 0; k < inflight.length; k++) {
      try {
        wire.expect(PCMD.DUMP_PAGES_MULTI, 8);
      } catch {
        break;
      }
    }
    closeAll();
    throw e;
  }
  // Only the held pipes stay open.
  const held = new Set(kept.map((b) => b.pipe));
  closePipes(mine.filter((p) => !held.has(p)));
  mine.splice(0, mine.length, ...held);
  if (!kept.length) return undefined;
  ctx.log.debug(`memory: ${kept.reduce((s, b) => s + b.bytes, 0)} of ${next} bytes held in ${kept.length} pipes until the kill`);
  return {
    drain: async () => {
      try {
        await drainHeld(ctx, kept, imgFd);
      } finally {
        closeAll();
        kept.length = 0;
      }
    },
    discard: () => {
      closeAll();
      kept.length = 0;
    },
  };
}

/** One batch at a time through one pipe (opts.pipes 1, or a Parasite without the request/reply halves). */
function transferParasite(ctx: TaskDumpContext, runs: Run[], imgFd: number, totalBytes: number, opts: DumpMemoryOptions, stats: MemoryDumpStats): void {
  const [pipe] = openPipes(ctx, 1, totalBytes, opts);
  try {
    ctx.log.debug(`memory: pipe of ${pipe.capacity} bytes for ${totalBytes} bytes of pages`);
    ctx.parasite.setPipe(pipe.w);
    const cursor = new RangeCursor(runs, BigInt(ctx.pageSize));
    let offset = 0;
    while (!cursor.done) {
      let ranges = cursor.next(pipe.capacity, MAX_RANGES);
      let want = ranges.reduce((s, r) => s + r.length, 0);
      stats.pipeBufs++;
      while (want > 0) {
        const got = ctx.parasite.dumpPages(ranges);
        if (got <= 0 || got > want) throw new MemoryDumpError(ctx.pid, 'dump pages', `the parasite moved ${got} of ${want} bytes at ${hex(ranges[0].start)}`);
        drainPipe(ctx, pipe, imgFd, offset, got);
        offset += got;
        want -= got;
        ranges = dropBytes(ranges, got);
      }
    }
    stats.bytesWritten = offset;
  } finally {
    closePipes([pipe]);
  }
}

function transferReadv(ctx: TaskDumpContext, runs: Run[], imgFd: number, opts: DumpMemoryOptions, stats: MemoryDumpStats): void {
  const ps = ctx.pageSize;
  const chunk = Math.max(ps, Math.floor((opts.chunkBytes ?? 4 << 20) / ps) * ps);
  const buf = Buffer.allocUnsafe(chunk);
  const cursor = new RangeCursor(runs, BigInt(ps));
  let offset = 0;
  while (!cursor.done) {
    const ranges = cursor.next(chunk, MAX_READV_IOVS);
    const bytes = ranges.reduce((s, r) => s + r.length, 0);
    stats.pipeBufs++;
    let got: number;
    try {
      got = sys.processVmReadv(ctx.pid, buf.subarray(0, bytes), ranges.map((r) => ({ addr: r.start, len: r.length })));
    } catch (e) {
      throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `${(e as Error).message} at ${hex(ranges[0].start)}`, { cause: e });
    }
    if (got !== bytes) {
      const bad = dropBytes(ranges, got)[0];
      throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `read ${got} of ${bytes} bytes; ${bad ? hex(bad.start) : '?'} is not readable`);
    }
    let done = 0;
    while (done < bytes) done += fs.writeSync(imgFd, buf, done, bytes - done, offset + done);
    offset += bytes;
  }
  stats.bytesWritten = offset;
}

/** Gives non-readable vmas PROT_READ for the dump; returns the undo list. */
function makeReadable(ctx: TaskDumpContext, vmas: Msg[]): Array<{ start: bigint; length: bigint; prot: number }> {
  const undo: Array<{ start: bigint; length: bigint; prot: number }> = [];
  try {
    for (let i = 0; i < vmas.length; i += MPROTECT_BATCH) {
      const batch = vmas.slice(i, i + MPROTECT_BATCH).map((v) => ({ start: BigInt(v.start as bigint), length: BigInt(v.end as bigint) - BigInt(v.start as bigint), prot: Number(v.prot) }));
      ctx.parasite.mprotect(batch.map((b) => ({ ...b, prot: b.prot | PROT.READ })));
      undo.push(...batch);
    }
  } catch (e) {
    restoreProt(ctx, undo);
    throw new MemoryDumpError(ctx.pid, 'mprotect', `cannot make ${vmas.length} vma(s) readable: ${(e as Error).message}`, { cause: e });
  }
  return undo;
}

function restoreProt(ctx: TaskDumpContext, undo: Array<{ start: bigint; length: bigint; prot: number }>): void {
  for (let i = 0; i < undo.length; i += MPROTECT_BATCH) ctx.parasite.mprotect(undo.slice(i, i + MPROTECT_BATCH));
}

/**
 * Writes `<imagesDir>/pages-<pagesId>.img` with the private memory of the frozen task and
 * returns the pagemap records (head first) and statistics. The parasite must be running in the
 * task (both methods use it to make non-readable vmas readable for the duration).
 */
export async function dumpMemory(ctx: TaskDumpContext, vmas: Msg[], opts: DumpMemoryOptions): Promise<MemoryDumpResult> {
  const t0 = process.hrtime.bigint();
  if (!Number.isSafeInteger(opts.pagesId) || opts.pagesId < 0) throw new MemoryDumpError(ctx.pid, 'options', `bad pagesId ${opts.pagesId}`);
  const method = opts.method ?? 'parasite';
  if (method !== 'parasite' && method !== 'vm_readv') throw new MemoryDumpError(ctx.pid, 'options', `unknown transfer method ${String(method)}`);
  const scanMethod = opts.scan ?? 'ioctl';
  if (scanMethod !== 'ioctl' && scanMethod !== 'pagemap') throw new MemoryDumpError(ctx.pid, 'options', `unknown scan method ${String(scanMethod)}`);
  const stats: MemoryDumpStats = { pagesScanned: 0, pagesSkippedZero: 0, pagesSkippedFile: 0, pagesWritten: 0, pagesSkippedParent: 0, bytesWritten: 0, pipeBufs: 0, elapsedMs: 0, scan: scanMethod };

  const scanner = new PagemapScanner(ctx.pid, ctx.pageSize, scanMethod);
  const tScan = process.hrtime.bigint();
  let track = opts.track;
  if (opts.pageServer) {
    // The parent is on the receiver: holes only where it says it has this pagemap (CRIU's OPEN2 reply).
    const hasParent = opts.pageServer.open(PS_TYPE.PID, ctx.pid);
    if (track && !hasParent) {
      ctx.log.warn(`memory: the page server ${opts.pageServer.where} has no parent pagemap-${ctx.pid}.img: sending every page`);
      track = undefined;
    }
  }
  if (track?.method) scanner.extraCategories = track.method === 'soft-dirty' ? PAGE_IS.SOFT_DIRTY : PAGE_IS.WRITTEN;
  let plan: ReturnType<typeof planRuns>;
  try {
    plan = planRuns(ctx, vmas, scanner, stats, track, opts.postCopy !== undefined);
    stats.scan = scanner.method;
  } finally {
    scanner.close();
  }
  const { holes, unreadable } = plan;
  ctx.log.debug(`memory: scan ${(Number(process.hrtime.bigint() - tScan) / 1e6).toFixed(1)} ms`);
  const all0 = plan.runs;
  // Post-copy: the PE_LAZY-only runs go to the store; the rest as usual.
  const remote = all0.filter((r) => !(r.flags & PE_PRESENT));
  const runs = remote.length ? all0.filter((r) => r.flags & PE_PRESENT) : all0;
  if (remote.length) keepForPostCopy(ctx, remote, opts.postCopy!);
  const totalPages = runs.reduce((s, r) => s + r.nrPages, 0);
  const totalBytes = totalPages * ctx.pageSize;

  // Entries in address order: data runs (in pages image order) interleaved with parent holes.
  const all = holes.length ? [...all0, ...holes].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0)) : all0;
  let deferred: Deferred | undefined;
  if (opts.pageServer) {
    const undo = makeReadable(ctx, unreadable);
    try {
      transferToServer(ctx, opts.pageServer, all, opts, stats);
    } finally {
      restoreProt(ctx, undo);
    }
  } else {
    deferred = writePagesImage(ctx, runs, unreadable, totalBytes, method, opts, stats);
  }
  if (stats.bytesWritten !== totalBytes) throw new MemoryDumpError(ctx.pid, opts.pageServer ? 'page server' : 'pages image', `wrote ${stats.bytesWritten} bytes, expected ${totalBytes}`);
  stats.pagesWritten = totalPages;
  stats.elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;

  const pagemap: Msg[] = [{ pages_id: opts.pagesId }];
  for (const r of all) pagemap.push({ vaddr: r.start, nr_pages: r.nrPages, flags: r.flags });
  ctx.log.info(`memory: ${stats.pagesWritten} pages ${opts.pageServer ? `sent to the page server ${opts.pageServer.where}` : deferred ? 'dumped (some held in pipes until the kill)' : 'written'} in ${runs.length} runs (${stats.pagesScanned} scanned, ${stats.pagesSkippedParent} left in the parent, ${stats.pagesSkippedZero} zero, ${stats.pagesSkippedFile} file-backed skipped; ${opts.pageServer ? 'vm_readv' : method}/${stats.scan})`);
  return { pagemap, stats, deferred };
}

/** Post-copy: copies the runs out of the frozen task into the store (they are read/write anonymous memory). */
function keepForPostCopy(ctx: TaskDumpContext, runs: Run[], store: PostCopyPages): void {
  for (const r of runs) {
    const len = r.nrPages * ctx.pageSize;
    const buf = Buffer.allocUnsafe(len);
    let got: number;
    try {
      got = sys.processVmReadv(ctx.pid, buf, [{ addr: r.start, len }]);
    } catch (e) {
      throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `${(e as Error).message} at ${hex(r.start)}`, { cause: e });
    }
    if (got !== len) throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `read ${got} of ${len} bytes at ${hex(r.start)}`);
    store.add(ctx.pid, r.start, buf);
  }
  ctx.log.info(`memory: ${runs.reduce((s, r) => s + r.nrPages, 0)} pages in ${runs.length} runs kept for post-copy (PE_LAZY)`);
}

/**
 * Streams the runs to a page server (the pagemap already opened under the task's pid): per run a
 * PS_IOV_ADD_F header, then, for PE_PRESENT runs, its pages read with process_vm_readv in
 * bounded chunks; PE_PARENT holes are a header alone.
 */
function transferToServer(ctx: TaskDumpContext, ps: PageServerClient, runs: Run[], opts: DumpMemoryOptions, stats: MemoryDumpStats): void {
  const size = ctx.pageSize;
  const chunk = Math.max(size, Math.floor((opts.chunkBytes ?? 4 << 20) / size) * size);
  const buf = Buffer.allocUnsafe(chunk);
  let sent = 0;
  for (const r of runs) {
    ps.add(PS_TYPE.PID, ctx.pid, r.start, r.nrPages, r.flags);
    if (!(r.flags & PE_PRESENT)) continue;
    const total = r.nrPages * size;
    for (let off = 0; off < total; off += chunk) {
      const len = Math.min(chunk, total - off);
      const addr = r.start + BigInt(off);
      let got: number;
      try {
        got = sys.processVmReadv(ctx.pid, buf.subarray(0, len), [{ addr, len }]);
      } catch (e) {
        throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `${(e as Error).message} at ${hex(addr)}`, { cause: e });
      }
      if (got !== len) throw new MemoryDumpError(ctx.pid, 'process_vm_readv', `read ${got} of ${len} bytes at ${hex(addr)}`);
      stats.pipeBufs++;
      ps.send(buf.subarray(0, len));
      sent += len;
    }
  }
  stats.bytesWritten = sent;
}

function writePagesImage(ctx: TaskDumpContext, runs: Run[], unreadable: Msg[], totalBytes: number, method: TransferMethod, opts: DumpMemoryOptions, stats: MemoryDumpStats): Deferred | undefined {
  const file = path.join(ctx.imagesDir, `pages-${opts.pagesId}.img`);
  let imgFd: number;
  try {
    imgFd = fs.openSync(file, 'w', 0o600);
  } catch (e) {
    throw new MemoryDumpError(ctx.pid, 'create pages image', `${file}: ${(e as Error).message}`, { cause: e });
  }
  let deferred: Deferred | undefined;
  try {
    // Allocate the blocks up front (ext4 then skips delayed allocation page by page); best effort,
    // except that a deferred copy needs them: it runs when the task is gone and must not fail.
    const reserved = totalBytes > 0 && sys.trySyscall('fallocate', imgFd, 0, 0, totalBytes).ret === 0n;
    const wire = method === 'parasite' ? wireOf(ctx.parasite) : undefined;
    const undo = makeReadable(ctx, unreadable);
    try {
      if (wire && (opts.pipes ?? DEFAULT_PIPES) > 1) {
        // Many pipes per parasite request, then copied out: held until the kill when allowed
        // (the blocks must be reserved for that), else at once.
        const capacity = Math.max(ctx.pageSize, Math.floor(Math.min(opts.pipeBytes ?? Infinity, pipeMaxSize()) / ctx.pageSize) * ctx.pageSize);
        deferred = transferDeferred(ctx, wire, runs, imgFd, capacity, opts.defer && reserved ? opts.defer : { pipes: 0 }, stats);
      } else if (method === 'parasite') transferParasite(ctx, runs, imgFd, totalBytes, opts, stats);
      else transferReadv(ctx, runs, imgFd, opts, stats);
    } finally {
      restoreProt(ctx, undo);
    }
  } catch (e) {
    deferred?.discard();
    fs.closeSync(imgFd);
    throw e;
  }
  if (!deferred) {
    fs.closeSync(imgFd);
    return undefined;
  }
  const d = deferred;
  return {
    drain: async () => {
      try {
        await d.drain();
      } finally {
        fs.closeSync(imgFd);
      }
    },
    discard: () => {
      d.discard();
      fs.closeSync(imgFd);
    },
  };
}
