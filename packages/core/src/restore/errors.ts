/** A restore failed; every task it created has been killed. Names the task and image object involved. */
export class RestoreError extends Error {
  constructor(
    readonly step: string,
    readonly reason: string,
    readonly opts: { cause?: unknown; hint?: string; file?: string; record?: number; field?: string; pid?: number } = {},
  ) {
    const where = [opts.file && `file ${opts.file}`, opts.record !== undefined && `record ${opts.record}`, opts.field && `field ${opts.field}`].filter(Boolean).join(', ');
    const what = opts.pid !== undefined ? `restore of task ${opts.pid}` : 'restore';
    super(`${what} failed at step "${step}": ${reason}${where ? ` (${where})` : ''}${opts.hint ? ` (hint: ${opts.hint})` : ''}`, { cause: opts.cause });
    this.name = 'RestoreError';
  }
  get hint(): string | undefined { return this.opts.hint; }
  get file(): string | undefined { return this.opts.file; }
  get record(): number | undefined { return this.opts.record; }
  get field(): string | undefined { return this.opts.field; }
  /** The task being restored (its pid in the images), when the failure concerns one. */
  get pid(): number | undefined { return this.opts.pid; }

  /** The same error, naming the task it happened in (unless it already names one). */
  inTask(pid: number | undefined): RestoreError {
    if (pid === undefined || this.opts.pid !== undefined) return this;
    const e = new RestoreError(this.step, this.reason, { ...this.opts, pid });
    e.stack = this.stack;
    return e;
  }
}
