// zod schemas built from the protobuf reflection: every decoded record is checked,
// and encoding refuses what protobuf would silently write as 0 or wrap around.
import { decodeMessage, encodeImage, encodeImageEntries, encodeMessage, ImageFormatError, messageSchema, validateMessage } from '../src/index';

function err(fn: () => unknown): ImageFormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ImageFormatError);
    return e as ImageFormatError;
  }
  throw new Error('expected an ImageFormatError');
}

describe('schemas from reflection', () => {
  test('types, ranges, enums, nesting, repeated', () => {
    const vma = messageSchema('vma_entry');
    const ok = { start: 0x1000n, end: 0x2000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 0x201, fd: -1 };
    expect(vma.safeParse(ok).success).toBe(true);
    expect(vma.safeParse({ ...ok, start: 4096 }).success).toBe(true); // safe integers allowed for 64-bit when encoding
    expect(vma.safeParse({ ...ok, prot: 2 ** 32 }).success).toBe(false);
    expect(vma.safeParse({ ...ok, fd: -(1n << 63n) - 1n }).success).toBe(false);
    expect(vma.safeParse({ ...ok, start: -1n }).success).toBe(false);
    expect(vma.safeParse({ ...ok, start: 1n << 64n }).success).toBe(false);
    expect(vma.safeParse({ ...ok, prot: '3' }).success).toBe(false);
    expect(vma.safeParse({ ...ok, bogus: 1 }).success).toBe(false);
    const core = messageSchema('core_entry');
    expect(core.safeParse({ mtype: 1 }).success).toBe(true);
    expect(core.safeParse({ mtype: 77 }).success).toBe(false);
    expect(core.safeParse({ mtype: 1, tc: { task_state: 1 } }).success).toBe(false); // tc has more required fields
    expect(messageSchema('pstree_entry').safeParse({ pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, 2] }).success).toBe(true);
    expect(messageSchema('pstree_entry').safeParse({ pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, 'x'] }).success).toBe(false);
  });
});

describe('encoding refuses bad records, naming the field path', () => {
  test('missing required field', () => {
    const e = err(() => encodeMessage('fs_entry', { cwd_id: 1 }));
    expect(e).toMatchObject({ code: 'MISSING_REQUIRED', field: 'root_id' });
    expect(e.message).toMatch(/field root_id: fs_entry: root_id: required field is missing/);
  });

  test('missing required field deep inside an entry', () => {
    const e = err(() =>
      encodeImageEntries('CORE', [{ message: { mtype: 1 } }, { message: { mtype: 1, tc: { task_state: 1, exit_code: 0, personality: 0, flags: 0, blk_sigset: 0n, comm: 'x', rlimits: { rlimits: [{ cur: 1n }] } } } }], { file: 'core-1.img' }),
    );
    expect(e).toMatchObject({ code: 'MISSING_REQUIRED', file: 'core-1.img', recordIndex: 1, field: 'tc.rlimits.rlimits[0].max' });
  });

  test('out-of-range and wrongly typed values', () => {
    expect(err(() => encodeMessage('fs_entry', { cwd_id: -1, root_id: 0 }))).toMatchObject({ code: 'INVALID_FIELD', field: 'cwd_id' });
    expect(err(() => encodeMessage('fs_entry', { cwd_id: 2 ** 32, root_id: 0 })).field).toBe('cwd_id');
    expect(err(() => encodeMessage('rlimit_entry', { cur: 1n << 64n, max: 0n })).field).toBe('cur');
    expect(err(() => encodeMessage('rlimit_entry', { cur: 1.5, max: 0n })).field).toBe('cur');
    expect(err(() => encodeMessage('pstree_entry', { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, -1] })).field).toBe('threads[1]');
    expect(err(() => encodeMessage('fs_entry', { cwd_id: 1, root_id: 1, typo: 3 })).field).toBe('typo');
    expect(err(() => encodeMessage('core_entry', { mtype: 99 })).message).toMatch(/not a value of enum/);
    expect(err(() => validateMessage('fs_entry', null)).code).toBe('INVALID_FIELD');
  });

  test('crit JSON encode refuses the same, naming the entry', () => {
    const e = err(() => encodeImage({ magic: 'FS', entries: [{ cwd_id: 1, root_id: 2 }, { cwd_id: 5 }] }, { file: 'fs-9.img' }));
    expect(e).toMatchObject({ code: 'MISSING_REQUIRED', file: 'fs-9.img', recordIndex: 1, field: 'root_id' });
    expect(err(() => encodeImage({ magic: 'FS', entries: [{ cwd_id: 4294967296, root_id: 2 }] })).field).toBe('cwd_id');
    expect(err(() => encodeImage({ magic: 'CORE', entries: [{ mtype: 'VAX' }] })).field).toBe('mtype');
    expect(err(() => encodeImage({ magic: 'NOPE', entries: [] })).code).toBe('UNKNOWN_MAGIC');
    expect(err(() => encodeImage({ magic: 'PIPES_DATA', entries: [{ pipe_id: 1, bytes: 2, extra: 'AAAA\n' }] })).message).toMatch(/payload is 3 bytes/);
    expect(err(() => encodeImage({ magic: 'PIPES_DATA', entries: [{ pipe_id: 1, bytes: 4, extra: 'AAAA\n' }] })).message).toMatch(/payload is 3 bytes but the record's bytes says 4/);
    expect(err(() => encodeImage({ magic: 'PIPES_DATA', entries: [{ pipe_id: 1, bytes: 4, extra: '... <4B>' }] })).message).toMatch(/--nopl/);
  });

  test('decoded records are validated too: a record lacking a required field is refused', () => {
    // fs_entry with only cwd_id (field 1)
    expect(err(() => decodeMessage('fs_entry', Buffer.from([0x08, 0x05])))).toMatchObject({ code: 'MISSING_REQUIRED', field: 'root_id' });
    // nested: core_entry.tc present but empty
    expect(err(() => decodeMessage('core_entry', Buffer.from([0x08, 0x01, 0x1a, 0x00]))).field).toBe('tc.task_state');
  });

  test('valid values round-trip through the single-message API', () => {
    const m = { cwd_id: 4294967295, root_id: 0, umask: 0o777 };
    expect(decodeMessage('fs_entry', encodeMessage('fs_entry', m))).toEqual(m);
    const r = { cur: (1n << 64n) - 1n, max: 0n };
    expect(decodeMessage('rlimit_entry', encodeMessage('rlimit_entry', r))).toEqual(r);
  });
});

describe('the fast pre-check never accepts what the zod schema refuses', () => {
  // fastValid() lets valid records skip zod; anything it accepts must be valid for zod too.
  test('mutated records of several types', () => {
    const { fastValid } = jest.requireActual('../src/validate/fast-check') as typeof import('../src/validate/fast-check');
    const { planOf } = jest.requireActual('../src/codec/plan') as typeof import('../src/codec/plan');
    const samples: Array<[string, Record<string, unknown>]> = [
      ['vma_entry', { start: 0x1000n, end: 0x2000n, pgoff: 0n, shmid: 0n, prot: 3, flags: 0x22, status: 0x201, fd: -1 }],
      ['pstree_entry', { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1, 2] }],
      ['pagemap_entry', { vaddr: 0x1000n, nr_pages: 4, flags: 1 }],
      ['core_entry', { mtype: 1, tc: { task_state: 1, exit_code: 0, personality: 0, flags: 0, blk_sigset: 0n, comm: 'x' } }],
    ];
    const bad: unknown[] = [undefined, null, -1, 1.5, NaN, Infinity, 2 ** 32, 2 ** 53, -(2n ** 64n), 2n ** 64n, -1n, '1', true, [], [1], [1, 'x'], {}, Buffer.alloc(1), { x: 1 }];
    let checked = 0;
    for (const [type, ok] of samples) {
      const plan = planOf(type);
      const zod = messageSchema(type);
      expect(fastValid(plan, ok)).toBe(true);
      const keys = [...Object.keys(ok), 'bogus', ...plan.fields.map((f) => f.name)];
      for (const k of keys) {
        for (const v of bad) {
          const rec = { ...ok, [k]: v };
          if (fastValid(plan, rec)) expect(zod.safeParse(rec).success).toBe(true);
          checked++;
        }
      }
      // Not a plain object: left to zod.
      expect(fastValid(plan, Object.assign(Object.create({ inherited: 1 }), ok))).toBe(false);
    }
    expect(checked).toBeGreaterThan(100);
  });
});
