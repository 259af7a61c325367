/** Reads pages of a task from pagemap-<pid>.img + pages-<n>.img (for PS_IOV_GET and lazy pages). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImageEntries, pageRuns, PE_LAZY, PE_PARENT, PE_PRESENT, type PageRun, type Msg } from '@criu/images';

interface TaskPages { runs: PageRun[]; file: string; fd?: number }

export class LocalPages {
  private readonly tasks = new Map<number, TaskPages | null>();

  constructor(private readonly dir: string, private readonly pageSize: number) {}

  private task(pid: number): TaskPages | null {
    let t = this.tasks.get(pid);
    if (t !== undefined) return t;
    t = null;
    const pm = path.join(this.dir, `pagemap-${pid}.img`);
    if (fs.existsSync(pm)) {
      const entries = decodeImageEntries(fs.readFileSync(pm), { file: path.basename(pm) }).entries.map((e) => e.message as Msg);
      const pagesId = Number(entries[0]?.pages_id);
      // PE_LAZY alone (post-copy): no data here, but the page server has it.
      const runs = pageRuns(entries, this.pageSize).filter((r) => r.flags & PE_PRESENT || (r.flags & PE_LAZY && !(r.flags & PE_PARENT)));
      t = { runs, file: path.join(this.dir, `pages-${pagesId}.img`) };
    }
    this.tasks.set(pid, t);
    return t;
  }

  /** Whether `pid` has pages that are not in these images (post-copy: PE_LAZY only). */
  hasRemote(pid: number): boolean {
    return this.task(pid)?.runs.some((r) => r.offset === undefined) ?? false;
  }

  /** The run of `pid` holding `vaddr`, or undefined. */
  runAt(pid: number, vaddr: bigint): PageRun | undefined {
    const t = this.task(pid);
    if (!t) return undefined;
    const ps = BigInt(this.pageSize);
    let lo = 0, hi = t.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = t.runs[mid];
      if (vaddr < r.vaddr) hi = mid - 1;
      else if (vaddr >= r.vaddr + BigInt(r.nrPages) * ps) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** Up to nrPages pages from vaddr (stopping at the end of its run), or undefined if absent. */
  read(pid: number, vaddr: bigint, nrPages: number): Buffer | undefined {
    const r = this.runAt(pid, vaddr);
    if (!r || r.offset === undefined) return undefined;
    const skip = Number((vaddr - r.vaddr) / BigInt(this.pageSize));
    const n = Math.min(nrPages, r.nrPages - skip);
    const buf = Buffer.allocUnsafe(n * this.pageSize);
    const t = this.task(pid)!;
    t.fd ??= fs.openSync(t.file, 'r');
    const fd = t.fd;
    let done = 0;
    while (done < buf.length) {
      const got = fs.readSync(fd, buf, done, buf.length - done, r.offset + skip * this.pageSize + done);
      if (got <= 0) throw new Error(`pages image of task ${pid} ends early`);
      done += got;
    }
    return buf;
  }

  close(): void {
    for (const t of this.tasks.values()) if (t?.fd !== undefined) fs.closeSync(t.fd);
    this.tasks.clear();
  }
}
