/**
 * Which pages of a task hold data worth dumping: the PAGEMAP_SCAN ioctl on /proc/PID/pagemap,
 * or (kernels without it) the pagemap entries themselves, read in bounded windows.
 */
import * as fs from 'node:fs';
import { sys, SysError } from '@criu/sys';

/** PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg). */
export const PAGEMAP_SCAN = 0xc0606610;
export const PAGE_IS = Object.freeze({ WPALLOWED: 1 << 0, WRITTEN: 1 << 1, FILE: 1 << 2, PRESENT: 1 << 3, SWAPPED: 1 << 4, PFNZERO: 1 << 5, HUGE: 1 << 6, SOFT_DIRTY: 1 << 7, GUARD: 1 << 8 });

const PM_PRESENT = 1n << 63n;
const PM_SWAP = 1n << 62n;
const PM_FILE = 1n << 61n;
const PM_SOFT_DIRTY = 1n << 55n;
const PM_PFN_MASK = (1n << 55n) - 1n;

const SCAN_ARG_SIZE = 96;
const REGION_SIZE = 24;
const REGIONS_PER_CALL = 512;
const PAGEMAP_WINDOW = 512; // entries read per pread (2 MiB of address space with 4 KiB pages)

export type ScanMethod = 'ioctl' | 'pagemap';

/** A run of pages [start, start + nrPages * pageSize) with the same categories. */
export interface ScanRun { start: bigint; nrPages: number; categories: number }

export class MemScanError extends Error {
  override readonly name = 'MemScanError';
  constructor(readonly pid: number, readonly what: string, reason: string, options?: { cause?: unknown }) {
    super(`task ${pid}: ${what}: ${reason}`, options);
  }
}

/** Thrown by the ioctl path when the kernel has no PAGEMAP_SCAN. */
export class PagemapScanUnsupported extends Error {
  override readonly name = 'PagemapScanUnsupported';
}

/**
 * An open /proc/PID/pagemap that reports, for a range of addresses, the runs of pages that are
 * present or swapped, each with its PAGE_IS_* categories (FILE, PRESENT, SWAPPED, PFNZERO).
 */
export class PagemapScanner {
  private readonly fd: number;
  private readonly arg = Buffer.alloc(SCAN_ARG_SIZE);
  private readonly vec = Buffer.alloc(REGION_SIZE * REGIONS_PER_CALL);
  private readonly window = Buffer.alloc(PAGEMAP_WINDOW * 8);
  private zeroPfn: bigint | undefined;

  /** PAGE_IS_* bits reported on top of the defaults (SOFT_DIRTY, WRITTEN for iterative dumps). */
  extraCategories = 0;

  constructor(readonly pid: number, readonly pageSize: number, public method: ScanMethod) {
    try {
      this.fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
    } catch (e) {
      throw new MemScanError(pid, 'open pagemap', (e as Error).message, { cause: e });
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Present/swapped runs in [start, end), in address order. */
  scan(start: bigint, end: bigint): ScanRun[] {
    if (this.method === 'ioctl') {
      try {
        return this.scanIoctl(start, end);
      } catch (e) {
        if (!(e instanceof PagemapScanUnsupported)) throw e;
        this.method = 'pagemap';
      }
    }
    return this.scanPagemap(start, end);
  }

  private scanIoctl(start: bigint, end: bigint): ScanRun[] {
    const runs: ScanRun[] = [];
    const ps = BigInt(this.pageSize);
    const returnMask = PAGE_IS.FILE | PAGE_IS.PRESENT | PAGE_IS.SWAPPED | PAGE_IS.PFNZERO | this.extraCategories;
    let cur = start;
    while (cur < end) {
      const a = this.arg;
      a.fill(0);
      a.writeBigUInt64LE(BigInt(SCAN_ARG_SIZE), 0); // size
      a.writeBigUInt64LE(0n, 8); // flags
      a.writeBigUInt64LE(cur, 16);
      a.writeBigUInt64LE(end, 24);
      a.writeBigUInt64LE(0n, 32); // walk_end (out)
      a.writeBigUInt64LE(sys.address(this.vec), 40);
      a.writeBigUInt64LE(BigInt(REGIONS_PER_CALL), 48);
      a.writeBigUInt64LE(0n, 56); // max_pages
      a.writeBigUInt64LE(0n, 64); // category_inverted
      a.writeBigUInt64LE(0n, 72); // category_mask
      a.writeBigUInt64LE(BigInt(PAGE_IS.PRESENT | PAGE_IS.SWAPPED), 80); // category_anyof_mask
      a.writeBigUInt64LE(BigInt(returnMask), 88);
      const { ret, errno } = sys.trySyscall('ioctl', this.fd, PAGEMAP_SCAN, a);
      if (ret < 0n || errno) {
        const err = new SysError('ioctl', errno, `pagemap, PAGEMAP_SCAN, ${cur.toString(16)}-${end.toString(16)}`);
        if (err.code === 'ENOTTY' || err.code === 'EINVAL' || err.code === 'EOPNOTSUPP') throw new PagemapScanUnsupported(err.message);
        throw new MemScanError(this.pid, 'PAGEMAP_SCAN', err.message, { cause: err });
      }
      const n = Number(ret);
      for (let i = 0; i < n; i++) {
        const o = i * REGION_SIZE;
        const rs = this.vec.readBigUInt64LE(o);
        const re = this.vec.readBigUInt64LE(o + 8);
        const categories = Number(this.vec.readBigUInt64LE(o + 16));
        pushRun(runs, rs, Number((re - rs) / ps), categories, ps);
      }
      const walkEnd = a.readBigUInt64LE(32);
      if (walkEnd <= cur) throw new MemScanError(this.pid, 'PAGEMAP_SCAN', `no progress at ${cur.toString(16)}`);
      cur = walkEnd;
    }
    return runs;
  }

  private scanPagemap(start: bigint, end: bigint): ScanRun[] {
    const runs: ScanRun[] = [];
    const ps = BigInt(this.pageSize);
    const zero = this.kernelZeroPfn();
    let page = start / ps;
    const last = end / ps;
    while (page < last) {
      const n = Number(last - page < BigInt(PAGEMAP_WINDOW) ? last - page : BigInt(PAGEMAP_WINDOW));
      let got = 0;
      try {
        while (got < n * 8) {
          const r = fs.readSync(this.fd, this.window, got, n * 8 - got, page * 8n + BigInt(got));
          if (r === 0) break;
          got += r;
        }
      } catch (e) {
        throw new MemScanError(this.pid, 'read pagemap', (e as Error).message, { cause: e });
      }
      if (got < n * 8) throw new MemScanError(this.pid, 'read pagemap', `short read at ${(page * ps).toString(16)}`);
      for (let i = 0; i < n; i++) {
        const pme = this.window.readBigUInt64LE(i * 8);
        if (!(pme & (PM_PRESENT | PM_SWAP))) continue;
        let cat = 0;
        if (pme & PM_PRESENT) cat |= PAGE_IS.PRESENT;
        if (pme & PM_SWAP) cat |= PAGE_IS.SWAPPED;
        if (pme & PM_FILE) cat |= PAGE_IS.FILE;
        if ((pme & PM_PRESENT) && (pme & PM_PFN_MASK) === zero) cat = (cat | PAGE_IS.PFNZERO) & ~PAGE_IS.FILE;
        if ((this.extraCategories & PAGE_IS.SOFT_DIRTY) && (pme & PM_SOFT_DIRTY)) cat |= PAGE_IS.SOFT_DIRTY;
        pushRun(runs, (page + BigInt(i)) * ps, 1, cat, ps);
      }
      page += BigInt(n);
    }
    return runs;
  }

  /**
   * The PFN of the kernel's zero page: map a page in this process, read it (a read fault maps
   * the zero page) and look it up in our own pagemap (PFNs need CAP_SYS_ADMIN).
   */
  private kernelZeroPfn(): bigint {
    if (this.zeroPfn !== undefined) return this.zeroPfn;
    const PROT_READ = 1, MAP_PRIVATE_ANON = 0x22;
    const ps = this.pageSize;
    const addr = sys.syscall('mmap', 0, ps, PROT_READ, MAP_PRIVATE_ANON, -1, 0);
    try {
      const mem = fs.openSync('/proc/self/mem', 'r');
      try {
        fs.readSync(mem, Buffer.alloc(1), 0, 1, addr);
      } finally {
        fs.closeSync(mem);
      }
      const pm = fs.openSync('/proc/self/pagemap', 'r');
      const b = Buffer.alloc(8);
      try {
        fs.readSync(pm, b, 0, 8, (addr / BigInt(ps)) * 8n);
      } finally {
        fs.closeSync(pm);
      }
      const pme = b.readBigUInt64LE(0);
      const pfn = pme & PM_PFN_MASK;
      if (!(pme & PM_PRESENT) || pfn === 0n) throw new MemScanError(this.pid, 'zero page', 'cannot find the zero page PFN (pagemap hides PFNs without CAP_SYS_ADMIN)');
      this.zeroPfn = pfn;
      return pfn;
    } finally {
      sys.syscall('munmap', addr, ps);
    }
  }
}

function pushRun(runs: ScanRun[], start: bigint, nrPages: number, categories: number, ps: bigint): void {
  if (nrPages <= 0) return;
  const last = runs[runs.length - 1];
  if (last && last.categories === categories && last.start + BigInt(last.nrPages) * ps === start) last.nrPages += nrPages;
  else runs.push({ start, nrPages, categories });
}
