// The criu command in-process (main()): meta commands, CRIU commands not there yet, and the
// image commands on real oracle images and on malformed input.
import * as fs from 'fs';
import * as path from 'path';
import {
  critDecodeFiles,
  type CritDecoded,
  type OracleDump,
  oracleDump,
  removeOracleDumps,
  scratchDir,
} from '../../images/test/helpers/oracle-dumps';
import { CRIU_TS_VERSION } from '../src/version';
import { runCli } from './helpers/capture-io';

const noStackTrace = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at /);

describe('meta commands and CRIU commands', () => {
  test('--version prints a CRIU-style "Version:" line and our name', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r.status).toBe(0);
      const lines = r.stdout.toString().split('\n');
      expect(lines[0]).toBe('Version: 4.1');
      expect(lines[1]).toContain(`criu-ts: ${CRIU_TS_VERSION}`);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../package.json'), 'utf8')) as { version: string };
    expect(CRIU_TS_VERSION).toBe(pkg.version);
  });

  test('--help lists the commands and CRIU options, exit 0', async () => {
    const r = await runCli(['--help']);
    expect(r.status).toBe(0);
    const text = r.stdout.toString();
    for (const s of ['criu dump -t PID', 'criu decode', 'criu show FILE', '-t|--tree PID', '-D|--images-dir DIR', '--shell-job', '-o|--log-file FILE', "Options of 'decode':"]) {
      expect(text).toContain(s);
    }
    expect((await runCli(['dump', '-h'])).status).toBe(0);
  });

  test('no command: usage on stderr, exit 1 (as CRIU)', async () => {
    const r = await runCli([]);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toContain('Usage:');
    expect(r.stderr).toContain('Try -h|--help for more info');
  });

  test('unknown command and unknown option: exit 1 with a message', async () => {
    const a = await runCli(['frobnicate']);
    expect(a).toMatchObject({ status: 1, stderr: 'Error: unknown command: frobnicate\n' });
    const b = await runCli(['dump', '--bogus']);
    expect(b.status).toBe(1);
    expect(b.stderr).toContain("criu: unrecognized option '--bogus'");
  });

  test.each(['dedup'])(
    "'%s' parses its options and says it is not implemented yet, exit 1",
    async (cmd) => {
      const r = await runCli([cmd, '-t', '1', '-D', '/tmp', '-o', 'x.log', '-v4', '--shell-job']);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`Error: '${cmd}' is not implemented yet in criu-ts\n`);
    },
  );

  test('image commands check their arguments', async () => {
    expect((await runCli(['show'])).stderr).toBe('criu: usage: criu show FILE [--nopl]\n');
    expect((await runCli(['info', 'a', 'b'])).status).toBe(1);
    expect((await runCli(['decode', 'extra-word'])).status).toBe(1);
  });
});

describe('image commands on real oracle images', () => {
  let counter: OracleDump;
  let tree: OracleDump;
  let crit: Record<string, CritDecoded>;
  const img = (d: OracleDump, prefix: string) => path.join(d.dir, d.files.find((f) => f.startsWith(prefix))!);
  const structured = (d: OracleDump) => d.files.filter((f) => !/^pages-\d+\.img$/.test(f)).map((f) => path.join(d.dir, f));

  beforeAll(async () => {
    counter = await oracleDump('counter');
    tree = await oracleDump('tree');
    crit = critDecodeFiles([...structured(counter), ...structured(tree)]);
  }, 120000);
  afterAll(() => removeOracleDumps());

  test('decode prints exactly what crit decode prints, for every image (plain and --pretty)', async () => {
    const bad: string[] = [];
    for (const f of [...structured(counter), ...structured(tree)]) {
      const plain = await runCli(['decode', '-i', f]);
      const pretty = await runCli(['decode', '--pretty', '-i', f]);
      if (plain.status !== 0 || plain.stdout.toString() !== `${crit[f].plain}\n`) bad.push(`${f}: ${plain.stderr}`);
      if (pretty.status !== 0 || pretty.stdout.toString() !== `${crit[f].pretty}\n`) bad.push(`${f} --pretty: ${pretty.stderr}`);
    }
    expect(bad).toEqual([]);
  });

  test('show FILE = decode --pretty to stdout', async () => {
    const f = img(tree, 'pipes-data');
    const r = await runCli(['show', f]);
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(`${crit[f].pretty}\n`);
    expect(JSON.parse(r.stdout.toString()).entries[0].extra).toEqual(expect.any(String));
  });

  test('decode -o writes the JSON without a trailing newline (as crit); stdin works', async () => {
    const f = img(counter, 'core-');
    const out = path.join(scratchDir('decode-o'), 'core.json');
    expect((await runCli(['decode', '-i', f, '-o', out, '--pretty'])).status).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe(crit[f].pretty);
    const viaStdin = await runCli(['decode'], fs.readFileSync(f));
    expect(viaStdin.status).toBe(0);
    expect(viaStdin.stdout.toString()).toBe(`${crit[f].plain}\n`);
  });

  test('encode turns crit JSON (plain or pretty) back into the original bytes, to a file or stdout', async () => {
    const dir = scratchDir('encode');
    const bad: string[] = [];
    for (const f of [...structured(counter), ...structured(tree)]) {
      for (const kind of ['plain', 'pretty'] as const) {
        const json = path.join(dir, `${path.basename(f)}.${kind}.json`);
        const out = path.join(dir, `${path.basename(f)}.${kind}.img`);
        fs.writeFileSync(json, crit[f][kind]!);
        const r = await runCli(['encode', '-i', json, '-o', out]);
        if (r.status !== 0 || !fs.readFileSync(out).equals(fs.readFileSync(f))) bad.push(`${f} (${kind}): ${r.stderr}`);
      }
    }
    expect(bad).toEqual([]);
    const f = img(counter, 'inventory');
    const r = await runCli(['encode'], crit[f].pretty!);
    expect(r.status).toBe(0);
    expect(r.stdout.equals(fs.readFileSync(f))).toBe(true);
  });

  test('info prints the magic and entry count as crit info does', async () => {
    for (const prefix of ['core-', 'pagemap-', 'files.img', 'stats-dump']) {
      const f = img(counter, prefix);
      const r = await runCli(['info', f]);
      expect(r.status).toBe(0);
      expect(r.stdout.toString()).toBe(`${JSON.stringify(crit[f].info, null, 4)}\n`);
    }
  });

  describe('malformed input: exit 1, one error line naming file, record and offset, no stack trace', () => {
    test('a truncated image', async () => {
      const f = img(counter, 'core-');
      const bytes = fs.readFileSync(f);
      const cut = path.join(scratchDir('bad'), 'core-truncated.img');
      fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
      for (const argv of [['decode', '-i', cut], ['show', cut]]) {
        const r = await runCli(argv);
        expect(r.status).toBe(1);
        expect(r.stdout.length).toBe(0);
        expect(r.stderr).toMatch(/^Error: .*core-truncated\.img.*record 0.*offset \d+/);
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        noStackTrace(r.stderr);
      }
    });

    test('a raw pages image (crit refuses it too)', async () => {
      const r = await runCli(['decode', '-i', img(counter, 'pages-')]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^Error: .*pages-1\.img/);
      noStackTrace(r.stderr);
    });

    test('garbage, an empty file, a record length beyond the end', async () => {
      const dir = scratchDir('bad');
      const good = fs.readFileSync(img(counter, 'fs-'));
      const huge = Buffer.from(good);
      huge.writeUInt32LE(0x7ffffff0, 8); // the first record's length
      const cases: Record<string, Buffer> = {
        'garbage.img': Buffer.from('this is not an image at all'),
        'empty.img': Buffer.alloc(0),
        'huge-record.img': huge,
      };
      for (const [name, bytes] of Object.entries(cases)) {
        const f = path.join(dir, name);
        fs.writeFileSync(f, bytes);
        const r = await runCli(['decode', '-i', f]);
        expect({ name, status: r.status }).toEqual({ name, status: 1 });
        expect(r.stderr).toContain(name);
        noStackTrace(r.stderr);
      }
    });

    test('a file that does not exist, an output that cannot be written', async () => {
      const r = await runCli(['decode', '-i', '/nonexistent/x.img']);
      expect(r).toMatchObject({ status: 1, stderr: "Error: can't read /nonexistent/x.img: No such file or directory\n" });
      const w = await runCli(['decode', '-i', img(counter, 'fs-'), '-o', '/nonexistent/dir/out.json']);
      expect(w.status).toBe(1);
      expect(w.stderr).toContain("can't write /nonexistent/dir/out.json");
    });

    test('encode of invalid JSON, of JSON that is not an image, of an unknown magic', async () => {
      const dir = scratchDir('badjson');
      const cases: Record<string, string> = {
        'invalid.json': '{"magic": "FS", "entries": [',
        'array.json': '[1, 2, 3]',
        'unknown-magic.json': '{"magic": "NO_SUCH_MAGIC", "entries": []}',
        'bad-field.json': '{"magic": "FS", "entries": [{"cwd_id": "not a number", "root_id": 1, "umask": 18}]}',
      };
      for (const [name, text] of Object.entries(cases)) {
        const f = path.join(dir, name);
        fs.writeFileSync(f, text);
        const r = await runCli(['encode', '-i', f, '-o', path.join(dir, `${name}.img`)]);
        expect({ name, status: r.status }).toEqual({ name, status: 1 });
        expect(r.stderr).toMatch(/^Error: /);
        noStackTrace(r.stderr);
      }
      const binary = await runCli(['encode'], fs.readFileSync(img(counter, 'core-')));
      expect(binary.status).toBe(1);
      expect(binary.stderr).toContain('<stdin>');
    });
  });
});
