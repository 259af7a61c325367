import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ARGS_LAYOUT, TASK_STATE_LAYOUT, decodeTaskState, encodeArgs, PARASITE_MAGIC } from '../src/infect/protocol';

// The TS mirror of parasite/protocol.h must agree with what the C compiler lays out.
describe('parasite protocol layout', () => {
  it('matches the C header', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-proto-'));
    const src = path.join(dir, 'o.c');
    const fields = ['itimers', 'sas_sp', 'sas_size', 'sas_flags', 'umask', 'tid_address', 'pdeath_sig', 'dumpable', 'child_subreaper', 'no_new_privs', 'thp_disabled', 'securebits', 'brk'];
    fs.writeFileSync(src, `#include <stdio.h>\n#include <stddef.h>\n#include "protocol.h"\nint main(void){\n` +
      `printf("%zu %zu %zu %zu %zu\\n", sizeof(struct parasite_task_state), sizeof(struct parasite_args), offsetof(struct parasite_args, page_size), offsetof(struct parasite_args, sock_name_len), offsetof(struct parasite_args, sock_name));\n` +
      fields.map((f) => `printf("%zu\\n", offsetof(struct parasite_task_state, ${f}));`).join('\n') + '\nreturn 0;}\n');
    execFileSync('cc', ['-I', path.join(__dirname, '..', 'parasite'), '-o', path.join(dir, 'o'), src]);
    const out = execFileSync(path.join(dir, 'o')).toString().trim().split('\n');
    fs.rmSync(dir, { recursive: true, force: true });
    const [stSize, argsSize, pageSize, nameLen, name] = out[0].split(' ').map(Number);
    expect([stSize, argsSize, pageSize, nameLen, name]).toEqual([TASK_STATE_LAYOUT.size, ARGS_LAYOUT.size, ARGS_LAYOUT.pageSize, ARGS_LAYOUT.sockNameLen, ARGS_LAYOUT.sockName]);
    const L = TASK_STATE_LAYOUT;
    expect(out.slice(1).map(Number)).toEqual([L.itimers, L.sasSp, L.sasSize, L.sasFlags, L.umask, L.tidAddress, L.pdeathSig, L.dumpable, L.childSubreaper, L.noNewPrivs, L.thpDisabled, L.securebits, L.brk]);
  });

  it('encodes args and refuses short task states', () => {
    const a = encodeArgs(4096, 'abc');
    expect(a.readUInt32LE(0)).toBe(PARASITE_MAGIC);
    expect(a.toString('latin1', ARGS_LAYOUT.sockName, ARGS_LAYOUT.sockName + 3)).toBe('abc');
    expect(() => encodeArgs(4096, 'x'.repeat(101))).toThrow(/too long/);
    expect(() => decodeTaskState(Buffer.alloc(10))).toThrow(/expected 2208/);
  });
});
