// A small getopt_long-style parser driven by OptionSpec tables, with CRIU's conventions:
// options may come before or after the command word, `--opt=value` or `--opt value`,
// `-tPID` or `-t PID`, clustered short flags (`-Rj`), `-v`/`-vv`/`-v4`, `--no-<flag>`, and
// `--` ending the options (what follows is kept for --exec-cmd).
import { CliUsageError } from '../errors.js';
import type { OptionSpec } from './options.js';

export type OptionValue = boolean | number | string | string[];

export interface ParsedCommandLine {
  /** the first word that is not an option (e.g. 'dump'), or undefined */
  command?: string;
  /** the remaining non-option words, in order */
  positionals: string[];
  /** values by OptionSpec.key; only options that were given */
  options: Record<string, OptionValue>;
  /** words after `--` */
  rest: string[];
}

/** Index of the options by short and long name; later tables override earlier ones. */
class OptionIndex {
  private readonly byShort = new Map<string, OptionSpec>();
  private readonly byLong = new Map<string, OptionSpec>();
  constructor(tables: readonly (readonly OptionSpec[])[]) {
    for (const table of tables) {
      for (const spec of table) {
        if (spec.short) this.byShort.set(spec.short, spec);
        this.byLong.set(spec.long, spec);
        for (const a of spec.aliases ?? []) this.byLong.set(a, spec);
      }
    }
  }
  short(c: string): OptionSpec | undefined {
    return this.byShort.get(c);
  }
  /** Returns the spec and whether the name was the `--no-` negation of a flag. */
  long(name: string): { spec: OptionSpec; negated: boolean } | undefined {
    const spec = this.byLong.get(name);
    if (spec) return { spec, negated: false };
    if (name.startsWith('no-')) {
      const base = this.byLong.get(name.slice(3));
      if (base && base.arity === 'none' && base.negatable) return { spec: base, negated: true };
    }
    return undefined;
  }
}

/** Where an option token's value comes from. */
interface Occurrence {
  spec: OptionSpec;
  negated: boolean;
  value?: string;
  /** how the user wrote the option, for messages */
  written: string;
}

/**
 * Splits argv into option occurrences and words. `takesNext(spec)` tells whether a required
 * option consumes the next word when its value is not attached.
 */
function tokenize(argv: readonly string[], index: OptionIndex): { occurrences: Occurrence[]; words: string[]; rest: string[] } {
  const occurrences: Occurrence[] = [];
  const words: string[] = [];
  let rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      rest = argv.slice(i + 1);
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const found = index.long(name);
      if (!found) throw new CliUsageError(`unrecognized option '--${name}'`);
      const { spec, negated } = found;
      const written = `--${name}`;
      if (eq >= 0) {
        if (spec.arity === 'none') throw new CliUsageError(`option '${written}' doesn't allow an argument`);
        occurrences.push({ spec, negated, value: arg.slice(eq + 1), written });
      } else if (spec.arity === 'required') {
        if (i + 1 >= argv.length) throw new CliUsageError(`option '${written}' requires an argument`);
        occurrences.push({ spec, negated, value: argv[++i], written });
      } else {
        occurrences.push({ spec, negated, written });
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      // A cluster of short options; the first one that takes a value ends it.
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j];
        const spec = index.short(c);
        if (!spec) throw new CliUsageError(`invalid option -- '${c}'`);
        const written = `-${c}`;
        const attached = arg.slice(j + 1);
        if (spec.arity === 'none') {
          occurrences.push({ spec, negated: false, written });
          continue;
        }
        if (spec.kind === 'verbosity' && /^v+$/.test(attached)) {
          // -vvv: one increment per v
          for (let k = 0; k <= attached.length; k++) occurrences.push({ spec, negated: false, written });
          break;
        }
        if (attached.length > 0) {
          occurrences.push({ spec, negated: false, value: attached, written });
        } else if (spec.arity === 'required') {
          if (i + 1 >= argv.length) throw new CliUsageError(`option requires an argument -- '${c}'`);
          occurrences.push({ spec, negated: false, value: argv[++i], written });
        } else {
          occurrences.push({ spec, negated: false, written });
        }
        break;
      }
      continue;
    }
    words.push(arg);
  }
  return { occurrences, words, rest };
}

function store(options: Record<string, OptionValue>, occ: Occurrence): void {
  const { spec, value, written } = occ;
  switch (spec.kind) {
    case 'flag':
      options[spec.key] = !occ.negated;
      return;
    case 'string':
      // An optional-value option given bare ('--manage-cgroups') records an empty string.
      options[spec.key] = value ?? '';
      return;
    case 'int': {
      const n = parseIntStrict(value ?? '');
      if (n === undefined) throw new CliUsageError(`option '${written}' expects a number, got '${value}'`);
      options[spec.key] = n;
      return;
    }
    case 'list': {
      const prev = options[spec.key];
      options[spec.key] = [...(Array.isArray(prev) ? prev : []), value ?? ''];
      return;
    }
    case 'verbosity': {
      if (value === undefined) {
        const prev = options[spec.key];
        // CRIU's default level is 2; each bare -v adds one.
        options[spec.key] = (typeof prev === 'number' ? prev : 2) + 1;
        return;
      }
      const n = parseIntStrict(value);
      if (n === undefined || n < 0) throw new CliUsageError(`option '${written}' expects a level (0-4), got '${value}'`);
      options[spec.key] = n;
      return;
    }
  }
}

function parseIntStrict(s: string): number | undefined {
  if (!/^-?(0x[0-9a-f]+|\d+)$/i.test(s.trim())) return undefined;
  const n = Number(s.trim());
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Parses a command line. `optionsFor(command)` gives the option tables that apply once the
 * command word is known (global options first, command-specific ones last so they win).
 * The command word is found first with every table merged, which only matters for deciding
 * which options consume the next word; all tables agree on that for shared letters.
 */
export function parseCommandLine(
  argv: readonly string[],
  optionsFor: (command: string | undefined) => readonly (readonly OptionSpec[])[],
  allTables: readonly (readonly OptionSpec[])[],
): ParsedCommandLine {
  const firstPass = tokenize(argv, new OptionIndex(allTables));
  const command = firstPass.words[0];
  const { occurrences, words, rest } = tokenize(argv, new OptionIndex(optionsFor(command)));
  const options: Record<string, OptionValue> = {};
  for (const occ of occurrences) store(options, occ);
  return { command: words[0], positionals: words.slice(1), options, rest };
}
