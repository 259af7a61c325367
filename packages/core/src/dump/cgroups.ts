// cgroup.img as CRIU writes it, membership only: the cgroup sets of the dumped tasks (one set =
// the cgroup of a task in every hierarchy), the controllers with the directories those sets
// use, and the set of each task (core-N.img tc.cg_set). Set 1 is the dumper's own set
// (inventory root_cg_set): it is not written, and a task in it is restored where the restorer
// is. Cgroup properties (limits etc.) are not saved.
import * as fs from 'node:fs';
import type { Msg } from '@criu/images';
import { cgroupMounts, dirOf, mountOf, taskCgroups } from '../cgroups/hierarchy.js';
import type { Logger } from '../util/log.js';

export const ROOT_CG_SET = 1;

export interface CgroupDump {
  /** pid → cg_set id for core-N.img */
  setOf: Map<number, number>;
  /** the cgroup.img record */
  entry: Msg;
}

const keyOf = (m: Map<string, string>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}:${v}`).join('\n');

/** Reads the cgroups of the (frozen) tasks; a task that vanished keeps the dumper's set. */
export function dumpCgroups(pids: number[], log: Logger): CgroupDump {
  const own = taskCgroups('self');
  const ids = new Map<string, number>([[keyOf(own), ROOT_CG_SET]]);
  const sets: Array<{ id: number; cg: Map<string, string> }> = [];
  const setOf = new Map<number, number>();
  for (const pid of pids) {
    let cg: Map<string, string>;
    try {
      cg = taskCgroups(pid);
    } catch {
      setOf.set(pid, ROOT_CG_SET);
      continue;
    }
    const k = keyOf(cg);
    let id = ids.get(k);
    if (id === undefined) {
      id = ids.size + 1;
      ids.set(k, id);
      sets.push({ id, cg });
      log.info(`cgroups: set ${id}: ${[...cg.entries()].map(([n, p]) => `${n || '(v2)'}=${p}`).join(' ')}`);
    }
    setOf.set(pid, id);
  }
  const mounts = cgroupMounts();
  // hierarchy → the directories the written sets use
  const dirs = new Map<string, Set<string>>();
  for (const s of sets) for (const [name, p] of s.cg) (dirs.get(name) ?? dirs.set(name, new Set()).get(name)!).add(p);
  const controllers: Msg[] = [];
  for (const [name, paths] of dirs) {
    const m = mountOf(mounts, name);
    controllers.push({
      cnames: name === '' ? [''] : name.split(','),
      dirs: [...paths].sort().map((p) => {
        const entry: Msg = { dir_name: p.replace(/^\/+/, ''), children: [], properties: [] };
        const d = m && dirOf(m, p);
        if (d) {
          try {
            const st = fs.statSync(d);
            entry.dir_perms = { mode: st.mode, uid: st.uid, gid: st.gid };
          } catch { /* gone meanwhile: no perms */ }
        }
        return entry;
      }),
      // CRIU marks every v1 hierarchy so; on v2 it is the cgroup.type of the directory.
      is_threaded: name !== '',
    });
  }
  return {
    setOf,
    entry: {
      sets: sets.map((s) => ({ id: s.id, ctls: [...s.cg.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([n, p]) => ({ name: n, path: p })) })),
      controllers,
    },
  };
}
