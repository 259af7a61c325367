import * as fs from 'node:fs';
import * as path from 'node:path';

/** ELF facts core needs to load this arch's parasite (see @criu/core elfToBlob). */
export const EM_X86_64 = 62;
export const R_X86_64_RELATIVE = 8;

/**
 * Path of the parasite ELF that `parasite/build.sh` produces at build time. Searched upward
 * from this module so it is found from src/ (tests), dist/ and an installed package.
 */
export function parasiteElfPath(): string {
  return builtFile('parasite.elf');
}

/** Path of the restore helper program `parasite/build.sh` builds. */
export function restoreHelperPath(): string {
  return builtFile('restore-helper');
}

function builtFile(name: string): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'build', name);
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`x86_64 ${name} not built: run 'bash parasite/build.sh' in @criu/arch-x86_64 (searched from ${__dirname})`);
}
