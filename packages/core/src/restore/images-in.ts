/**
 * Reads and checks what restore needs from an images directory. Every problem becomes a
 * RestoreError naming the file, record and field.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, ImageFormatError, pageRuns, PE_PRESENT, PE_PARENT, type Msg, type PageRun } from '@criu/images';
import { INCOMPLETE_MARKER } from '../dump/dump.js';
import { RestoreError } from './errors.js';

export interface TaskImages {
  pid: number;
  pstree: Msg;
  core: Msg;
  ids: Msg;
  mm: Msg;
  /** PE_PRESENT runs and where they are in pages-<id>.img. */
  pages: { file: string; runs: PageRun[] };
  fdinfo: Msg[];
  fs: Msg;
  /** file_entry records by id. */
  files: Map<number, Msg>;
}

async function read(dir: string, name: string, magic: string): Promise<Msg[]> {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) throw new RestoreError('read-images', 'image missing', { file: name });
  try {
    const img = await readImageFile(file);
    if (img.magic !== magic) throw new RestoreError('read-images', `expected a ${magic} image, found ${img.magic}`, { file: name });
    return img.entries.map((e) => e.message);
  } catch (e) {
    if (e instanceof RestoreError) throw e;
    const ie = e as ImageFormatError;
    throw new RestoreError('read-images', (e as Error).message, { cause: e, file: name, record: ie.recordIndex, field: ie.field });
  }
}

function one(entries: Msg[], file: string): Msg {
  if (entries.length !== 1) throw new RestoreError('read-images', `expected 1 record, found ${entries.length}`, { file });
  return entries[0];
}

export function need<T>(v: T | undefined | null, file: string, field: string, record = 0): T {
  if (v === undefined || v === null) throw new RestoreError('read-images', 'required value missing', { file, field, record });
  return v;
}

export async function readTaskImages(dir: string, march: number, threadInfoField: string, pageSize: number): Promise<TaskImages> {
  if (!fs.existsSync(dir)) throw new RestoreError('read-images', `no images directory ${dir}`);
  if (fs.existsSync(path.join(dir, INCOMPLETE_MARKER))) {
    throw new RestoreError('read-images', 'the images directory is marked incomplete: its dump did not finish', { file: INCOMPLETE_MARKER });
  }
  const inv = one(await read(dir, 'inventory.img', 'INVENTORY'), 'inventory.img');
  if (inv.img_version !== 2) throw new RestoreError('read-images', `unsupported img_version ${inv.img_version}`, { file: 'inventory.img', field: 'img_version' });
  if (!inv.fdinfo_per_id) throw new RestoreError('read-images', 'too old image (no fdinfo_per_id)', { file: 'inventory.img', field: 'fdinfo_per_id' });
  const tree = await read(dir, 'pstree.img', 'PSTREE');
  if (tree.length !== 1) throw new RestoreError('read-images', `${tree.length} tasks in the tree; restoring process trees is not supported yet`, { file: 'pstree.img' });
  const pstree = tree[0];
  const pid = need(pstree.pid as number, 'pstree.img', 'pid');
  const threads = (pstree.threads as number[] | undefined) ?? [];
  if (threads.length > 1) throw new RestoreError('read-images', `task ${pid} has ${threads.length} threads; multi-threaded restore is not supported yet`, { file: 'pstree.img', field: 'threads' });

  const coreFile = `core-${pid}.img`;
  const core = one(await read(dir, coreFile, 'CORE'), coreFile);
  if (core.mtype !== march) throw new RestoreError('read-images', `image is for machine type ${core.mtype}, this arch is ${march}`, { file: coreFile, field: 'mtype', hint: 'images are not portable between architectures' });
  need(core[threadInfoField], coreFile, threadInfoField);
  const tc = need(core.tc as Msg | undefined, coreFile, 'tc');
  if (tc.task_state !== 1) throw new RestoreError('read-images', `task state ${tc.task_state} (only live tasks are supported yet)`, { file: coreFile, field: 'tc.task_state' });
  need(core.thread_core, coreFile, 'thread_core');

  const ids = one(await read(dir, `ids-${pid}.img`, 'IDS'), `ids-${pid}.img`);
  const mm = one(await read(dir, `mm-${pid}.img`, 'MM'), `mm-${pid}.img`);
  const pmFile = `pagemap-${pid}.img`;
  const pm = await read(dir, pmFile, 'PAGEMAP');
  const pagesId = need(pm[0]?.pages_id as number | undefined, pmFile, 'pages_id');
  const runs = pageRuns(pm, pageSize);
  runs.forEach((r, i) => {
    if (r.flags & PE_PARENT) throw new RestoreError('read-images', 'pages in a parent image (incremental dumps) are not supported yet', { file: pmFile, record: i + 1, field: 'flags' });
  });
  const pagesFile = path.join(dir, `pages-${pagesId}.img`);
  const present = runs.filter((r) => r.flags & PE_PRESENT);
  const needBytes = present.reduce((n, r) => Math.max(n, (r.offset ?? 0) + r.nrPages * pageSize), 0);
  const have = fs.existsSync(pagesFile) ? fs.statSync(pagesFile).size : -1;
  if (have < needBytes) {
    throw new RestoreError('read-images', have < 0 ? 'pages image missing' : `pages image has ${have} bytes, the pagemap needs ${needBytes}`, { file: path.basename(pagesFile), hint: 'the image set is truncated or damaged' });
  }
  const fdinfoFile = `fdinfo-${ids.files_id}.img`;
  const fdinfo = await read(dir, fdinfoFile, 'FDINFO');
  const fsImg = one(await read(dir, `fs-${pid}.img`, 'FS'), `fs-${pid}.img`);
  const files = new Map<number, Msg>();
  (await read(dir, 'files.img', 'FILES')).forEach((f, i) => {
    files.set(need(f.id as number | undefined, 'files.img', 'id', i), f);
  });
  return { pid, pstree, core, ids, mm, pages: { file: pagesFile, runs: present }, fdinfo, fs: fsImg, files };
}
