// CRIU's --manage-cgroups modes and --cgroup-root, as dump and restore options.

/**
 * ignore: cgroups are left alone (no cgroup.img at dump; no move at restore).
 * none: tasks go back into their cgroups, which must exist.
 * soft (CRIU's default): as none, but a missing cgroup is created.
 * props / full / strict: CRIU also restores cgroup properties; criu-ts saves none, so a restore
 * in these modes is refused.
 */
export type CgroupMode = 'ignore' | 'none' | 'props' | 'soft' | 'full' | 'strict';

export const CGROUP_MODES: readonly CgroupMode[] = ['ignore', 'none', 'props', 'soft', 'full', 'strict'];

export function parseCgroupMode(s: string): CgroupMode {
  const m = s.toLowerCase() as CgroupMode;
  if (!CGROUP_MODES.includes(m)) throw new Error(`unknown cgroup mode '${s}' (want one of ${CGROUP_MODES.join(', ')})`);
  return m;
}

/**
 * CRIU's --cgroup-root [CONTROLLER:]PATH: the restored cgroups of that hierarchy go below PATH
 * instead of where they were dumped (the dumped top directory is replaced by PATH). Without a
 * controller it applies to every hierarchy that has no root of its own; controller "" is the
 * cgroup2 hierarchy.
 */
export interface CgroupRoot {
  controller?: string;
  path: string;
}

export function parseCgroupRoot(s: string): CgroupRoot {
  const i = s.indexOf(':');
  // A path starts with '/': "name=systemd:/x" or "cpu:/x"; a bare "/x" has no controller.
  if (i < 0 || s.startsWith('/')) return { path: s };
  return { controller: s.slice(0, i), path: s.slice(i + 1) };
}
