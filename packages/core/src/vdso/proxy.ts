/**
 * A vDSO proxy: when the running kernel's vDSO differs from the dumped one, the dumped vDSO's
 * code is kept at its old address (programs hold pointers into it) and each symbol that reads
 * kernel data is overwritten by a stub that forwards the call to the running vDSO, parked
 * elsewhere. The stubs are the arch's; this module decides what goes where.
 */
import { readVdsoImage, VdsoElfError } from './elf.js';

/** What an arch supplies to build a proxy (Arch.vdsoProxy). */
export interface VdsoProxyCode {
  /** Symbols that read kernel data and must be forwarded (signal trampolines are self-contained). */
  readonly symbols: readonly string[];
  /** Bytes each stub overwrites at the start of a symbol. */
  readonly stubSize: number;
  /** Code shared by every stub, placed once in the proxy's free tail (ppc64's second step). */
  readonly trampoline?: Buffer;
  /** The stub for a symbol at `at` that forwards to `target`, through `trampoline` if the arch has one. */
  stub(at: bigint, trampoline: bigint | undefined, target: bigint): Buffer;
  /**
   * Symbols that may be missing from an older running vDSO, with the syscall that does their job
   * (the vDSO's own slow path): they become `syscallStub`s instead of forwarding stubs.
   */
  readonly fallbacks?: Readonly<Record<string, string>>;
  /** Code that makes syscall `nr` with the caller's arguments and returns as the vDSO function would. */
  syscallStub?(nr: number): Buffer;
}

export interface ProxyPatch { offset: number; bytes: Buffer; what: string }

/** Written at the end of a proxy, so a later dump knows it for what it is. */
export const PROXY_MAGIC = Buffer.from('criu-ts:vdsoprx\0', 'latin1');
export const PROXY_MARK_SIZE = 32;

export interface ProxyMark { runtimeVdso: bigint; vvarStart: bigint }

export function proxyMark(mark: ProxyMark): Buffer {
  const b = Buffer.alloc(PROXY_MARK_SIZE);
  PROXY_MAGIC.copy(b, 0);
  b.writeBigUInt64LE(mark.runtimeVdso, 16);
  b.writeBigUInt64LE(mark.vvarStart, 24);
  return b;
}

/** The mark in the last PROXY_MARK_SIZE bytes of a mapping, if it is a proxy criu-ts made. */
export function readProxyMark(tail: Buffer): ProxyMark | undefined {
  if (tail.length < PROXY_MARK_SIZE || !tail.subarray(0, 16).equals(PROXY_MAGIC)) return undefined;
  return { runtimeVdso: tail.readBigUInt64LE(16), vvarStart: tail.readBigUInt64LE(24) };
}

export class VdsoProxyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VdsoProxyError';
  }
}

/**
 * The patches that turn `old` (the dumped vDSO's bytes, to live at `oldBase`) into a proxy of
 * `running` (the running kernel's vDSO at `runningBase`).
 */
export function buildVdsoProxy(code: VdsoProxyCode, old: Buffer, oldBase: bigint, running: Buffer, runningBase: bigint, vvarStart: bigint, sysno?: (name: string) => number): ProxyPatch[] {
  const read = (b: Buffer, which: string) => {
    try { return readVdsoImage(b); } catch (e) {
      throw new VdsoProxyError(`the ${which} vDSO cannot be read: ${(e as VdsoElfError).message}`);
    }
  };
  const o = read(old, 'dumped'), n = read(running, 'running');
  const stubs: Array<{ offset: number; name: string; target?: bigint; syscall?: number }> = [];
  for (const name of code.symbols) {
    const os = o.symbols.get(name);
    if (!os) continue;
    if (stubs.some((s) => s.offset === os.offset)) continue; // an alias of a symbol already forwarded
    const ns = n.symbols.get(name);
    if (ns) {
      stubs.push({ offset: os.offset, name, target: runningBase + BigInt(ns.offset) });
      continue;
    }
    const fallback = code.fallbacks?.[name];
    if (!fallback || !code.syscallStub || !sysno) throw new VdsoProxyError(`the running kernel's vDSO has no ${name}, which the dumped one has`);
    stubs.push({ offset: os.offset, name, syscall: sysno(fallback) });
  }
  stubs.sort((a, b) => a.offset - b.offset);
  stubs.forEach((s, i) => {
    const size = s.syscall === undefined ? code.stubSize : code.syscallStub!(s.syscall).length;
    if (s.offset + size > old.length) throw new VdsoProxyError(`${s.name} is too close to the end of the dumped vDSO for a ${size}-byte stub`);
    const next = stubs[i + 1];
    if (next && s.offset + size > next.offset) throw new VdsoProxyError(`${s.name} is too short for a ${code.stubSize}-byte stub (${next.name} starts ${next.offset - s.offset} bytes after it)`);
  });
  // The tail after the ELF file holds the trampoline, then the mark at the very end.
  const patches: ProxyPatch[] = [];
  let free = (o.fileEnd + 15) & ~15;
  let trampoline: bigint | undefined;
  if (code.trampoline) {
    if (free + code.trampoline.length > old.length - PROXY_MARK_SIZE) throw new VdsoProxyError(`no room after the dumped vDSO's ${o.fileEnd} bytes for the ${code.trampoline.length}-byte trampoline`);
    trampoline = oldBase + BigInt(free);
    patches.push({ offset: free, bytes: code.trampoline, what: 'trampoline' });
    free += code.trampoline.length;
  }
  for (const s of stubs) {
    if (s.syscall !== undefined) patches.push({ offset: s.offset, bytes: code.syscallStub!(s.syscall), what: `${s.name} -> syscall ${s.syscall} (not in the running vDSO)` });
    else patches.push({ offset: s.offset, bytes: code.stub(oldBase + BigInt(s.offset), trampoline, s.target!), what: `${s.name} -> 0x${s.target!.toString(16)}` });
  }
  if (free <= old.length - PROXY_MARK_SIZE) patches.push({ offset: old.length - PROXY_MARK_SIZE, bytes: proxyMark({ runtimeVdso: runningBase, vvarStart }), what: 'mark' });
  return patches;
}
