// `criu cpuinfo dump|check [-D DIR]`: write this machine's CPU features to cpuinfo.img, or check
// that this CPU can run tasks dumped on the CPU that cpuinfo.img describes (exit 1 naming what it
// lacks). And CRIU's --cpu-cap[=LIST], which dump and restore share. The features and the check
// come from the arch (Arch.cpuinfo, Arch.cpuinfoMissing); an arch that records none (x86_64 in
// criu-ts for now) says so.
import * as fs from 'fs';
import * as path from 'path';
import { hostArch, type Arch } from '@criu/core';
import { readImageFile, writeImageFile } from '@criu/images';
import { CliUsageError } from '../errors.js';
import { checkOptions, engineDirs, type OptionPolicy } from './engine.js';
import type { CommandContext } from './types.js';

export const CPUINFO_POLICY: OptionPolicy = {
  honoured: ['cpu-cap'],
  ignored: [],
};

/** CRIU's --cpu-cap words (criu/config.c parse_cpu_cap). */
const CPU_CAP_WORDS = ['all', 'none', 'fpu', 'cpu', 'ins', 'image'] as const;

/**
 * `--cpu-cap[=LIST]` as RestoreOptions.cpuCap: undefined when the option is absent (the engine's
 * default), the words otherwise. A bare `--cpu-cap` is CRIU's "all"; "all" includes "image" (the
 * cpuinfo.img check), which is spelled out for the engine. Unknown words are refused as CRIU does.
 */
export function parseCpuCap(ctx: CommandContext): string[] | undefined {
  const v = ctx.args.options['cpu-cap'];
  if (v === undefined || v === false) return undefined;
  const words = typeof v === 'string' && v !== '' ? v.split(',').map((w) => w.trim()) : ['all'];
  for (const w of words) {
    if (!(CPU_CAP_WORDS as readonly string[]).includes(w)) {
      throw new CliUsageError(`unknown cpu capability '${w}' in --cpu-cap (one of ${CPU_CAP_WORDS.join(', ')})`);
    }
  }
  // As CRIU parses the list left to right: "none" clears what came before it.
  const last = words.lastIndexOf('none');
  const effective = last >= 0 ? words.slice(last) : words;
  if (effective.includes('all') && !effective.includes('image')) effective.push('image');
  return effective;
}

function archWithCpuinfo(): Arch & Required<Pick<Arch, 'cpuinfo' | 'cpuinfoMissing'>> {
  let arch: Arch;
  try {
    arch = hostArch();
  } catch (err) {
    throw new CliUsageError(`cpuinfo: ${(err as Error).message}`);
  }
  if (!arch.cpuinfo || !arch.cpuinfoMissing) {
    throw new CliUsageError(`cpuinfo is not implemented for ${arch.name} in criu-ts (it records CPU features on ppc64 only)`);
  }
  return arch as Arch & Required<Pick<Arch, 'cpuinfo' | 'cpuinfoMissing'>>;
}

export async function runCpuinfo(ctx: CommandContext): Promise<number> {
  const action = ctx.args.positionals[0];
  if (action !== 'dump' && action !== 'check') {
    // CRIU: "cpuinfo requires an action: dump or check"
    throw new CliUsageError(action === undefined ? 'cpuinfo requires an action: dump or check' : `unknown cpuinfo action '${action}': dump or check`);
  }
  checkOptions('cpuinfo', ctx.args.options, CPUINFO_POLICY);
  parseCpuCap(ctx);
  const arch = archWithCpuinfo();
  const { imagesDir } = engineDirs(ctx);
  const file = path.join(imagesDir, 'cpuinfo.img');
  if (action === 'dump') {
    const entry = arch.cpuinfo();
    if (!entry) throw new CliUsageError(`cpuinfo: this ${arch.name} machine reports no CPU features`);
    if (!fs.existsSync(imagesDir)) throw new CliUsageError(`can't change directory to ${imagesDir}: No such file or directory`);
    await writeImageFile(file, 'CPUINFO', [{ message: entry }]);
    return 0;
  }
  if (!fs.existsSync(file)) throw new CliUsageError(`can't open ${file}: No such file or directory`);
  const img = await readImageFile(file);
  const entry = img.entries[0]?.message as Record<string, unknown> | undefined;
  if (!entry) throw new CliUsageError(`${file}: no cpuinfo record`);
  let missing: string[];
  try {
    missing = arch.cpuinfoMissing(entry);
  } catch (err) {
    ctx.io.writeStderr(`Error (criu-ts): ${(err as Error).message}\n`);
    return 1;
  }
  if (missing.length) {
    ctx.io.writeStderr(`Error (criu-ts): this CPU lacks features the image's CPU had: ${missing.join(', ')}\n`);
    return 1;
  }
  ctx.io.writeStdout('cpuinfo.img is compatible with this CPU\n');
  return 0;
}
