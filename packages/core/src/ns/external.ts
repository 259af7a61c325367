// CRIU's external resources, as given on the command line (`--external RES`, `--ext-mount-map
// KEY:VAL`, `--inherit-fd fd[N]:KEY`) or over RPC (external, ext_mnt, inherit_fd). Dump and
// restore read them through this one model so that the namespace code never parses strings.

/** What the caller declared external for a dump or a restore. */
export interface ExternalResources {
  /**
   * Mounts. Dump: mountpoint (as the dumped task sees it) → key written as ext_key.
   * Restore: key → host path bind-mounted in its place.
   */
  mounts: Map<string, string>;
  /** Network namespaces. Dump: namespace inode → key. Restore: key → (unused; the fd comes from inheritFds). */
  nets: Map<string, string>;
  /** Everything else, as given (e.g. `pipe:[123]`, `unix[456]`, `tty[...]`). */
  other: string[];
}

/** A descriptor of the caller (CRIU's --inherit-fd fd[N]:KEY): the object with that key is this fd. */
export interface InheritFd {
  key: string;
  fd: number;
}

export function emptyExternal(): ExternalResources {
  return { mounts: new Map(), nets: new Map(), other: [] };
}

/**
 * Parses CRIU-style external declarations: `mnt[INNER]:OUTER`, `net[INODE]:KEY`; anything else
 * is kept in `other`. A malformed `mnt[`/`net[` entry throws, naming it.
 */
export function parseExternal(list: readonly string[] | undefined, extMountMap?: ReadonlyArray<{ key: string; val: string }>): ExternalResources {
  const out = emptyExternal();
  for (const item of list ?? []) {
    const m = /^(mnt|net)\[([^\]]*)\](?::(.*))?$/.exec(item);
    if (!m) {
      if (/^(mnt|net)\[/.test(item)) throw new Error(`external resource '${item}' is malformed (want mnt[INNER]:OUTER or net[INODE]:KEY)`);
      out.other.push(item);
      continue;
    }
    const [, kind, inner, outer] = m;
    if (!inner) throw new Error(`external resource '${item}' has an empty [${kind === 'mnt' ? 'mountpoint or key' : 'inode'}]`);
    (kind === 'mnt' ? out.mounts : out.nets).set(inner, outer ?? '');
  }
  for (const { key, val } of extMountMap ?? []) out.mounts.set(key, val);
  return out;
}
