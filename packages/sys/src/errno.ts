// errno <-> name <-> message, per syscall ABI.
import { abiOf, hostArch, type Arch, type SyscallAbi } from './arch.js';
import { ERRNO_ALIASES, ERRNO_GENERIC, ERRNO_KERNEL_INTERNAL, ERRNO_PPC64_EXTRA, type ErrnoRow } from './data/errno-table.js';

export type { ErrnoRow } from './data/errno-table.js';
export { ERRNO_GENERIC, ERRNO_PPC64_EXTRA, ERRNO_KERNEL_INTERNAL, ERRNO_ALIASES };

interface ErrnoTable {
  byNumber: Map<number, ErrnoRow>;
  byName: Map<string, number>;
}
const tables = new Map<SyscallAbi, ErrnoTable>();

function table(abi: SyscallAbi): ErrnoTable {
  let t = tables.get(abi);
  if (t) return t;
  const rows = [...ERRNO_GENERIC, ...(abi === 'ppc64' ? ERRNO_PPC64_EXTRA : []), ...ERRNO_KERNEL_INTERNAL];
  t = { byNumber: new Map(rows.map((r) => [r[0], r])), byName: new Map(rows.map((r) => [r[1], r[0]])) };
  for (const [alias, target] of Object.entries(ERRNO_ALIASES)) t.byName.set(alias, t.byName.get(target)!);
  // On the generic table EDEADLOCK is another name for EDEADLK.
  if (!t.byName.has('EDEADLOCK')) t.byName.set('EDEADLOCK', t.byName.get('EDEADLK')!);
  tables.set(abi, t);
  return t;
}

function abiFor(arch: Arch | null): SyscallAbi {
  return arch === null ? 'x86_64' : abiOf(arch); // unknown hosts: the generic numbering is the best guess
}

/** 'ESRCH' for 3; unknown numbers give 'E<n>' (e.g. 'E41'). */
export function errnoName(errno: number, arch: Arch | null = hostArch()): string {
  return table(abiFor(arch)).byNumber.get(errno)?.[1] ?? `E${errno}`;
}

/** glibc's strerror() text, e.g. 'No such process'; unknown numbers give 'Unknown error <n>'. */
export function errnoMessage(errno: number, arch: Arch | null = hostArch()): string {
  return table(abiFor(arch)).byNumber.get(errno)?.[2] ?? `Unknown error ${errno}`;
}

/** The number of an errno name (aliases such as EWOULDBLOCK included), or undefined. */
export function errnoNumber(name: string, arch: Arch | null = hostArch()): number | undefined {
  return table(abiFor(arch)).byName.get(name);
}

/** Name -> number for the generic table (identical on x86_64 and ppc64 except EDEADLOCK). */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries([...ERRNO_GENERIC.map((r) => [r[1], r[0]] as const), ...ERRNO_KERNEL_INTERNAL.map((r) => [r[1], r[0]] as const)]),
);
