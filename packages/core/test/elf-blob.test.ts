import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { elfToBlob, relocateBlob, ElfBlobError } from '../src/parasite/elf-blob';
import { EM_X86_64, R_X86_64_RELATIVE, parasiteElfPath } from '@criu/arch-x86_64';

const opts = { machine: EM_X86_64, relativeType: R_X86_64_RELATIVE };

describe('x86_64 parasite blob', () => {
  beforeAll(() => {
    execFileSync('bash', [require.resolve('../../../arch/x86_64/parasite/build.sh')], { stdio: 'inherit' });
  });

  it('builds to an ELF that loads as a flat blob entered at parasite_head', () => {
    const blob = elfToBlob(fs.readFileSync(parasiteElfPath()), opts);
    expect(blob.symbols.get('parasite_head')).toBe(blob.entry);
    expect(blob.symbols.has('parasite_main')).toBe(true);
    // call rel32 then int3: the head calls parasite_main and traps when it returns
    const e = blob.entry;
    expect(blob.bytes[e]).toBe(0xe8);
    const rel = new DataView(blob.bytes.buffer).getInt32(e + 1, true);
    expect(e + 5 + rel).toBe(blob.symbols.get('parasite_main'));
    expect(blob.bytes[e + 5]).toBe(0xcc);
    expect(blob.bytes.length).toBeLessThan(256 * 1024);
  });

  it('applies RELATIVE relocations for the injection address', () => {
    // A parasite-like object with a pointer in data, which needs one RELATIVE relocation.
    const dir = fs.mkdtempSync('/tmp/criu-ts-elf-');
    try {
      const src = path.join(dir, 'p.c');
      fs.writeFileSync(src, 'static int x; int *volatile px = &x; int entry(void) { return *px; }\n');
      const elf = path.join(dir, 'p.elf');
      execFileSync('cc', ['-O2', '-fpie', '-nostdlib', '-static-pie', '-Wl,--no-dynamic-linker', '-Wl,-e,entry', '-o', elf, src]);
      const blob = elfToBlob(fs.readFileSync(elf), opts);
      expect(blob.relocs.length).toBe(1);
      const base = 0x7f0000000000n;
      const out = relocateBlob(blob, base);
      const pxOff = blob.symbols.get('px')!;
      const xOff = blob.symbols.get('x')!;
      expect(new DataView(out.buffer).getBigUint64(pxOff, true)).toBe(base + BigInt(xOff));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what it cannot load, naming the reason', () => {
    const good = fs.readFileSync(parasiteElfPath());
    expect(() => elfToBlob(good.subarray(0, 40), opts)).toThrow(ElfBlobError);
    expect(() => elfToBlob(good, { ...opts, machine: 21 })).toThrow(/e_machine 62, expected 21/);
    const bad = Buffer.from(good); bad[5] = 2;
    expect(() => elfToBlob(bad, opts)).toThrow(/not little-endian/);
  });
});
