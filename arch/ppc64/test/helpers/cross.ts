/** The ppc64le cross toolchain (Debian gcc-powerpc64le-linux-gnu) for host-side checks. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const CROSS = 'powerpc64le-linux-gnu-';
export const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-ppc64-'));

/** Compiles C source with the cross compiler (-c only: nothing runs on the host); throws with gcc's output. */
export function crossCompile(name: string, source: string): void {
  const src = path.join(workDir, `${name}.c`);
  fs.writeFileSync(src, source);
  execFileSync(`${CROSS}gcc`, ['-c', '-Wall', '-Werror', '-o', path.join(workDir, `${name}.o`), src], { stdio: 'pipe' });
}

/** Assembles `asm` and returns the bytes of its .text. */
export function assemble(name: string, asm: string): Buffer {
  const src = path.join(workDir, `${name}.S`);
  const obj = path.join(workDir, `${name}.o`);
  const bin = path.join(workDir, `${name}.bin`);
  fs.writeFileSync(src, `\t.text\n${asm}\n`);
  execFileSync(`${CROSS}gcc`, ['-c', '-mlittle-endian', '-o', obj, src], { stdio: 'pipe' });
  execFileSync(`${CROSS}objcopy`, ['-O', 'binary', '-j', '.text', obj, bin], { stdio: 'pipe' });
  return fs.readFileSync(bin);
}
