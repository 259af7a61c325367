// --external RES / --ext-mount-map KEY:VAL (CRIU's spellings) into the engine's ExternalResources.
import { parseExternal, type ExternalResources } from '@criu/core';
import { CliUsageError } from '../errors.js';
import type { CommandContext } from './types.js';

const listOf = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined || v === false ? [] : [String(v)]);

/** Undefined when neither option is given. */
export function externalOf(ctx: CommandContext): ExternalResources | undefined {
  const ext = listOf(ctx.args.options.external);
  const maps = listOf(ctx.args.options['ext-mount-map']).map((kv) => {
    const i = kv.indexOf(':');
    if (i <= 0) throw new CliUsageError(`invalid --ext-mount-map '${kv}' (want KEY:VALUE)`);
    return { key: kv.slice(0, i), val: kv.slice(i + 1) };
  });
  if (!ext.length && !maps.length) return undefined;
  try {
    return parseExternal(ext, maps);
  } catch (e) {
    throw new CliUsageError((e as Error).message);
  }
}
