// crit's (criu).ipadd rendering: addresses are stored as u32 words in network
// byte order read on a little-endian host; pretty JSON shows them as text.
// Python ipaddress formatting (3.11): IPv6 compressed, lowercase, no IPv4 tail.

const bswap32 = (v: number): number => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;

export function wordsToIp(words: readonly number[]): string {
  if (words.length === 1) {
    const v = bswap32(words[0]);
    return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].join('.');
  }
  const hextets: number[] = [];
  for (let i = 0; i < 4; i++) {
    const v = bswap32(words[i]);
    hextets.push(v >>> 16, v & 0xffff);
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const parts = hextets.map((h) => h.toString(16));
  if (bestLen > 1) {
    const head = parts.slice(0, bestStart).join(':');
    const tail = parts.slice(bestStart + bestLen).join(':');
    return `${head}::${tail}`;
  }
  return parts.join(':');
}

function parseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    if (p.length > 1 && p[0] === '0') return undefined; // Python refuses leading zeros
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v >>> 0;
}

function parseIpv6(s: string): number[] | undefined {
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  let tail: number[] = [];
  if (s.includes('.')) {
    const idx = s.lastIndexOf(':');
    if (idx < 0) return undefined;
    const v4 = parseIpv4(s.slice(idx + 1));
    if (v4 === undefined) return undefined;
    tail = [v4 >>> 16, v4 & 0xffff];
    s = s.slice(0, idx + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const group = (x: string): number[] | undefined => {
    if (x === '') return [];
    const out: number[] = [];
    for (const g of x.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const a = group(halves[0]);
  const b = halves.length === 2 ? group(halves[1]) : [];
  if (!a || !b) return undefined;
  const total = a.length + b.length + tail.length;
  if (halves.length === 2) {
    if (total > 7) return undefined;
    return [...a, ...new Array<number>(8 - total).fill(0), ...b, ...tail];
  }
  return total === 8 ? [...a, ...tail] : undefined;
}

/** Text address -> u32 words as CRIU stores them (1 for IPv4, 4 for IPv6). Undefined if not an address. */
export function ipToWords(text: string): number[] | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return [bswap32(v4)];
  const h = parseIpv6(text);
  if (!h) return undefined;
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push(bswap32(((h[i] << 16) | h[i + 1]) >>> 0));
  return words;
}
