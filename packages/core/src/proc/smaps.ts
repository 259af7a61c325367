import * as fs from 'node:fs';

/** VmFlags of each mapping, keyed by start address (the two-letter codes of proc(5)). */
export function parseSmapsVmFlags(text: string): Map<bigint, Set<string>> {
  const out = new Map<bigint, Set<string>>();
  let current: bigint | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line);
    if (head) {
      current = BigInt('0x' + head[1]);
      continue;
    }
    if (current !== undefined && line.startsWith('VmFlags:')) {
      out.set(current, new Set(line.slice(8).trim().split(/\s+/).filter(Boolean)));
    }
  }
  return out;
}

export function readSmapsVmFlags(pid: number): Map<bigint, Set<string>> {
  return parseSmapsVmFlags(fs.readFileSync(`/proc/${pid}/smaps`, 'latin1'));
}
