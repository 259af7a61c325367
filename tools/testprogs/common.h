/* Shared helpers for the checkpoint/restore test programs.
 * Every program prints "READY <name> <pid>" once its state is set up (the test harness waits
 * for it), then runs until SIGTERM; on SIGTERM it checks its state and prints "PASS ..." or
 * "FAIL ..." and exits 0 or 1. stdout is expected to be a redirected regular file. */
#ifndef TESTPROGS_COMMON_H
#define TESTPROGS_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

static volatile sig_atomic_t tp_term_requested;

static inline void tp_on_term(int sig)
{
	(void)sig;
	tp_term_requested = 1;
}

/* SIGTERM only sets a flag: the main loop notices it and reports. No SA_RESTART, so blocking
 * calls return EINTR and the loops re-check the flag. */
static inline void tp_install_term_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tp_on_term;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) != 0) {
		perror("sigaction");
		exit(2);
	}
}

static inline void tp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	/* An interrupted sleep is fine: the caller re-checks tp_term_requested. */
	nanosleep(&ts, NULL);
}

/* Line-buffered output so a reader of the log file sees each line as soon as it is printed. */
static inline void tp_setup_stdout(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline void tp_ready(const char *name)
{
	printf("READY %s %d\n", name, (int)getpid());
	fflush(stdout);
}

/* ---- helpers used by several programs (static inline: unused ones cost nothing) ---- */

static inline long long tp_now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Reads a whole file (a /proc file has no size) into a malloc'd buffer with a NUL appended.
 * Returns the byte count, or -1. */
static inline long tp_read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return -1;
	}
	for (;;) {
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (len < cap)
			break;
		cap *= 2;
		char *bigger = realloc(buf, cap + 1);
		if (!bigger) {
			fclose(f);
			free(buf);
			return -1;
		}
		buf = bigger;
	}
	fclose(f);
	buf[len] = 0;
	*out = buf;
	return (long)len;
}

/* Copies src into dst (cap bytes), truncating. */
static inline void tp_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (cap == 0)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* Copies the /proc/self/maps line of the mapping that contains addr (without the newline).
 * Returns 0, or -1 when no mapping contains it. */
static inline int tp_maps_line(const void *addr, char *line, size_t cap)
{
	unsigned long a = (unsigned long)addr;
	char buf[1024];
	int found = -1;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		unsigned long lo, hi;
		if (sscanf(buf, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
			buf[strcspn(buf, "\n")] = 0;
			tp_copy(line, cap, buf);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

/* The permission field ("rw-p") of the mapping containing addr, or "none" when unmapped. */
static inline void tp_maps_perms(const void *addr, char perms[8])
{
	char line[1024];
	if (tp_maps_line(addr, line, sizeof(line)) != 0 || sscanf(line, "%*s %7s", perms) != 1)
		strcpy(perms, "none");
}

/* The VmFlags line of /proc/self/smaps for the mapping containing addr ("" if not found). */
static inline void tp_smaps_vmflags(const void *addr, char *flags, size_t cap)
{
	unsigned long a = (unsigned long)addr;
	char buf[1024];
	int inside = 0;
	FILE *f = fopen("/proc/self/smaps", "r");
	flags[0] = 0;
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		unsigned long lo, hi;
		char c;
		/* A mapping header starts with a hex range; the field lines start with a name. */
		if (sscanf(buf, "%lx-%lx %c", &lo, &hi, &c) == 3 && strchr(buf, '-') < strchr(buf, ' ')) {
			inside = a >= lo && a < hi;
			continue;
		}
		if (inside && strncmp(buf, "VmFlags:", 8) == 0) {
			buf[strcspn(buf, "\n")] = 0;
			tp_copy(flags, cap, buf + 8);
			break;
		}
	}
	fclose(f);
}

/* 1 when the two-letter flag (e.g. "dc") is one of the words of a VmFlags value. */
static inline int tp_has_vmflag(const char *flags, const char *flag)
{
	char word[8];
	int off = 0, n;
	while (sscanf(flags + off, "%7s%n", word, &n) == 1) {
		if (strcmp(word, flag) == 0)
			return 1;
		off += n;
	}
	return 0;
}

/* The thread pointer as the ABI defines it (what __rseq_offset and TLS offsets are relative
 * to): the fs base on x86_64, r13 on ppc64 (GCC 12 has no __builtin_thread_pointer there). */
static inline void *tp_thread_pointer(void)
{
#if defined(__powerpc64__)
	void *tp;
	__asm__("mr %0, 13" : "=r"(tp));
	return tp;
#else
	return __builtin_thread_pointer();
#endif
}

/* FNV-1a over bytes. */
static inline unsigned long long tp_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	unsigned long long h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

/* One int over a pipe, retried on EINTR (a SIGTERM may arrive mid-call); -1 on EOF or error. */
static inline int tp_send_int(int fd, int v)
{
	while (write(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

static inline int tp_recv_int(int fd, int *v)
{
	for (;;) {
		ssize_t n = read(fd, v, sizeof(*v));
		if (n == (ssize_t)sizeof(*v))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

/* The next datagram/bytes waiting on socket fd are exactly `want` (not blocking). */
static inline int tp_recv_expect(int fd, const char *want)
{
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return n == (ssize_t)strlen(want) && memcmp(buf, want, n) == 0;
}

/* Nothing waits on socket fd. */
static inline int tp_recv_empty(int fd)
{
	char buf[8];
	return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

#endif
