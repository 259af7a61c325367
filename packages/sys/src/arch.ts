// Which CPU architecture we run on, and the per-arch syscall tables. Tables for every supported
// arch are always available (an x86_64 host may prepare data for a ppc64 restore), but only the
// host's table can be used to make calls.
import os from 'node:os';
import { SYSCALLS_PPC64 } from './data/syscalls-ppc64.js';
import { SYSCALLS_X86_64 } from './data/syscalls-x86_64.js';

/** A supported CPU architecture. ppc64 (big-endian) shares the syscall ABI of ppc64le. */
export type Arch = 'x86_64' | 'ppc64le' | 'ppc64';
/** The syscall ABI an arch uses: numbers, errno and signal tables are per ABI. */
export type SyscallAbi = 'x86_64' | 'ppc64';

export const SYSCALL_TABLES: Readonly<Record<SyscallAbi, Readonly<Record<string, number>>>> = Object.freeze({
  x86_64: SYSCALLS_X86_64,
  ppc64: SYSCALLS_PPC64,
});

/** Maps Node's process.arch + byte order to our arch name; null when the host is not supported. */
export function archFromNode(nodeArch: string, endianness: 'LE' | 'BE'): Arch | null {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'ppc64') return endianness === 'LE' ? 'ppc64le' : 'ppc64';
  return null;
}

let host: Arch | null | undefined;
/** The host arch, or null when it is not one we support. */
export function hostArch(): Arch | null {
  if (host === undefined) host = archFromNode(process.arch, os.endianness());
  return host;
}

export function abiOf(arch: Arch): SyscallAbi {
  return arch === 'x86_64' ? 'x86_64' : 'ppc64';
}

const reverse = new Map<SyscallAbi, Map<number, string>>();

/** The syscall number of `name` on `arch` (default: host), or undefined when there is none. */
export function syscallNumber(name: string, arch: Arch | null = hostArch()): number | undefined {
  if (arch === null) return undefined;
  const table = SYSCALL_TABLES[abiOf(arch)];
  return Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined;
}

/** The name of syscall `nr` on `arch` (default: host), or undefined. */
export function syscallName(nr: number, arch: Arch | null = hostArch()): string | undefined {
  if (arch === null) return undefined;
  const abi = abiOf(arch);
  let map = reverse.get(abi);
  if (!map) {
    map = new Map(Object.entries(SYSCALL_TABLES[abi]).map(([n, v]) => [v, n]));
    reverse.set(abi, map);
  }
  return map.get(nr);
}
