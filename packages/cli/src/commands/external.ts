// --external RES / --ext-mount-map KEY:VAL / --inherit-fd fd[N]:KEY (CRIU's spellings) into the
// engine's ExternalResources and InheritFd list.
import { parseExternal, type ExternalResources, type InheritFd } from '@criu/core';
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

/** `--inherit-fd fd[N]:KEY`: descriptor N of this process stands for the external object KEY. */
export function inheritFdsOf(ctx: CommandContext): InheritFd[] {
  return listOf(ctx.args.options['inherit-fd']).map((item) => {
    const m = /^fd\[(\d+)\]:(.+)$/.exec(item);
    if (!m) throw new CliUsageError(`--inherit-fd '${item}' is malformed (want fd[N]:KEY)`);
    return { fd: Number(m[1]), key: m[2] };
  });
}
