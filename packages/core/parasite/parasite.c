/*
 * The parasite: freestanding code the dumper runs inside a frozen task to do what only the
 * task itself can (read its sigactions, itimers, sigaltstack, umask; hand over its fds; vmsplice
 * its memory into a pipe without copying). It is arch-neutral; the arch supplies "arch.h"
 * with raw syscall wrappers and the entry code that calls parasite_main() and then traps.
 * No libc: everything goes through raw syscalls.
 */
#include "arch.h"
#include "protocol.h"

#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_NOSIGNAL 0x4000
#define PR_GET_PDEATHSIG 2
#define PR_GET_DUMPABLE 3
#define PR_GET_CHILD_SUBREAPER 37
#define PR_GET_NO_NEW_PRIVS 39
#define PR_GET_TID_ADDRESS 40
#define PR_GET_THP_DISABLE 42
#define PR_GET_SECUREBITS 27
#define SPLICE_F_GIFT 8
#define SIGPIPE 13

typedef unsigned long u64;

struct iovec_k { void *base; u64 len; };
struct msghdr_k {
	void *name; int namelen; int pad0;
	struct iovec_k *iov; u64 iovlen;
	void *control; u64 controllen;
	int flags; int pad1;
};
struct cmsghdr_k { u64 len; int level; int type; };
struct sockaddr_un_k { unsigned short family; char path[108]; };
struct stack_k { u64 sp; int flags; int pad; u64 size; };

/* Big enough for one message of any command. */
#define BUF_SIZE (16 + PARASITE_MAX_IOVS * 24 + 64)
static char in_buf[BUF_SIZE] __attribute__((aligned(16)));
static char out_buf[sizeof(struct parasite_msg) + sizeof(struct parasite_task_state)] __attribute__((aligned(16)));
static char cmsg_buf[sizeof(struct cmsghdr_k) + PARASITE_MAX_FDS * 4 + 8] __attribute__((aligned(8)));

/*
 * rt_sigreturn with the stack pointer set to `sp` (arch entry code, next to parasite_head).
 * Weak: an arch whose head does not provide it gets the old behaviour (return to the trap).
 */
extern void parasite_sigreturn(unsigned long sp) __attribute__((weak, noreturn));

/* gcc may emit calls to these even with -ffreestanding. */
void *memset(void *d, int c, u64 n) { char *p = d; while (n--) *p++ = (char)c; return d; }
void *memcpy(void *d, const void *s, u64 n) { char *p = d; const char *q = s; while (n--) *p++ = *q++; return d; }

static long send_msg(int sk, unsigned int cmd, int status, const void *payload, unsigned int len, const int *fds, unsigned int nfds)
{
	struct parasite_msg *h = (struct parasite_msg *)out_buf;
	struct iovec_k iov[2];
	struct msghdr_k mh;

	h->cmd = cmd; h->status = status; h->len = len; h->pad = 0;
	iov[0].base = h; iov[0].len = sizeof(*h);
	iov[1].base = (void *)payload; iov[1].len = len;
	memset(&mh, 0, sizeof(mh));
	mh.iov = iov; mh.iovlen = len ? 2 : 1;
	if (nfds) {
		struct cmsghdr_k *c = (struct cmsghdr_k *)cmsg_buf;
		c->len = sizeof(*c) + nfds * 4;
		c->level = SOL_SOCKET; c->type = SCM_RIGHTS;
		memcpy((char *)(c + 1), fds, nfds * 4);
		mh.control = c;
		mh.controllen = (c->len + 7) & ~7ul;
	}
	return sys6(__NR_sendmsg, sk, (long)&mh, MSG_NOSIGNAL, 0, 0, 0);
}

/* Descriptors passed with the last message received (SCM_RIGHTS). */
static int rfds[PARASITE_MAX_FDS];
static unsigned int nrfds;

/* Receives one message into in_buf; *fd gets the first passed descriptor, if any (else -1), rfds all of them. */
static long recv_msg(int sk, int *fd)
{
	struct iovec_k iov = { in_buf, sizeof(in_buf) };
	struct msghdr_k mh;
	long n;

	memset(&mh, 0, sizeof(mh));
	mh.iov = &iov; mh.iovlen = 1;
	mh.control = cmsg_buf; mh.controllen = sizeof(cmsg_buf);
	n = sys6(__NR_recvmsg, sk, (long)&mh, 0, 0, 0, 0);
	*fd = -1;
	nrfds = 0;
	if (n >= (long)sizeof(struct parasite_msg) && mh.controllen >= sizeof(struct cmsghdr_k) + 4) {
		struct cmsghdr_k *c = (struct cmsghdr_k *)cmsg_buf;
		if (c->level == SOL_SOCKET && c->type == SCM_RIGHTS) {
			nrfds = (unsigned int)((c->len - sizeof(*c)) / 4);
			if (nrfds > PARASITE_MAX_FDS)
				nrfds = PARASITE_MAX_FDS;
			memcpy(rfds, (char *)(c + 1), nrfds * 4);
			*fd = rfds[0];
		}
	}
	return n;
}

static void close_rfds(unsigned int from)
{
	unsigned int i;
	for (i = from; i < nrfds; i++)
		sys6(__NR_close, rfds[i], 0, 0, 0, 0, 0);
	nrfds = 0;
}

static void get_task_state(struct parasite_task_state *st)
{
	struct stack_k ss;
	int i;
	long um;

	memset(st, 0, sizeof(*st));
	for (i = 1; i <= PARASITE_NSIG; i++) {
		if (i == 9 || i == 19) /* SIGKILL, SIGSTOP */
			continue;
		sys6(__NR_rt_sigaction, i, 0, (long)&st->sa[i - 1], 8, 0, 0);
	}
	for (i = 0; i < 3; i++)
		sys6(__NR_getitimer, i, (long)&st->itimers[i], 0, 0, 0, 0);
	if (sys6(__NR_sigaltstack, 0, (long)&ss, 0, 0, 0, 0) == 0) {
		st->sas_sp = ss.sp; st->sas_size = ss.size; st->sas_flags = ss.flags;
	}
	um = sys6(__NR_umask, 0, 0, 0, 0, 0, 0);
	sys6(__NR_umask, um, 0, 0, 0, 0, 0);
	st->umask = (unsigned int)um;
	sys6(__NR_prctl, PR_GET_TID_ADDRESS, (long)&st->tid_address, 0, 0, 0, 0);
	sys6(__NR_prctl, PR_GET_PDEATHSIG, (long)&st->pdeath_sig, 0, 0, 0, 0);
	st->dumpable = (int)sys6(__NR_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0, 0);
	sys6(__NR_prctl, PR_GET_CHILD_SUBREAPER, (long)&st->child_subreaper, 0, 0, 0, 0);
	st->no_new_privs = (int)sys6(__NR_prctl, PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0, 0);
	st->thp_disabled = (int)sys6(__NR_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0, 0);
	st->securebits = (int)sys6(__NR_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0, 0);
	st->brk = (unsigned long)sys6(__NR_brk, 0, 0, 0, 0, 0, 0);
}

/* vmsplice every range into the pipe; SPLICE_F_GIFT-less, so pages are referenced, not copied. */
static long dump_pages(int pipe_fd, const struct iovec_k *iov, unsigned int n)
{
	long total = 0;
	unsigned int i = 0;
	struct iovec_k cur;

	if (pipe_fd < 0)
		return -9; /* EBADF */
	while (i < n) {
		long r;
		cur = iov[i];
		while (cur.len) {
			r = sys6(__NR_vmsplice, pipe_fd, (long)&cur, 1, 0, 0, 0);
			if (r < 0)
				return r;
			if (r == 0)
				return -5; /* EIO: pipe full, dumper asked for more than fits */
			cur.base = (char *)cur.base + r;
			cur.len -= (u64)r;
			total += r;
		}
		i++;
	}
	return total;
}

static long do_mprotect(const char *p, unsigned int n)
{
	unsigned int i;
	for (i = 0; i < n; i++) {
		u64 r[3];
		long ret;
		memcpy(r, p + i * 24, 24);
		ret = sys6(__NR_mprotect, (long)r[0], (long)r[1], (long)r[2], 0, 0, 0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int sigpipe_pending(void)
{
	u64 set = 0;
	sys6(__NR_rt_sigpending, (long)&set, 8, 0, 0, 0, 0);
	return (set >> (SIGPIPE - 1)) & 1;
}

/*
 * The dumper is gone: give the task back its own execution. Closes what the parasite opened,
 * drops a SIGPIPE that a vmsplice into the dumper's dead pipe queued (it was blocked, and would
 * kill the task once its own mask is back), then rt_sigreturn. Returns only when the arch cannot
 * sigreturn or no frame was given.
 */
static void resume_task(const struct parasite_args *args, int sk, int pipe_fd, int had_sigpipe)
{
	if (pipe_fd >= 0)
		sys6(__NR_close, pipe_fd, 0, 0, 0, 0, 0);
	if (sk >= 0)
		sys6(__NR_close, sk, 0, 0, 0, 0, 0);
	if (!args->sigreturn_sp || !parasite_sigreturn)
		return;
	if (!had_sigpipe && sigpipe_pending()) {
		u64 set = 1ul << (SIGPIPE - 1);
		long ts[2] = { 0, 0 };
		sys6(__NR_rt_sigtimedwait, (long)&set, 0, (long)ts, 8, 0, 0);
	}
	parasite_sigreturn(args->sigreturn_sp);
}

long parasite_main(struct parasite_args *args)
{
	struct sockaddr_un_k addr;
	struct parasite_task_state *st;
	int sk, pipe_fd = -1, had_sigpipe;
	long ret;

	if (args->magic != PARASITE_MAGIC || args->version != PARASITE_VERSION || args->sock_name_len > 100)
		return -22;
	had_sigpipe = sigpipe_pending();
	if (args->sock_fd >= 0) {
		sk = args->sock_fd;
	} else {
		sk = (int)sys6(__NR_socket, AF_UNIX, SOCK_SEQPACKET, 0, 0, 0, 0);
		if (sk < 0)
			return sk;
		memset(&addr, 0, sizeof(addr));
		addr.family = AF_UNIX;
		memcpy(addr.path + 1, args->sock_name, args->sock_name_len); /* abstract name */
		ret = sys6(__NR_connect, sk, (long)&addr, 2 + 1 + args->sock_name_len, 0, 0, 0);
		if (ret < 0)
			goto out;
	}
	ret = send_msg(sk, PCMD_READY, 0, 0, 0, 0, 0);
	if (ret < 0)
		goto lost;

	/* The task state goes into out_buf right after the header slot. */
	st = (struct parasite_task_state *)(out_buf + sizeof(struct parasite_msg));
	for (;;) {
		int fd;
		long n = recv_msg(sk, &fd);
		struct parasite_msg *m = (struct parasite_msg *)in_buf;
		const char *payload = in_buf + sizeof(*m);
		unsigned int cnt;

		/* A closed control socket (dumper gone) ends the parasite: never hang the task. */
		if (n <= 0) { ret = n ? n : -104; goto lost; }
		if (n < (long)sizeof(*m) || m->len != (unsigned long)n - sizeof(*m)) {
			close_rfds(0);
			send_msg(sk, m->cmd, -22, 0, 0, 0, 0);
			continue;
		}
		memcpy(&cnt, payload, 4);
		switch (m->cmd) {
		case PCMD_TASK_STATE:
			get_task_state(st);
			ret = send_msg(sk, PCMD_TASK_STATE, 0, st, sizeof(*st), 0, 0);
			break;
		case PCMD_SEND_FDS:
			if (m->len < 4 || cnt > PARASITE_MAX_FDS || m->len < 4 + cnt * 4) {
				ret = send_msg(sk, m->cmd, -22, 0, 0, 0, 0);
				break;
			}
			{
				int fds[PARASITE_MAX_FDS];
				memcpy(fds, payload + 4, cnt * 4);
				ret = send_msg(sk, PCMD_SEND_FDS, 0, 0, 0, fds, cnt);
				if (ret < 0) /* e.g. a closed fd: report it instead of dying */
					ret = send_msg(sk, PCMD_SEND_FDS, (int)ret, 0, 0, 0, 0);
			}
			break;
		case PCMD_SET_PIPE:
			if (pipe_fd >= 0)
				sys6(__NR_close, pipe_fd, 0, 0, 0, 0, 0);
			pipe_fd = fd;
			ret = send_msg(sk, PCMD_SET_PIPE, fd >= 0 ? 0 : -9, 0, 0, 0, 0);
			break;
		case PCMD_DUMP_PAGES:
			if (m->len < 8 || cnt > PARASITE_MAX_IOVS || m->len < 8 + cnt * 16) {
				ret = send_msg(sk, m->cmd, -22, 0, 0, 0, 0);
				break;
			}
			{
				long r = dump_pages(pipe_fd, (const struct iovec_k *)(payload + 8), cnt);
				u64 bytes = r > 0 ? (u64)r : 0;
				ret = send_msg(sk, PCMD_DUMP_PAGES, r < 0 ? (int)r : 0, &bytes, 8, 0, 0);
			}
			break;
		case PCMD_DUMP_PAGES_MULTI:
			{
				unsigned int total, i, at = 0;
				u64 head = 8 + (((u64)cnt * 4 + 7) & ~7ul), moved = 0;
				long r = 0;
				const unsigned int *count = (const unsigned int *)(payload + 8);
				const struct iovec_k *iov = (const struct iovec_k *)(payload + head);

				memcpy(&total, payload + 4, 4);
				if (m->len < 8 || cnt == 0 || cnt != nrfds || total > PARASITE_MAX_IOVS || m->len < head + (u64)total * 16) {
					ret = send_msg(sk, m->cmd, -22, 0, 0, 0, 0);
					break;
				}
				for (i = 0; i < cnt && r >= 0; i++) {
					if (count[i] > total - at) {
						r = -22;
						break;
					}
					r = dump_pages(rfds[i], iov + at, count[i]);
					at += count[i];
					if (r > 0)
						moved += (u64)r;
				}
				ret = send_msg(sk, PCMD_DUMP_PAGES_MULTI, r < 0 ? (int)r : 0, &moved, 8, 0, 0);
			}
			break;
		case PCMD_MPROTECT:
			if (m->len < 8 || m->len < 8 + cnt * 24) {
				ret = send_msg(sk, m->cmd, -22, 0, 0, 0, 0);
				break;
			}
			ret = send_msg(sk, PCMD_MPROTECT, (int)do_mprotect(payload + 8, cnt), 0, 0, 0, 0);
			break;
		case PCMD_FINI:
			/*
			 * Done. Not back to the trap: a trap the dumper did not live to see would kill the
			 * task. Wait instead, on the socket, for the dumper to stop the task (PTRACE_INTERRUPT)
			 * and put its state back; if the socket closes first, the dumper is gone: resume.
			 */
			if (pipe_fd >= 0)
				sys6(__NR_close, pipe_fd, 0, 0, 0, 0, 0);
			pipe_fd = -1;
			send_msg(sk, PCMD_FINI, 0, 0, 0, 0, 0);
			for (;;) {
				n = recv_msg(sk, &fd);
				close_rfds(0);
				if (n <= 0)
					goto lost;
			}
		default:
			ret = send_msg(sk, m->cmd, -95, 0, 0, 0, 0); /* EOPNOTSUPP */
			break;
		}
		/* Passed descriptors are used up by now; SET_PIPE keeps its one. */
		close_rfds(m->cmd == PCMD_SET_PIPE ? 1 : 0);
		if (ret < 0) /* a reply could not be sent: the dumper is gone */
			goto lost;
	}
lost:
	resume_task(args, sk, pipe_fd, had_sigpipe);
	return ret; /* no frame: back to the trap */
out:
	if (pipe_fd >= 0)
		sys6(__NR_close, pipe_fd, 0, 0, 0, 0, 0);
	sys6(__NR_close, sk, 0, 0, 0, 0, 0);
	return ret;
}
