/**
 * CRIU-style log: each line "(SS.uuuuuu) message", seconds since the log was opened, filtered
 * by verbosity (0 silent .. 4 debug; errors at 1, warnings 2, info 3). Writes synchronously
 * so a crash leaves the log complete up to that point.
 */
import * as fs from 'node:fs';

export type LogLevel = 0 | 1 | 2 | 3 | 4;

export class Logger {
  private readonly start = process.hrtime.bigint();
  private fd: number | undefined;

  constructor(readonly level: LogLevel = 2, file?: string, private readonly echo?: (line: string) => void) {
    if (file) this.fd = fs.openSync(file, 'a', 0o600);
  }

  error(msg: string): void { this.write(1, `Error: ${msg}`); }
  warn(msg: string): void { this.write(2, `Warn: ${msg}`); }
  info(msg: string): void { this.write(3, msg); }
  debug(msg: string): void { this.write(4, msg); }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private write(level: number, msg: string): void {
    if (level > this.level) return;
    const us = (process.hrtime.bigint() - this.start) / 1000n;
    const sec = (us / 1_000_000n).toString().padStart(2, '0');
    const frac = (us % 1_000_000n).toString().padStart(6, '0');
    const line = `(${sec}.${frac}) ${msg}\n`;
    if (this.fd !== undefined) fs.writeSync(this.fd, line);
    this.echo?.(line);
  }
}

/** A logger that drops everything (library default). */
export const silentLogger = new Logger(0);
