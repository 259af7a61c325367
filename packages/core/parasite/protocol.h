/*
 * Wire protocol between the dumper (Node, @criu/core) and the parasite blob running inside a
 * frozen task. One SOCK_SEQPACKET datagram per message; every message starts with a
 * parasite_msg header. Layouts are fixed-size and little/big-endian native: the dumper reads
 * them with the task's endianness (same machine).
 * Keep in sync with packages/core/src/parasite/protocol.ts.
 */
#ifndef CRIU_TS_PARASITE_PROTOCOL_H
#define CRIU_TS_PARASITE_PROTOCOL_H

#define PARASITE_MAGIC 0x50415253u /* "PARS" */
#define PARASITE_VERSION 3u

enum parasite_cmd {
	PCMD_READY = 1,       /* parasite -> dumper, first message after connect */
	PCMD_TASK_STATE = 2,  /* reply: struct parasite_task_state */
	PCMD_SEND_FDS = 3,    /* payload: u32 n, i32 fds[n]; reply carries SCM_RIGHTS */
	PCMD_SET_PIPE = 4,    /* carries SCM_RIGHTS: the pipe's write end for PCMD_DUMP_PAGES */
	PCMD_DUMP_PAGES = 5,  /* payload: u32 n, u32 pad, struct { u64 base, len } iov[n] */
	PCMD_MPROTECT = 6,    /* payload: u32 n, u32 pad, struct { u64 start, len, prot } r[n] */
	PCMD_FINI = 7,        /* parasite replies, then waits for the dumper to stop it (or for EOF) */
	/*
	 * Many pipes at once: carries SCM_RIGHTS with the write ends of n pipes; payload: u32 n,
	 * u32 total, u32 count[n] (padded to 8 bytes), struct { u64 base, len } iov[total]: pipe i
	 * gets the next count[i] ranges. The parasite closes the pipes; reply: u64 bytes moved.
	 */
	PCMD_DUMP_PAGES_MULTI = 8,
	/* A closed or broken socket is not a command: the parasite resumes the task (sigreturn_sp). */
};

struct parasite_msg {
	unsigned int cmd;
	int status;   /* 0 or -errno, in replies */
	unsigned int len;  /* payload bytes following this header */
	unsigned int pad;
};

/* Arguments the dumper writes next to the blob before starting it. */
struct parasite_args {
	unsigned int magic;
	unsigned int version;
	unsigned long page_size;
	unsigned int sock_name_len;   /* abstract unix socket name, without the leading NUL */
	char sock_name[100];
	/*
	 * The control socket, already connected by syscalls the dumper injected before starting the
	 * parasite; -1: the parasite connects to sock_name itself.
	 */
	int sock_fd;
	unsigned int pad;
	/*
	 * Non-zero: the stack pointer to make rt_sigreturn with, on an rt_sigreturn frame the dumper
	 * built from the task's own registers, signal mask and sigaltstack. When the dumper is lost
	 * (control socket closed or broken) the parasite resumes the task through it, exactly where it
	 * was frozen, instead of returning to its trap (which, without a tracer, would kill the task).
	 */
	unsigned long sigreturn_sp;
};

/* Kernel rt_sigaction layout (handler, flags, restorer, mask) is the same on x86_64 and ppc64. */
struct parasite_ksigaction {
	unsigned long handler;
	unsigned long flags;
	unsigned long restorer;
	unsigned long mask;
};

struct parasite_itimer {
	unsigned long interval_sec, interval_usec, value_sec, value_usec;
};

#define PARASITE_NSIG 64
#define PARASITE_MAX_FDS 250   /* below the kernel's SCM_MAX_FD (253) */
#define PARASITE_MAX_IOVS 512

struct parasite_task_state {
	struct parasite_ksigaction sa[PARASITE_NSIG]; /* sa[i] is signal i+1; SIGKILL/SIGSTOP zero */
	struct parasite_itimer itimers[3];            /* ITIMER_REAL, VIRTUAL, PROF */
	unsigned long sas_sp;                         /* sigaltstack */
	unsigned long sas_size;
	int sas_flags;
	unsigned int umask;
	unsigned long tid_address;                    /* PR_GET_TID_ADDRESS */
	int pdeath_sig;                               /* PR_GET_PDEATHSIG */
	int dumpable;                                 /* PR_GET_DUMPABLE */
	int child_subreaper;                          /* PR_GET_CHILD_SUBREAPER */
	int no_new_privs;                             /* PR_GET_NO_NEW_PRIVS */
	int thp_disabled;                             /* PR_GET_THP_DISABLE */
	int securebits;                               /* PR_GET_SECUREBITS */
	unsigned long brk;                            /* brk(0): the current program break */
};

#endif
