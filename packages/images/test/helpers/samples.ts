// Seeded random, schema-driven sample messages and images for every magic:
// valid by construction (required fields present, values in range, enums known),
// with payloads sized as their records declare.
import { magicByName, MAGICS, type ImageLayout } from '../../src/index';
import { planOf, is64, type FieldPlan, type MessagePlan } from '../../src/codec/plan';
import type { EntryInput, Msg } from '../../src/index';

export class Rng {
  constructor(private s: number) {}
  next(): number {
    // mulberry32
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const STR_CHARS = ['a', 'Z', '0', ' ', '/', '"', '\\', '\n', '\t', '\x01', '\x7f', 'é', 'ü', '€', '中', '😀', 'A', 'b', '.', '-'];

function scalar(rng: Rng, f: FieldPlan): unknown {
  switch (f.kind) {
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return rng.pick([0, 1, -1, 42, 2147483647, -2147483648, rng.int(100000) - 50000]);
    case 'uint32':
    case 'fixed32':
      return rng.pick([0, 1, 7, 0x8001, 4294967295, 0x80000000, rng.int(4294967296), rng.int(1 << 20)]);
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return rng.pick([0n, -1n, 5n, -(1n << 63n), (1n << 63n) - 1n, BigInt(rng.int(1e9)) * 1000003n, 9007199254740993n]);
    case 'uint64':
    case 'fixed64':
      return rng.pick([0n, 1n, (1n << 64n) - 1n, 0x7fa51010ca10n, 1n << 63n, BigInt(rng.int(1e9)) * 4096n, 9007199254740993n]);
    case 'bool':
      return rng.int(2) === 1;
    case 'string': {
      let s = '';
      const n = rng.int(12);
      for (let i = 0; i < n; i++) s += rng.pick(STR_CHARS);
      return s;
    }
    case 'bytes':
      return rng.bytes(rng.pick([0, 1, 3, 16, 57, 58, 100, 200]));
    case 'enum':
      return rng.pick([...f.enumById!.keys()]);
    case 'float':
    case 'double':
      return rng.pick([0, 1.5, -2.25]);
    default:
      throw new Error(`no sample for ${f.kind}`);
  }
}

export function randomMessage(rng: Rng, plan: MessagePlan, depth = 0): Msg {
  const m: Msg = {};
  for (const f of plan.fields) {
    const present = f.required || rng.int(3) > 0;
    if (!present) continue;
    if (f.kind === 'message') {
      const sub = f.message!();
      if (!f.required && depth > 3) continue;
      if (f.repeated) {
        const n = depth > 3 ? 0 : rng.int(3);
        if (n) m[f.name] = Array.from({ length: n }, () => randomMessage(rng, sub, depth + 1));
      } else m[f.name] = randomMessage(rng, sub, depth + 1);
      continue;
    }
    if (f.repeated) {
      // IP address fields hold 1 (IPv4) or 4 (IPv6) words, as crit expects.
      const n = f.criu.ipadd ? rng.pick([1, 4]) : rng.int(4);
      if (n) m[f.name] = Array.from({ length: n }, () => scalar(rng, f));
    } else m[f.name] = scalar(rng, f);
  }
  return m;
}

/** A random valid image of this magic, as typed entries. */
export function randomEntries(rng: Rng, magic: string, maxEntries = 3): EntryInput[] {
  const info = magicByName(magic)!;
  const layout = info.layout as ImageLayout;
  const n = layout.kind === 'pagemap' || layout.kind === 'ghost-file' ? 1 + rng.int(maxEntries + 1) : rng.int(maxEntries + 1);
  const out: EntryInput[] = [];
  let chunked = false;
  for (let i = 0; i < n; i++) {
    if (layout.kind === 'pagemap') {
      out.push({ message: randomMessage(rng, planOf(i === 0 ? 'pagemap_head' : 'pagemap_entry')) });
      continue;
    }
    if (layout.kind === 'ghost-file') {
      if (i === 0) {
        const m = randomMessage(rng, planOf('ghost_file_entry'));
        chunked = m.chunks === true;
        out.push(chunked ? { message: m } : { message: m, extra: { kind: 'bytes', data: rng.bytes(rng.int(300)) } });
        if (!chunked) break;
      } else {
        const m = randomMessage(rng, planOf('ghost_chunk_entry'));
        const len = rng.int(120);
        m.len = BigInt(len);
        out.push({ message: m, extra: { kind: 'bytes', data: rng.bytes(len) } });
      }
      continue;
    }
    const m = randomMessage(rng, planOf(layout.message));
    const len = (): number => rng.pick([0, 1, 7, 57, 100, 333]);
    switch (layout.extra) {
      case undefined:
        out.push({ message: m });
        break;
      case 'pipe-data': {
        const d = rng.bytes(len());
        m.bytes = d.length;
        out.push({ message: m, extra: { kind: 'bytes', data: d } });
        break;
      }
      case 'sk-queue': {
        const d = rng.bytes(len());
        m.length = d.length;
        out.push({ message: m, extra: { kind: 'bytes', data: d } });
        break;
      }
      case 'bpfmap-data': {
        const k = rng.int(40);
        const v = rng.int(40);
        m.keys_bytes = k;
        m.values_bytes = v;
        out.push({ message: m, extra: { kind: 'bytes', data: rng.bytes(k + v) } });
        break;
      }
      case 'ipc-shm': {
        const d = rng.bytes(len());
        m.size = BigInt(d.length);
        out.push({ message: m, extra: { kind: 'bytes', data: d } });
        break;
      }
      case 'tcp-queues': {
        const a = rng.bytes(len());
        const b = rng.bytes(len());
        m.inq_len = a.length;
        m.outq_len = b.length;
        out.push({ message: m, extra: { kind: 'tcp-queues', inq: { data: a }, outq: { data: b } } });
        break;
      }
      case 'ipc-sem': {
        const k = rng.int(7);
        m.nsems = k;
        out.push({ message: m, extra: { kind: 'ipc-sem', values: Array.from({ length: k }, () => rng.int(65536)) } });
        break;
      }
      case 'ipc-msg': {
        const q = rng.int(3);
        m.qnum = q;
        const messages = Array.from({ length: q }, () => {
          const mm = randomMessage(rng, planOf('ipc_msg'));
          const d = rng.bytes(rng.int(30));
          mm.msize = d.length;
          return { message: mm, data: { data: d } };
        });
        out.push({ message: m, extra: { kind: 'ipc-msg', messages } });
        break;
      }
    }
  }
  return out;
}

/** Magics this package can encode and decode. */
export const HANDLED_MAGICS = MAGICS.filter((m) => m.layout).map((m) => m.name);
export { is64 };
