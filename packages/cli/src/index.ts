// @criu/cli: the `criu` command. The executable is bin/criu.cjs; main() runs it in-process.
export { main, runCli, parseArgs, helpText, errorMessage, findCommand, COMMANDS } from './main.js';
export { parseCommandLine, type ParsedCommandLine, type OptionValue } from './args/parse.js';
export { CRIU_OPTIONS, type OptionSpec, type OptionArity, type OptionKind } from './args/options.js';
export type { CommandSpec, CommandContext } from './commands/types.js';
export { CliUsageError, NotImplementedError, CliFileError, CliJsonError } from './errors.js';
export { processIO, type CliIO } from './io.js';
export { versionText, CRIU_COMPAT_VERSION, CRIU_TS_VERSION } from './version.js';
