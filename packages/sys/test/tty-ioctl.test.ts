import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TTY_PPC64, TTY_X86_64, type TtyIoctls } from '../src';

// The per-arch terminal ioctl numbers and kernel struct termios layout must be what each arch's
// uapi headers say: the compilers evaluate them (cross compiler for ppc64le).
const NAMES = ['TCGETS', 'TCSETS', 'TIOCGWINSZ', 'TIOCSWINSZ', 'TIOCGLCKTRMIOS', 'TIOCSLCKTRMIOS', 'TIOCSCTTY', 'TIOCSPGRP',
  'TIOCGPGRP', 'TIOCGSID', 'TIOCPKT', 'TIOCGPKT', 'TIOCSPTLCK', 'TIOCGPTLCK', 'TIOCGPTN', 'TIOCEXCL', 'TIOCGEXCL', 'TIOCGPTPEER',
  'TIOCINQ', 'TIOCOUTQ'] as const;

function evaluate(cc: string, extra: string[]): number[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tty-ioctl-'));
  const src = path.join(dir, 'v.c');
  fs.writeFileSync(src, [
    '#include <stddef.h>', '#include <sys/ioctl.h>', '#include <asm/termbits.h>',
    `unsigned v[] = { ${[...NAMES, 'sizeof(struct termios)', 'offsetof(struct termios, c_line)', 'offsetof(struct termios, c_cc)', ...extra].join(', ')} };`,
  ].join('\n'));
  try {
    const asm = execFileSync(cc, ['-S', '-o', '-', src], { encoding: 'utf8' });
    return [...asm.matchAll(/\.(?:long|4byte)\s+(-?\d+)/g)].map((m) => Number(m[1]) >>> 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function expectTable(table: TtyIoctls, values: number[]): void {
  const got: Record<string, number> = {};
  NAMES.forEach((n) => (got[n] = table[n]));
  const want: Record<string, number> = {};
  NAMES.forEach((n, i) => (want[n] = values[i]));
  expect(got).toEqual(want);
  const [size, line, cc, ispeed, ospeed] = values.slice(NAMES.length);
  expect(table.termios).toEqual({ size, line, cc, ...(ispeed !== undefined ? { ispeed, ospeed } : {}) });
}

describe('terminal ioctls per arch', () => {
  it('x86_64', () => {
    expect(os.arch()).toBe('x64'); // the host compiler is x86_64's
    expectTable(TTY_X86_64, evaluate('cc', []));
  });
  it('ppc64le (cross compiler)', () => {
    expectTable(TTY_PPC64, evaluate('powerpc64le-linux-gnu-gcc', ['offsetof(struct termios, c_ispeed)', 'offsetof(struct termios, c_ospeed)']));
  });
});
