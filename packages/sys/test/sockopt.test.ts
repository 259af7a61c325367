import * as fs from 'node:fs';
import { SOCKOPT_PPC64, SOCKOPT_X86_64 } from '../src';

// The per-arch SOL_SOCKET numbers must match the kernel's uapi headers for each arch.
function defines(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/#define\s+(SO_\w+)\s+(\d+)/g)) out[m[1]] ??= Number(m[2]);
  return out;
}

describe('SOL_SOCKET option numbers per arch', () => {
  it.each([
    ['x86_64', SOCKOPT_X86_64, '/usr/include/asm-generic/socket.h', {}],
    ['ppc64', SOCKOPT_PPC64, '/usr/powerpc64le-linux-gnu/include/asm/socket.h', defines('/usr/include/asm-generic/socket.h')],
  ] as const)('%s', (_arch, table, header, base) => {
    const d = { ...base, ...defines(header) };
    // The 64-bit timeouts are the _OLD numbers (struct timeval of 64-bit longs).
    const want: Record<string, number> = { SO_RCVTIMEO: d.SO_RCVTIMEO_OLD, SO_SNDTIMEO: d.SO_SNDTIMEO_OLD };
    for (const k of Object.keys(table)) want[k] ??= d[k];
    expect(Object.values(want).every((v) => typeof v === 'number')).toBe(true);
    expect(table).toEqual(want);
  });
});

describe('ioctl numbers per arch', () => {
  // powerpc's _IOC: direction in bits 29-31 (read = 2), size in bits 16-28.
  const iorPpc = (type: string, nr: number, size: number) => ((2 << 29) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
  it('x86_64 (asm-generic) and ppc64 (asm/ioctls.h) FIONREAD and SIOCOUTQ', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { IOCTL_X86_64, IOCTL_PPC64 } = require('../src');
    const generic = fs.readFileSync('/usr/include/asm-generic/ioctls.h', 'utf8');
    expect(IOCTL_X86_64.FIONREAD).toBe(Number(/#define FIONREAD\s+(0x[0-9A-Fa-f]+)/.exec(generic)![1]));
    expect(IOCTL_X86_64.SIOCOUTQ).toBe(Number(/#define TIOCOUTQ\s+(0x[0-9A-Fa-f]+)/.exec(generic)![1]));
    const ppc = fs.readFileSync('/usr/powerpc64le-linux-gnu/include/asm/ioctls.h', 'utf8');
    expect(ppc).toMatch(/#define FIONREAD\s+_IOR\('f', 127, int\)/);
    expect(ppc).toMatch(/#define TIOCOUTQ\s+_IOR\('t', 115, int\)/);
    expect(IOCTL_PPC64.FIONREAD).toBe(iorPpc('f', 127, 4));
    expect(IOCTL_PPC64.SIOCOUTQ).toBe(iorPpc('t', 115, 4));
  });
});
