/**
 * memfds and FIFOs rebuilt in the restorer (the task takes them with pidfd_getfd): a memfd
 * inode filled from its shmem pagemap and sealed, then one open file per memfd_file_entry; a
 * FIFO opened by its path behind a read-write keeper that holds it open and takes its data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys, F } from '@criu/sys';
import { decodeImageEntries, pageRuns, PE_PRESENT, type DecodedImage, type Msg } from '@criu/images';
import { RestoreError } from './errors.js';
import { dirSource, type ImageSource } from './images-in.js';

const O_ACCMODE = 3, O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000;
const SEEK_SET = 0;
const F_ADD_SEALS = 1033, F_SEAL_SEAL = 1;
const MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
const DEFAULT_PIPE_SIZE = 65536;
const FILL_CHUNK = 4 << 20;

export function readImage(from: string | ImageSource, name: string, magic: string, optional = false): Array<{ message: Msg; data?: Buffer }> {
  const src = typeof from === 'string' ? dirSource(from) : from;
  if (!src.has(name)) {
    if (optional) return [];
    throw new RestoreError('read-images', 'image missing', { file: name, hint: 'the image set is incomplete' });
  }
  const bytes = src.read(name);
  let img: DecodedImage;
  try {
    const decode = () => decodeImageEntries(bytes, { file: name });
    img = src.decoded ? src.decoded(name, bytes, decode) : decode();
  } catch (e) {
    throw new RestoreError('read-images', (e as Error).message, { cause: e, file: name, hint: 'the image is damaged' });
  }
  if (img.magic !== magic) throw new RestoreError('read-images', `expected a ${magic} image, found ${img.magic}`, { file: name });
  return img.entries.map((e) => ({ message: e.message, data: e.extra?.kind === 'bytes' && e.extra.data ? Buffer.from(e.extra.data) : undefined }));
}

/** Makes memfd inodes and the open files on them. */
export class MemfdMaker {
  private inodes?: Map<number, Msg>;
  private readonly made = new Map<number, number>();

  constructor(private readonly dir: string, private readonly own: (fd: number) => number) {}

  private inode(inodeId: number): Msg {
    if (!this.inodes) {
      this.inodes = new Map();
      readImage(this.dir, 'memfd.img', 'MEMFD_INODE').forEach(({ message: m }, i) => {
        if (m.inode_id === undefined) throw new RestoreError('read-images', 'required value missing', { file: 'memfd.img', record: i, field: 'inode_id' });
        this.inodes!.set(Number(m.inode_id), m);
      });
    }
    const m = this.inodes.get(inodeId);
    if (!m) throw new RestoreError('read-images', `no memfd inode ${inodeId}`, { file: 'memfd.img', field: 'inode_id' });
    return m;
  }

  /**
   * Our descriptor (read-write) of the memfd inode `inodeId`, created and filled the first time;
   * mappings of the inode (shared anonymous memory) use it.
   */
  inodeFd(inodeId: number): number {
    const known = this.made.get(inodeId);
    if (known !== undefined) return known;
    const m = this.inode(inodeId);
    const seals = Number(m.seals ?? 0);
    const name = Buffer.from(`${m.name as string}\0`);
    const fd = this.own(Number(sys.syscall('memfd_create', name, MFD_CLOEXEC | (seals === F_SEAL_SEAL ? 0 : MFD_ALLOW_SEALING))));
    this.fill(fd, Number(m.shmid), `memfd ${m.name}`);
    try {
      sys.syscall('ftruncate', fd, BigInt(m.size as bigint));
      if (m.mode !== undefined) sys.syscall('fchmod', fd, Number(m.mode) & 0o7777);
      sys.syscall('fchown', fd, Number(m.uid ?? 0), Number(m.gid ?? 0));
      if (seals !== F_SEAL_SEAL && seals !== 0) sys.fcntl(fd, F_ADD_SEALS, seals);
    } catch (e) {
      throw new RestoreError('files', `memfd ${m.name}: ${(e as Error).message}`, { cause: e, file: 'memfd.img' });
    }
    this.made.set(inodeId, fd);
    return fd;
  }

  /**
   * Writes the contents saved in pagemap-shmem-<shmid>.img (offsets in the object) into `fd`,
   * in bounded chunks. No pagemap: nothing was saved (an empty object).
   */
  private fill(fd: number, shmid: number, what: string): void {
    const pmName = `pagemap-shmem-${shmid}.img`;
    const pm = readImage(this.dir, pmName, 'PAGEMAP', true).map((e) => e.message);
    if (!pm.length) return;
    const pageSize = sys.pageSize();
    if (pm[0].pages_id === undefined) throw new RestoreError('read-images', 'required value missing', { file: pmName, record: 0, field: 'pages_id' });
    const pagesName = `pages-${pm[0].pages_id}.img`;
    let pages: number;
    try {
      pages = fs.openSync(path.join(this.dir, pagesName), 'r');
    } catch (e) {
      throw new RestoreError('read-images', `${what}: ${(e as Error).message}`, { cause: e, file: pagesName, hint: 'the image set is incomplete' });
    }
    const buf = Buffer.alloc(Math.max(pageSize, FILL_CHUNK - (FILL_CHUNK % pageSize)));
    try {
      for (const r of pageRuns(pm, pageSize)) {
        if (!(r.flags & PE_PRESENT) || r.offset === undefined) continue;
        const total = r.nrPages * pageSize;
        for (let at = 0; at < total; at += buf.length) {
          const len = Math.min(buf.length, total - at);
          const n = fs.readSync(pages, buf, 0, len, r.offset + at);
          if (n !== len) throw new RestoreError('read-images', `${what}: ${n} of ${len} bytes at ${r.offset + at}`, { file: pagesName, hint: 'the image set is truncated' });
          let done = 0;
          while (done < len) done += fs.writeSync(fd, buf, done, len - done, Number(r.vaddr) + at + done);
        }
      }
    } finally {
      fs.closeSync(pages);
    }
  }

  /**
   * Our read-write descriptor of the object of a VMA_ANON_SHARED mapping (images that record
   * shared anonymous memory by its shmid, not as a memfd): a memfd of `size` bytes filled from
   * pagemap-shmem-<shmid>.img, made once per shmid.
   */
  anonFd(shmid: number, size: bigint): number {
    const known = this.anon.get(shmid);
    if (known !== undefined) return known;
    const fd = this.own(Number(sys.syscall('memfd_create', Buffer.from('/dev/zero\0'), MFD_CLOEXEC)));
    this.fill(fd, shmid, `shared memory ${shmid}`);
    sys.syscall('ftruncate', fd, size);
    this.anon.set(shmid, fd);
    return fd;
  }

  private readonly anon = new Map<number, number>();

  /** A new open file on the memfd of `e` (memfd_file_entry) with its flags and offset. */
  open(e: Msg): number {
    const ino = this.inodeFd(Number(e.inode_id));
    const flags = Number(e.flags ?? 0) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    const fd = this.own(fs.openSync(`/proc/self/fd/${ino}`, flags | O_CLOEXEC));
    const pos = BigInt((e.pos as bigint | number | undefined) ?? 0n);
    if (pos !== 0n) sys.syscall('lseek', fd, pos, SEEK_SET);
    return fd;
  }
}

/**
 * The ends of one FIFO (`ends`: fifo_entry records with the reg_file_entry of each), opened by
 * path behind a read-write keeper (so no open blocks and the buffer survives), which takes the
 * buffered data. Returns our descriptor for each end's file id.
 */
export function openFifo(pipeId: number, ends: Array<{ id: number; reg: Msg }>, saved: { size: number; data: Buffer } | undefined, own: (fd: number) => number): Map<number, number> {
  const name = ends[0].reg.name as string;
  const out = new Map<number, number>();
  let keeper: number;
  try {
    keeper = own(fs.openSync(name, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  } catch (e) {
    throw new RestoreError('files', `FIFO ${name}: ${(e as Error).message}`, { cause: e, file: 'files.img', field: 'reg.name', hint: 'the FIFO must exist at its path' });
  }
  const st = fs.fstatSync(keeper);
  if (!st.isFIFO()) throw new RestoreError('files', `${name} is not a FIFO any more`, { file: 'files.img', field: 'reg.name' });
  const want = Math.max(saved?.size ?? 0, saved?.data.length ?? 0);
  if (want > DEFAULT_PIPE_SIZE && sys.fcntl(keeper, F.GETPIPE_SZ) < want) sys.fcntl(keeper, F.SETPIPE_SZ, want);
  if (saved?.data.length) {
    let off = 0;
    while (off < saved.data.length) off += fs.writeSync(keeper, saved.data, off, saved.data.length - off);
  }
  for (const { id, reg } of ends) {
    const flags = Number(reg.flags ?? 0) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
    const fd = own(fs.openSync(`/proc/self/fd/${keeper}`, (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC));
    sys.fcntl(fd, F.SETFL, flags & ~O_ACCMODE);
    out.set(id, fd);
  }
  void pipeId;
  return out;
}
