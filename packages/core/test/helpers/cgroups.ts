/** Test cgroups below the test's own cgroup (v1 pids when mounted, and cgroup2), removed after the file's tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cgroupMounts, taskCgroups, type CgroupMount } from '../../src/cgroups/hierarchy';
import { waitFor } from './victims';

export interface TestCgroups {
  /** The hierarchies used (their names as /proc/PID/cgroup shows them). */
  used: CgroupMount[];
  /** A unique prefix for this process's cgroups. */
  tag: string;
  /** The cgroup path (absolute in the hierarchy) and host directory of `rel` below our own cgroup. */
  dirIn(m: CgroupMount, rel: string): { cg: string; dir: string };
  /** Makes `rel` (and its parents) in every used hierarchy. */
  make(rel: string): void;
  /** Removes a directory made (waits for it to empty). */
  remove(dir: string): Promise<void>;
  /** Puts `pid` into `rel` in every used hierarchy. */
  enter(pid: number, rel: string): void;
  /** `pid`'s cgroup in each used hierarchy, as "name:path" lines to compare. */
  where(pid: number): string[];
  /** What where() shows for a task in `rel`. */
  expected(rel: string): string[];
}

/** Registers an afterAll that removes every directory made (deepest first). */
export function testCgroups(name: string): TestCgroups {
  const mounts = cgroupMounts();
  const own = taskCgroups('self');
  const used = [mounts.find((m) => !m.v2 && m.cnames.includes('pids')), mounts.find((m) => m.v2)].filter((m): m is CgroupMount => m !== undefined && own.has(m.name));
  const tag = `criu-ts-${name}-${process.pid}`;
  const made: string[] = [];
  const label = (m: CgroupMount) => m.name || 'cgroup2';
  const t: TestCgroups = {
    used,
    tag,
    dirIn: (m, rel) => {
      const cg = path.posix.join(own.get(m.name)!, rel);
      return { cg, dir: path.join(m.mountPoint, path.posix.relative(m.root, cg)) };
    },
    make: (rel) => {
      for (const m of used) {
        const { dir } = t.dirIn(m, rel);
        fs.mkdirSync(dir, { recursive: true });
        made.push(dir);
      }
    },
    remove: async (dir) => {
      await waitFor(`${dir} to empty`, () => {
        try {
          fs.rmdirSync(dir);
          return true;
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === 'ENOENT';
        }
      }, 10_000);
    },
    enter: (pid, rel) => {
      for (const m of used) fs.writeFileSync(path.join(t.dirIn(m, rel).dir, 'cgroup.procs'), `${pid}`);
    },
    where: (pid) => {
      const now = taskCgroups(pid);
      return used.map((m) => `${label(m)}:${now.get(m.name)}`);
    },
    expected: (rel) => used.map((m) => `${label(m)}:${t.dirIn(m, rel).cg}`),
  };
  beforeAll(() => {
    if (!used.length) throw new Error('no cgroup hierarchy to test with (neither v1 pids nor cgroup2 is mounted)');
  });
  afterAll(async () => {
    for (const d of [...made].sort((a, b) => b.length - a.length)) await t.remove(d).catch(() => undefined);
  });
  return t;
}
