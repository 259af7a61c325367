// `criu check [--feature FEAT]`: criu-ts checks only what it uses. mem_dirty_track tells which
// mechanism iterative dumps would use here (soft-dirty or uffd-wp), or why there is none.
import { detectMemTrack } from '@criu/core';
import { CliUsageError } from '../errors.js';
import type { CommandContext } from './types.js';

const FEATURES: Record<string, (ctx: CommandContext) => number> = {
  mem_dirty_track(ctx) {
    const s = detectMemTrack();
    if (s.method) {
      ctx.io.writeStdout(`mem_dirty_track is supported (${s.method === 'soft-dirty' ? 'soft-dirty bits' : 'userfaultfd async write-protect + PAGEMAP_SCAN'})\n`);
      return 0;
    }
    const why = s.forced ? `${s.forced} (the only method CRIU_TS_MEM_TRACK allows): ${s.forced === 'soft-dirty' ? s.softDirty : s.uffdWp}` : `soft-dirty: ${s.softDirty}; uffd-wp: ${s.uffdWp}`;
    ctx.io.writeStderr(`Error (criu-ts): memory changes cannot be tracked on this kernel: ${why}\n`);
    return 1;
  },
};

export async function runCheck(ctx: CommandContext): Promise<number> {
  const v = ctx.args.options.feature;
  const feats = (Array.isArray(v) ? v : v === undefined ? [] : [v]).flatMap((f) => String(f).split(','));
  if (!feats.length) throw new CliUsageError(`criu-ts check supports --feature only (${Object.keys(FEATURES).join(', ')})`);
  let rc = 0;
  for (const f of feats) {
    const check = FEATURES[f];
    if (!check) throw new CliUsageError(`unknown or unsupported feature ${f} (criu-ts checks: ${Object.keys(FEATURES).join(', ')})`);
    rc = check(ctx) || rc;
  }
  if (rc === 0) ctx.io.writeStdout('Looks good.\n');
  return rc;
}
