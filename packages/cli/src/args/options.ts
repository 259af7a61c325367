// The option table: CRIU's command-line options (as `criu --help` of CRIU 4.1 lists them) plus
// the options of our image commands. The parser is driven entirely by these rows, so a new
// option is one more row.

/** How an option takes its value (getopt_long semantics, as CRIU uses them). */
export type OptionArity =
  /** a flag; long boolean flags also accept a `--no-` prefix when `negatable` */
  | 'none'
  /** needs a value: `-t PID`, `-tPID`, `--tree PID`, `--tree=PID` */
  | 'required'
  /** a value only when attached: `-v4`, `--verbosity=4`; bare `-v` counts */
  | 'optional';

/** How repeated occurrences and values are stored. */
export type OptionKind = 'flag' | 'string' | 'int' | 'list' | 'verbosity';

export interface OptionSpec {
  /** key in the parsed result (CRIU's long name) */
  key: string;
  long: string;
  short?: string;
  arity: OptionArity;
  kind: OptionKind;
  /** `--no-<long>` sets the flag to false */
  negatable?: boolean;
  /** value name in the help text */
  valueName?: string;
  help: string;
  /** extra long spellings of the same option */
  aliases?: string[];
}

const flag = (long: string, help: string, short?: string, key = long): OptionSpec => ({
  key,
  long,
  short,
  arity: 'none',
  kind: 'flag',
  negatable: true,
  help,
});
const str = (long: string, valueName: string, help: string, short?: string): OptionSpec => ({
  key: long,
  long,
  short,
  arity: 'required',
  kind: 'string',
  valueName,
  help,
});
const int = (long: string, valueName: string, help: string, short?: string): OptionSpec => ({
  key: long,
  long,
  short,
  arity: 'required',
  kind: 'int',
  valueName,
  help,
});
const list = (long: string, valueName: string, help: string, short?: string): OptionSpec => ({
  key: long,
  long,
  short,
  arity: 'required',
  kind: 'list',
  valueName,
  help,
});

/** Options every command accepts (CRIU parses them all before it looks at the command). */
export const CRIU_OPTIONS: readonly OptionSpec[] = [
  // generic
  int('tree', 'PID', 'checkpoint a process tree identified by PID', 't'),
  flag('restore-detached', 'detach after restore', 'd'),
  flag('restore-sibling', 'restore root task as sibling', 'S'),
  flag('leave-stopped', 'leave tasks in stopped state after checkpoint', 's'),
  flag('leave-running', 'leave tasks in running state after checkpoint', 'R'),
  str('images-dir', 'DIR', 'directory for image files', 'D'),
  str('pidfile', 'FILE', 'write root task, service or page-server pid to FILE'),
  str('work-dir', 'DIR', 'directory to cd and write logs/pidfiles/stats to', 'W'),
  { key: 'cpu-cap', long: 'cpu-cap', arity: 'optional', kind: 'string', valueName: 'CAP', help: 'CPU capabilities to write/check' },
  flag('exec-cmd', "execute the command specified after '--' on successful restore"),
  flag('freeze-cgroup', 'use cgroup freezer to collect processes'),
  flag('weak-sysctls', 'skip restoring sysctls that are not available'),
  flag('lazy-pages', 'restore pages on demand'),
  flag('stream', 'dump/restore images using criu-image-streamer'),
  flag('mntns-compat-mode', 'use mount engine in compatibility mode'),
  str('network-lock', 'METHOD', "network locking method: 'nftables' or 'iptables'"),
  flag('unprivileged', 'accept limitations when running as non-root'),
  // external and special resources
  list('external', 'RES', 'dump/restore objects from this list as external resources'),
  flag('tcp-established', 'checkpoint/restore established TCP connections'),
  flag('skip-in-flight', 'skip (ignore) in-flight TCP connections'),
  flag('tcp-close', 'restore established tcp connections in closed state'),
  str('root', 'PATH', 'change the root filesystem (when run in mount namespace)', 'r'),
  flag('evasive-devices', 'use any path to a device file if the original one is inaccessible'),
  flag('link-remap', 'allow one to link unlinked files back when possible'),
  str('ghost-limit', 'SIZE', 'limit max size of deleted file contents inside image'),
  flag('ghost-fiemap', 'enable dumping of deleted files using fiemap'),
  list('action-script', 'FILE', 'add an external action script'),
  flag('shell-job', 'allow one to dump and restore shell jobs', 'j'),
  flag('force-vdso-proxy', 'criu-ts: proxy the dumped vDSO even when the running one is the same'),
  flag('file-locks', 'handle file locks', 'l'),
  str('libdir', 'DIR', 'path to a plugin directory', 'L'),
  int('timeout', 'NUM', 'a timeout (in seconds) on collecting tasks during dump'),
  flag('force-irmap', 'force resolving names for inotify/fsnotify watches'),
  list('irmap-scan-path', 'FILE', 'add a path the irmap hints to scan'),
  { key: 'manage-cgroups', long: 'manage-cgroups', arity: 'optional', kind: 'string', valueName: 'MODE', help: "dump/restore process' cgroups" },
  list('cgroup-root', '[controller:]/newroot', 'change the root cgroup'),
  str('cgroup-props', 'STRING', 'cgroup controllers and properties to be checkpointed'),
  str('cgroup-props-file', 'FILE', 'same as --cgroup-props, from a file'),
  list('cgroup-dump-controller', 'NAME', 'cgroup controller to be dumped'),
  str('cgroup-yard', 'PATH', 'a directory with an already created cgroup yard'),
  str('lsm-profile', 'TYPE:NAME', 'LSM profile to be used during restore'),
  str('lsm-mount-context', 'CTX', 'mount context to be used during restore'),
  list('skip-mnt', 'PATH', 'ignore this mountpoint when dumping the mount namespace'),
  list('enable-fs', 'FSNAMES', 'force dumping/restoring these filesystems'),
  list('inherit-fd', 'fd[NUM]:RES', 'inherit file descriptors'),
  list('empty-ns', 'NS', "create a namespace, but don't restore its properties"),
  list('join-ns', 'NS:{PID|NS_FILE}[,OPTIONS]', 'join existing namespace', 'J'),
  str('file-validation', 'METHOD', "file validation method: 'filesize' or 'buildid'"),
  flag('skip-file-rwx-check', 'skip checking file permissions on restore'),
  list('ext-mount-map', 'KEY:VALUE', 'external mount mapping', 'M'),
  flag('ext-unix-sk', 'allow external unix connections'),
  list('veth-pair', 'IN=OUT', 'map inside veth device name to outside one'),
  // check
  flag('extra', 'add check for extra kernel features'),
  flag('experimental', 'add check for experimental kernel features'),
  flag('all', 'same as --extra --experimental'),
  list('feature', 'FEAT', 'only check a particular feature'),
  // logging
  str('log-file', 'FILE', 'log file name', 'o'),
  flag('log-pid', 'enable per-process logging to separate FILE.pid files'),
  { key: 'verbosity', long: 'verbosity', short: 'v', arity: 'optional', kind: 'verbosity', valueName: 'NUM', help: 'increase verbosity (-v, -vv, ...) or set it (-vNUM, --verbosity=NUM)' },
  flag('display-stats', 'print out dump/restore stats'),
  // memory dumping
  flag('track-mem', 'turn on memory changes tracker in kernel'),
  str('prev-images-dir', 'DIR', 'path to images from previous dump (relative to -D)'),
  flag('page-server', 'send pages to page server'),
  flag('auto-dedup', 'deduplicate "old" data in pages images of previous dump'),
  str('pre-dump-mode', 'MODE', "'splice' (default) or 'read'"),
  // page/service server
  str('address', 'ADDR', 'address of server or service'),
  int('port', 'PORT', 'port of page server'),
  int('ps-socket', 'FD', 'use specified FD as page server socket'),
  { ...flag('daemon', 'run in the background after creating socket'), negatable: false },
  int('status-fd', 'FD', 'write \\0 to the FD and close it once process is ready'),
  str('tls-cacert', 'FILE', 'trust certificates signed only by this CA'),
  str('tls-cacrl', 'FILE', 'path to CA certificate revocation list file'),
  str('tls-cert', 'FILE', 'path to TLS certificate file'),
  str('tls-key', 'FILE', 'path to TLS private key file'),
  flag('tls', 'use TLS to secure remote connection'),
  flag('tls-no-cn-verify', 'do not verify common name in server certificate'),
  // configuration
  str('config', 'FILEPATH', 'pass a specific configuration file'),
  { ...flag('no-default-config', 'forbid usage of default configuration files'), negatable: false },
  // other
  { ...flag('help', 'show this text', 'h'), negatable: false },
  { ...flag('version', 'show version', 'V'), negatable: false },
];

/** Options of the image commands (crit's spelling); they take precedence over CRIU's (-o). */
export const IMAGE_IN: OptionSpec = str('in', 'FILE', 'input file (stdin by default)', 'i');
export const IMAGE_OUT: OptionSpec = str('out', 'FILE', 'output file (stdout by default)', 'o');
export const PRETTY: OptionSpec = { ...flag('pretty', 'multi-line JSON, some numbers in field-specific format'), negatable: false };
export const NO_PAYLOAD: OptionSpec = { ...flag('nopl', 'do not show entry payload (if exists)'), negatable: false };
