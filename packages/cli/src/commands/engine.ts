// What `criu dump` and `criu restore` share: CRIU's directories (images dir, work dir), its log
// (file or stderr, verbosity), which CRIU options we honour, and how an engine failure is told
// to the user (one line, a hint, no stack trace unless CRIU_TS_DEBUG=1).
import * as fs from 'fs';
import * as path from 'path';
import { Logger, type LogLevel } from '@criu/core';
import type { OptionValue } from '../args/parse.js';
import { CliUsageError } from '../errors.js';
import type { CliIO } from '../io.js';
import { CRIU_COMPAT_VERSION, CRIU_TS_VERSION } from '../version.js';
import type { CommandContext } from './types.js';

/** CRIU's default verbosity (LOG_WARN): errors and warnings. */
export const DEFAULT_LOG_LEVEL: LogLevel = 2;

export function optString(ctx: CommandContext, key: string): string | undefined {
  const v = ctx.args.options[key];
  return typeof v === 'string' ? v : undefined;
}

export function optFlag(ctx: CommandContext, key: string): boolean {
  return ctx.args.options[key] === true;
}

/** -v / -vv / -vN / --verbosity=N as CRIU counts them (default 2), clamped to our 0..4. */
export function logLevelOf(ctx: CommandContext): LogLevel {
  const v = ctx.args.options.verbosity;
  const n = typeof v === 'number' ? v : DEFAULT_LOG_LEVEL;
  return Math.max(0, Math.min(4, n)) as LogLevel;
}

/**
 * The options a command honours, and those it accepts but has nothing to do for in criu-ts
 * (they only allow resources our engine refuses anyway, or tune things it does not have).
 * Any other CRIU option changes what CRIU would do, so it is refused rather than ignored.
 */
export interface OptionPolicy {
  honoured: readonly string[];
  ignored: readonly string[];
  /** Refused with a reason (what to do instead). */
  refused?: Readonly<Record<string, string>>;
}

const ALWAYS_HONOURED = ['images-dir', 'work-dir', 'log-file', 'verbosity', 'no-default-config', 'help', 'version'];

/** Checks the given options against the policy; returns warnings for the ignored ones. */
export function checkOptions(command: string, options: Record<string, OptionValue>, policy: OptionPolicy): string[] {
  const warnings: string[] = [];
  for (const key of Object.keys(options)) {
    if (ALWAYS_HONOURED.includes(key) || policy.honoured.includes(key)) continue;
    // `--no-<flag>` of an option we do not have is the default anyway.
    if (options[key] === false) continue;
    if (policy.ignored.includes(key)) {
      warnings.push(`option --${key} has no effect in criu-ts ${command}; ignored`);
      continue;
    }
    const why = policy.refused?.[key];
    throw new CliUsageError(`option --${key} is not supported by criu-ts ${command} yet${why ? `: ${why}` : ''}`);
  }
  return warnings;
}

export interface EngineDirs {
  /** absolute images directory (-D, default: the current directory) */
  imagesDir: string;
  /** absolute work directory (-W, default: the images directory), where logs and pidfiles go */
  workDir: string;
}

/** CRIU's directories: -D (default "."), -W (default: -D). Relative names are from the cwd. */
export function engineDirs(ctx: CommandContext): EngineDirs {
  const imagesDir = path.resolve(optString(ctx, 'images-dir') ?? '.');
  const w = optString(ctx, 'work-dir');
  return { imagesDir, workDir: w === undefined ? imagesDir : path.resolve(w) };
}

/** A file name given on the command line, as CRIU opens it after changing to the work dir. */
export function inWorkDir(dirs: EngineDirs, file: string): string {
  return path.resolve(dirs.workDir, file);
}

/** Which stream (if any) echoes the log, and the log file (if any). */
export interface EngineLog {
  logger: Logger;
  level: LogLevel;
  /** absolute path of the log file, when -o names one */
  file?: string;
  /** true when log lines already reach the terminal (no -o, or -o -) */
  onTerminal: boolean;
  /** writes error lines held back from the terminal echo, except `skip` (printed as the summary) */
  flushHeldErrors(skip?: string): void;
  close(): void;
}

/**
 * Opens CRIU's log: `-o FILE` (relative to the work dir, truncated as CRIU does, mode 0600),
 * `-o -` (stdout), or stderr when there is no -o. On the terminal, error lines are held back
 * so that the final error is printed once, as the summary line.
 */
export function openLog(ctx: CommandContext, dirs: EngineDirs): EngineLog {
  const level = logLevelOf(ctx);
  const o = optString(ctx, 'log-file');
  const io: CliIO = ctx.io;
  const held: string[] = [];
  let logger: Logger;
  let file: string | undefined;
  if (o !== undefined && o !== '-') {
    file = inWorkDir(dirs, o);
    try {
      fs.writeFileSync(file, '', { mode: 0o600 });
      logger = new Logger(level, file);
    } catch (err) {
      throw new CliUsageError(`can't open the log file ${file}: ${(err as Error).message}`);
    }
  } else {
    const write = o === '-' ? (s: string) => io.writeStdout(s) : (s: string) => io.writeStderr(s);
    logger = new Logger(level, undefined, (line) => {
      if (/^\(\d+\.\d+\) Error: /.test(line)) held.push(line);
      else write(line);
    });
  }
  logger.info(`Version: ${CRIU_COMPAT_VERSION} (criu-ts ${CRIU_TS_VERSION})`);
  return {
    logger,
    level,
    file,
    onTerminal: file === undefined,
    flushHeldErrors(skip?: string) {
      for (const line of held.splice(0)) if (skip === undefined || !line.includes(skip)) io.writeStderr(line);
    },
    close: () => logger.close(),
  };
}

/** An engine error as the user sees it: `Error (criu-ts): ...`, then `Hint: ...` when known. */
export function reportEngineError(io: CliIO, err: unknown, log?: EngineLog): number {
  const e = err as { message?: string; hint?: unknown; stack?: string };
  const hint = typeof e?.hint === 'string' && e.hint ? e.hint : undefined;
  let message = err instanceof Error ? err.message : String(err);
  log?.flushHeldErrors(message);
  // The engine's message carries the hint in parentheses; the CLI gives it a line of its own.
  if (hint) message = message.replace(` (hint: ${hint})`, '');
  io.writeStderr(`Error (criu-ts): ${message}\n`);
  if (hint) io.writeStderr(`Hint: ${hint}\n`);
  if (log?.file) io.writeStderr(`See ${log.file} for details\n`);
  if (process.env.CRIU_TS_DEBUG === '1' && err instanceof Error && err.stack) io.writeStderr(`${err.stack}\n`);
  return 1;
}

/** Step progress at -v3 and up, when the log is not already printing it on the terminal. */
export function progressPrinter(io: CliIO, log: EngineLog, what: string): ((p: { step: string; index: number; total: number }) => void) | undefined {
  if (log.level < 3 || log.onTerminal) return undefined;
  return (p) => io.writeStderr(`criu: ${what} step ${p.index + 1}/${p.total}: ${p.step}\n`);
}

/** CRIU's --status-fd: one zero byte once the daemon is ready, then the descriptor is closed. */
export function statusReady(ctx: CommandContext): void {
  const fd = ctx.args.options['status-fd'];
  if (typeof fd !== 'number') return;
  try {
    fs.writeSync(fd, Buffer.from([0]));
    fs.closeSync(fd);
  } catch (e) {
    throw new CliUsageError(`can't write to --status-fd ${fd}: ${(e as Error).message}`);
  }
}

