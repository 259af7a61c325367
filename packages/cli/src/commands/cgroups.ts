// `--manage-cgroups[=MODE]` and `--cgroup-root [CONTROLLER:]PATH` for dump and restore.
import { parseCgroupMode, parseCgroupRoot, type CgroupMode, type CgroupRoot } from '@criu/core';
import { CliUsageError } from '../errors.js';
import type { CommandContext } from './types.js';

/** The mode: CRIU's default is soft, bare --manage-cgroups too. */
export function cgroupMode(ctx: CommandContext): CgroupMode {
  const v = ctx.args.options['manage-cgroups'];
  if (v === undefined || v === false || v === '' || v === true) return 'soft';
  try {
    return parseCgroupMode(String(v));
  } catch (e) {
    throw new CliUsageError(`--manage-cgroups: ${(e as Error).message}`);
  }
}

export function cgroupRoots(ctx: CommandContext): CgroupRoot[] {
  const v = ctx.args.options['cgroup-root'];
  const list = v === undefined || v === false ? [] : Array.isArray(v) ? v.map(String) : [String(v)];
  return list.map((s) => {
    const r = parseCgroupRoot(s);
    if (!r.path.startsWith('/')) throw new CliUsageError(`--cgroup-root '${s}': the path must be absolute`);
    return r;
  });
}
