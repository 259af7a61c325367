import type { OptionSpec } from '../args/options.js';
import type { ParsedCommandLine } from '../args/parse.js';
import type { CliIO } from '../io.js';

export interface CommandContext {
  io: CliIO;
  args: ParsedCommandLine;
}

/** One row of the command table. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** arguments after the command word, for the usage text */
  usage: string;
  /** options only this command has (they override CRIU's global ones, e.g. -o) */
  options: readonly OptionSpec[];
  /** how many words may follow the command word; unchecked when absent */
  positionals?: { min: number; max: number };
  /** undefined: a CRIU command we do not have yet */
  run?: (ctx: CommandContext) => Promise<number>;
}
