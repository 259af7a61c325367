// The one interface the rest of @criu/sys uses to reach the kernel. Everything above it deals in
// bigint arguments and results; a backend only moves them through libc's syscall().

export type BackendName = 'koffi' | 'ffi-rs';
export const BACKEND_NAMES: readonly BackendName[] = ['koffi', 'ffi-rs'];

/** A raw syscall outcome. errno is 0 when the call succeeded (ret !== -1n). */
export interface SyscallResult {
  ret: bigint;
  errno: number;
}

export interface FfiBackend {
  readonly name: BackendName;
  /**
   * libc syscall(nr, a0..a5) on the calling thread. `args` holds exactly six signed 64-bit
   * values. errno is read right after the call and only when the result is -1.
   */
  syscall(nr: number, args: readonly bigint[]): SyscallResult;
  /**
   * The same call run on another OS thread of this process, so a blocking call does not freeze
   * the event loop. Never use it for ptrace requests (they must come from the tracing thread).
   */
  syscallAsync(nr: number, args: readonly bigint[]): Promise<SyscallResult>;
  /** Address of a Buffer's bytes (zero-copy). The caller keeps the Buffer alive while it is used. */
  address(buf: Buffer): bigint;
  /** libc getpagesize(). */
  pageSize(): number;
}
