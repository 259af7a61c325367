import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IOCTL_PPC64, IOCTL_X86_64 } from '../src';

// TFD_IOC_SET_TICKS is _IOW('T', 0, __u64): each arch's compiler evaluates it from its uapi headers.
function evaluate(cc: string): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfd-ioctl-'));
  const src = path.join(dir, 'v.c');
  fs.writeFileSync(src, '#include <linux/types.h>\n#include <asm/ioctl.h>\nunsigned v = _IOW(\'T\', 0, __u64);\n');
  try {
    const asm = execFileSync(cc, ['-S', '-o', '-', src], { encoding: 'utf8' });
    return Number(/\.(?:long|4byte)\s+(-?\d+)/.exec(asm)![1]) >>> 0;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('TFD_IOC_SET_TICKS per arch', () => {
  it('x86_64', () => expect(IOCTL_X86_64.TFD_IOC_SET_TICKS).toBe(evaluate('cc')));
  it('ppc64le', () => expect(IOCTL_PPC64.TFD_IOC_SET_TICKS).toBe(evaluate('powerpc64le-linux-gnu-gcc')));
});
