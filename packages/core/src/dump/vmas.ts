/**
 * vma_entry records (images/vma.proto, inside mm-<pid>.img) built from /proc/PID/maps and the
 * VmFlags of /proc/PID/smaps, the way CRIU 4.1 writes them (checked against its mm images on
 * this kernel: see test/memory-vmas.test.ts).
 */
import * as fs from 'node:fs';
import type { Msg } from '@criu/images';
import type { MapsEntry } from '../proc/maps.js';

export const PROT = Object.freeze({ NONE: 0, READ: 1, WRITE: 2, EXEC: 4 });

/** mmap flags as they appear in vma_entry.flags (x86_64 / ppc64 values where they matter). */
export const MAP = Object.freeze({
  SHARED: 0x1, PRIVATE: 0x2, ANONYMOUS: 0x20, GROWSDOWN: 0x100, LOCKED: 0x2000,
  NORESERVE: 0x4000, HUGETLB: 0x40000,
});

/** vma_entry.status bits (criu/include/image.h). */
export const VMA = Object.freeze({
  AREA_REGULAR: 1 << 0, AREA_STACK: 1 << 1, AREA_VSYSCALL: 1 << 2, AREA_VDSO: 1 << 3,
  AREA_HEAP: 1 << 5, FILE_PRIVATE: 1 << 6, FILE_SHARED: 1 << 7, ANON_SHARED: 1 << 8,
  ANON_PRIVATE: 1 << 9, AREA_SYSVIPC: 1 << 10, AREA_SOCKET: 1 << 11, AREA_VVAR: 1 << 12,
  AREA_AIORING: 1 << 13, AREA_MEMFD: 1 << 14, AREA_SHSTK: 1 << 15,
});

/** madvise advice numbers; vma_entry.madv holds 1 << advice. */
export const MADV = Object.freeze({
  RANDOM: 1, SEQUENTIAL: 2, DONTFORK: 10, MERGEABLE: 12, HUGEPAGE: 14, NOHUGEPAGE: 15,
  DONTDUMP: 16, WIPEONFORK: 18,
});

/**
 * VmFlags codes turned into madv bits. CRIU 4.1 does not record 'wf' (MADV_WIPEONFORK), so its
 * restore loses it; we record it: a restorer (ours or CRIU's) applies every madv bit it finds
 * with madvise(), so the image stays compatible and the flag survives.
 */
const MADV_CODES: Record<string, number> = {
  sr: MADV.SEQUENTIAL, rr: MADV.RANDOM, dc: MADV.DONTFORK, dd: MADV.DONTDUMP, mg: MADV.MERGEABLE,
  hg: MADV.HUGEPAGE, nh: MADV.NOHUGEPAGE, wf: MADV.WIPEONFORK,
};
const FLAG_CODES: Record<string, number> = { gd: MAP.GROWSDOWN, lo: MAP.LOCKED, nr: MAP.NORESERVE };

const O_RDONLY = 0, O_RDWR = 2;
const S_IFMT = 0o170000, S_IFREG = 0o100000;

export type VmaErrorCode = 'UNSUPPORTED' | 'BAD_MAPPING';

/** A mapping we cannot (or CRIU cannot) dump; names the mapping. */
export class VmaError extends Error {
  override readonly name = 'VmaError';
  constructor(readonly pid: number, readonly code: VmaErrorCode, readonly mapping: string, readonly reason: string, options?: { cause?: unknown }) {
    super(`task ${pid}: mapping ${mapping}: ${reason}`, options);
  }
}

export function describeMapping(m: MapsEntry): string {
  return `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms}${m.name ? ' ' + m.name : ''}`;
}

const bit = (n: number): bigint => 1n << BigInt(n);

/** The status bits that classify a special (bracketed) mapping; undefined = not special. */
function specialStatus(name: string, prot: number): number | undefined {
  switch (name) {
    case '[vsyscall]':
    case '[vectors]':
      return VMA.AREA_VSYSCALL;
    case '[vdso]':
      return VMA.AREA_REGULAR | ((prot & (PROT.READ | PROT.EXEC)) === (PROT.READ | PROT.EXEC) ? VMA.AREA_VDSO : 0);
    case '[vvar]':
    case '[vvar_vclock]':
      return VMA.AREA_REGULAR | ((prot & PROT.READ) === PROT.READ ? VMA.AREA_VVAR : 0);
    case '[heap]':
      return VMA.AREA_REGULAR | VMA.AREA_HEAP;
    default:
      return undefined;
  }
}

/**
 * Builds the vma_entry list of a task. `vmFlags` is readSmapsVmFlags(pid) (keyed by start);
 * `fileId` gives the file id (files.img) of a file-backed mapping and becomes its shmid;
 * `shmemId` the MEMFD file id of a shared anonymous or memfd mapping (see shmem.ts; without it
 * those are refused). Throws VmaError for mappings that are not supported (hugetlb, SysV shm,
 * private memfd mappings, AIO rings, VM_IO/VM_PFNMAP, shadow stacks, device files).
 */
export function collectVmas(pid: number, maps: MapsEntry[], vmFlags: Map<bigint, Set<string>>, fileId: (m: MapsEntry) => number, shmemId?: (m: MapsEntry) => number): Msg[] {
  const out: Msg[] = [];
  let prev: { m: MapsEntry; e: Msg } | undefined;
  for (const m of maps) {
    const what = describeMapping(m);
    const refuse = (reason: string): never => { throw new VmaError(pid, 'UNSUPPORTED', what, reason); };
    if (m.end <= m.start) throw new VmaError(pid, 'BAD_MAPPING', what, 'end is not above start');
    const flagsSet = vmFlags.get(m.start);
    if (!flagsSet) throw new VmaError(pid, 'BAD_MAPPING', what, 'no VmFlags for it in smaps (the mappings changed?)');

    // The kernel (6.13+) splits the vvar area into [vvar] and [vvar_vclock]; CRIU 4.1 records
    // them as one VVAR vma.
    if (m.name === '[vvar_vclock]' && prev && prev.m.name === '[vvar]' && prev.m.end === m.start && prev.m.perms === m.perms) {
      prev.e.end = m.end;
      prev.m = { ...prev.m, end: m.end };
      continue;
    }

    let prot = PROT.NONE;
    if (m.perms[0] === 'r') prot |= PROT.READ;
    if (m.perms[1] === 'w') prot |= PROT.WRITE;
    if (m.perms[2] === 'x') prot |= PROT.EXEC;
    const shared = m.perms[3] === 's';
    let flags = shared ? MAP.SHARED : MAP.PRIVATE;
    let madv = 0n;
    for (const code of flagsSet) {
      if (FLAG_CODES[code] !== undefined) flags |= FLAG_CODES[code];
      if (MADV_CODES[code] !== undefined) madv |= bit(MADV_CODES[code]);
    }

    const isVvar = m.name === '[vvar]' || m.name === '[vvar_vclock]';
    if (flagsSet.has('ht')) refuse('hugetlb mappings are not supported');
    if (flagsSet.has('ss')) refuse('shadow stacks are not supported');
    if ((flagsSet.has('io') || flagsSet.has('pf')) && !isVvar) refuse('VM_IO/VM_PFNMAP mappings cannot be dumped (CRIU refuses them too)');
    if (m.name.startsWith('/[aio]')) refuse('AIO rings are not supported yet');
    if (m.name.startsWith('/SYSV')) refuse('SysV shared memory is not supported yet');
    if (m.name.startsWith('[anon_shmem:')) refuse('named shared anonymous memory is not supported yet');
    const shmem = shared && m.inode !== 0 && (m.name.startsWith('/dev/zero') || m.name.startsWith('/memfd:'));
    if (shmem && !shmemId) refuse('shared anonymous memory is not supported here (no object ids)');
    if (m.name.startsWith('/memfd:') && !shared) refuse('private memfd mappings are not supported yet');

    let status = specialStatus(m.name, prot);
    let shmid = 0n;
    let fdflags: number | undefined;
    const fileBacked = status === undefined && m.inode !== 0 && m.name.startsWith('/');
    if (status === undefined) {
      if (m.inode !== 0 && !fileBacked) refuse(`unknown special mapping "${m.name}"`);
      if (m.name.startsWith('[') && !m.name.startsWith('[anon:') && m.name !== '[stack]') refuse(`unknown special mapping "${m.name}"`);
      status = VMA.AREA_REGULAR;
    }
    if (shmem) {
      // CRIU 4.1 records shared anonymous memory as a mapped memfd (see shmem.ts).
      status |= VMA.FILE_SHARED | VMA.AREA_MEMFD;
      shmid = BigInt(shmemId!(m));
      fdflags = flagsSet.has('mw') ? O_RDWR : O_RDONLY;
    } else if (fileBacked) {
      const link = `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
      let st: fs.Stats;
      try {
        st = fs.statSync(link);
      } catch (e) {
        // The cause (its errno) is what the dump's error hint is chosen from (EPERM: capabilities).
        throw new VmaError(pid, 'BAD_MAPPING', what, `cannot stat ${link}: ${(e as Error).message}`, { cause: e });
      }
      if ((st.mode & S_IFMT) !== S_IFREG) refuse(`mapping of a non-regular file (mode ${st.mode.toString(8)}) is not supported`);
      status |= shared ? VMA.FILE_SHARED : VMA.FILE_PRIVATE;
      shmid = BigInt(fileId(m));
      fdflags = shared && flagsSet.has('mw') ? O_RDWR : O_RDONLY;
    } else {
      if (shared) refuse('a shared mapping with no object behind it (inode 0) is not supported');
      status |= VMA.ANON_PRIVATE;
      flags |= MAP.ANONYMOUS;
    }

    const e: Msg = { start: m.start, end: m.end, pgoff: m.offset, shmid, prot, flags, status, fd: -1n };
    if (madv !== 0n) e.madv = madv;
    if (fdflags !== undefined) e.fdflags = fdflags;
    out.push(e);
    prev = { m, e };
  }
  return out;
}

/** True for vmas whose pages go to the task's pages image (private, dumpable, not vvar). */
export function vmaIsPrivateDumpable(e: Msg): boolean {
  const status = Number(e.status);
  const flags = Number(e.flags);
  if (!(status & VMA.AREA_REGULAR)) return false; // vsyscall
  if (status & VMA.AREA_VVAR) return false;
  if (flags & MAP.SHARED) return false;
  return (status & (VMA.ANON_PRIVATE | VMA.FILE_PRIVATE)) !== 0;
}

/** CRIU marks pages of these vmas PE_LAZY (they may be restored on demand). */
export function vmaCanBeLazy(e: Msg): boolean {
  const status = Number(e.status);
  const flags = Number(e.flags);
  const madv = BigInt((e.madv as bigint | undefined) ?? 0n);
  return (flags & MAP.ANONYMOUS) !== 0 && (flags & MAP.PRIVATE) !== 0 && (flags & MAP.LOCKED) === 0
    && !(status & (VMA.AREA_VVAR | VMA.AREA_VDSO | VMA.AREA_VSYSCALL))
    && (madv & bit(MADV.HUGEPAGE)) === 0n;
}
