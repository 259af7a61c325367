import * as os from 'node:os';
import { x86_64 } from '@criu/arch-x86_64';
import { ppc64 } from '@criu/arch-ppc64';
import type { Arch } from './types.js';

/** Thrown when the machine's architecture has no arch package. */
export class UnsupportedArchError extends Error {
  constructor(readonly nodeArch: string, readonly endianness: string) {
    super(`criu-ts has no arch support for ${nodeArch} (${endianness === 'LE' ? 'little' : 'big'}-endian)`);
    this.name = 'UnsupportedArchError';
  }
}

/**
 * The one place that names arch packages: picks the host's by process.arch and endianness.
 * Callers may pass an Arch explicitly instead.
 */
export function hostArch(): Arch {
  const endianness = os.endianness();
  if (process.arch === 'x64') {
    return x86_64 satisfies Arch;
  }
  if (process.arch === 'ppc64' && endianness === 'LE') {
    return ppc64 satisfies Arch;
  }
  throw new UnsupportedArchError(process.arch, endianness);
}
