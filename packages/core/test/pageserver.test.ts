// The page server protocol on its own: the receiver driven by a raw TCP client (in-process, so
// the client here is an async socket, not the dump's blocking PageServerClient).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeImageEntries } from '@criu/images';
import {
  PS_IOV, PS_TYPE, PSI_SIZE, cmdOf, decodePsi, dstIdOf, dstType, encodeCmd, encodeDst, encodePsi, flagsOf, pagemapFileOf, startPageServer,
} from '../src/pageserver/index';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'criu-ts-pstest-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const PS = 4096;

async function connect(port: number): Promise<{ sock: net.Socket; read(n: number): Promise<Buffer> }> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  let buf = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); waiters.splice(0).forEach((w) => w()); });
  return {
    sock,
    async read(n) {
      while (buf.length < n) await new Promise<void>((res) => waiters.push(res));
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
  };
}

describe('page server protocol', () => {
  test('CRIU\'s encodings: flags in the high 16 bits of cmd, dst_id = id << 8 | type, 24-byte header', () => {
    expect(encodeCmd(PS_IOV.ADD_F, 6)).toBe(0x00060006);
    expect(cmdOf(0x00060006)).toBe(PS_IOV.ADD_F);
    expect(flagsOf(0x00060006)).toBe(6);
    expect(encodeDst(PS_TYPE.PID, 1234)).toBe(0x4d201n);
    expect([dstType(0x4d201n), dstIdOf(0x4d201n)]).toEqual([1, 1234]);
    expect(pagemapFileOf(encodeDst(PS_TYPE.SHMEM, 77))).toBe('pagemap-shmem-77.img');
    expect(() => pagemapFileOf(0x4d203n)).toThrow(/unknown image type 3/);
    const b = encodePsi({ cmd: PS_IOV.GET, nrPages: 3, vaddr: 0x7f0000001000n, dstId: 42n });
    expect(b.length).toBe(PSI_SIZE);
    expect(b.toString('hex')).toBe('07000000' + '03000000' + '00100000007f0000' + '2a00000000000000');
    expect(decodePsi(b)).toEqual({ cmd: 7, nrPages: 3, vaddr: 0x7f0000001000n, dstId: 42n });
  });

  test('a session: OPEN2, ADD_F runs (pages follow PE_PRESENT only), FLUSH_N_CLOSE; then GET serves them back', async () => {
    const dir = path.join(tmp, 'session');
    const h = await startPageServer({ imagesDir: dir, port: 0, address: '127.0.0.1' });
    const c = await connect(h.port);
    const dst = encodeDst(PS_TYPE.PID, 4321);
    c.sock.write(encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: dst }));
    expect((await c.read(1))[0]).toBe(0); // no parent
    c.sock.write(encodePsi({ cmd: PS_IOV.PARENT, nrPages: 0, vaddr: 0n, dstId: dst }));
    expect((await c.read(4)).readInt32LE(0)).toBe(0);
    const data = Buffer.alloc(3 * PS);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    c.sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 4 | 2), nrPages: 2, vaddr: 0x10000n, dstId: dst }));
    c.sock.write(data.subarray(0, 2 * PS));
    // A piece that continues the run merges into it.
    c.sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 4 | 2), nrPages: 1, vaddr: 0x12000n, dstId: dst }));
    c.sock.write(data.subarray(2 * PS));
    c.sock.write(encodePsi({ cmd: PS_IOV.HOLE, nrPages: 5, vaddr: 0x20000n, dstId: dst }));
    c.sock.write(encodePsi({ cmd: PS_IOV.FLUSH_N_CLOSE, nrPages: 0, vaddr: 0n, dstId: 0n }));
    expect((await c.read(4)).readInt32LE(0)).toBe(0);
    expect(await h.done).toMatchObject({ pagemaps: 1, pagesReceived: 3 });
    c.sock.destroy();
    const pm = decodeImageEntries(fs.readFileSync(path.join(dir, 'pagemap-4321.img')), { file: 'pagemap-4321.img' }).entries.map((e) => e.message);
    expect(pm).toEqual([{ pages_id: 1 }, { vaddr: 0x10000n, nr_pages: 3, flags: 6 }, { vaddr: 0x20000n, nr_pages: 5, flags: 1 }]);
    expect(fs.readFileSync(path.join(dir, 'pages-1.img')).equals(data)).toBe(true);

    // A second server on the same directory serves GET from those images.
    const g = await startPageServer({ imagesDir: dir, port: 0, address: '127.0.0.1' });
    const q = await connect(g.port);
    q.sock.write(encodePsi({ cmd: PS_IOV.GET, nrPages: 8, vaddr: 0x11000n, dstId: 4321n }));
    const reply = decodePsi(await q.read(PSI_SIZE));
    expect(reply).toEqual({ cmd: encodeCmd(PS_IOV.ADD_F, 4), nrPages: 2, vaddr: 0x11000n, dstId: 4321n });
    expect((await q.read(2 * PS)).equals(data.subarray(PS))).toBe(true);
    q.sock.write(encodePsi({ cmd: PS_IOV.GET, nrPages: 1, vaddr: 0x30000n, dstId: 4321n }));
    expect(decodePsi(await q.read(PSI_SIZE)).nrPages).toBe(0);
    q.sock.write(encodePsi({ cmd: PS_IOV.FLUSH_N_CLOSE, nrPages: 0, vaddr: 0n, dstId: 0n }));
    await q.read(4);
    expect(await g.done).toMatchObject({ pagesServed: 2 });
    q.sock.destroy();
  });

  test('iterations: --prev-images-dir links the parent; PARENT and OPEN2 answer whether it has the pagemap; holes are checked against it', async () => {
    const dst = encodeDst(PS_TYPE.PID, 777);
    const session = async (dir: string, prev: string | undefined, body: (c: Awaited<ReturnType<typeof connect>>) => Promise<void>) => {
      const h = await startPageServer({ imagesDir: path.join(tmp, dir), port: 0, address: '127.0.0.1', prevImagesDir: prev });
      const c = await connect(h.port);
      c.sock.on('error', () => undefined);
      await body(c);
      return { h, c };
    };
    const flush = async (c: Awaited<ReturnType<typeof connect>>) => {
      c.sock.write(encodePsi({ cmd: PS_IOV.FLUSH_N_CLOSE, nrPages: 0, vaddr: 0n, dstId: 0n }));
      expect((await c.read(4)).readInt32LE(0)).toBe(0);
    };
    // Iteration 1: 4 pages at 0x40000.
    const one = await session('it1', undefined, async (c) => {
      c.sock.write(encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: dst }));
      expect((await c.read(1))[0]).toBe(0);
      c.sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 4), nrPages: 4, vaddr: 0x40000n, dstId: dst }));
      c.sock.write(Buffer.alloc(4 * PS, 1));
      await flush(c);
    });
    expect(await one.h.done).toMatchObject({ pagesReceived: 4, pagesParent: 0 });
    one.c.sock.destroy();
    // Iteration 2: the parent has pagemap-777 (not pagemap-778); one page changed, three left in the parent.
    const two = await session('it2', '../it1', async (c) => {
      c.sock.write(encodePsi({ cmd: PS_IOV.PARENT, nrPages: 0, vaddr: 0n, dstId: dst }));
      expect((await c.read(4)).readInt32LE(0)).toBe(1);
      c.sock.write(encodePsi({ cmd: PS_IOV.PARENT, nrPages: 0, vaddr: 0n, dstId: encodeDst(PS_TYPE.PID, 778) }));
      expect((await c.read(4)).readInt32LE(0)).toBe(0);
      c.sock.write(encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: dst }));
      expect((await c.read(1))[0]).toBe(1);
      c.sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 1), nrPages: 1, vaddr: 0x40000n, dstId: dst }));
      c.sock.write(encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 4), nrPages: 1, vaddr: 0x41000n, dstId: dst }));
      c.sock.write(Buffer.alloc(PS, 2));
      c.sock.write(encodePsi({ cmd: PS_IOV.HOLE, nrPages: 2, vaddr: 0x42000n, dstId: dst }));
      await flush(c);
    });
    expect(await two.h.done).toMatchObject({ pagesReceived: 1, pagesParent: 3 });
    two.c.sock.destroy();
    expect(fs.readlinkSync(path.join(tmp, 'it2', 'parent'))).toBe('../it1');
    const pm = decodeImageEntries(fs.readFileSync(path.join(tmp, 'it2', 'pagemap-777.img')), { file: 'pagemap-777.img' }).entries.map((e) => e.message);
    expect(pm).toEqual([{ pages_id: 1 }, { vaddr: 0x40000n, nr_pages: 1, flags: 1 }, { vaddr: 0x41000n, nr_pages: 1, flags: 4 }, { vaddr: 0x42000n, nr_pages: 2, flags: 1 }]);
    // A hole the parent does not cover is refused, naming it.
    const bad = await session('it2bad', '../it1', async (c) => {
      c.sock.write(encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: dst }));
      await c.read(1);
      c.sock.write(encodePsi({ cmd: PS_IOV.HOLE, nrPages: 2, vaddr: 0x43000n, dstId: dst }));
    });
    await expect(bad.h.done).rejects.toThrow(/PE_PARENT hole 0x43000-0x45000 of pagemap-777.img is not in the parent's pagemap-777.img/);
    bad.c.sock.destroy();
    await expect(startPageServer({ imagesDir: path.join(tmp, 'it3'), port: 0, prevImagesDir: '../none' })).rejects.toThrow(/no previous images directory .*none/);
  });

  test('errors: pages without an open pagemap, an unknown command, a session closed without a flush', async () => {
    const cases: Array<[string, Buffer[], RegExp]> = [
      ['noopen', [encodePsi({ cmd: encodeCmd(PS_IOV.ADD_F, 4), nrPages: 1, vaddr: 0x1000n, dstId: encodeDst(1, 5) })], /without an open pagemap/],
      ['unknown', [encodePsi({ cmd: 0x99, nrPages: 0, vaddr: 0n, dstId: 0n })], /unknown command 0x99/],
      ['noflush', [encodePsi({ cmd: PS_IOV.OPEN2, nrPages: 0, vaddr: 0n, dstId: encodeDst(1, 5) })], /without flushing/],
    ];
    for (const [name, msgs, err] of cases) {
      const h = await startPageServer({ imagesDir: path.join(tmp, name), port: 0, address: '127.0.0.1' });
      const c = await connect(h.port);
      c.sock.on('error', () => undefined);
      for (const m of msgs) c.sock.write(m);
      if (name === 'noflush') { await c.read(1); c.sock.end(); }
      await expect(h.done).rejects.toThrow(err);
      c.sock.destroy();
    }
  });
});
