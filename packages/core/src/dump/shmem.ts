/**
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, "/dev/zero (deleted)" in maps) and mapped
 * memfds. CRIU 4.1 records both the same way: the vma is FILE_SHARED|AREA_MEMFD with the id of a
 * MEMFD file_entry as its shmid, the object is a memfd_inode_entry in memfd.img (shmid = its
 * inode number) and its contents are in pagemap-shmem-<ino>.img. Every task that maps one
 * object gets the same file id, and the contents are saved once, read from the object itself
 * (so pages that only another task touched, or outside this task's part of it, are included).
 */
import * as fs from 'node:fs';
import { FD_TYPE } from './file-registry.js';
import { fileImagesOf } from './files-images.js';
import type { MapsEntry } from '../proc/maps.js';
import type { TaskDumpContext } from './model.js';

/** True for the mappings handled here: shared anonymous memory and memfds, MAP_SHARED. */
export function isShmemMapping(m: MapsEntry): boolean {
  return m.perms[3] === 's' && m.inode !== 0 && (m.name.startsWith('/dev/zero') || m.name.startsWith('/memfd:'));
}

export class ShmemDumpError extends Error {
  override readonly name = 'ShmemDumpError';
  constructor(readonly pid: number, readonly mapping: string, reason: string, options?: { cause?: unknown }) {
    super(`task ${pid}: mapping ${mapping}: ${reason}`, options);
  }
}

/**
 * The file id (vma_entry.shmid) of the shared memory object behind mapping `m` of the frozen
 * task; the first time an object is seen, its memfd inode and contents are saved.
 */
export function mappedShmemId(ctx: TaskDumpContext, m: MapsEntry): number {
  const range = `${m.start.toString(16)}-${m.end.toString(16)}`;
  const cacheKey = `${ctx.pid}:${range}`;
  const known = ctx.files.vmaIds.get(cacheKey);
  if (known !== undefined) return known;
  const link = `/proc/${ctx.pid}/map_files/${range}`;
  let fd: number;
  try {
    fd = fs.openSync(link, fs.constants.O_RDONLY);
  } catch (e) {
    throw new ShmemDumpError(ctx.pid, `${range} ${m.name}`, `cannot open ${link}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    const id = ctx.files.intern(`shmem:${st.dev}:${st.ino}`, FD_TYPE.MEMFD, (mid) => {
      let inodeId: number;
      try {
        inodeId = fileImagesOf(ctx.files).memfdInode(ctx.imagesDir, fd, m.name, st, ctx.pageSize);
      } catch (e) {
        throw new ShmemDumpError(ctx.pid, `${range} ${m.name}`, `cannot save its contents: ${(e as Error).message}`, { cause: e });
      }
      ctx.log.debug(`shmem: ${m.name} inode ${st.ino} (${st.size} bytes) is file ${mid}, memfd inode ${inodeId}`);
      return { id: mid, flags: 0, pos: 0n, fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 }, inode_id: inodeId };
    });
    ctx.files.vmaIds.set(cacheKey, id);
    return id;
  } finally {
    fs.closeSync(fd);
  }
}
