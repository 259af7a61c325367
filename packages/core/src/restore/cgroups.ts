// Cgroup membership at restore: every restored task goes into the cgroups of its set (cgroup.img,
// core-N.img thread_core.cg_set), written from outside through our own cgroup mounts
// (DIR/cgroup.procs). A task whose set is the dumper's own (inventory root_cg_set) stays where
// the restorer is, as CRIU does. --cgroup-root moves a hierarchy's dumped top directory. In soft
// mode a missing directory is created (and removed again if the restore fails).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readImageFile, type Msg } from '@criu/images';
import { cgroupMounts, dirOf, mountOf, type CgroupMount } from '../cgroups/hierarchy.js';
import type { CgroupMode, CgroupRoot } from '../cgroups/mode.js';
import type { Logger } from '../util/log.js';
import { RestoreError } from './errors.js';

interface CgSet {
  id: number;
  ctls: Array<{ name: string; path: string }>;
}

export interface CgroupPlan {
  rootSet: number;
  sets: Map<number, CgSet>;
  /** hierarchy name → dumped directory → its properties (cpuset.cpus/mems are used for a created cpuset) */
  props: Map<string, Map<string, Map<string, string>>>;
  mode: CgroupMode;
}

const cnamesOf = (name: string) => (name === '' ? [''] : name.split(','));

/** The directory the dumped cgroup `p` of hierarchy `name` is restored to, with --cgroup-root applied. */
function rewrite(name: string, p: string, roots: CgroupRoot[], tops: Map<string, string>): string {
  const cn = cnamesOf(name);
  const root = roots.find((r) => r.controller !== undefined && cn.includes(r.controller)) ?? roots.find((r) => r.controller === undefined);
  if (!root) return p;
  const top = tops.get(name) ?? '/';
  if (top === '/') return path.posix.join(root.path, p);
  if (p === top || p.startsWith(`${top}/`)) return path.posix.join(root.path, p.slice(top.length));
  return p;
}

/**
 * Reads what the restore needs to know about cgroups (nothing when mode is 'ignore' or the tasks
 * are all in the dumper's set). Throws RestoreError naming the file and field of a bad record.
 */
export async function planCgroups(imagesDir: string, taskSets: Array<{ pid: number; set: number }>, mode: CgroupMode, roots: CgroupRoot[]): Promise<CgroupPlan | undefined> {
  if (mode === 'ignore') return undefined;
  let rootSet = 1;
  try {
    const inv = (await readImageFile(path.join(imagesDir, 'inventory.img'))).entries[0]?.message as Msg | undefined;
    if (inv?.root_cg_set !== undefined) rootSet = Number(inv.root_cg_set);
  } catch { /* reported by the image reader */ }
  const needed = taskSets.filter((t) => t.set !== 0 && t.set !== rootSet);
  if (!needed.length) return undefined;
  if (mode === 'props' || mode === 'full' || mode === 'strict') {
    throw new RestoreError('read-images', `cgroup mode ${mode} restores cgroup properties, which criu-ts does not do`, { file: 'cgroup.img', hint: 'use --manage-cgroups=soft (or none)' });
  }
  const file = path.join(imagesDir, 'cgroup.img');
  if (!fs.existsSync(file)) throw new RestoreError('read-images', `task ${needed[0].pid} is in cgroup set ${needed[0].set} but there is no cgroup.img`, { file: `core-${needed[0].pid}.img`, field: 'thread_core.cg_set' });
  const entry = (await readImageFile(file)).entries[0]?.message as Msg | undefined;
  if (!entry) throw new RestoreError('read-images', 'cgroup.img has no record', { file: 'cgroup.img' });
  const sets = new Map<number, CgSet>();
  for (const [i, s] of ((entry.sets as Msg[] | undefined) ?? []).entries()) {
    const ctls = ((s.ctls as Msg[] | undefined) ?? []).map((c, j) => {
      const p = String(c.path ?? '');
      if (!p.startsWith('/')) throw new RestoreError('read-images', `cgroup path '${p}' is not absolute`, { file: 'cgroup.img', record: 0, field: `sets[${i}].ctls[${j}].path` });
      return { name: String(c.name ?? ''), path: p };
    });
    sets.set(Number(s.id), { id: Number(s.id), ctls });
  }
  // The top directory of each hierarchy (what --cgroup-root replaces) and the saved properties.
  const tops = new Map<string, string>();
  const props = new Map<string, Map<string, Map<string, string>>>();
  for (const c of (entry.controllers as Msg[] | undefined) ?? []) {
    const name = ((c.cnames as string[] | undefined) ?? []).join(',');
    const dirs = (c.dirs as Msg[] | undefined) ?? [];
    if (dirs.length) tops.set(name, `/${String(dirs[0].dir_name ?? '')}`.replace(/\/+$/, '') || '/');
    const byDir = new Map<string, Map<string, string>>();
    const walk = (d: Msg, parent: string) => {
      const p = path.posix.join(parent, String(d.dir_name ?? ''));
      byDir.set(p, new Map(((d.properties as Msg[] | undefined) ?? []).map((x) => [String(x.name), String(x.value)])));
      for (const ch of (d.children as Msg[] | undefined) ?? []) walk(ch, p);
    };
    for (const d of dirs) walk(d, '/');
    props.set(name, byDir);
  }
  for (const t of needed) {
    if (!sets.has(t.set)) throw new RestoreError('read-images', `task ${t.pid} is in cgroup set ${t.set}, which cgroup.img does not have`, { file: `core-${t.pid}.img`, field: 'thread_core.cg_set' });
  }
  for (const s of sets.values()) {
    for (const c of s.ctls) {
      const to = rewrite(c.name, c.path, roots, tops);
      if (to !== c.path) {
        const hp = props.get(c.name);
        if (hp?.has(c.path) && !hp.has(to)) hp.set(to, hp.get(c.path)!);
        c.path = to;
      }
    }
  }
  return { rootSet, sets, props, mode };
}

/** Moves restored tasks into their cgroups; remembers the directories it made. */
export class CgroupMover {
  private readonly created: string[] = [];
  private readonly mounts: CgroupMount[] = cgroupMounts();

  constructor(private readonly plan: CgroupPlan, private readonly log: Logger) {}

  /** Puts task `pid` (its whole thread group) into the cgroups of set `setId`. */
  move(pid: number, setId: number): void {
    if (setId === 0 || setId === this.plan.rootSet) return;
    const set = this.plan.sets.get(setId)!;
    for (const c of set.ctls) {
      const m = mountOf(this.mounts, c.name);
      if (!m) {
        this.log.warn(`cgroups: task ${pid}: hierarchy ${c.name || 'cgroup2'} is not mounted here; it stays in its current cgroup there`);
        continue;
      }
      const dir = dirOf(m, c.path);
      if (!dir) throw new RestoreError('clone', `cgroup ${c.path} of hierarchy ${c.name || 'cgroup2'} is outside what ${m.mountPoint} shows (${m.root})`, { file: 'cgroup.img' });
      if (!fs.existsSync(dir)) {
        if (this.plan.mode !== 'soft') throw new RestoreError('clone', `cgroup ${dir} does not exist (cgroup mode ${this.plan.mode} does not create it)`, { file: 'cgroup.img', hint: 'create it, or restore with --manage-cgroups=soft' });
        this.mkdirs(m, dir, c.name);
      }
      try {
        fs.writeFileSync(path.join(dir, 'cgroup.procs'), `${pid}`);
      } catch (e) {
        throw new RestoreError('clone', `cannot move task ${pid} into cgroup ${dir}: ${(e as Error).message}`, { file: 'cgroup.img', cause: e });
      }
      this.log.info(`cgroups: task ${pid} -> ${dir}`);
    }
  }

  /** mkdir -p below the mount point; a new v1 cpuset gets its CPUs and memory nodes (it admits no task without). */
  private mkdirs(m: CgroupMount, dir: string, name: string): void {
    const missing: string[] = [];
    for (let d = dir; d !== m.mountPoint && !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      try {
        fs.mkdirSync(d);
      } catch (e) {
        throw new RestoreError('clone', `cannot create cgroup ${d}: ${(e as Error).message}`, { file: 'cgroup.img', cause: e });
      }
      this.created.push(d);
      this.log.info(`cgroups: created ${d}`);
      if (!m.v2 && m.cnames.includes('cpuset')) {
        const saved = this.plan.props.get(name)?.get(path.posix.join('/', path.relative(m.mountPoint, d)));
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          const v = saved?.get(f) ?? fs.readFileSync(path.join(path.dirname(d), f), 'utf8').trim();
          try {
            fs.writeFileSync(path.join(d, f), v);
          } catch (e) {
            throw new RestoreError('clone', `cannot set ${f} of the new cgroup ${d} to '${v}': ${(e as Error).message}`, { file: 'cgroup.img', cause: e });
          }
        }
      }
    }
  }

  /** After a failed restore (its tasks killed): removes the directories made, deepest first. */
  cleanup(): void {
    for (const d of this.created.splice(0).reverse()) {
      // The killed tasks leave the cgroup once reaped: a few tries.
      for (let i = 0; ; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i >= 40) {
            this.log.error(`cgroups: cannot remove ${d}: ${(e as Error).message}`);
            break;
          }
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        }
      }
    }
  }
}
