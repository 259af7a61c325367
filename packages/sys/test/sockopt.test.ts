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
    expect(table).toEqual({
      SO_RCVLOWAT: d.SO_RCVLOWAT, SO_SNDLOWAT: d.SO_SNDLOWAT, SO_RCVTIMEO: d.SO_RCVTIMEO_OLD,
      SO_SNDTIMEO: d.SO_SNDTIMEO_OLD, SO_PASSCRED: d.SO_PASSCRED, SO_PEERCRED: d.SO_PEERCRED,
    });
  });
});
