// JSON text and the byte/text encodings crit uses, checked against Python itself.
import { parseCritJson, stringifyCritJson, humanReadableSize, ImageFormatError, type CritJson } from '../src/index';
import { decodeBase64Lines, decodeQuotedPrintable, encodeBase64Lines, encodeQuotedPrintable } from '../src/crit/encodings';
import { ipToWords, wordsToIp } from '../src/crit/ip';
import { pyInt, decodeDev, encodeDev } from '../src/crit/conversions';
import { runPython } from './helpers/pycrit';
import { Rng } from './helpers/samples';

const BIG = 18446744073709551615n;

describe('stringifyCritJson equals Python json.dumps', () => {
  const values: CritJson[] = [
    { magic: 'CORE', entries: [{ cur: BIG, max: -9223372036854775808n, n: 5, s: 'a"b\\c\n\t\x01\x7f é€😀', t: true, f: false, z: null }] },
    [],
    {},
    [[], {}, [{}], { a: [] }],
    [0, -1, 9007199254740991, 9007199254740993n, 1.5, -0.25, 1e16, 1e-5, 0.0001, 123456789.125, 1e300, 5e-324],
    'plain',
    { '': 1, 'ключ': [1, 2, { x: 'y' }] },
  ];
  // Python receives the same values through JSON text with big integers as digits.
  test.each([false, true])('pretty=%s', (pretty) => {
    const inputs = values.map((v) => stringifyCritJson(v, false));
    const py = runPython(
      `import json,sys\nfor line in sys.stdin.read().split('\\n\\x00\\n'):\n    print(json.dumps(json.loads(line), indent=${pretty ? 4 : 'None'}))\n    print('\\x00')`,
      inputs.join('\n\x00\n'),
    )
      .split('\n\x00\n')
      .map((s) => s.replace(/\n$/, ''));
    values.forEach((v, i) => expect(stringifyCritJson(v, pretty)).toBe(py[i]));
  });

  test('random strings with every kind of character', () => {
    const rng = new Rng(7);
    const strs: string[] = [];
    for (let i = 0; i < 200; i++) {
      let s = '';
      const n = rng.int(20);
      for (let j = 0; j < n; j++) s += String.fromCodePoint(rng.pick([rng.int(0x80), rng.int(0x800), rng.int(0xd800), 0x10000 + rng.int(0x10000)]));
      strs.push(s);
    }
    const py = runPython('import json,sys\nprint(json.dumps(json.loads(sys.stdin.read())))', JSON.stringify(strs)).replace(/\n$/, '');
    expect(stringifyCritJson(strs)).toBe(py);
  });
});

describe('parseCritJson', () => {
  test('keeps big integers exact and round-trips text', () => {
    const text = '{"a": 18446744073709551615, "b": -9223372036854775808, "c": 12, "d": 1.5, "e": "\\u00e9\\ud83d\\ude00", "f": [true, false, null], "g": -0}';
    const v = parseCritJson(text) as Record<string, CritJson>;
    expect(v.a).toBe(BIG);
    expect(v.b).toBe(-9223372036854775808n);
    expect(v.c).toBe(12);
    expect(v.e).toBe('é😀');
    expect(stringifyCritJson(v)).toBe(text.replace('"g": -0', '"g": 0'));
  });

  test('a "__proto__" key stays a plain key', () => {
    const v = parseCritJson('{"__proto__": {"x": 1}}') as Record<string, CritJson>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  test.each(['', '{', '{"a" 1}', '[1,]', '"\x01"', '01', '{"a": tru}', '[1] 2', '"\\x"'])('refuses %j with BAD_JSON', (text) => {
    expect(() => parseCritJson(text)).toThrow(ImageFormatError);
    try {
      parseCritJson(text);
    } catch (e) {
      expect((e as ImageFormatError).code).toBe('BAD_JSON');
    }
  });

  test('deep nesting is an error, not a stack overflow', () => {
    expect(() => parseCritJson('['.repeat(20000))).toThrow(/nested too deeply/);
  });
});

describe('encodings', () => {
  const rng = new Rng(99);
  const samples: Buffer[] = [Buffer.alloc(0), Buffer.from('\0abstract'), Buffer.from('/tmp/sock'), Buffer.from('a \nb\t\r\nc.\n.\n= end '), Buffer.from('x'.repeat(200)), Buffer.from('\r\nfirst is crlf\nsecond\n')];
  for (let i = 0; i < 150; i++) samples.push(rng.bytes(rng.int(180)));
  for (let i = 0; i < 50; i++) samples.push(Buffer.from(Array.from({ length: rng.int(200) }, () => rng.pick([0x20, 0x09, 0x0a, 0x0d, 0x2e, 0x3d, 0x41, 0x00, 0xff]))));

  test('quoted-printable (unix socket names) equals quopri both ways', () => {
    const py = runPython(
      'import quopri,json,sys,base64\nxs=[base64.b64decode(x) for x in json.load(sys.stdin)]\nenc=[quopri.encodestring(x).decode() for x in xs]\nprint(json.dumps([enc,[base64.b64encode(quopri.decodestring(e)).decode() for e in enc]]))',
      JSON.stringify(samples.map((s) => s.toString('base64'))),
    );
    const [enc, dec] = JSON.parse(py) as [string[], string[]];
    samples.forEach((s, i) => {
      expect(encodeQuotedPrintable(s)).toBe(enc[i]);
      expect(decodeQuotedPrintable(enc[i]).toString('base64')).toBe(dec[i]);
    });
  });

  test('base64 in 76-character lines equals base64.encodebytes', () => {
    const py = JSON.parse(runPython('import json,sys,base64\nprint(json.dumps([base64.encodebytes(base64.b64decode(x)).decode() for x in json.load(sys.stdin)]))', JSON.stringify(samples.map((s) => s.toString('base64'))))) as string[];
    samples.forEach((s, i) => {
      expect(encodeBase64Lines(s)).toBe(py[i]);
      expect(decodeBase64Lines(py[i]).equals(s)).toBe(true);
    });
  });

  test('IP addresses as Python ipaddress formats them (stored as network-order words)', () => {
    const addrs = ['1.2.3.4', '0.0.0.0', '255.255.255.255', '::1', '::', 'fe80::1:0:0:0', '1:0:0:1:0:0:0:1', '::ffff:1.2.3.4', '2001:db8::8a2e:370:7334', '0:0:1::'];
    const py = JSON.parse(
      runPython(
        'import json,sys,socket,ipaddress\nout=[]\nfor a in json.load(sys.stdin):\n    v=int(ipaddress.ip_address(a))\n    n=1 if ipaddress.ip_address(a).version==4 else 4\n    ws=[socket.htonl((v>>(32*(n-1-i)))&0xffffffff) for i in range(n)]\n    out.append([ws, str(ipaddress.ip_address(a))])\nprint(json.dumps(out))',
        JSON.stringify(addrs),
      ),
    ) as Array<[number[], string]>;
    addrs.forEach((a, i) => {
      expect(ipToWords(a)).toEqual(py[i][0]);
      expect(wordsToIp(py[i][0])).toBe(py[i][1]);
    });
    expect(ipToWords('1.2.3.04')).toBeUndefined();
    expect(ipToWords('1::2::3')).toBeUndefined();
  });

  test('crit --nopl sizes equal human_readable()', () => {
    const sizes = [0, 1, 1023, 1024, 1025, 1280, 1536, 1600, 4096, 5000, 1048575, 1048576, 1572864, 3 * 2 ** 30 + 5, 2 ** 40 * 7.25];
    const py = JSON.parse(
      runPython(
        "import json,sys\ndef h(num):\n    for unit in ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']:\n        if num < 1024.0:\n            if int(num) == num:\n                return '%d%sB' % (num, unit)\n            else:\n                return '%.1f%sB' % (num, unit)\n        num /= 1024.0\n    return '%.1fYB' % num\nprint(json.dumps([h(x) for x in json.load(sys.stdin)]))",
        JSON.stringify(sizes),
      ),
    ) as string[];
    sizes.forEach((s, i) => expect(humanReadableSize(s)).toBe(py[i]));
  });

  test('int(text, 0) and device numbers', () => {
    expect(pyInt('0x1F', 0)).toBe(31n);
    expect(pyInt(' -0o17 ', 0)).toBe(-15n);
    expect(pyInt('1_000', 0)).toBe(1000n);
    expect(pyInt('0', 0)).toBe(0n);
    expect(() => pyInt('012', 0)).toThrow();
    expect(pyInt('012', 10)).toBe(12n);
    expect(() => pyInt('0x', 0)).toThrow();
    expect(decodeDev(0x800001n, false)).toBe('8:1');
    expect(encodeDev('8:1', false)).toBe(0x800001n);
    expect(decodeDev(0x0801n, true)).toBe('8:1');
    expect(encodeDev('259:65536', true)).toBe((259n & 0xfffn) << 8n | ((65536n & ~0xffn) << 12n));
    expect(decodeDev(encodeDev('259:65536', true), true)).toBe('259:65536');
  });
});
