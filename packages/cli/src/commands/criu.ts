// CRIU's own commands. Each is a row here from the start so that its options parse and its
// name is known; `run` is filled in as the engine grows.
import { runCpuinfo } from './cpuinfo.js';
import { runDump, runPreDump } from './dump.js';
import { runCheck } from './check.js';
import { runRestore } from './restore.js';
import { runPageServer } from './page-server.js';
import { runLazyPages } from './lazy-pages.js';
import type { CommandSpec } from './types.js';
import { runSwrk } from '../swrk/command.js';
import { runService } from '../swrk/service.js';

const todo = (name: string, summary: string, usage = '[<options>]'): CommandSpec => ({ name, summary, usage, options: [] });

export const CRIU_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'dump',
    summary: 'checkpoint a process/tree identified by pid',
    usage: '-t PID [<options>]',
    options: [],
    positionals: { min: 0, max: 0 },
    run: runDump,
  },
  { name: 'pre-dump', summary: 'pre-dump task(s) minimizing their frozen time', usage: '-t PID [<options>]', options: [], positionals: { min: 0, max: 0 }, run: runPreDump },
  {
    name: 'restore',
    summary: 'restore a process/tree',
    usage: '[<options>]',
    options: [],
    positionals: { min: 0, max: 0 },
    run: runRestore,
  },
  { name: 'check', summary: 'checks whether the kernel support is up-to-date', usage: '[--feature FEAT]', options: [], positionals: { min: 0, max: 0 }, run: runCheck },
  { name: 'page-server', summary: 'launch page server', usage: '[--address ADDR] [--port PORT] [-D DIR] [-d]', options: [], positionals: { min: 0, max: 0 }, run: runPageServer },
  { name: 'service', summary: 'launch service', usage: '[--address FILE] [-d] [--pidfile FILE]', options: [], positionals: { min: 0, max: 0 }, run: runService },
  { name: 'swrk', summary: 'serve RPC requests on a socket (used by runc)', usage: 'FD', options: [], positionals: { min: 1, max: 1 }, run: runSwrk },
  todo('dedup', 'remove duplicates in memory dump'),
  { name: 'lazy-pages', summary: 'serve pages of a lazy restore', usage: '-D DIR [--page-server --address ADDR --port PORT]', options: [], positionals: { min: 0, max: 0 }, run: runLazyPages },
  {
    name: 'cpuinfo',
    summary: 'cpuinfo dump: write cpu information; cpuinfo check: validate it',
    usage: 'dump|check [-D DIR]',
    options: [],
    positionals: { min: 1, max: 1 },
    run: runCpuinfo,
  },
];
