// Typed errors of @criu/sys. A failed syscall is a SysError; bad input from the caller is a
// SysArgError (raised before anything reaches the kernel); a backend that cannot be loaded or
// used is a SysBackendError.
import { errnoMessage, errnoName } from './errno.js';

/** A syscall failed: `ptrace(PTRACE_SEIZE, 1234): ESRCH (No such process)`. */
export class SysError extends Error {
  override readonly name = 'SysError';
  /** The syscall's name, e.g. 'ptrace' (or 'syscall_<nr>' when called by an unknown number). */
  readonly syscall: string;
  readonly errno: number;
  /** The errno name, e.g. 'ESRCH'. */
  readonly code: string;
  /** What was asked, as shown between the parentheses of the message. */
  readonly detail: string;

  constructor(syscall: string, errno: number, detail = '') {
    const code = errnoName(errno);
    super(`${syscall}(${detail}): ${code} (${errnoMessage(errno)})`);
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
    this.detail = detail;
  }

  /** True when `e` is a SysError, and (if given) its code is one of `codes`. */
  static is(e: unknown, ...codes: string[]): e is SysError {
    return e instanceof SysError && (codes.length === 0 || codes.includes(e.code));
  }
}

/** An argument the caller passed cannot be turned into a valid call. */
export class SysArgError extends Error {
  override readonly name = 'SysArgError';
  /** Which argument was wrong, e.g. 'args[2]' or 'backend'. */
  readonly argument: string;
  constructor(argument: string, message: string) {
    super(`${argument}: ${message}`);
    this.argument = argument;
  }
}

/** The FFI backend cannot be loaded or cannot do what was asked. */
export class SysBackendError extends Error {
  override readonly name = 'SysBackendError';
  readonly backend: string;
  constructor(backend: string, message: string, options?: { cause?: unknown }) {
    super(`${backend}: ${message}`, options);
    this.backend = backend;
  }
}
