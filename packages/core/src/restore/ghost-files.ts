/**
 * Deleted-but-open files ("ghost files", remap-fpath.img + ghost-file-<id>.img). Each ghost is
 * recreated once, as a temporary file next to its original path, with the saved contents, size,
 * owner, mode and times. A task opens (or maps) it by the ORIGINAL path, hard-linked there just
 * for that open, so /proc/PID/fd and maps show the original name; once every task holds its
 * files the temporary names are removed and the task again holds a deleted file. A removed
 * directory (a working directory) is made again at its path and removed the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Msg } from '@criu/images';
import { RestoreError } from './errors.js';
import { readImage } from './files-kinds.js';

const REMAP_LINKED = 0, REMAP_GHOST = 1, REMAP_PROCFS = 2;
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000;
const ENOENT = 2;

interface Ghost { id: number; tmp?: string; dir?: boolean }

export class GhostFiles {
  /** Ghost of each remapped file id. */
  private readonly remapOf = new Map<number, Ghost>();
  private readonly ghosts = new Map<number, Ghost>();
  private readonly madeDirs: string[] = [];

  /** Reads remap-fpath.img (if any) and checks every record refers to something restorable. */
  constructor(private readonly dir: string, private readonly files: Map<number, Msg>, private readonly log?: (msg: string) => void) {
    readImage(dir, 'remap-fpath.img', 'REMAP_FPATH', true).forEach(({ message: m }, i) => {
      const type = Number(m.remap_type ?? REMAP_LINKED);
      const orig = Number(m.orig_id);
      if (type !== REMAP_GHOST) {
        const kind = type === REMAP_LINKED ? 'a link remap' : type === REMAP_PROCFS ? 'a procfs remap' : `remap type ${type}`;
        throw new RestoreError('read-images', `file ${orig} is reached through ${kind}, which is not supported yet`, { file: 'remap-fpath.img', record: i, field: 'remap_type' });
      }
      const f = files.get(orig);
      if (!f?.reg) throw new RestoreError('read-images', `remap of file ${orig}: no regular file with that id`, { file: 'remap-fpath.img', record: i, field: 'orig_id' });
      const id = Number(m.remap_id);
      let g = this.ghosts.get(id);
      if (!g) this.ghosts.set(id, (g = { id }));
      this.remapOf.set(orig, g);
    });
  }

  isGhost(fileId: number): boolean {
    return this.remapOf.has(fileId);
  }

  /**
   * Calls `open(path)` (an open or mmap injected into a task) with file `fileId` reachable at
   * `path`: its original name (for a ghost, linked there for the call), or the temporary name
   * when something else took the original one meanwhile.
   */
  open<T>(fileId: number, name: string, open: (path: string) => T): T {
    const g = this.remapOf.get(fileId);
    if (!g) return open(name);
    const tmp = this.create(g, name);
    if (g.dir) return open(tmp); // made at the original path when it was free
    try {
      fs.linkSync(tmp, name);
    } catch (e) {
      this.log?.(`ghost file ${g.id}: cannot link it at ${name} (${(e as Error).message}); opened as ${tmp}`);
      return open(tmp);
    }
    try {
      return open(name);
    } finally {
      fs.rmSync(name, { force: true });
    }
  }

  /** The temporary file of ghost `g`, created and filled the first time. */
  private create(g: Ghost, name: string): string {
    if (g.tmp) return g.tmp;
    const file = `ghost-file-${g.id.toString(16)}.img`;
    const entries = readImage(this.dir, file, 'GHOST_FILE');
    const head = entries[0]?.message;
    if (!head) throw new RestoreError('files', `ghost file ${g.id} has no ghost_file_entry`, { file, record: 0 });
    const mode = Number(head.mode);
    const t = (tv: Msg | undefined) => (tv ? Number(tv.tv_sec) + Number(tv.tv_usec) / 1e6 : Date.now() / 1000);
    this.makeParents(path.dirname(name));
    const tmp = `${name}.criu-ts.${g.id.toString(16)}.ghost`;
    if ((mode & S_IFMT) === S_IFDIR) {
      // A removed directory (a working directory): made at its own path if that is free, so
      // /proc/PID/cwd shows the original name; removed again by cleanup().
      let at = name;
      try {
        fs.mkdirSync(at, 0o700);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        this.log?.(`ghost directory ${g.id}: ${name} exists; made as ${tmp}`);
        at = tmp;
        fs.rmSync(at, { recursive: true, force: true });
        fs.mkdirSync(at, 0o700);
      }
      g.tmp = at;
      g.dir = true;
      try { fs.chownSync(at, Number(head.uid), Number(head.gid)); } catch (e) { this.log?.(`ghost directory ${g.id}: cannot give it to ${head.uid}:${head.gid} (${(e as Error).message})`); }
      fs.chmodSync(at, mode & 0o7777);
      fs.utimesSync(at, t(head.atim as Msg | undefined), t(head.mtim as Msg | undefined));
      return at;
    }
    if ((mode & S_IFMT) !== S_IFREG) throw new RestoreError('files', `ghost file ${g.id} of mode 0${mode.toString(8)} is neither a regular file nor a directory: not supported yet`, { file, record: 0, field: 'mode' });
    fs.rmSync(tmp, { force: true }); // left over by an earlier failed restore
    const fd = fs.openSync(tmp, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o600);
    g.tmp = tmp;
    try {
      if (head.chunks) {
        entries.slice(1).forEach(({ message: c, data }, k) => {
          const len = Number(c.len);
          if (!data || data.length !== len) throw new RestoreError('files', `ghost file ${g.id}: chunk of ${data?.length ?? 0} bytes, the record says ${len}`, { file, record: k + 1, field: 'len' });
          fs.writeSync(fd, data, 0, len, Number(c.off));
        });
        if (head.size === undefined) throw new RestoreError('files', `chunked ghost file ${g.id} has no size`, { file, record: 0, field: 'size' });
        fs.ftruncateSync(fd, Number(head.size));
      } else {
        const data = entries[0].data ?? Buffer.alloc(0);
        if (data.length) fs.writeSync(fd, data, 0, data.length, 0);
      }
      try {
        fs.fchownSync(fd, Number(head.uid), Number(head.gid));
      } catch (e) {
        this.log?.(`ghost file ${g.id}: cannot give it to ${head.uid}:${head.gid} (${(e as Error).message})`);
      }
      fs.fchmodSync(fd, mode & 0o7777);
      fs.futimesSync(fd, t(head.atim as Msg | undefined), t(head.mtim as Msg | undefined));
    } finally {
      fs.closeSync(fd);
    }
    return tmp;
  }

  /** mkdir -p, remembering what was made so cleanup() can remove it. */
  private makeParents(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; ; d = path.dirname(d)) {
      try {
        fs.statSync(d);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).errno !== -ENOENT || d === path.dirname(d)) throw e;
        missing.unshift(d);
      }
    }
    for (const d of missing) {
      fs.mkdirSync(d);
      this.madeDirs.push(d);
    }
  }

  /** Removes the temporary names (and the directories made for them): the ghosts live on in the tasks only. */
  cleanup(): void {
    for (const g of this.ghosts.values()) {
      if (g.tmp && g.dir) {
        try { fs.rmdirSync(g.tmp); } catch (e) { this.log?.(`ghost directory ${g.id}: cannot remove ${g.tmp} (${(e as Error).message})`); }
      } else if (g.tmp) {
        fs.rmSync(g.tmp, { force: true });
      }
      g.tmp = undefined;
    }
    for (const d of this.madeDirs.splice(0).reverse()) {
      try { fs.rmdirSync(d); } catch { /* something else lives there now */ }
    }
  }
}
