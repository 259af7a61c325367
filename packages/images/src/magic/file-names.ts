// CRIU's image file names (criu/image-desc.c) and which magic each carries.
// '%u'/'%lu'/'%d' are decimal ids, '%x' hexadecimal, '%s' a word (stats-dump).

export interface ImageFileKind {
  /** printf-style pattern as in CRIU, including '.img'. */
  pattern: string;
  /** crit magic name, or 'RAW' for headerless images. */
  magic: string;
  /** What the file holds, in a few words. */
  what: string;
}

export const IMAGE_FILES: readonly ImageFileKind[] = [
  { pattern: 'inventory.img', magic: 'INVENTORY', what: 'dump-wide settings' },
  { pattern: 'fdinfo-%u.img', magic: 'FDINFO', what: 'open fds of a files table' },
  { pattern: 'pagemap-%lu.img', magic: 'PAGEMAP', what: 'memory map of a task' },
  { pattern: 'pagemap-shmem-%lu.img', magic: 'PAGEMAP', what: 'memory map of a shared mapping' },
  { pattern: 'pagemap-secretmem-%lu.img', magic: 'PAGEMAP', what: 'memory map of a secretmem area' },
  { pattern: 'reg-files.img', magic: 'REG_FILES', what: 'regular files (old layout)' },
  { pattern: 'ext-files.img', magic: 'EXT_FILES', what: 'external files' },
  { pattern: 'ns-files.img', magic: 'NS_FILES', what: 'namespace files' },
  { pattern: 'eventfd.img', magic: 'EVENTFD_FILE', what: 'eventfds' },
  { pattern: 'eventpoll.img', magic: 'EVENTPOLL_FILE', what: 'epoll instances' },
  { pattern: 'eventpoll-tfd.img', magic: 'EVENTPOLL_TFD', what: 'epoll targets (old layout)' },
  { pattern: 'signalfd.img', magic: 'SIGNALFD', what: 'signalfds' },
  { pattern: 'inotify.img', magic: 'INOTIFY_FILE', what: 'inotify instances' },
  { pattern: 'inotify-wd.img', magic: 'INOTIFY_WD', what: 'inotify watches (old layout)' },
  { pattern: 'fanotify.img', magic: 'FANOTIFY_FILE', what: 'fanotify instances' },
  { pattern: 'fanotify-mark.img', magic: 'FANOTIFY_MARK', what: 'fanotify marks' },
  { pattern: 'core-%u.img', magic: 'CORE', what: 'task and thread state' },
  { pattern: 'ids-%u.img', magic: 'IDS', what: 'kernel object ids of a task' },
  { pattern: 'mm-%u.img', magic: 'MM', what: 'address space layout' },
  { pattern: 'vmas-%u.img', magic: 'VMAS', what: 'VMAs (old layout)' },
  { pattern: 'pipes.img', magic: 'PIPES', what: 'pipes (old layout)' },
  { pattern: 'pipes-data.img', magic: 'PIPES_DATA', what: 'data buffered in pipes' },
  { pattern: 'fifo.img', magic: 'FIFO', what: 'FIFOs (old layout)' },
  { pattern: 'fifo-data.img', magic: 'FIFO_DATA', what: 'data buffered in FIFOs' },
  { pattern: 'pstree.img', magic: 'PSTREE', what: 'process tree' },
  { pattern: 'sigacts-%u.img', magic: 'SIGACT', what: 'signal actions (old layout)' },
  { pattern: 'unixsk.img', magic: 'UNIXSK', what: 'unix sockets (old layout)' },
  { pattern: 'inetsk.img', magic: 'INETSK', what: 'inet sockets (old layout)' },
  { pattern: 'packetsk.img', magic: 'PACKETSK', what: 'packet sockets (old layout)' },
  { pattern: 'netlinksk.img', magic: 'NETLINK_SK', what: 'netlink sockets (old layout)' },
  { pattern: 'sk-queues.img', magic: 'SK_QUEUES', what: 'queued socket packets' },
  { pattern: 'itimers-%u.img', magic: 'ITIMERS', what: 'itimers (old layout)' },
  { pattern: 'posix-timers-%u.img', magic: 'POSIX_TIMERS', what: 'POSIX timers (old layout)' },
  { pattern: 'creds-%u.img', magic: 'CREDS', what: 'credentials (old layout)' },
  { pattern: 'utsns-%u.img', magic: 'UTSNS', what: 'UTS namespace' },
  { pattern: 'ipcns-var-%u.img', magic: 'IPC_VAR', what: 'IPC namespace sysctls' },
  { pattern: 'ipcns-shm-%u.img', magic: 'IPCNS_SHM', what: 'SysV shared memory' },
  { pattern: 'ipcns-msg-%u.img', magic: 'IPCNS_MSG', what: 'SysV message queues' },
  { pattern: 'ipcns-sem-%u.img', magic: 'IPCNS_SEM', what: 'SysV semaphores' },
  { pattern: 'fs-%u.img', magic: 'FS', what: 'cwd, root and umask' },
  { pattern: 'remap-fpath.img', magic: 'REMAP_FPATH', what: 'file path remaps' },
  { pattern: 'ghost-file-%x.img', magic: 'GHOST_FILE', what: 'contents of an unlinked file' },
  { pattern: 'memfd.img', magic: 'MEMFD_INODE', what: 'memfd inodes' },
  { pattern: 'tcp-stream-%x.img', magic: 'TCP_STREAM', what: 'TCP connection state and queues' },
  { pattern: 'mountpoints-%u.img', magic: 'MNTS', what: 'mount points' },
  { pattern: 'netdev-%u.img', magic: 'NETDEV', what: 'network devices' },
  { pattern: 'netns-%u.img', magic: 'NETNS', what: 'network namespace' },
  { pattern: 'ifaddr-%u.img', magic: 'RAW', what: 'interface addresses (ip addr save)' },
  { pattern: 'route-%u.img', magic: 'RAW', what: 'IPv4 routes' },
  { pattern: 'route6-%u.img', magic: 'RAW', what: 'IPv6 routes' },
  { pattern: 'rule-%u.img', magic: 'RAW', what: 'routing rules' },
  { pattern: 'iptables-%u.img', magic: 'RAW', what: 'iptables-save output' },
  { pattern: 'ip6tables-%u.img', magic: 'RAW', what: 'ip6tables-save output' },
  { pattern: 'nftables-%u.img', magic: 'RAW', what: 'nft ruleset' },
  { pattern: 'tmpfs-%u.tar.gz.img', magic: 'RAW', what: 'tmpfs contents' },
  { pattern: 'tmpfs-dev-%u.tar.gz.img', magic: 'RAW', what: 'devtmpfs contents' },
  { pattern: 'autofs-%u.img', magic: 'AUTOFS', what: 'autofs mount data' },
  { pattern: 'binfmt-misc.img', magic: 'BINFMT_MISC', what: 'binfmt_misc entries' },
  { pattern: 'tty.img', magic: 'TTY_FILES', what: 'ttys (old layout)' },
  { pattern: 'tty-info.img', magic: 'TTY_INFO', what: 'tty state' },
  { pattern: 'tty-data.img', magic: 'TTY_DATA', what: 'tty queued data' },
  { pattern: 'filelocks.img', magic: 'FILE_LOCKS', what: 'file locks' },
  { pattern: 'rlimit-%u.img', magic: 'RLIMIT', what: 'resource limits (old layout)' },
  { pattern: 'pages-%u.img', magic: 'RAW', what: 'page contents' },
  { pattern: 'pages-shmem-%ld.img', magic: 'RAW', what: 'shared page contents (old layout)' },
  { pattern: 'signal-s-%u.img', magic: 'SIGNAL', what: 'shared pending signals (old layout)' },
  { pattern: 'signal-p-%u.img', magic: 'SIGNAL', what: 'private pending signals (old layout)' },
  { pattern: 'tunfile.img', magic: 'TUNFILE', what: 'tun/tap files' },
  { pattern: 'cgroup.img', magic: 'CGROUP', what: 'cgroups' },
  { pattern: 'timerfd.img', magic: 'TIMERFD', what: 'timerfds (old layout)' },
  { pattern: 'cpuinfo.img', magic: 'CPUINFO', what: 'CPU features' },
  { pattern: 'seccomp.img', magic: 'SECCOMP', what: 'seccomp filters' },
  { pattern: 'userns-%u.img', magic: 'USERNS', what: 'user namespace id maps' },
  { pattern: 'netns-ct-%u.img', magic: 'RAW', what: 'conntrack entries' },
  { pattern: 'netns-exp-%u.img', magic: 'RAW', what: 'conntrack expectations' },
  { pattern: 'files.img', magic: 'FILES', what: 'all open files' },
  { pattern: 'timens-%u.img', magic: 'TIMENS', what: 'time namespace offsets' },
  { pattern: 'pidns-%u.img', magic: 'PIDNS', what: 'pid namespace' },
  { pattern: 'bpfmap-file.img', magic: 'BPFMAP_FILE', what: 'BPF map files' },
  { pattern: 'bpfmap-data.img', magic: 'BPFMAP_DATA', what: 'BPF map keys and values' },
  { pattern: 'apparmor.img', magic: 'APPARMOR', what: 'AppArmor namespaces and policies' },
  { pattern: 'stats-%s', magic: 'STATS', what: 'dump/restore statistics' },
  { pattern: 'irmap-cache', magic: 'IRMAP_CACHE', what: 'inotify path cache' },
];

function patternToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '%') {
      const rest = pattern.slice(i + 1);
      const m = /^(l?u|l?d|x|s)/.exec(rest);
      if (!m) throw new Error(`bad pattern ${pattern}`);
      const conv = m[1];
      re += conv === 'x' ? '[0-9a-f]+' : conv === 's' ? '[a-z]+' : conv.endsWith('d') ? '-?[0-9]+' : '[0-9]+';
      i += m[1].length;
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

const compiled = IMAGE_FILES.map((k) => ({ kind: k, re: patternToRegExp(k.pattern) }));

/**
 * Which image kind a file name (basename) is, e.g. 'core-42.img' -> CORE,
 * 'pages-1.img' -> RAW. Undefined for names CRIU does not use.
 * More specific patterns win ('pagemap-shmem-1.img' is not 'pagemap-%lu').
 */
export function imageFileKind(fileName: string): ImageFileKind | undefined {
  const base = fileName.slice(fileName.lastIndexOf('/') + 1);
  for (const { kind, re } of compiled) if (re.test(base)) return kind;
  return undefined;
}

/** Build a file name from a pattern: imageFileName('core-%u.img', 42) -> 'core-42.img'. */
export function imageFileName(pattern: string, id?: number | bigint | string): string {
  return pattern.replace(/%(l?u|l?d|x|s)/, (_m, conv: string) => {
    if (id === undefined) throw new Error(`pattern ${pattern} needs an id`);
    if (conv === 'x') return BigInt(id).toString(16);
    return String(id);
  });
}
