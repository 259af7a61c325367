// CRIU image magics as crit names them (pycriu/images/magic.py), the first
// ("common"/"service") magic that precedes them, how the records of each image
// are laid out, and the file names CRIU gives each image (criu/image-desc.c).

/** First u32 of every image except inventory and raw ones. */
export const IMG_COMMON_MAGIC = 0x54564319;
/** First u32 of service files: stats-* and irmap-cache. */
export const IMG_SERVICE_MAGIC = 0x55105940;
/** Raw images (pages-*.img, ...) carry no magic at all. */
export const RAW_IMAGE_MAGIC = 0;

/** Extra bytes that follow a record, and which record field sizes them. */
export type ExtraKind =
  | 'pipe-data' // pipe_data_entry.bytes raw bytes (pipes-data, fifo-data)
  | 'sk-queue' // sk_packet_entry.length raw bytes
  | 'tcp-queues' // tcp_stream_entry.inq_len then outq_len raw bytes
  | 'bpfmap-data' // bpfmap_data_entry.keys_bytes + values_bytes raw bytes
  | 'ipc-shm' // ipc_shm_entry.size bytes, padded to 4
  | 'ipc-sem' // ipc_sem_entry.nsems u16 values, padded to 8
  | 'ipc-msg'; // ipc_msg_entry.qnum x (u32-framed ipc_msg + msize bytes padded to 8)

/** How the records after the header are organised. */
export type ImageLayout =
  | { kind: 'records'; message: string; extra?: ExtraKind }
  /** pagemap_head, then pagemap_entry records */
  | { kind: 'pagemap' }
  /** ghost_file_entry, then either the file data to EOF or ghost_chunk_entry+data records */
  | { kind: 'ghost-file' };

export type HeaderKind = 'common' | 'service' | 'inventory';

export interface MagicInfo {
  /** crit's name, e.g. 'CORE'. */
  name: string;
  value: number;
  /** Which first magic CRIU writes before `value`. */
  header: HeaderKind;
  /** Record layout; undefined when neither crit nor this package can decode the image. */
  layout?: ImageLayout;
  /** True when crit itself has a handler for this magic (crit decode works on it). */
  crit: boolean;
}

const rec = (message: string, extra?: ExtraKind): ImageLayout => (extra ? { kind: 'records', message, extra } : { kind: 'records', message });

// [name, value, layout (undefined = no handler), crit has a handler]
const TABLE: Array<[string, number, ImageLayout | undefined, boolean]> = [
  ['INVENTORY', 0x58313116, rec('inventory_entry'), true],
  ['PSTREE', 0x50273030, rec('pstree_entry'), true],
  ['FDINFO', 0x56213732, rec('fdinfo_entry'), true],
  ['PAGEMAP', 0x56084025, { kind: 'pagemap' }, true],
  ['CORE', 0x55053847, rec('core_entry'), true],
  ['IDS', 0x54432030, rec('task_kobj_ids_entry'), true],
  ['VMAS', 0x54123737, rec('vma_entry'), true],
  ['PIPES', 0x56513555, rec('pipe_entry'), true],
  ['PIPES_DATA', 0x56453709, rec('pipe_data_entry', 'pipe-data'), true],
  ['FIFO', 0x58364939, rec('fifo_entry'), true],
  ['FIFO_DATA', 0x59333054, rec('pipe_data_entry', 'pipe-data'), true],
  ['SIGACT', 0x55344201, rec('sa_entry'), true],
  ['UNIXSK', 0x54373943, rec('unix_sk_entry'), true],
  ['INETSK', 0x56443851, rec('inet_sk_entry'), true],
  ['PACKETSK', 0x60454618, rec('packet_sock_entry'), true],
  ['ITIMERS', 0x57464056, rec('itimer_entry'), true],
  ['POSIX_TIMERS', 0x52603957, rec('posix_timer_entry'), true],
  ['SK_QUEUES', 0x56264026, rec('sk_packet_entry', 'sk-queue'), true],
  ['UTSNS', 0x54473203, rec('utsns_entry'), true],
  ['CREDS', 0x54023547, rec('creds_entry'), true],
  ['IPC_VAR', 0x53115007, rec('ipc_var_entry'), true],
  ['IPCNS_SHM', 0x46283044, rec('ipc_shm_entry', 'ipc-shm'), true],
  ['IPCNS_MSG', 0x55453737, rec('ipc_msg_entry', 'ipc-msg'), true],
  ['IPCNS_SEM', 0x59573019, rec('ipc_sem_entry', 'ipc-sem'), true],
  ['REG_FILES', 0x50363636, rec('reg_file_entry'), true],
  ['EXT_FILES', 0x59255641, rec('ext_file_entry'), true],
  ['FS', 0x51403912, rec('fs_entry'), true],
  ['MM', 0x57492820, rec('mm_entry'), true],
  ['REMAP_FPATH', 0x59133954, rec('remap_file_path_entry'), true],
  ['GHOST_FILE', 0x52583605, { kind: 'ghost-file' }, true],
  ['TCP_STREAM', 0x51465506, rec('tcp_stream_entry', 'tcp-queues'), true],
  ['EVENTFD_FILE', 0x44523722, rec('eventfd_file_entry'), true],
  ['EVENTPOLL_FILE', 0x45023858, rec('eventpoll_file_entry'), true],
  ['EVENTPOLL_TFD', 0x44433746, rec('eventpoll_tfd_entry'), true],
  ['SIGNALFD', 0x57323820, rec('signalfd_entry'), true],
  ['INOTIFY_FILE', 0x48424431, rec('inotify_file_entry'), true],
  ['INOTIFY_WD', 0x54562009, rec('inotify_wd_entry'), true],
  ['MNTS', 0x55563928, rec('mnt_entry'), true],
  ['NETDEV', 0x57373951, rec('net_device_entry'), true],
  ['NETNS', 0x55933752, rec('netns_entry'), true],
  ['TTY_FILES', 0x59433025, rec('tty_file_entry'), true],
  ['TTY_INFO', 0x59453036, rec('tty_info_entry'), true],
  ['TTY_DATA', 0x59413026, rec('tty_data_entry'), true],
  ['FILE_LOCKS', 0x54323616, rec('file_lock_entry'), true],
  ['RLIMIT', 0x57113925, rec('rlimit_entry'), true],
  ['FANOTIFY_FILE', 0x55096122, rec('fanotify_file_entry'), true],
  ['FANOTIFY_MARK', 0x56506035, rec('fanotify_mark_entry'), true],
  // Legacy signal-s-/signal-p- images; crit has no handler.
  ['SIGNAL', 0x59255647, rec('siginfo_entry'), false],
  ['NETLINK_SK', 0x58005614, rec('netlink_sk_entry'), true],
  ['NS_FILES', 0x61394011, rec('ns_file_entry'), true],
  ['TUNFILE', 0x57143751, rec('tunfile_entry'), true],
  ['CGROUP', 0x59383330, rec('cgroup_entry'), true],
  ['TIMERFD', 0x50493712, rec('timerfd_entry'), true],
  ['CPUINFO', 0x61404013, rec('cpuinfo_entry'), true],
  ['USERNS', 0x55474906, rec('userns_entry'), true],
  ['SECCOMP', 0x64413049, rec('seccomp_entry'), true],
  ['BINFMT_MISC', 0x67343323, rec('binfmt_misc_entry'), false],
  ['AUTOFS', 0x49353943, rec('autofs_entry'), true],
  ['FILES', 0x56303138, rec('file_entry'), true],
  ['MEMFD_INODE', 0x48453499, rec('memfd_inode_entry'), true],
  ['TIMENS', 0x43114433, rec('timens_entry'), true],
  ['PIDNS', 0x61157326, rec('pidns_entry'), true],
  ['BPFMAP_FILE', 0x57506142, rec('bpfmap_file_entry'), true],
  ['BPFMAP_DATA', 0x64324033, rec('bpfmap_data_entry', 'bpfmap-data'), true],
  ['APPARMOR', 0x59423047, rec('apparmor_entry'), true],
  // A file type tag only; CRIU writes no image with it.
  ['PIDFD', 0x54435556, undefined, false],
  ['STATS', 0x57093306, rec('stats_entry'), true],
  ['IRMAP_CACHE', 0x57004059, rec('irmap_cache_entry'), true],
  // criu.kdat cache: a raw C struct, not protobuf.
  ['KDAT', 0x57023458, undefined, false],
];

function headerOf(name: string): HeaderKind {
  if (name === 'INVENTORY') return 'inventory';
  if (name === 'STATS' || name === 'IRMAP_CACHE') return 'service';
  return 'common';
}

export const MAGICS: readonly MagicInfo[] = TABLE.map(([name, value, layout, crit]) => ({ name, value, header: headerOf(name), layout, crit }));

const byName = new Map<string, MagicInfo>(MAGICS.map((m) => [m.name, m]));
const byValue = new Map<number, MagicInfo>(MAGICS.map((m) => [m.value, m]));

/** Look a magic up by crit name ('CORE'); undefined if unknown. */
export function magicByName(name: string): MagicInfo | undefined {
  return byName.get(name);
}

/** Look a magic up by its u32 value; undefined if unknown. */
export function magicByValue(value: number): MagicInfo | undefined {
  return byValue.get(value >>> 0);
}

/** Message type names used by a layout, in the order they may appear. */
export function layoutMessages(layout: ImageLayout): string[] {
  switch (layout.kind) {
    case 'records':
      return layout.extra === 'ipc-msg' ? [layout.message, 'ipc_msg'] : [layout.message];
    case 'pagemap':
      return ['pagemap_head', 'pagemap_entry'];
    case 'ghost-file':
      return ['ghost_file_entry', 'ghost_chunk_entry'];
  }
}
