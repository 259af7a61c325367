/** A step of infecting or curing a task failed; names the task and the step, and a hint when the cause is known. */
export class InfectError extends Error {
  readonly hint: string | undefined;
  constructor(readonly pid: number, readonly step: string, reason: string, options?: { cause?: unknown; hint?: string }) {
    super(`task ${pid}: ${step}: ${reason}${options?.hint ? ` (hint: ${options.hint})` : ''}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'InfectError';
    this.hint = options?.hint;
  }
}

/** An injected syscall returned an error (-errno). */
export class RemoteSyscallError extends InfectError {
  constructor(pid: number, readonly syscall: string, readonly errno: number) {
    super(pid, `remote ${syscall}`, `failed with errno ${errno}`);
    this.name = 'RemoteSyscallError';
  }
}
