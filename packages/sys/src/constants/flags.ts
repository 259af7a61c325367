// Flag and selector values of the calls @criu/sys wraps. All are the same on x86_64 and ppc64
// (the O_* values used here differ only on alpha, sparc, parisc and mips).

/** wait4/waitpid options. */
export const WAIT = Object.freeze({
  WNOHANG: 1, WUNTRACED: 2, WSTOPPED: 2, WEXITED: 4, WCONTINUED: 8, WNOWAIT: 0x01000000,
  __WNOTHREAD: 0x20000000, __WALL: 0x40000000, __WCLONE: 0x80000000,
});

/** kcmp(2) types (linux/kcmp.h). */
export const KCMP = Object.freeze({
  FILE: 0, VM: 1, FILES: 2, FS: 3, SIGHAND: 4, IO: 5, SYSVSEM: 6, EPOLL_TFD: 7,
});

/** kcmp(2) results: the kernel orders the two objects by (scrambled) pointer. */
export const KCMP_RESULT = Object.freeze({ EQUAL: 0, LESS: 1, GREATER: 2, NOT_EQUAL: 3 });

/** clone/clone3 flags (linux/sched.h). bigint because clone3 flags are 64-bit. */
export const CLONE = Object.freeze({
  NEWTIME: 0x80n, VM: 0x100n, FS: 0x200n, FILES: 0x400n, SIGHAND: 0x800n, PIDFD: 0x1000n,
  PTRACE: 0x2000n, VFORK: 0x4000n, PARENT: 0x8000n, THREAD: 0x10000n, NEWNS: 0x20000n,
  SYSVSEM: 0x40000n, SETTLS: 0x80000n, PARENT_SETTID: 0x100000n, CHILD_CLEARTID: 0x200000n,
  DETACHED: 0x400000n, UNTRACED: 0x800000n, CHILD_SETTID: 0x1000000n, NEWCGROUP: 0x2000000n,
  NEWUTS: 0x4000000n, NEWIPC: 0x8000000n, NEWUSER: 0x10000000n, NEWPID: 0x20000000n,
  NEWNET: 0x40000000n, IO: 0x80000000n, CLEAR_SIGHAND: 0x100000000n, INTO_CGROUP: 0x200000000n,
});

/** memfd_create flags (linux/memfd.h). */
export const MFD = Object.freeze({
  CLOEXEC: 1, ALLOW_SEALING: 2, HUGETLB: 4, NOEXEC_SEAL: 8, EXEC: 0x10,
});

/** splice/vmsplice/tee flags (fcntl.h). */
export const SPLICE_F = Object.freeze({ MOVE: 1, NONBLOCK: 2, MORE: 4, GIFT: 8 });

/** open/pipe2 flags used by these wrappers. */
/** Open flags the engine passes itself (the same on x86_64 and ppc64; O_DIRECT/O_DIRECTORY differ, so they are not here). */
export const O = Object.freeze({ NONBLOCK: 0o4000, CLOEXEC: 0o2000000 });

/** pidfd_open flags. */
export const PIDFD = Object.freeze({ NONBLOCK: 0o4000, THREAD: 0o200 });

/** fcntl commands the engine needs (Node has no fcntl). */
export const F = Object.freeze({
  DUPFD: 0, GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, DUPFD_CLOEXEC: 1030,
  SETPIPE_SZ: 1031, GETPIPE_SZ: 1032, ADD_SEALS: 1033, GET_SEALS: 1034,
});

/** prctl options (linux/prctl.h) a checkpoint/restore engine uses. */
export const PR = Object.freeze({
  SET_PDEATHSIG: 1, GET_PDEATHSIG: 2, GET_DUMPABLE: 3, SET_DUMPABLE: 4, GET_KEEPCAPS: 7,
  SET_KEEPCAPS: 8, SET_NAME: 15, GET_NAME: 16, GET_SECCOMP: 21, SET_SECCOMP: 22,
  CAPBSET_READ: 23, CAPBSET_DROP: 24, GET_TSC: 25, SET_TSC: 26, GET_SECUREBITS: 27,
  SET_SECUREBITS: 28, GET_TIMERSLACK: 30, SET_TIMERSLACK: 29, SET_MM: 35,
  SET_CHILD_SUBREAPER: 36, GET_CHILD_SUBREAPER: 37, SET_NO_NEW_PRIVS: 38, GET_NO_NEW_PRIVS: 39,
  GET_TID_ADDRESS: 40, SET_THP_DISABLE: 41, GET_THP_DISABLE: 42, CAP_AMBIENT: 47,
  GET_SPECULATION_CTRL: 52, SET_SPECULATION_CTRL: 53, SET_TAGGED_ADDR_CTRL: 55,
  GET_TAGGED_ADDR_CTRL: 56, SET_SYSCALL_USER_DISPATCH: 59, SET_VMA: 0x53564d41,
  // Since Linux 6.15: timer_create() then takes the new timer's id from *timerid.
  TIMER_CREATE_RESTORE_IDS: 77,
});

/** PR_SET_MM sub-options. */
export const PR_SET_MM = Object.freeze({
  START_CODE: 1, END_CODE: 2, START_DATA: 3, END_DATA: 4, START_STACK: 5, START_BRK: 6, BRK: 7,
  ARG_START: 8, ARG_END: 9, ENV_START: 10, ENV_END: 11, AUXV: 12, EXE_FILE: 13, MAP: 14,
  MAP_SIZE: 15,
});

/** auxv entry types (elf.h) worth naming. */
export const AT = Object.freeze({
  NULL: 0, PHDR: 3, PHENT: 4, PHNUM: 5, PAGESZ: 6, BASE: 7, ENTRY: 9, HWCAP: 16, CLKTCK: 17,
  SECURE: 23, RANDOM: 25, HWCAP2: 26, EXECFN: 31, SYSINFO_EHDR: 33, MINSIGSTKSZ: 51,
});

/**
 * SOL_SOCKET option numbers that differ between arches (asm/socket.h): powerpc keeps the old
 * low numbers for the receive/send timeouts and low-water marks.
 */
/** The SOL_SOCKET option numbers every arch shares (asm-generic/socket.h; powerpc keeps these). */
const SOCKOPT_SHARED = {
  SO_REUSEADDR: 2, SO_TYPE: 3, SO_DONTROUTE: 5, SO_BROADCAST: 6, SO_SNDBUF: 7, SO_RCVBUF: 8, SO_KEEPALIVE: 9,
  SO_OOBINLINE: 10, SO_NO_CHECK: 11, SO_PRIORITY: 12, SO_LINGER: 13, SO_REUSEPORT: 15, SO_BINDTODEVICE: 25,
  SO_SNDBUFFORCE: 32, SO_RCVBUFFORCE: 33, SO_PASSSEC: 34, SO_MARK: 36, SO_PEEK_OFF: 42, SO_BUF_LOCK: 72,
} as const;
export const SOCKOPT_X86_64 = Object.freeze({ ...SOCKOPT_SHARED, SO_RCVLOWAT: 18, SO_SNDLOWAT: 19, SO_RCVTIMEO: 20, SO_SNDTIMEO: 21, SO_PASSCRED: 16, SO_PEERCRED: 17 });
export const SOCKOPT_PPC64 = Object.freeze({ ...SOCKOPT_SHARED, SO_RCVLOWAT: 16, SO_SNDLOWAT: 17, SO_RCVTIMEO: 18, SO_SNDTIMEO: 19, SO_PASSCRED: 20, SO_PEERCRED: 21 });

/** The host arch's SOL_SOCKET option numbers. */
export const SOCKOPT = process.arch === 'ppc64' ? SOCKOPT_PPC64 : SOCKOPT_X86_64;

/**
 * ioctl request numbers that differ between arches: powerpc encodes direction and size in
 * different bits (asm/ioctls.h), so e.g. FIONREAD is 0x541b on x86_64 and _IOR('f', 127, int) there.
 */
export const IOCTL_X86_64 = Object.freeze({ FIONREAD: 0x541b, SIOCOUTQ: 0x5411, TFD_IOC_SET_TICKS: 0x40085400 });
// _IOW('T', 0, u64): powerpc puts _IOC_WRITE at bit 31, not 30.
export const IOCTL_PPC64 = Object.freeze({ FIONREAD: 0x4004667f, SIOCOUTQ: 0x40047473, TFD_IOC_SET_TICKS: 0x80085400 });

/** The host arch's ioctl numbers. */
export const IOCTL = process.arch === 'ppc64' ? IOCTL_PPC64 : IOCTL_X86_64;

/**
 * Terminal ioctls (asm/ioctls.h) and the kernel's struct termios as TCGETS/TCSETS move it:
 * powerpc has its own numbers for most of them and a termios with c_cc before c_line and the
 * two speeds at the end (44 bytes); x86_64's is c_line then c_cc, no speeds (36 bytes).
 */
export interface TtyIoctls {
  TCGETS: number; TCSETS: number; TIOCGWINSZ: number; TIOCSWINSZ: number;
  TIOCGLCKTRMIOS: number; TIOCSLCKTRMIOS: number; TIOCSCTTY: number; TIOCSPGRP: number; TIOCGPGRP: number;
  TIOCGSID: number; TIOCPKT: number; TIOCGPKT: number; TIOCSPTLCK: number; TIOCGPTLCK: number; TIOCGPTN: number;
  TIOCEXCL: number; TIOCGEXCL: number; TIOCGPTPEER: number; TIOCINQ: number; TIOCOUTQ: number;
  /** Byte offsets in struct termios (no ispeed/ospeed where the kernel struct has none). */
  termios: { size: number; line: number; cc: number; ispeed?: number; ospeed?: number };
}
export const TTY_X86_64: TtyIoctls = Object.freeze({
  TCGETS: 0x5401, TCSETS: 0x5402, TIOCGWINSZ: 0x5413, TIOCSWINSZ: 0x5414, TIOCGLCKTRMIOS: 0x5456, TIOCSLCKTRMIOS: 0x5457,
  TIOCSCTTY: 0x540e, TIOCSPGRP: 0x5410, TIOCGPGRP: 0x540f, TIOCGSID: 0x5429, TIOCPKT: 0x5420, TIOCGPKT: 0x80045438,
  TIOCSPTLCK: 0x40045431, TIOCGPTLCK: 0x80045439, TIOCGPTN: 0x80045430, TIOCEXCL: 0x540c, TIOCGEXCL: 0x80045440,
  TIOCGPTPEER: 0x5441, TIOCINQ: 0x541b, TIOCOUTQ: 0x5411,
  termios: Object.freeze({ size: 36, line: 16, cc: 17 }),
});
export const TTY_PPC64: TtyIoctls = Object.freeze({
  TCGETS: 0x402c7413, TCSETS: 0x802c7414, TIOCGWINSZ: 0x40087468, TIOCSWINSZ: 0x80087467, TIOCGLCKTRMIOS: 0x5456, TIOCSLCKTRMIOS: 0x5457,
  TIOCSCTTY: 0x540e, TIOCSPGRP: 0x80047476, TIOCGPGRP: 0x40047477, TIOCGSID: 0x5429, TIOCPKT: 0x5420, TIOCGPKT: 0x40045438,
  TIOCSPTLCK: 0x80045431, TIOCGPTLCK: 0x40045439, TIOCGPTN: 0x40045430, TIOCEXCL: 0x540c, TIOCGEXCL: 0x40045440,
  TIOCGPTPEER: 0x20005441, TIOCINQ: 0x4004667f, TIOCOUTQ: 0x40047473,
  termios: Object.freeze({ size: 44, cc: 16, line: 35, ispeed: 36, ospeed: 40 }),
});
/** The host arch's terminal ioctls. */
export const TTY_IOCTL = process.arch === 'ppc64' ? TTY_PPC64 : TTY_X86_64;

/**
 * Layouts of kernel structs that differ between arches. struct epoll_event is declared packed
 * only on x86_64 (uapi eventpoll.h, EPOLL_PACKED), so its u64 data follows the u32 events at 4
 * there and at 8 (natural alignment) elsewhere.
 */
export interface StructLayouts { epollEvent: { size: number; data: number } }
export const STRUCTS_X86_64: StructLayouts = Object.freeze({ epollEvent: Object.freeze({ size: 12, data: 4 }) });
export const STRUCTS_PPC64: StructLayouts = Object.freeze({ epollEvent: Object.freeze({ size: 16, data: 8 }) });
/** The host arch's struct layouts. */
export const STRUCTS = process.arch === 'ppc64' ? STRUCTS_PPC64 : STRUCTS_X86_64;
