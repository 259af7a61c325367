// CRIU's own commands. Each is a row here from the start so that its options parse and its
// name is known; `run` is filled in as the engine grows.
import type { CommandSpec } from './types.js';

const todo = (name: string, summary: string, usage = '[<options>]'): CommandSpec => ({ name, summary, usage, options: [] });

export const CRIU_COMMANDS: readonly CommandSpec[] = [
  todo('dump', 'checkpoint a process/tree identified by pid', '-t PID [<options>]'),
  todo('pre-dump', 'pre-dump task(s) minimizing their frozen time', '-t PID [<options>]'),
  todo('restore', 'restore a process/tree'),
  todo('check', 'checks whether the kernel support is up-to-date', '[--feature FEAT]'),
  todo('page-server', 'launch page server'),
  todo('service', 'launch service'),
  todo('swrk', 'serve RPC requests on a socket (used by runc)', 'FD'),
  todo('dedup', 'remove duplicates in memory dump'),
  todo('lazy-pages', 'serve pages of a lazy restore', '-D DIR [<options>]'),
  todo('cpuinfo', 'cpuinfo dump: write cpu information; cpuinfo check: validate it', 'dump|check'),
];
