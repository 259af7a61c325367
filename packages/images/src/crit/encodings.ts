// Byte/text encodings crit uses in its JSON: base64 in MIME lines
// (base64.encodebytes) and quoted-printable (quopri, binascii.b2a_qp/a2b_qp)
// for unix socket names.

/** base64.encodebytes(): 76-character lines, each ending in '\n'; '' for no bytes. */
export function encodeBase64Lines(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += 76) out += b64.slice(i, i + 76) + '\n';
  return out;
}

/**
 * base64.decodebytes(): ignores line breaks and other characters outside the
 * alphabet; throws Error on bad padding like Python's binascii does.
 */
export function decodeBase64Lines(text: string): Buffer {
  const clean = text.replace(/[^A-Za-z0-9+/=]/g, '');
  const body = clean.replace(/=+$/, '');
  if (body.includes('=')) throw new Error('misplaced base64 padding');
  if (body.length % 4 === 1) throw new Error('invalid base64: a lone trailing character');
  const padded = body.length % 4 === 0 ? body : body + '='.repeat(4 - (body.length % 4));
  if (body.length % 4 !== 0 && clean.length !== padded.length) throw new Error('incorrect base64 padding');
  return Buffer.from(padded, 'base64');
}

const MAXLINE = 76;
const HEX = '0123456789ABCDEF';

/** quopri.encodestring (binascii.b2a_qp with quotetabs=False, istext=True, header=False). */
export function encodeQuotedPrintable(data: Uint8Array): string {
  const n = data.length;
  const nl = data.indexOf(0x0a);
  const crlf = nl > 0 && data[nl - 1] === 0x0d;
  const eol = crlf ? '\r\n' : '\n';
  const out: string[] = [];
  let linelen = 0;
  let i = 0;
  const last = (): string => (out.length ? out[out.length - 1] : '');
  while (i < n) {
    const c = data[i];
    const mustQuote =
      c > 126 ||
      c === 0x3d ||
      (c === 0x2e && linelen === 0 && (i + 1 === n || data[i + 1] === 0x0a || data[i + 1] === 0x0d || data[i + 1] === 0)) ||
      ((c === 0x09 || c === 0x20) && i + 1 === n) ||
      (c < 33 && c !== 0x0d && c !== 0x0a && c !== 0x09 && c !== 0x20);
    if (mustQuote) {
      if (linelen + 3 >= MAXLINE) {
        out.push('=' + eol);
        linelen = 0;
      }
      out.push('=' + HEX[c >> 4] + HEX[c & 15]);
      i++;
      linelen += 3;
    } else if (c === 0x0a || (i + 1 < n && c === 0x0d && data[i + 1] === 0x0a)) {
      linelen = 0;
      // Whitespace right before a line break is quoted.
      const prev = last();
      if (prev === ' ' || prev === '\t') out[out.length - 1] = '=' + HEX[prev.charCodeAt(0) >> 4] + HEX[prev.charCodeAt(0) & 15];
      out.push(eol);
      i += c === 0x0d ? 2 : 1;
    } else {
      if (i + 1 !== n && data[i + 1] !== 0x0a && linelen + 1 >= MAXLINE) {
        out.push('=' + eol);
        linelen = 0;
      }
      linelen++;
      out.push(String.fromCharCode(c));
      i++;
    }
  }
  return out.join('');
}

const hexVal = (c: number): number => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);

/** quopri.decodestring (binascii.a2b_qp, header=False). Input must be ASCII. */
export function decodeQuotedPrintable(text: string): Buffer {
  const n = text.length;
  const out: number[] = [];
  let i = 0;
  for (let k = 0; k < n; k++) if (text.charCodeAt(k) > 127) throw new Error('quoted-printable text must be ASCII');
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c !== 0x3d) {
      out.push(c);
      i++;
      continue;
    }
    i++;
    if (i >= n) break;
    const d = text.charCodeAt(i);
    if (d === 0x0a || d === 0x0d) {
      // Soft line break.
      if (d !== 0x0a) while (i < n && text.charCodeAt(i) !== 0x0a) i++;
      if (i < n) i++;
    } else if (d === 0x3d) {
      out.push(0x3d);
      i++;
    } else if (i + 1 < n && hexVal(d) >= 0 && hexVal(text.charCodeAt(i + 1)) >= 0) {
      out.push((hexVal(d) << 4) | hexVal(text.charCodeAt(i + 1)));
      i += 2;
    } else out.push(0x3d);
  }
  return Buffer.from(out);
}
