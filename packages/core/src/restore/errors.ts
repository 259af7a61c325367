/** A restore failed; every task it created has been killed. Names the image object involved. */
export class RestoreError extends Error {
  constructor(
    readonly step: string,
    reason: string,
    readonly opts: { cause?: unknown; hint?: string; file?: string; record?: number; field?: string; pid?: number } = {},
  ) {
    const where = [opts.file && `file ${opts.file}`, opts.record !== undefined && `record ${opts.record}`, opts.field && `field ${opts.field}`].filter(Boolean).join(', ');
    super(`restore failed at step "${step}": ${reason}${where ? ` (${where})` : ''}${opts.hint ? ` (hint: ${opts.hint})` : ''}`, { cause: opts.cause });
    this.name = 'RestoreError';
  }
  get hint(): string | undefined { return this.opts.hint; }
  get file(): string | undefined { return this.opts.file; }
  get record(): number | undefined { return this.opts.record; }
  get field(): string | undefined { return this.opts.field; }
}
