/** A dump failed at `step`; the task was put back as it was (see `taskResumed`). */
export class DumpError extends Error {
  constructor(
    readonly step: string,
    readonly pid: number,
    reason: string,
    readonly opts: { cause?: unknown; hint?: string; file?: string; taskResumed?: boolean } = {},
  ) {
    super(`dump of task ${pid} failed at step "${step}": ${reason}${opts.hint ? ` (hint: ${opts.hint})` : ''}`, { cause: opts.cause });
    this.name = 'DumpError';
  }
  get hint(): string | undefined { return this.opts.hint; }
  get file(): string | undefined { return this.opts.file; }
  get taskResumed(): boolean | undefined { return this.opts.taskResumed; }
}

/** Thrown by the fault-injection hook at a chosen step (tests of the failure paths). */
export class InjectedFault extends Error {
  constructor(readonly step: string) {
    super(`injected fault at step "${step}"`);
    this.name = 'InjectedFault';
  }
}
