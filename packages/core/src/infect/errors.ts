/** A step of infecting or curing a task failed; names the task and the step. */
export class InfectError extends Error {
  constructor(readonly pid: number, readonly step: string, reason: string, options?: { cause?: unknown }) {
    super(`task ${pid}: ${step}: ${reason}`, options);
    this.name = 'InfectError';
  }
}

/** An injected syscall returned an error (-errno). */
export class RemoteSyscallError extends InfectError {
  constructor(pid: number, readonly syscall: string, readonly errno: number) {
    super(pid, `remote ${syscall}`, `failed with errno ${errno}`);
    this.name = 'RemoteSyscallError';
  }
}
