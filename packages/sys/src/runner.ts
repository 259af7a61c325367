// What the feature modules (ptrace, wait, memory, fds) need from a Sys: make a named syscall
// with arguments, and get Buffer addresses.

/**
 * A syscall argument: an integer (number or bigint; unsigned 64-bit values above 2^63 are
 * passed as their two's-complement bit pattern), a Buffer or Uint8Array (its address is
 * passed, zero-copy), or null/undefined (0).
 */
export type SysArg = number | bigint | Uint8Array | null | undefined;

export interface SyscallRunner {
  /**
   * Calls `name` on the calling thread; throws SysError on failure. `detail` builds the text
   * shown inside the error message's parentheses (only computed on failure).
   */
  call(name: string, args: readonly SysArg[], detail?: () => string): bigint;
  /** Same, run on another OS thread; never for ptrace. */
  callAsync(name: string, args: readonly SysArg[], detail?: () => string): Promise<bigint>;
  /** Address of a Buffer's bytes. */
  address(buf: Uint8Array): bigint;
}
