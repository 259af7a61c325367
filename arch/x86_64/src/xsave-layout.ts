/**
 * Where each XSAVE state component lives in the standard (non-compacted) XSAVE area that
 * PTRACE_GETREGSET(NT_X86_XSTATE) returns and that a signal frame carries. Offsets are not fixed
 * across CPUs (AMD puts PKRU elsewhere than Intel), so they are read, in this order, from:
 *  1. the NT_X86_XSAVE_LAYOUT regset of a task, when the kernel offers it through ptrace;
 *  2. CPUID leaf 0xD through /dev/cpu/N/cpuid (the cpuid driver; root);
 *  3. CPUID leaf 0xD through a tiny C helper built with the system compiler.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sys, NT, SysError } from '@criu/sys';

/** Set once this kernel said it has no NT_X86_XSAVE_LAYOUT regset. */
let noLayoutRegset = false;

/** XSAVE state component numbers (bits of XCR0 / xstate_bv). */
export const XFEATURE = Object.freeze({
  FP: 0, SSE: 1, YMM: 2, BNDREGS: 3, BNDCSR: 4, OPMASK: 5, ZMM_Hi256: 6, Hi16_ZMM: 7,
  PT: 8, PKRU: 9, PASID: 10, CET_U: 11, CET_S: 12, HDC: 13, UINTR: 14, LBR: 15, HWP: 16,
  XTILE_CFG: 17, XTILE_DATA: 18, APX: 19,
});

/** Size of the legacy FXSAVE region and of the XSAVE header that follows it. */
export const FXSAVE_SIZE = 512;
export const XSAVE_HEADER_SIZE = 64;

export interface XsaveComponent {
  /** Component number (XFEATURE.*). */
  feature: number;
  /** Byte offset in the standard-format XSAVE area. */
  offset: number;
  size: number;
}

export interface XsaveLayout {
  /** Where the layout came from. */
  source: 'regset' | 'cpuid-device' | 'cpuid-helper';
  /** User state components the CPU supports (CPUID.(EAX=0xD,ECX=0).EDX:EAX), FP and SSE included. */
  supported: bigint;
  /** Components 2 and up, by feature number. */
  components: ReadonlyMap<number, XsaveComponent>;
  /** Size of the XSAVE area for every supported user component (CPUID.(0xD,0).ECX). */
  maxSize: number;
}

/** No source could tell the XSAVE layout. */
export class XsaveLayoutError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`cannot read the XSAVE area layout: ${reason}`, options);
    this.name = 'XsaveLayoutError';
  }
}

type Cpuid = (leaf: number, subleaf: number) => [number, number, number, number];

function layoutFromCpuid(cpuid: Cpuid, source: XsaveLayout['source']): XsaveLayout {
  const [eax0, , ecx0, edx0] = cpuid(0xd, 0);
  const supported = BigInt(eax0 >>> 0) | (BigInt(edx0 >>> 0) << 32n);
  if ((supported & 3n) !== 3n) throw new XsaveLayoutError(`CPUID 0xD reports no x87/SSE state (0x${supported.toString(16)}): not an XSAVE CPU`);
  const components = new Map<number, XsaveComponent>();
  for (let f = 2; f < 63; f++) {
    if (!(supported & (1n << BigInt(f)))) continue;
    const [size, offset, ecx] = cpuid(0xd, f);
    // ECX bit 0 set: a supervisor component (IA32_XSS), never in a user XSAVE area.
    if (ecx & 1 || size === 0) continue;
    components.set(f, { feature: f, offset: offset >>> 0, size: size >>> 0 });
  }
  return { source, supported, components, maxSize: ecx0 >>> 0 };
}

function cpuidDevice(): { cpuid: Cpuid; close: () => void } | undefined {
  let dir: string[];
  try {
    dir = fs.readdirSync('/dev/cpu').filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(a) - Number(b));
  } catch {
    return undefined;
  }
  for (const cpu of dir) {
    let fd: number;
    try {
      fd = fs.openSync(`/dev/cpu/${cpu}/cpuid`, 'r');
    } catch {
      continue;
    }
    const cpuid: Cpuid = (leaf, subleaf) => {
      const b = Buffer.alloc(16);
      // The file position selects the leaf (low 32 bits) and subleaf (high 32 bits).
      const n = fs.readSync(fd, b, 0, 16, BigInt(leaf) | (BigInt(subleaf) << 32n));
      if (n !== 16) throw new XsaveLayoutError(`/dev/cpu/${cpu}/cpuid: short read (${n} bytes)`);
      return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)];
    };
    return { cpuid, close: () => fs.closeSync(fd) };
  }
  return undefined;
}

const HELPER_SOURCE = `#include <cpuid.h>
#include <stdio.h>
int main(void) {
  unsigned a, b, c, d, s;
  for (s = 0; s < 63; s++) { __cpuid_count(0xd, s, a, b, c, d); printf("%u %u %u %u %u\\n", s, a, b, c, d); }
  return 0;
}
`;

function cpuidHelper(): Cpuid {
  const hash = crypto.createHash('sha256').update(HELPER_SOURCE).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), `criu-ts-cpuid-${process.getuid?.() ?? 0}`);
  const exe = path.join(dir, `cpuid-0xd-${hash}`);
  if (!fs.existsSync(exe)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const src = `${exe}.c`;
    fs.writeFileSync(src, HELPER_SOURCE);
    const tmp = `${exe}.${process.pid}`;
    execFileSync('cc', ['-O1', '-o', tmp, src], { stdio: 'pipe' });
    fs.renameSync(tmp, exe);
  }
  const rows = new Map<number, number[]>();
  for (const line of execFileSync(exe, { encoding: 'latin1' }).split('\n')) {
    const v = line.trim().split(/\s+/).map(Number);
    if (v.length === 5) rows.set(v[0], v.slice(1));
  }
  return (leaf, subleaf) => {
    const r = leaf === 0xd ? rows.get(subleaf) : undefined;
    if (!r) throw new XsaveLayoutError(`cpuid helper has no leaf 0x${leaf.toString(16)}.${subleaf}`);
    return [r[0], r[1], r[2], r[3]];
  };
}

/**
 * The layout from a task's NT_X86_XSAVE_LAYOUT regset (an array of
 * struct { u32 type, size, offset, flags }), or undefined if the kernel has no such regset.
 */
export function layoutFromRegset(tid: number): XsaveLayout | undefined {
  if (noLayoutRegset) return undefined;
  let raw: Buffer;
  try {
    raw = sys.ptrace.getRegset(tid, NT.X86_XSAVE_LAYOUT, 64 * 16);
  } catch (e) {
    // EINVAL: a kernel without the regset; asking again (per thread, while frozen) only costs.
    if (SysError.is(e, 'EINVAL')) noLayoutRegset = true;
    return undefined;
  }
  if (raw.length < 16 || raw.length % 16 !== 0) return undefined;
  let supported = 0n;
  let maxSize = FXSAVE_SIZE + XSAVE_HEADER_SIZE;
  const components = new Map<number, XsaveComponent>();
  for (let off = 0; off < raw.length; off += 16) {
    const feature = raw.readUInt32LE(off);
    const size = raw.readUInt32LE(off + 4);
    const offset = raw.readUInt32LE(off + 8);
    if (feature > 63) return undefined;
    supported |= 1n << BigInt(feature);
    if (feature >= 2 && size) components.set(feature, { feature, offset, size });
    maxSize = Math.max(maxSize, offset + size);
  }
  return { source: 'regset', supported: supported | 3n, components, maxSize };
}

let cached: XsaveLayout | undefined;

/**
 * This machine's XSAVE layout. With `tid` (a task at a ptrace-stop) the task's
 * NT_X86_XSAVE_LAYOUT regset is tried first. The CPUID answer is cached.
 */
export function xsaveLayout(tid?: number): XsaveLayout {
  if (tid !== undefined) {
    const r = layoutFromRegset(tid);
    if (r) return r;
  }
  if (cached) return cached;
  const errors: string[] = [];
  const dev = cpuidDevice();
  if (dev) {
    try {
      cached = layoutFromCpuid(dev.cpuid, 'cpuid-device');
      return cached;
    } catch (e) {
      if (e instanceof XsaveLayoutError && /not an XSAVE CPU/.test(e.message)) throw e;
      errors.push(`/dev/cpu/*/cpuid: ${(e as Error).message}`);
    } finally {
      dev.close();
    }
  } else {
    errors.push('/dev/cpu/*/cpuid: not available (cpuid driver not loaded or no permission)');
  }
  try {
    cached = layoutFromCpuid(cpuidHelper(), 'cpuid-helper');
    return cached;
  } catch (e) {
    if (e instanceof XsaveLayoutError) throw e;
    errors.push(`cpuid helper: ${(e as Error).message.split('\n')[0]}`);
  }
  throw new XsaveLayoutError(errors.join('; '));
}

/** The layout from one CPUID source, uncached (to compare sources). */
export function readXsaveLayout(source: 'cpuid-device' | 'cpuid-helper'): XsaveLayout {
  if (source === 'cpuid-helper') return layoutFromCpuid(cpuidHelper(), source);
  const dev = cpuidDevice();
  if (!dev) throw new XsaveLayoutError('/dev/cpu/*/cpuid: not available (cpuid driver not loaded or no permission)');
  try {
    return layoutFromCpuid(dev.cpuid, source);
  } finally {
    dev.close();
  }
}

/** Forgets the cached CPUID layout (tests). */
export function resetXsaveLayoutCache(): void {
  cached = undefined;
}
