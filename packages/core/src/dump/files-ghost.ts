/**
 * Deleted-but-open regular files ("ghost files"), dumped as CRIU 4.1 does: the file keeps its
 * reg_file_entry (the original path, " (deleted)" stripped), remap-fpath.img maps that file id
 * to a ghost id (remap_type GHOST) and ghost-file-<id in hex>.img holds a ghost_file_entry
 * (owner, mode, dev/ino, times) and the contents: raw to the end of the image for small files,
 * one ghost_chunk_entry + bytes per data extent for files of 3 * 4096 bytes and more. Every file
 * id opened on one inode (descriptors, mappings) shares one ghost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { writeImageFile, type EntryInput, type Msg } from '@criu/images';
import type { FileRegistry } from './file-registry.js';
import { S_IFMT, S_IFREG, devMajor, devMinor } from './files-kinds.js';
/** From this size on CRIU writes the contents as chunks (data extents), below it as one blob. */
const GHOST_CHUNKS_THRESH = 3n * 4096n;
const REMAP_GHOST = 1;
const SEEK_DATA = 3, SEEK_HOLE = 4;

const timeval = (ns: bigint): Msg => ({ tv_sec: ns / 1_000_000_000n, tv_usec: (ns % 1_000_000_000n) / 1000n });

/** Reads `len` bytes at `off` of our descriptor `fd` (short only at the end of the file). */
function readAt(fd: number, off: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, b, got, len - got, off + BigInt(got));
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

export class GhostFiles {
  private readonly remaps: Msg[] = [];
  private readonly byInode = new Map<string, number>();
  private readonly pending: Array<{ id: number; entries: EntryInput[] }> = [];
  private nextId = 1;

  /**
   * Records that file `origId` is the deleted file `st`, readable through our descriptor
   * `fd`; its contents are saved the first time the inode is seen. Returns the ghost id.
   */
  add(origId: number, fd: number, st: fs.BigIntStats): number {
    const key = `${st.dev}:${st.ino}`;
    let id = this.byInode.get(key);
    if (id === undefined) {
      id = this.nextId++;
      this.byInode.set(key, id);
      this.pending.push({ id, entries: this.contents(fd, st) });
    }
    this.remaps.push({ orig_id: origId, remap_id: id, remap_type: REMAP_GHOST });
    return id;
  }

  private contents(fd: number, st: fs.BigIntStats): EntryInput[] {
    const head: Msg = {
      uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode),
      dev: ((devMajor(st.dev) << 20) | devMinor(st.dev)) >>> 0, ino: st.ino,
      atim: timeval(st.atimeNs), mtim: timeval(st.mtimeNs),
    };
    if ((Number(st.mode) & S_IFMT) !== S_IFREG) return [{ message: head }]; // a directory: nothing but its inode
    if (st.size < GHOST_CHUNKS_THRESH) return [{ message: head, extra: { kind: 'bytes', data: readAt(fd, 0n, Number(st.size)) } }];
    head.chunks = true;
    head.size = st.size;
    const out: EntryInput[] = [{ message: head }];
    let off = 0n;
    while (off < st.size) {
      const d = sys.trySyscall('lseek', fd, off, SEEK_DATA);
      if (d.errno !== 0) break; // ENXIO: only a hole up to the end
      const h = sys.trySyscall('lseek', fd, d.ret, SEEK_HOLE);
      const end = h.errno === 0 && h.ret < st.size ? h.ret : st.size;
      if (end <= d.ret) break;
      const data = readAt(fd, d.ret, Number(end - d.ret));
      out.push({ message: { len: BigInt(data.length), off: d.ret }, extra: { kind: 'bytes', data } });
      off = end;
    }
    return out;
  }

  /** Writes remap-fpath.img (again, with every record so far) and the new ghost-file images. */
  async flush(dir: string): Promise<void> {
    for (const g of this.pending.splice(0)) await writeImageFile(path.join(dir, `ghost-file-${g.id.toString(16)}.img`), 'GHOST_FILE', g.entries);
    if (this.remaps.length) await writeImageFile(path.join(dir, 'remap-fpath.img'), 'REMAP_FPATH', this.remaps.map((message) => ({ message })));
  }
}

const sets = new WeakMap<FileRegistry, GhostFiles>();

export function ghostsOf(files: FileRegistry): GhostFiles {
  let g = sets.get(files);
  if (!g) sets.set(files, (g = new GhostFiles()));
  return g;
}
