// The named tables crit uses for (criu).flags and (criu).dict fields, and the
// device-number, hex and integer-string conversions of pycriu's pb2dict.
export const FLAG_MAPS: Record<string, ReadonlyArray<readonly [string, number]>> = {
  'mmap.prot': [
    ['PROT_READ', 0x1],
    ['PROT_WRITE', 0x2],
    ['PROT_EXEC', 0x4],
  ],
  'mmap.flags': [
    ['MAP_SHARED', 0x1],
    ['MAP_PRIVATE', 0x2],
    ['MAP_ANON', 0x20],
    ['MAP_GROWSDOWN', 0x0100],
  ],
  'mmap.status': [
    ['VMA_AREA_NONE', 0],
    ['VMA_AREA_REGULAR', 1 << 0],
    ['VMA_AREA_STACK', 1 << 1],
    ['VMA_AREA_VSYSCALL', 1 << 2],
    ['VMA_AREA_VDSO', 1 << 3],
    ['VMA_AREA_HEAP', 1 << 5],
    ['VMA_FILE_PRIVATE', 1 << 6],
    ['VMA_FILE_SHARED', 1 << 7],
    ['VMA_ANON_SHARED', 1 << 8],
    ['VMA_ANON_PRIVATE', 1 << 9],
    ['VMA_AREA_SYSVIPC', 1 << 10],
    ['VMA_AREA_SOCKET', 1 << 11],
    ['VMA_AREA_VVAR', 1 << 12],
    ['VMA_AREA_AIORING', 1 << 13],
    ['VMA_AREA_MEMFD', 1 << 14],
    ['VMA_AREA_SHSTK', 1 << 15],
    ['VMA_UNSUPP', 2 ** 31],
  ],
  'rfile.flags': [
    ['O_WRONLY', 0o1],
    ['O_RDWR', 0o2],
    ['O_CREAT', 0o100],
    ['O_EXCL', 0o200],
    ['O_NOCTTY', 0o400],
    ['O_TRUNC', 0o1000],
    ['O_APPEND', 0o2000],
    ['O_NONBLOCK', 0o4000],
    ['O_DSYNC', 0o10000],
    ['FASYNC', 0o20000],
    ['O_DIRECT', 0o40000],
    ['O_LARGEFILE', 0o100000],
    ['O_DIRECTORY', 0o200000],
    ['O_NOFOLLOW', 0o400000],
    ['O_NOATIME', 0o1000000],
    ['O_CLOEXEC', 0o2000000],
  ],
  'pmap.flags': [
    ['PE_PARENT', 1 << 0],
    ['PE_LAZY', 1 << 1],
    ['PE_PRESENT', 1 << 2],
  ],
  'seals.flags': [
    ['F_SEAL_SEAL', 0x1],
    ['F_SEAL_SHRINK', 0x2],
    ['F_SEAL_GROW', 0x4],
    ['F_SEAL_WRITE', 0x8],
    ['F_SEAL_FUTURE_WRITE', 0x10],
  ],
};

/** (criu).dict tables, keyed by table then by field name (as crit does). */
export const DICT_MAPS: Record<string, Record<string, Record<number, string>>> = {
  gen: {
    task_state: { 1: 'Alive', 3: 'Zombie', 6: 'Stopped' },
  },
  sk: {
    family: { 1: 'UNIX', 2: 'INET', 10: 'INET6', 16: 'NETLINK', 17: 'PACKET' },
    type: { 1: 'STREAM', 2: 'DGRAM', 3: 'RAW', 5: 'SEQPACKET', 10: 'PACKET' },
    state: { 1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE', 8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN' },
    proto: { 0: 'IP', 6: 'TCP', 17: 'UDP', 136: 'UDPLITE' },
  },
};

/** Python "%x" formatting ("-0x5" for negatives). */
export function pyHex(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** pb2dict.map_flags: known names joined by ' | ', unknown bits as one hex number. */
export function mapFlags(v: bigint, map: ReadonlyArray<readonly [string, number]>): string {
  const names: string[] = [];
  let all = 0n;
  for (const [name, bit] of map) {
    const b = BigInt(bit);
    all += b;
    if ((v & b) !== 0n) names.push(name);
  }
  const rest = v & ~all;
  if (rest !== 0n) names.push(pyHex(rest));
  return names.join(' | ');
}

/** pb2dict.unmap_flags. Throws Error for a part that is neither a known name nor an integer. */
export function unmapFlags(text: string, map: ReadonlyArray<readonly [string, number]>): bigint {
  if (text === '') return 0n;
  const names = new Map(map.map(([n, b]) => [n, b]));
  let sum = 0n;
  for (const raw of text.split('|')) {
    const part = raw.trim();
    const known = names.get(part);
    sum += known !== undefined ? BigInt(known) : pyInt(part, 0);
  }
  return sum;
}

const KERN_MINORBITS = 20n;
const U64 = (1n << 64n) - 1n;
const U32 = (1n << 32n) - 1n;

/** pb2dict.decode_dev: "major:minor"; odev uses glibc's major()/minor() split. */
export function decodeDev(v: bigint, odev: boolean): string {
  if (odev) {
    if (v < 0n) throw new Error(`device number ${v} is negative`);
    const d = v & U64;
    const major = (((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)) & U32;
    const minor = ((d & 0xffn) | ((d >> 12n) & ~0xffn)) & U32;
    return `${major}:${minor}`;
  }
  return `${v >> KERN_MINORBITS}:${v & ((1n << KERN_MINORBITS) - 1n)}`;
}

/** pb2dict.encode_dev. Throws Error on malformed text. */
export function encodeDev(text: string, odev: boolean): bigint {
  const parts = text.split(':');
  if (parts.length < 2) throw new Error(`'${text}' is not a major:minor device number`);
  const major = pyInt(parts[0], 10);
  const minor = pyInt(parts[1], 10);
  if (odev) {
    if (major < 0n || minor < 0n || major > U32 || minor > U32) throw new Error(`device number '${text}' out of range`);
    return ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  }
  return (major << KERN_MINORBITS) | minor;
}

/**
 * Python int(text, base) for base 10 or 0 (auto prefix 0x/0o/0b, no leading zeros
 * in decimal). Surrounding whitespace, a sign and '_' between digits are allowed.
 */
export function pyInt(text: string, base: 0 | 10): bigint {
  const m = /^[\s]*([+-]?)(.*?)[\s]*$/s.exec(text);
  const bad = (): never => {
    throw new Error(`invalid literal for int() with base ${base}: '${text}'`);
  };
  if (!m) return bad();
  const sign = m[1] === '-' ? -1n : 1n;
  let body = m[2];
  let radix = 10;
  if (base === 0) {
    const p = body.slice(0, 2).toLowerCase();
    if (p === '0x') radix = 16;
    else if (p === '0o') radix = 8;
    else if (p === '0b') radix = 2;
    if (radix !== 10) {
      body = body.slice(2);
      if (body.startsWith('_')) body = body.slice(1);
    }
  }
  const digit = radix === 16 ? '[0-9a-fA-F]' : radix === 8 ? '[0-7]' : radix === 2 ? '[01]' : '[0-9]';
  if (!new RegExp(`^${digit}+(_${digit}+)*$`).test(body)) return bad();
  body = body.replace(/_/g, '');
  if (base === 0 && radix === 10 && /^0+[1-9]/.test(body)) return bad();
  const prefix = radix === 16 ? '0x' : radix === 8 ? '0o' : radix === 2 ? '0b' : '';
  return sign * BigInt(prefix + body);
}
