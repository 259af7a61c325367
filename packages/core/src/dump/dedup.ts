/**
 * --auto-dedup: pages a dump saved again no longer need their older copies in the parent
 * images; their ranges are punched out of the parents' pages files (the files keep their size,
 * so pagemap offsets stay right), down the whole chain.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sys } from '@criu/sys';
import { decodeImageEntries, pageRuns, PE_PARENT, PE_PRESENT } from '@criu/images';

const FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
const MAX_DEPTH = 64;

export interface DedupResult { bytesPunched: number }

/** Punches the ranges [vaddr, +nrPages) out of the parent chain of `dir` for task `pid`. */
export function dedupParents(dir: string, pid: number, ranges: Array<{ vaddr: bigint; nrPages: number }>, pageSize: number): DedupResult {
  const out = { bytesPunched: 0 };
  let want = ranges;
  let at = dir;
  for (let depth = 0; depth < MAX_DEPTH && want.length; depth++) {
    const link = path.join(at, 'parent');
    if (!fs.existsSync(link)) break;
    at = fs.realpathSync(link);
    const pmFile = path.join(at, `pagemap-${pid}.img`);
    if (!fs.existsSync(pmFile)) break;
    const pm = decodeImageEntries(fs.readFileSync(pmFile), { file: pmFile }).entries;
    const head = pm[0]?.message as { pages_id?: number } | undefined;
    const runs = pageRuns(pm, pageSize);
    const ps = BigInt(pageSize);
    const punches: Array<[number, number]> = [];
    const deeper: Array<{ vaddr: bigint; nrPages: number }> = [];
    let i = 0;
    for (const w of [...want].sort((a, b) => (a.vaddr < b.vaddr ? -1 : 1))) {
      const end = w.vaddr + BigInt(w.nrPages) * ps;
      while (i > 0 && runs[i - 1].vaddr + BigInt(runs[i - 1].nrPages) * ps > w.vaddr) i--;
      for (let k = i; k < runs.length && runs[k].vaddr < end; k++) {
        const r = runs[k];
        const rEnd = r.vaddr + BigInt(r.nrPages) * ps;
        const s = r.vaddr > w.vaddr ? r.vaddr : w.vaddr;
        const e = rEnd < end ? rEnd : end;
        if (s >= e) continue;
        if (r.flags & PE_PRESENT) punches.push([r.offset! + Number((s - r.vaddr) / ps) * pageSize, Number((e - s) / ps) * pageSize]);
        else if (r.flags & PE_PARENT) deeper.push({ vaddr: s, nrPages: Number((e - s) / ps) });
      }
    }
    if (punches.length && head?.pages_id !== undefined) {
      const fd = fs.openSync(path.join(at, `pages-${head.pages_id}.img`), 'r+');
      try {
        for (const [off, len] of punches) {
          sys.syscall('fallocate', fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
          out.bytesPunched += len;
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    want = deeper;
  }
  return out;
}
