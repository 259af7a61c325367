/**
 * Images shared by every task of a dump that file kinds add: fifo-data.img (FIFO buffers),
 * memfd.img (memfd inodes, with their contents in pagemap-shmem-<shmid>.img + pages-<id>.img)
 * and sk-queues.img (data queued on unix sockets). One set per FileRegistry (one per dump);
 * collectFiles writes them again after each task, so the last write holds every record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { writeImageFile, PE_PRESENT, type EntryInput, type Msg } from '@criu/images';
import type { FileRegistry } from './file-registry.js';
import { PipeDataSet } from './pipes.js';
import { UnixOrder } from './files-unix.js';

const SEEK_DATA = 3, SEEK_HOLE = 4;
const F_GET_SEALS = 1034;
/** pages-<id>.img numbers for memfd contents: far above the tasks' own (1, 2, ...). */
const SHMEM_PAGES_ID_BASE = 1_000_000;
const CHUNK = 4 << 20;

export class FileImages {
  readonly fifoData = new PipeDataSet();
  readonly skQueues: EntryInput[] = [];
  readonly unixOrder = new UnixOrder();
  private readonly memfdInodes = new Map<string, Msg>();
  private nextPagesId = SHMEM_PAGES_ID_BASE + 1;

  /**
   * The inode_id of the memfd behind our descriptor `lfd` (whose /proc link is `link`); the
   * first time, records its memfd_inode_entry and writes its contents into `dir`.
   */
  memfdInode(dir: string, lfd: number, link: string, st: fs.BigIntStats, pageSize: number): number {
    const key = `${st.dev}:${st.ino}`;
    const known = this.memfdInodes.get(key);
    if (known) return Number(known.inode_id);
    const inodeId = this.memfdInodes.size + 1;
    const name = link.replace(/^\/memfd:/, '').replace(/ \(deleted\)$/, '');
    const shmid = Number(st.ino);
    const seals = Number(sys.fcntl(lfd, F_GET_SEALS));
    // Our own open file description: seeking the task's would move its offset.
    if (st.size > 0n) { // CRIU writes no pagemap for an empty memfd either
      const rfd = fs.openSync(`/proc/self/fd/${lfd}`, fs.constants.O_RDONLY);
      try {
        this.writeContents(dir, rfd, shmid, st.size, pageSize);
      } finally {
        fs.closeSync(rfd);
      }
    }
    const e: Msg = {
      name, uid: Number(st.uid), gid: Number(st.gid), size: st.size, shmid, seals, inode_id: BigInt(inodeId), mode: Number(st.mode),
    };
    this.memfdInodes.set(key, e);
    return inodeId;
  }

  /** pagemap-shmem-<shmid>.img and its pages file: the pages of the file that hold data. */
  private writeContents(dir: string, fd: number, shmid: number, size: bigint, pageSize: number): void {
    const ps = BigInt(pageSize);
    const runs: Array<{ start: bigint; end: bigint }> = [];
    let off = 0n;
    while (off < size) {
      const d = sys.trySyscall('lseek', fd, off, SEEK_DATA);
      if (d.errno !== 0) break; // ENXIO: no data after off
      const start = (d.ret / ps) * ps;
      const h = sys.trySyscall('lseek', fd, d.ret, SEEK_HOLE);
      const holeAt = h.errno === 0 ? h.ret : size;
      const end = ((holeAt + ps - 1n) / ps) * ps;
      const prev = runs[runs.length - 1];
      if (prev && prev.end >= start) prev.end = end > prev.end ? end : prev.end;
      else runs.push({ start, end });
      off = end;
    }
    const pagesId = this.nextPagesId++;
    const pages = fs.openSync(path.join(dir, `pages-${pagesId}.img`), 'w', 0o600);
    try {
      const buf = Buffer.alloc(CHUNK);
      for (const r of runs) {
        for (let at = r.start; at < r.end; at += BigInt(CHUNK)) {
          const len = Number(r.end - at < BigInt(CHUNK) ? r.end - at : BigInt(CHUNK));
          buf.fill(0, 0, len);
          let got = 0;
          while (got < len) {
            const n = fs.readSync(fd, buf, got, len - got, at + BigInt(got));
            if (n === 0) break; // past the end of the file: zeros
            got += n;
          }
          fs.writeSync(pages, buf, 0, len);
        }
      }
    } finally {
      fs.closeSync(pages);
    }
    this.pendingPagemaps.push({
      file: path.join(dir, `pagemap-shmem-${shmid}.img`),
      entries: [{ pages_id: pagesId }, ...runs.map((r) => ({ vaddr: r.start, nr_pages: Number((r.end - r.start) / ps), flags: PE_PRESENT }))],
    });
  }

  private readonly pendingPagemaps: Array<{ file: string; entries: Msg[] }> = [];

  /** Writes every image that has records (again) into `dir`. */
  async flush(dir: string): Promise<void> {
    for (const p of this.pendingPagemaps.splice(0)) await writeImageFile(p.file, 'PAGEMAP', p.entries.map((message) => ({ message })));
    if (this.memfdInodes.size) await writeImageFile(path.join(dir, 'memfd.img'), 'MEMFD_INODE', [...this.memfdInodes.values()].map((message) => ({ message })));
    const fifo = this.fifoData.entries();
    if (fifo.length) await writeImageFile(path.join(dir, 'fifo-data.img'), 'FIFO_DATA', fifo);
    if (this.skQueues.length) await writeImageFile(path.join(dir, 'sk-queues.img'), 'SK_QUEUES', this.skQueues);
  }
}

const sets = new WeakMap<FileRegistry, FileImages>();

export function fileImagesOf(files: FileRegistry): FileImages {
  let s = sets.get(files);
  if (!s) sets.set(files, (s = new FileImages()));
  return s;
}
