/**
 * The serving half of a lazy restore (`criu lazy-pages`): takes the userfaultfd of each restored
 * task and copies its pages in (UFFDIO_COPY) from the local images or from a page server
 * (PS_IOV_GET): on fault at once, and, once the restore reports the task running, all the
 * rest in the background. Holes (registered pages in no pagemap run) get the zero page on fault.
 */
import * as fs from 'node:fs';
import { sys, UFFD, errnoNumber } from '@criu/sys';
import type { Logger } from '../util/log.js';
import { LocalPages } from './local-pages.js';
import type { PageServerClient } from './client.js';

const POLLIN = 1, POLLERR = 8, POLLHUP = 0x10;
const EEXIST = errnoNumber('EEXIST')!, EAGAIN = errnoNumber('EAGAIN')!;
/** Pages per UFFDIO_COPY: a fault brings its neighbours too; the background pass goes by this much. */
const FAULT_PAGES = 16;
const BACKGROUND_PAGES = 256;
const MSGS_PER_READ = 64;

interface Range {
  start: bigint;
  end: bigint;
  /** Address in the dumped task of `start` (differs after an mremap). */
  src: bigint;
  /** 1 = present in the task (copied, or no longer ours to fill). */
  done: Uint8Array;
}

interface LazyTask {
  pid: number;
  uffd: number;
  ranges: Range[];
  /** Background cursor: range index and page. */
  cur: { r: number; p: number };
  left: number;
}

export interface LazyStats {
  tasks: number;
  faults: number;
  pagesOnFault: number;
  pagesBackground: number;
  zeroPages: number;
  /** Pages copied after the restore reported the task running (fault or background). */
  pagesAfterResume: number;
}

export interface LazyServerOptions {
  imagesDir: string;
  /** Fetch the page contents from this page server instead of the local pages images. */
  remote?: PageServerClient;
  log?: Logger;
}

export class LazyPagesServer {
  private readonly ps = sys.pageSize();
  private readonly pages: LocalPages;
  private readonly tasks: LazyTask[] = [];
  private resumed = false;
  readonly stats: LazyStats = { tasks: 0, faults: 0, pagesOnFault: 0, pagesBackground: 0, zeroPages: 0, pagesAfterResume: 0 };
  private readonly copyArg = Buffer.alloc(40);
  private readonly msgs = Buffer.alloc(UFFD.MSG_SIZE * MSGS_PER_READ);

  constructor(private readonly opts: LazyServerOptions) {
    this.pages = new LocalPages(opts.imagesDir, this.ps);
  }

  get busy(): boolean {
    return this.tasks.length > 0;
  }

  /** A restored task's userfaultfd (ours now) and its registered ranges. */
  addTask(pid: number, uffd: number, ranges: Array<{ start: bigint; end: bigint }>): void {
    if (!this.opts.remote && this.pages.hasRemote(pid)) {
      fs.closeSync(uffd);
      throw new Error(`task ${pid}: its pagemap has pages left on the dump side (PE_LAZY only, a \`criu dump --lazy-pages\`): run criu lazy-pages with --page-server --address --port of the dump`);
    }
    const ps = BigInt(this.ps);
    const rs: Range[] = ranges.map((r) => ({ start: r.start, end: r.end, src: r.start, done: new Uint8Array(Number((r.end - r.start) / ps)) }));
    let left = 0;
    for (const r of rs) {
      for (let i = 0; i < r.done.length; i++) {
        // Only pages of the pagemap are copied in the background; holes come as zero pages on fault.
        const run = this.pages.runAt(pid, r.start + BigInt(i) * ps);
        if (!run) { r.done[i] = 1; continue; }
        const n = Math.min(r.done.length - i, run.nrPages - Number((r.start + BigInt(i) * ps - run.vaddr) / ps));
        left += n;
        i += n - 1;
      }
    }
    this.tasks.push({ pid, uffd, ranges: rs, cur: { r: 0, p: 0 }, left });
    this.stats.tasks++;
    this.opts.log?.info(`lazy-pages: task ${pid}: ${rs.length} range(s), ${left} pages to serve`);
  }

  /** Pages copied so far and pages still to copy (of tasks not yet done). */
  progress(): { copied: number; left: number } {
    return { copied: this.stats.pagesOnFault + this.stats.pagesBackground, left: this.tasks.reduce((s, t) => s + Math.max(t.left, 0), 0) };
  }

  /** The restore has resumed the tasks: the background pass may start. */
  markResumed(): void {
    this.resumed = true;
    this.opts.log?.info('lazy-pages: the restored tasks run; background copy starts');
  }

  /** Polls the uffds (and `extraFd`, reported through the result); serves faults; one background step. */
  async step(extraFd?: number): Promise<{ extraReady: boolean }> {
    const fds = [...(extraFd !== undefined ? [extraFd] : []), ...this.tasks.map((t) => t.uffd)];
    const pfd = Buffer.alloc(8 * fds.length);
    fds.forEach((fd, i) => { pfd.writeInt32LE(fd, i * 8); pfd.writeInt16LE(POLLIN, i * 8 + 4); });
    const background = this.resumed && this.tasks.some((t) => t.left > 0);
    if (background) sys.syscall('poll', pfd, fds.length, 0);
    else await sys.syscallAsync('poll', pfd, fds.length, 200);
    let extraReady = false;
    fds.forEach((fd, i) => {
      const rev = pfd.readInt16LE(i * 8 + 6);
      if (!rev) return;
      if (extraFd !== undefined && i === 0) { extraReady = true; return; }
      const t = this.tasks.find((x) => x.uffd === fd)!;
      if (rev & POLLIN) this.drain(t);
      if (rev & (POLLERR | POLLHUP)) this.drop(t, 'its userfaultfd hung up');
    });
    for (const t of [...this.tasks]) if (!fs.existsSync(`/proc/${t.pid}`)) this.drop(t, 'it is gone');
    if (background) this.backgroundStep();
    for (const t of [...this.tasks]) if (this.resumed && t.left <= 0) this.drop(t, 'all its pages are in');
    return { extraReady };
  }

  private drop(t: LazyTask, why: string): void {
    const i = this.tasks.indexOf(t);
    if (i < 0) return;
    this.tasks.splice(i, 1);
    fs.closeSync(t.uffd);
    this.opts.log?.info(`lazy-pages: task ${t.pid} done (${why})`);
  }

  private drain(t: LazyTask): void {
    for (;;) {
      const { ret, errno } = sys.trySyscall('read', t.uffd, this.msgs, this.msgs.length);
      if (ret < 0n) {
        if (errno === EAGAIN) return;
        this.drop(t, `read of its userfaultfd failed (errno ${errno})`);
        return;
      }
      const n = Number(ret) / UFFD.MSG_SIZE;
      if (n === 0) { this.drop(t, 'its userfaultfd was closed'); return; }
      for (let k = 0; k < n; k++) {
        const o = k * UFFD.MSG_SIZE;
        const ev = this.msgs[o];
        if (ev === UFFD.EVENT_PAGEFAULT) this.fault(t, this.msgs.readBigUInt64LE(o + 16));
        else if (ev === UFFD.EVENT_REMOVE || ev === UFFD.EVENT_UNMAP) this.forget(t, this.msgs.readBigUInt64LE(o + 8), this.msgs.readBigUInt64LE(o + 16));
        else if (ev === UFFD.EVENT_REMAP) this.remap(t, this.msgs.readBigUInt64LE(o + 8), this.msgs.readBigUInt64LE(o + 16), this.msgs.readBigUInt64LE(o + 24));
        else this.opts.log?.warn(`lazy-pages: task ${t.pid}: unexpected userfaultfd event 0x${ev.toString(16)}`);
      }
      if (n < MSGS_PER_READ) return;
    }
  }

  private where(t: LazyTask, addr: bigint): { r: Range; p: number } | undefined {
    const ps = BigInt(this.ps);
    const r = t.ranges.find((x) => addr >= x.start && addr < x.end);
    return r ? { r, p: Number((addr - r.start) / ps) } : undefined;
  }

  private fault(t: LazyTask, addr: bigint): void {
    this.stats.faults++;
    const ps = BigInt(this.ps);
    const page = addr & ~(ps - 1n);
    const w = this.where(t, page);
    if (!w) { this.opts.log?.warn(`lazy-pages: task ${t.pid}: fault at 0x${addr.toString(16)} outside its ranges`); return; }
    // A hole, or a page the task dropped (madvise/munmap): it reads as zeros now.
    const n = this.copy(t, w.r, w.p, FAULT_PAGES, true);
    if (n <= 0) this.zero(t, w.r, w.p);
  }

  /** Copies up to `max` not-yet-present pages from page p of r (stopping at a present one or a run's end). */
  private copy(t: LazyTask, r: Range, p: number, max: number, onFault: boolean): number {
    if (r.done[p]) return -1;
    const ps = BigInt(this.ps);
    let n = 1;
    while (n < max && p + n < r.done.length && !r.done[p + n]) n++;
    const src = r.src + BigInt(p) * ps;
    if (!this.pages.runAt(t.pid, src)) return 0;
    const data = this.opts.remote ? this.opts.remote.get(t.pid, src, n, this.ps)?.data : this.pages.read(t.pid, src, n);
    if (!data) return 0;
    n = Math.min(n, data.length / this.ps);
    const dst = r.start + BigInt(p) * ps;
    const a = this.copyArg;
    a.writeBigUInt64LE(dst, 0);
    a.writeBigUInt64LE(sys.address(data), 8);
    a.writeBigUInt64LE(BigInt(n * this.ps), 16);
    a.writeBigUInt64LE(0n, 24);
    a.writeBigInt64LE(0n, 32);
    const { ret, errno } = sys.trySyscall('ioctl', t.uffd, UFFD.UFFDIO_COPY, a);
    let copied = Number(a.readBigInt64LE(32));
    if (ret < 0n && errno !== EEXIST && errno !== EAGAIN) {
      this.opts.log?.warn(`lazy-pages: task ${t.pid}: UFFDIO_COPY at 0x${dst.toString(16)} failed with errno ${errno}`);
    }
    if (copied < 0) copied = 0;
    const pages = Math.floor(copied / this.ps);
    // EEXIST: that page is there already (it was never ours to fill); count it as done.
    const doneTo = ret < 0n && errno === EEXIST ? pages + 1 : pages;
    for (let i = 0; i < doneTo && p + i < r.done.length; i++) {
      if (!r.done[p + i]) { r.done[p + i] = 1; t.left--; }
    }
    if (onFault) this.stats.pagesOnFault += pages;
    else this.stats.pagesBackground += pages;
    if (this.resumed) this.stats.pagesAfterResume += pages;
    return Math.max(doneTo, 1);
  }

  private zero(t: LazyTask, r: Range, p: number): void {
    const ps = BigInt(this.ps);
    const z = Buffer.alloc(32);
    z.writeBigUInt64LE(r.start + BigInt(p) * ps, 0);
    z.writeBigUInt64LE(ps, 8);
    const { ret, errno } = sys.trySyscall('ioctl', t.uffd, UFFD.UFFDIO_ZEROPAGE, z);
    if (ret < 0n && errno !== EEXIST) this.opts.log?.warn(`lazy-pages: task ${t.pid}: UFFDIO_ZEROPAGE failed with errno ${errno}`);
    if (!r.done[p]) r.done[p] = 1;
    this.stats.zeroPages++;
  }

  /** munmap / madvise(DONTNEED) of lazy memory: those pages are no longer ours to fill. */
  private forget(t: LazyTask, start: bigint, end: bigint): void {
    const ps = BigInt(this.ps);
    for (const r of t.ranges) {
      for (let a = start > r.start ? start : r.start; a < end && a < r.end; a += ps) {
        const p = Number((a - r.start) / ps);
        if (!r.done[p]) { r.done[p] = 1; t.left--; }
      }
    }
  }

  /** mremap: the pages not yet copied move with the mapping. */
  private remap(t: LazyTask, from: bigint, to: bigint, len: bigint): void {
    const ps = BigInt(this.ps);
    const w = this.where(t, from);
    if (!w) return;
    const n = Number(len / ps);
    const done = w.r.done.slice(w.p, w.p + n);
    const moved: Range = { start: to, end: to + len, src: w.r.src + BigInt(w.p) * ps, done };
    for (let i = 0; i < done.length; i++) w.r.done[w.p + i] = 1; // left unchanged: the pages now count in `moved`
    t.ranges.push(moved);
  }

  private backgroundStep(): void {
    const t = this.tasks.find((x) => x.left > 0);
    if (!t) return;
    while (t.cur.r < t.ranges.length) {
      const r = t.ranges[t.cur.r];
      while (t.cur.p < r.done.length && r.done[t.cur.p]) t.cur.p++;
      if (t.cur.p < r.done.length) {
        const n = this.copy(t, r, t.cur.p, BACKGROUND_PAGES, false);
        if (n <= 0) { r.done[t.cur.p] = 1; t.left--; }
        return;
      }
      t.cur.r++;
      t.cur.p = 0;
    }
    // Ranges added by mremap behind the cursor: go round once more.
    t.cur = { r: 0, p: 0 };
    if (!t.ranges.some((r) => r.done.some((d) => !d))) t.left = 0;
  }

  close(): void {
    for (const t of [...this.tasks]) this.drop(t, 'the server stops');
    this.pages.close();
  }
}
