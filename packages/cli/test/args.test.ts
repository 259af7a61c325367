import { CRIU_OPTIONS } from '../src/args/options';
import { parseCommandLine } from '../src/args/parse';
import { CliUsageError } from '../src/errors';
import { parseArgs } from '../src/main';

describe('CRIU-style command line parsing', () => {
  test('dump with the options runc and users pass', () => {
    const a = parseArgs(['dump', '-t', '1234', '-D', '/tmp/img', '-o', 'dump.log', '-v4', '--shell-job', '--leave-running']);
    expect(a.command).toBe('dump');
    expect(a.positionals).toEqual([]);
    expect(a.options).toEqual({
      tree: 1234,
      'images-dir': '/tmp/img',
      'log-file': 'dump.log',
      verbosity: 4,
      'shell-job': true,
      'leave-running': true,
    });
  });

  test('options before the command, attached and = forms, short clusters', () => {
    const a = parseArgs(['-D/tmp/x', '--tree=42', '-Rj', 'dump', '--log-file', 'l']);
    expect(a.command).toBe('dump');
    expect(a.options).toMatchObject({ 'images-dir': '/tmp/x', tree: 42, 'leave-running': true, 'shell-job': true, 'log-file': 'l' });
  });

  test('verbosity: bare -v counts up from the default level 2, -vNUM and --verbosity=NUM set it', () => {
    expect(parseArgs(['check', '-v']).options.verbosity).toBe(3);
    expect(parseArgs(['check', '-vv']).options.verbosity).toBe(4);
    expect(parseArgs(['check', '-v0']).options.verbosity).toBe(0);
    expect(parseArgs(['check', '--verbosity=1']).options.verbosity).toBe(1);
    expect(() => parseArgs(['check', '-vx'])).toThrow(CliUsageError);
  });

  test('--no-<flag> negates a boolean option', () => {
    expect(parseArgs(['dump', '--display-stats', '--no-display-stats']).options['display-stats']).toBe(false);
    expect(parseArgs(['restore', '--no-shell-job']).options['shell-job']).toBe(false);
  });

  test('repeatable options collect a list', () => {
    const a = parseArgs(['dump', '--external', 'tty[1:2]', '--external', 'unix[7]', '--feature', 'x']);
    expect(a.options.external).toEqual(['tty[1:2]', 'unix[7]']);
  });

  test('words after -- are kept apart (for --exec-cmd)', () => {
    const a = parseArgs(['restore', '--exec-cmd', '--', 'sh', '-c', 'true']);
    expect(a.options['exec-cmd']).toBe(true);
    expect(a.rest).toEqual(['sh', '-c', 'true']);
    expect(a.positionals).toEqual([]);
  });

  test('-o means --out for decode/encode and --log-file elsewhere', () => {
    expect(parseArgs(['decode', '-i', 'a.img', '-o', 'a.json', '--pretty']).options).toEqual({ in: 'a.img', out: 'a.json', pretty: true });
    expect(parseArgs(['-o', 'x.json', 'encode', '-i', 'x']).options).toEqual({ out: 'x.json', in: 'x' });
    expect(parseArgs(['dump', '-o', 'd.log']).options).toEqual({ 'log-file': 'd.log' });
  });

  test('options of another command are refused', () => {
    expect(() => parseArgs(['dump', '--pretty'])).toThrow("unrecognized option '--pretty'");
    expect(() => parseArgs(['dump', '-i', 'x'])).toThrow("invalid option -- 'i'");
  });

  test('errors: unknown option, missing value, bad number, value on a flag', () => {
    expect(() => parseArgs(['dump', '--bogus'])).toThrow("unrecognized option '--bogus'");
    expect(() => parseArgs(['dump', '-t'])).toThrow("option requires an argument -- 't'");
    expect(() => parseArgs(['dump', '--images-dir'])).toThrow("option '--images-dir' requires an argument");
    expect(() => parseArgs(['dump', '-t', 'abc'])).toThrow("expects a number, got 'abc'");
    expect(() => parseArgs(['dump', '--shell-job=1'])).toThrow("doesn't allow an argument");
    expect(() => parseArgs(['dump', '--no-tree'])).toThrow("unrecognized option '--no-tree'");
  });

  test('positionals after the command word', () => {
    expect(parseArgs(['cpuinfo', 'dump', '-D', 'd'])).toMatchObject({ command: 'cpuinfo', positionals: ['dump'] });
    expect(parseArgs(['swrk', '3'])).toMatchObject({ command: 'swrk', positionals: ['3'] });
    expect(parseArgs(['show', 'core-1.img', '--nopl'])).toMatchObject({ command: 'show', positionals: ['core-1.img'], options: { nopl: true } });
  });

  test('a new option is one table row', () => {
    const extra = [{ key: 'widget', long: 'widget', short: 'w', arity: 'required' as const, kind: 'int' as const, help: 'x' }];
    const a = parseCommandLine(['frob', '-w', '7', '-t', '1'], () => [CRIU_OPTIONS, extra], [CRIU_OPTIONS, extra]);
    expect(a).toEqual({ command: 'frob', positionals: [], options: { widget: 7, tree: 1 }, rest: [] });
  });

  test('every table row has a unique long and short name', () => {
    const longs = CRIU_OPTIONS.map((o) => o.long);
    const shorts = CRIU_OPTIONS.map((o) => o.short).filter(Boolean);
    expect(new Set(longs).size).toBe(longs.length);
    expect(new Set(shorts).size).toBe(shorts.length);
  });
});
