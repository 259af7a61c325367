import * as fs from 'node:fs';
import { ProcParseError } from './maps.js';

/** The fields of /proc/PID/stat the engine uses (proc(5) numbering in comments). */
export interface ProcStat {
  pid: number;
  comm: string;
  state: string;        // (3)
  ppid: number;         // (4)
  pgid: number;         // (5)
  sid: number;          // (6)
  flags: number;        // (9) PF_* flags
  nice: number;         // (19)
  numThreads: number;   // (20)
  startTime: bigint;    // (22) clock ticks after boot
  startCode: bigint;    // (26)
  endCode: bigint;      // (27)
  startStack: bigint;   // (28)
  exitSignal: number;   // (38)
  rtPriority: number;   // (40)
  policy: number;       // (41)
  startData: bigint;    // (45)
  endData: bigint;      // (46)
  startBrk: bigint;     // (47)
  argStart: bigint;     // (48)
  argEnd: bigint;       // (49)
  envStart: bigint;     // (50)
  envEnd: bigint;       // (51)
  exitCode: number;     // (52)
}

export function parseStat(text: string, file = 'stat'): ProcStat {
  // comm may hold spaces and parentheses: it ends at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new ProcParseError(file, 1, 'no (comm)');
  const rest = text.slice(close + 2).trim().split(' ');
  if (rest.length < 50) throw new ProcParseError(file, 1, `only ${rest.length + 2} fields`);
  const f = (n: number) => rest[n - 3]; // proc(5) field n
  const big = (n: number) => BigInt(f(n));
  const num = (n: number) => Number(f(n));
  return {
    pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), state: f(3),
    ppid: num(4), pgid: num(5), sid: num(6), flags: num(9), nice: num(19), numThreads: num(20),
    startTime: big(22), startCode: big(26), endCode: big(27), startStack: big(28), exitSignal: num(38),
    rtPriority: num(40), policy: num(41), startData: big(45), endData: big(46), startBrk: big(47), argStart: big(48),
    argEnd: big(49), envStart: big(50), envEnd: big(51), exitCode: num(52),
  };
}

export function readStat(pid: number, tid = pid): ProcStat {
  const file = tid === pid ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  return parseStat(fs.readFileSync(file, 'latin1'), file);
}
