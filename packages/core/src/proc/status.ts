import * as fs from 'node:fs';
import { ProcParseError } from './maps.js';

/** The fields of /proc/PID/status the engine uses. */
export interface ProcStatus {
  name: string;
  state: string;
  umask?: number;
  tgid: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  uid: [number, number, number, number]; // real, effective, saved, fs
  gid: [number, number, number, number];
  groups: number[];
  nsPid: number[];
  nsPgid: number[];
  nsSid: number[];
  threads: number;
  sigPending: bigint;
  shdPending: bigint;
  sigBlocked: bigint;
  sigIgnored: bigint;
  sigCaught: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: number;
  seccomp: number;
}

export function parseStatus(text: string, file = 'status'): ProcStatus {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const need = (k: string): string => {
    const v = kv.get(k);
    if (v === undefined) throw new ProcParseError(file, 0, `no ${k} field`);
    return v;
  };
  const ints = (k: string): number[] => (kv.get(k) ?? '').split(/\s+/).filter(Boolean).map(Number);
  const hex = (k: string): bigint => BigInt('0x' + need(k));
  const four = (k: string): [number, number, number, number] => {
    const v = ints(k);
    if (v.length !== 4) throw new ProcParseError(file, 0, `${k} has ${v.length} values`);
    return [v[0], v[1], v[2], v[3]];
  };
  return {
    name: kv.get('Name') ?? '',
    state: need('State').charAt(0),
    umask: kv.has('Umask') ? parseInt(need('Umask'), 8) : undefined,
    tgid: Number(need('Tgid')), pid: Number(need('Pid')), ppid: Number(need('PPid')),
    tracerPid: Number(need('TracerPid')),
    uid: four('Uid'), gid: four('Gid'), groups: ints('Groups'),
    nsPid: ints('NSpid'), nsPgid: ints('NSpgid'), nsSid: ints('NSsid'),
    threads: Number(need('Threads')),
    sigPending: hex('SigPnd'), shdPending: hex('ShdPnd'), sigBlocked: hex('SigBlk'),
    sigIgnored: hex('SigIgn'), sigCaught: hex('SigCgt'),
    capInh: hex('CapInh'), capPrm: hex('CapPrm'), capEff: hex('CapEff'), capBnd: hex('CapBnd'), capAmb: hex('CapAmb'),
    noNewPrivs: Number(kv.get('NoNewPrivs') ?? 0), seccomp: Number(kv.get('Seccomp') ?? 0),
  };
}

export function readStatus(pid: number, tid = pid): ProcStatus {
  const file = tid === pid ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`;
  return parseStatus(fs.readFileSync(file, 'latin1'), file);
}
