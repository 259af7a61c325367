import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

/** ELF facts core needs to load this arch's parasite (see @criu/core elfToBlob). */
export const EM_PPC64 = 21;
export const R_PPC64_RELATIVE = 22;

const PACKAGE = '@criu/arch-ppc64';

/**
 * Path of the parasite ELF that `parasite/build.sh` produces at build time. Searched upward
 * from this module (src/ in tests, dist/, an installed package); when this module has been
 * bundled into another package's dist, the package is found through module resolution.
 */
export function parasiteElfPath(): string {
  return builtFile('parasite.elf', 'parasite');
}

/** Path of the restore helper program (restore-helper.c with restore-helper-start.S) `parasite/build.sh` builds. */
export function restoreHelperPath(): string {
  return builtFile('restore-helper', 'restore helper');
}

function builtFile(name: string, what: string): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'build', name);
    if (fs.existsSync(candidate) && isThisPackage(dir)) return candidate;
    dir = path.dirname(dir);
  }
  try {
    const pkg = createRequire(__filename).resolve(`${PACKAGE}/package.json`);
    const candidate = path.join(path.dirname(pkg), 'build', name);
    if (fs.existsSync(candidate)) return candidate;
  } catch { /* not resolvable from here */ }
  throw new Error(`ppc64 ${what} not built: run 'bash parasite/build.sh' in ${PACKAGE} (searched from ${__dirname})`);
}

function isThisPackage(dir: string): boolean {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === PACKAGE;
  } catch {
    return false;
  }
}
