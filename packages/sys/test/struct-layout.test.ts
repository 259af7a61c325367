import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { STRUCTS_PPC64, STRUCTS_X86_64 } from '../src';

// Each arch's compiler lays out struct epoll_event from its own uapi headers.
function epollLayout(cc: string): { size: number; data: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'epoll-layout-'));
  const src = path.join(dir, 'v.c');
  fs.writeFileSync(src, '#include <stddef.h>\n#include <linux/eventpoll.h>\nunsigned v[2] = { sizeof(struct epoll_event), offsetof(struct epoll_event, data) };\n');
  try {
    const asm = execFileSync(cc, ['-S', '-o', '-', src], { encoding: 'utf8' });
    const [size, data] = [...asm.matchAll(/\.(?:long|4byte)\s+(\d+)/g)].map((m) => Number(m[1]));
    return { size, data };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('struct epoll_event per arch', () => {
  it('x86_64: packed', () => expect(STRUCTS_X86_64.epollEvent).toEqual(epollLayout('cc')));
  it('ppc64le: naturally aligned', () => expect(STRUCTS_PPC64.epollEvent).toEqual(epollLayout('powerpc64le-linux-gnu-gcc')));
});
