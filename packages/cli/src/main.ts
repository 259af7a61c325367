// The `criu` command: parse, dispatch to the command table, turn every error into a one-line
// message on stderr and exit status 1 (CRIU's convention: 0 ok, 1 error).
import { CRIU_OPTIONS, type OptionSpec } from './args/options.js';
import { parseCommandLine, type ParsedCommandLine } from './args/parse.js';
import { CRIU_COMMANDS } from './commands/criu.js';
import { IMAGE_COMMANDS } from './commands/images.js';
import type { CommandSpec } from './commands/types.js';
import { CliUsageError, NotImplementedError } from './errors.js';
import { processIO, type CliIO } from './io.js';
import { versionText } from './version.js';

export const COMMANDS: readonly CommandSpec[] = [...CRIU_COMMANDS, ...IMAGE_COMMANDS];

export function findCommand(name: string | undefined): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

const ALL_TABLES: readonly (readonly OptionSpec[])[] = [CRIU_OPTIONS, ...COMMANDS.map((c) => c.options)];

/** Parses argv with CRIU's options plus those of the command it names. */
export function parseArgs(argv: readonly string[]): ParsedCommandLine {
  return parseCommandLine(argv, (name) => [CRIU_OPTIONS, findCommand(name)?.options ?? []], ALL_TABLES);
}

function shortUsage(): string {
  const lines = ['', 'Usage:'];
  for (const c of COMMANDS) lines.push(`  criu ${c.name} ${c.usage}`);
  lines.push('', 'Commands:');
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(14)} ${c.summary}`);
  return `${lines.join('\n')}\n`;
}

function optionLine(o: OptionSpec): string {
  const names = `${o.short ? `-${o.short}|` : '   '}--${o.long}`;
  const value = o.valueName ? (o.arity === 'optional' ? ` [${o.valueName}]` : ` ${o.valueName}`) : '';
  return `  ${(names + value).padEnd(32)} ${o.help}`;
}

export function helpText(): string {
  const lines = [shortUsage().trimEnd(), ''];
  lines.push('Most true / false long options can be prefixed with --no- to negate them.', '');
  lines.push('Options:');
  for (const o of CRIU_OPTIONS) lines.push(optionLine(o));
  for (const c of IMAGE_COMMANDS) {
    if (c.options.length === 0) continue;
    lines.push('', `Options of '${c.name}':`);
    for (const o of c.options) lines.push(optionLine(o));
  }
  return `${lines.join('\n')}\n`;
}

/** The one line printed for a failure (ImageFormatError's message names file, record, offset). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Runs the CLI; resolves to the exit status. Never throws. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  try {
    let args: ParsedCommandLine;
    try {
      args = parseArgs(argv);
    } catch (err) {
      if (err instanceof CliUsageError) {
        io.writeStderr(`criu: ${err.message}\n${shortUsage()}\nTry -h|--help for more info\n`);
        return 1;
      }
      throw err;
    }
    if (args.options.help === true) {
      io.writeStdout(helpText());
      return 0;
    }
    if (args.options.version === true) {
      io.writeStdout(versionText());
      return 0;
    }
    if (args.command === undefined) {
      io.writeStderr(`${shortUsage()}\nTry -h|--help for more info\n`);
      return 1;
    }
    const command = findCommand(args.command);
    if (!command) {
      io.writeStderr(`Error: unknown command: ${args.command}\n`);
      return 1;
    }
    if (!command.run) throw new NotImplementedError(command.name);
    const p = command.positionals;
    if (p && (args.positionals.length < p.min || args.positionals.length > p.max)) {
      io.writeStderr(`criu: usage: criu ${command.name} ${command.usage}\n`);
      return 1;
    }
    return await command.run({ io, args });
  } catch (err) {
    io.writeStderr(`Error: ${errorMessage(err)}\n`);
    if (process.env.CRIU_TS_DEBUG && err instanceof Error && err.stack) io.writeStderr(`${err.stack}\n`);
    return 1;
  }
}

/** Entry point of bin/criu.cjs: runs main() on process.argv and sets the exit status. */
export function runCli(): void {
  // `criu show x | head` closes stdout early: that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (err: unknown) => {
      process.stderr.write(`Error: ${errorMessage(err)}\n`);
      process.exitCode = 1;
    },
  );
}
