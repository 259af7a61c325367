// Every kind of raw payload that follows a record, in the typed API and in crit's JSON.
import { decodeImage, decodeImageEntries, encodeImage, encodeImageEntries, encodeMessage, ImageFormatError, type EntryInput } from '../src/index';

const bytes = (n: number, seed = 1): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
const b64 = (b: Buffer): string => (b.length ? b.toString('base64').replace(/(.{76})/g, '$1\n') + '\n' : '').replace(/\n\n$/, '\n');

function roundTrip(magic: string, entries: EntryInput[]) {
  const img = encodeImageEntries(magic, entries);
  const typed = decodeImageEntries(img);
  const json = decodeImage(img);
  expect(encodeImage(json)).toEqual(img);
  return { img, typed, json };
}

test('pipes-data and fifo-data: pipe_data_entry + `bytes` raw bytes, JSON extra is base64', () => {
  for (const magic of ['PIPES_DATA', 'FIFO_DATA']) {
    const a = bytes(100);
    const b = bytes(3, 7);
    const { img, typed, json } = roundTrip(magic, [
      { message: { pipe_id: 5, bytes: 100, size: 65536 }, extra: { kind: 'bytes', data: a } },
      { message: { pipe_id: 6, bytes: 3 }, extra: { kind: 'bytes', data: b } },
    ]);
    const body = encodeMessage('pipe_data_entry', { pipe_id: 5, bytes: 100, size: 65536 }).length;
    expect(img.length).toBe(8 + 4 + body + 100 + 4 + 4 + 3);
    expect(typed.entries[0].extra).toEqual({ kind: 'bytes', offset: 8 + 4 + body, length: 100, data: a });
    expect(json.entries[0].extra).toBe(b64(a));
    expect(json.entries[1]).toEqual({ pipe_id: 6, bytes: 3, extra: b64(b) });
    expect(decodeImage(img, { noPayload: true, pretty: true }).entries.map((e) => e.extra)).toEqual(['... <100B>', '... <3B>']);
  }
});

test('sk-queues: sk_packet_entry + `length` bytes', () => {
  const d = bytes(4097);
  const { typed, json } = roundTrip('SK_QUEUES', [{ message: { id_for: 3, length: 4097 }, extra: { kind: 'bytes', data: d } }]);
  expect((typed.entries[0].extra as { data: Buffer }).data).toEqual(d);
  expect(json.entries[0].extra).toBe(b64(d));
  expect(decodeImage(encodeImageEntries('SK_QUEUES', [{ message: { id_for: 3, length: 4097 }, extra: { kind: 'bytes', data: d } }]), { noPayload: true }).entries[0].extra).toBe('... <4.0KB>');
});

test('tcp-stream: inq_len then outq_len bytes, JSON extra {inq, outq}', () => {
  const inq = bytes(10);
  const outq = bytes(20, 3);
  const msg = { inq_len: 10, inq_seq: 1, outq_len: 20, outq_seq: 2, opt_mask: 0, snd_wscale: 7, mss_clamp: 1460 };
  const { typed, json } = roundTrip('TCP_STREAM', [{ message: msg, extra: { kind: 'tcp-queues', inq: { data: inq }, outq: { data: outq } } }]);
  expect(typed.entries[0].extra).toMatchObject({ kind: 'tcp-queues', inq: { length: 10, data: inq }, outq: { length: 20, data: outq } });
  expect(json.entries[0].extra).toEqual({ inq: b64(inq), outq: b64(outq) });
});

test('bpfmap-data: keys_bytes + values_bytes bytes', () => {
  const d = bytes(24);
  const { json } = roundTrip('BPFMAP_DATA', [{ message: { map_id: 1, keys_bytes: 8, values_bytes: 16, count: 2 }, extra: { kind: 'bytes', data: d } }]);
  expect(json.entries[0].extra).toBe(b64(d));
});

test('ipcns-shm: `size` bytes padded to 4', () => {
  const d = bytes(5);
  const desc = { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 7 };
  const { img, json } = roundTrip('IPCNS_SHM', [{ message: { desc, size: 5n }, extra: { kind: 'bytes', data: d } }]);
  const body = encodeMessage('ipc_shm_entry', { desc, size: 5n }).length;
  expect(img.length).toBe(8 + 4 + body + 8);
  expect(img.subarray(img.length - 3)).toEqual(Buffer.alloc(3));
  expect(json.entries[0].extra).toBe(b64(d));
});

test('ipcns-sem: nsems u16 values padded to 8, JSON extra is the list', () => {
  const desc = { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 7 };
  const { img, typed, json } = roundTrip('IPCNS_SEM', [{ message: { desc, nsems: 3 }, extra: { kind: 'ipc-sem', values: [1, 65535, 300] } }]);
  expect(img.subarray(img.length - 8)).toEqual(Buffer.from([1, 0, 0xff, 0xff, 0x2c, 0x01, 0, 0]));
  expect(typed.entries[0].extra).toEqual({ kind: 'ipc-sem', values: [1, 65535, 300] });
  expect(json.entries[0].extra).toEqual([1, 65535, 300]);
});

test('ipcns-msg: qnum framed ipc_msg records each followed by msize bytes padded to 8', () => {
  const desc = { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 7 };
  const t1 = Buffer.from('hello');
  const t2 = Buffer.from('');
  const { typed, json } = roundTrip('IPCNS_MSG', [
    {
      message: { desc, qbytes: 16384, qnum: 2 },
      extra: { kind: 'ipc-msg', messages: [{ message: { mtype: 1n, msize: 5 }, data: { data: t1 } }, { message: { mtype: 2n, msize: 0 }, data: { data: t2 } }] },
    },
  ]);
  const ex = typed.entries[0].extra as { kind: string; messages: Array<{ message: unknown; data: { data: Buffer } }> };
  expect(ex.messages.map((m) => [m.message, m.data.data.toString()])).toEqual([
    [{ mtype: 1n, msize: 5 }, 'hello'],
    [{ mtype: 2n, msize: 0 }, ''],
  ]);
  expect(json.entries[0].extra).toEqual([{ mtype: 1, msize: 5 }, b64(t1), { mtype: 2, msize: 0 }, '']);
});

test('ghost-file without chunks: the rest of the file is the data', () => {
  const d = bytes(1000);
  const { json } = roundTrip('GHOST_FILE', [{ message: { uid: 0, gid: 0, mode: 0o100644, size: 1000n }, extra: { kind: 'bytes', data: d } }]);
  expect(json.entries).toHaveLength(1);
  expect(json.entries[0].extra).toBe(b64(d));
  // crit --nopl drops ghost data entirely
  expect(decodeImage(encodeImageEntries('GHOST_FILE', [{ message: { uid: 0, gid: 0, mode: 0o100644 }, extra: { kind: 'bytes', data: d } }]), { noPayload: true }).entries[0]).toEqual({ uid: 0, gid: 0, mode: 0o100644 });
});

test('ghost-file with chunks: ghost_chunk_entry + len bytes each', () => {
  const c1 = bytes(10);
  const c2 = bytes(4, 9);
  const { typed, json } = roundTrip('GHOST_FILE', [
    { message: { uid: 0, gid: 0, mode: 0o100644, chunks: true, size: 8192n } },
    { message: { len: 10n, off: 0n }, extra: { kind: 'bytes', data: c1 } },
    { message: { len: 4n, off: 4096n }, extra: { kind: 'bytes', data: c2 } },
  ]);
  expect(typed.entries.map((e) => e.type)).toEqual(['ghost_file_entry', 'ghost_chunk_entry', 'ghost_chunk_entry']);
  expect(json.entries[0].extra).toBeUndefined();
  expect(json.entries[2]).toEqual({ len: 4, off: 4096, extra: b64(c2) });
});

test('a payload longer than the file is refused with the entry and offset', () => {
  const img = encodeImageEntries('PIPES_DATA', [{ message: { pipe_id: 5, bytes: 10 }, extra: { kind: 'bytes', data: bytes(10) } }]);
  try {
    decodeImage(img.subarray(0, img.length - 1), { file: 'pipes-data.img' });
    throw new Error('no error');
  } catch (e) {
    expect(e).toBeInstanceOf(ImageFormatError);
    expect(e).toMatchObject({ code: 'PAYLOAD_TOO_LONG', file: 'pipes-data.img', recordIndex: 0, offset: 8 + 4 + 4 });
  }
});

test('payloads: skip reports offsets without reading', () => {
  const img = encodeImageEntries('PIPES_DATA', [{ message: { pipe_id: 5, bytes: 10 }, extra: { kind: 'bytes', data: bytes(10) } }]);
  expect(decodeImageEntries(img, { payloads: 'skip' }).entries[0].extra).toEqual({ kind: 'bytes', offset: 16, length: 10 });
  expect(() => encodeImageEntries('PIPES_DATA', decodeImageEntries(img, { payloads: 'skip' }).entries)).toThrow(/payload bytes are missing/);
});
