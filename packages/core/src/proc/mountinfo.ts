import * as fs from 'node:fs';

export interface MountInfo {
  mntId: number;
  parentId: number;
  /** st_dev as "major:minor". */
  dev: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  /** Filesystem options after " - TYPE SOURCE " (e.g. "rw,size=1024k"). */
  superOptions: string;
  /** Optional fields (shared:N, master:N, propagate_from:N, unbindable). */
  optional: string[];
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const l = left.split(' ');
    const r = (right ?? '').split(' ');
    out.push({ mntId: Number(l[0]), parentId: Number(l[1]), dev: l[2], root: unescape(l[3]), mountPoint: unescape(l[4]), options: l[5], fsType: r[0], source: unescape(r[1] ?? ''), superOptions: r[2] ?? '', optional: l.slice(6) });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function readMountinfo(pid: number): MountInfo[] {
  return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'latin1'));
}
