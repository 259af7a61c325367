// JSON text exactly as Python's json module writes and reads it (crit uses
// json.dump with indent=4 for --pretty, default separators otherwise, and
// ensure_ascii). Integers beyond 2^53 travel as BigInt so nothing is rounded.
import { formatError } from '../errors.js';

export type CritJson = null | boolean | number | bigint | string | CritJson[] | { [key: string]: CritJson };

function escapeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      if (c === 0x22) out += '\\"';
      else if (c === 0x5c) out += '\\\\';
      else out += s[i];
    } else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    // Everything else (controls, DEL, non-ASCII, each UTF-16 unit) as \uXXXX, lowercase hex.
    else out += '\\u' + c.toString(16).padStart(4, '0');
  }
  return out + '"';
}

/** Python's float repr: shortest round-trip digits, exponent form outside 1e-4 <= |x| < 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e');
  const digits = mant.replace('.', '');
  const exp = Number(expStr);
  const decpt = exp + 1; // value = 0.DIGITS * 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp);
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
}

function scalar(v: CritJson): string | undefined {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !Object.is(v, -0)) return Number.isSafeInteger(v) ? String(v) : BigInt(v).toString();
    return pythonFloatRepr(v);
  }
  if (typeof v === 'string') return escapeString(v);
  return undefined;
}

/**
 * Serialize like Python's json.dumps: pretty=true is indent=4 (separators ',' and ': '),
 * pretty=false the default one-line form (', ' and ': '). No trailing newline.
 */
export function stringifyCritJson(value: CritJson, pretty = false): string {
  const parts: string[] = [];
  const write = (v: CritJson, level: number): void => {
    const s = scalar(v);
    if (s !== undefined) {
      parts.push(s);
      return;
    }
    if (typeof v !== 'object' || v === null) throw new TypeError(`cannot serialize ${typeof v} as JSON`);
    const isArr = Array.isArray(v);
    const items: Array<[string | undefined, CritJson]> = isArr ? (v as CritJson[]).map((x) => [undefined, x]) : Object.keys(v).filter((k) => (v as Record<string, CritJson>)[k] !== undefined).map((k) => [k, (v as Record<string, CritJson>)[k]]);
    if (items.length === 0) {
      parts.push(isArr ? '[]' : '{}');
      return;
    }
    parts.push(isArr ? '[' : '{');
    const inner = pretty ? '\n' + ' '.repeat(4 * (level + 1)) : '';
    items.forEach(([k, x], i) => {
      if (i > 0) parts.push(pretty ? ',' : ', ');
      parts.push(inner);
      if (k !== undefined) parts.push(escapeString(k), ': ');
      write(x, level + 1);
    });
    if (pretty) parts.push('\n' + ' '.repeat(4 * level));
    parts.push(isArr ? ']' : '}');
  };
  write(value, 0);
  return parts.join('');
}

const MAX_DEPTH = 10000;

/**
 * Parse JSON as Python's json.loads does (NaN/Infinity accepted, control characters
 * in strings refused). Integers are numbers when exactly representable, else BigInt.
 * Throws ImageFormatError (code BAD_JSON) with the character offset.
 */
export function parseCritJson(text: string, file = '<json>'): CritJson {
  let i = 0;
  const fail = (reason: string): never => {
    throw formatError('BAD_JSON', { file, offset: i }, reason);
  };
  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('invalid control character in string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const h = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape');
          out += String.fromCharCode(parseInt(h, 16));
          i += 4;
          break;
        }
        default:
          i -= 2;
          fail('invalid escape');
      }
      start = i;
    }
  };
  const num = (): number | bigint => {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(i, i + 4096));
    if (!m || m[0] === '-' || m[0] === '') return fail('invalid number');
    i += m[0].length;
    if (m[1] === undefined && m[2] === undefined) {
      const n = Number(m[0]);
      if (n === 0) return 0; // Python has no integer -0
      return Number.isSafeInteger(n) ? n : BigInt(m[0]);
    }
    return Number(m[0]);
  };
  const value = (depth: number): CritJson => {
    if (depth > MAX_DEPTH) fail('JSON nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, CritJson> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a property name');
        const k = str();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        const v = value(depth + 1);
        // defineProperty: a "__proto__" key must stay a plain key.
        Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: CritJson[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) return (i += 4), true;
    if (text.startsWith('false', i)) return (i += 5), false;
    if (text.startsWith('null', i)) return (i += 4), null;
    if (text.startsWith('NaN', i)) return (i += 3), NaN;
    if (text.startsWith('Infinity', i)) return (i += 8), Infinity;
    if (text.startsWith('-Infinity', i)) return (i += 9), -Infinity;
    if (c === '-' || (c >= '0' && c <= '9')) return num();
    return fail(i >= text.length ? 'unexpected end of JSON' : `unexpected character '${c}'`);
  };
  try {
    const v = value(0);
    ws();
    if (i < text.length) fail('extra data after the JSON value');
    return v;
  } catch (err) {
    if (err instanceof RangeError) fail('JSON nested too deeply');
    throw err;
  }
}
