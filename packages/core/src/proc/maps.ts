import * as fs from 'node:fs';

/** One line of /proc/PID/maps. */
export interface MapsEntry {
  start: bigint;
  end: bigint;
  /** 'r', 'w', 'x' and 'p' (private) or 's' (shared), as the kernel prints them. */
  perms: string;
  offset: bigint;
  dev: string;
  inode: number;
  /** The path or pseudo-name ('[heap]', '[stack]', '[vdso]'...), '' for anonymous memory. */
  name: string;
}

export class ProcParseError extends Error {
  constructor(readonly file: string, readonly line: number, readonly reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'ProcParseError';
  }
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/;

export function parseMaps(text: string, file = 'maps'): MapsEntry[] {
  const out: MapsEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const m = MAPS_LINE.exec(line);
    if (!m) throw new ProcParseError(file, i + 1, `unexpected line: ${line}`);
    out.push({
      start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), perms: m[3], offset: BigInt('0x' + m[4]),
      dev: m[5], inode: Number(m[6]), name: m[7],
    });
  }
  return out;
}

export function readMaps(pid: number): MapsEntry[] {
  const file = `/proc/${pid}/maps`;
  return parseMaps(fs.readFileSync(file, 'latin1'), file);
}
