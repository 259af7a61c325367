/* threads4: the main thread plus 3 worker threads, each incrementing its own counter every
 * ~10 ms. The main thread prints all four counters every ~100 ms.
 * Per-thread state, set up by each thread for itself and recorded before READY:
 *   - a robust futex list head of its own (set_robust_list; glibc's is put back at the end),
 *   - a blocked mask of its own (workers: SIGTERM + SIGRTMIN+i; main: SIGRTMIN+4 only),
 *   - a sigaltstack of its own (a different size per thread; worker 2 with SS_AUTODISARM),
 *   - the rseq area glibc registered for it (tp + __rseq_offset).
 * On SIGTERM (delivered to the main thread, the workers block it) every thread checks its own
 * state against the record (get_robust_list(0), the mask, sigaltstack(), the rseq area is the
 * same, still registered (re-registering it fails with EBUSY) and kept updated (cpu_id equals
 * the getcpu syscall)); the main thread also checks every worker advanced during a last
 * observation window, stops them and reports. */
#define _GNU_SOURCE
#include "common.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)	/* the kernel's uapi value; glibc does not define it */
#endif

#define WORKERS 3
#define NTHREADS (WORKERS + 1)

struct tstate {
	struct robust_list_head head;	/* this thread's own robust list (empty) */
	struct robust_list_head *glibc_head;
	size_t glibc_len;
	void *robust;			/* what get_robust_list(0) reported before READY */
	size_t robust_len;
	sigset_t mask;
	stack_t ss;
	struct rseq *rseq_area;
	char fail[200];			/* empty when the thread's checks passed */
};

static atomic_ulong counters[NTHREADS];
static atomic_int stop_workers, check_now, recorded, checked;
static struct tstate st[NTHREADS];

static struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)tp_thread_pointer() + __rseq_offset);
}

/* 0 when area is this thread's active registration: registering it again fails with EBUSY
 * (a thread without one would succeed, one with another area gets EINVAL). glibc registers
 * 32 bytes, or __rseq_size with extended features. */
static int rseq_registered(struct rseq *area, char *why, size_t cap)
{
	long r = syscall(SYS_rseq, area, 32, 0, RSEQ_SIG);
	int e = errno;
	if (r != 0 && e != EBUSY) {
		r = syscall(SYS_rseq, area, __rseq_size, 0, RSEQ_SIG);
		e = errno;
	}
	if (r == 0) {
		snprintf(why, cap, "rseq was not registered");
		return -1;
	}
	if (e != EBUSY) {
		snprintf(why, cap, "rseq re-registration: %s (another area or signature registered)", strerror(e));
		return -1;
	}
	return 0;
}

/* 0 when the kernel keeps the area's cpu_id current (a migration between the reads: retried). */
static int rseq_cpu_ok(volatile struct rseq *rs, char *why, size_t cap)
{
	unsigned cpu = 0;
	int seen = -1;
	for (int i = 0; i < 20; i++) {
		seen = (int)rs->cpu_id;
		if (syscall(SYS_getcpu, &cpu, NULL, NULL) == 0 && seen >= 0 && (unsigned)seen == cpu)
			return 0;
		sched_yield();
	}
	snprintf(why, cap, "rseq cpu_id %d, getcpu %u", seen, cpu);
	return -1;
}

static void get_mask(sigset_t *m)
{
	pthread_sigmask(SIG_BLOCK, NULL, m);
}

/* Sets this thread's own state (idx: 0 main, 1..WORKERS) and records it. 0 or -1 (st[idx].fail). */
static int setup_thread(int idx)
{
	struct tstate *s = &st[idx];
	sigset_t add;
	stack_t ss;

	if (syscall(SYS_get_robust_list, 0, &s->glibc_head, &s->glibc_len) != 0) {
		snprintf(s->fail, sizeof(s->fail), "get_robust_list: %s", strerror(errno));
		return -1;
	}
	s->head.list.next = &s->head.list;	/* an empty list: nothing for the kernel to walk */
	s->head.futex_offset = 0;
	s->head.list_op_pending = NULL;
	if (syscall(SYS_set_robust_list, &s->head, sizeof(s->head)) != 0 ||
	    syscall(SYS_get_robust_list, 0, &s->robust, &s->robust_len) != 0 || s->robust != &s->head) {
		snprintf(s->fail, sizeof(s->fail), "set_robust_list: %s", strerror(errno));
		return -1;
	}

	sigemptyset(&add);
	sigaddset(&add, SIGRTMIN + (idx == 0 ? WORKERS + 1 : idx));
	pthread_sigmask(SIG_BLOCK, &add, NULL);
	get_mask(&s->mask);

	/* Sizes differ per thread, so a stack restored on the wrong thread shows. */
	ss.ss_size = 65536 + (size_t)idx * 4096;
	ss.ss_sp = malloc(ss.ss_size);
	ss.ss_flags = idx == 2 ? SS_AUTODISARM : 0;
	if (!ss.ss_sp || sigaltstack(&ss, NULL) != 0 || sigaltstack(NULL, &s->ss) != 0) {
		snprintf(s->fail, sizeof(s->fail), "sigaltstack: %s", strerror(errno));
		return -1;
	}

	if (__rseq_size == 0) {
		snprintf(s->fail, sizeof(s->fail), "glibc did not register rseq (__rseq_size 0)");
		return -1;
	}
	s->rseq_area = rseq_area();
	if (rseq_registered(s->rseq_area, s->fail, sizeof(s->fail)) != 0 ||
	    rseq_cpu_ok(s->rseq_area, s->fail, sizeof(s->fail)) != 0)
		return -1;
	return 0;
}

/* Compares this thread's state with the record; fills st[idx].fail on a difference. */
static void check_thread(int idx)
{
	struct tstate *s = &st[idx];
	void *head = NULL;
	size_t len = 0;
	sigset_t now;
	stack_t ss;
	char why[160];

	if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head != s->robust || len != s->robust_len) {
		snprintf(s->fail, sizeof(s->fail), "robust list %p/%zu, recorded %p/%zu", head, len, s->robust, s->robust_len);
		return;
	}
	get_mask(&now);
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		if (sigismember(&now, sig) != sigismember(&s->mask, sig)) {
			snprintf(s->fail, sizeof(s->fail), "blocked mask: signal %d is %s", sig,
				 sigismember(&now, sig) ? "blocked, was not" : "not blocked, was");
			return;
		}
	}
	if (sigaltstack(NULL, &ss) != 0 || ss.ss_sp != s->ss.ss_sp || ss.ss_size != s->ss.ss_size || ss.ss_flags != s->ss.ss_flags) {
		snprintf(s->fail, sizeof(s->fail), "sigaltstack %p/%zu/0x%x, recorded %p/%zu/0x%x", ss.ss_sp, ss.ss_size,
			 (unsigned)ss.ss_flags, s->ss.ss_sp, s->ss.ss_size, (unsigned)s->ss.ss_flags);
		return;
	}
	if (rseq_area() != s->rseq_area) {
		snprintf(s->fail, sizeof(s->fail), "rseq area %p, recorded %p", (void *)rseq_area(), (void *)s->rseq_area);
		return;
	}
	if (rseq_registered(s->rseq_area, why, sizeof(why)) != 0 || rseq_cpu_ok(s->rseq_area, why, sizeof(why)) != 0) {
		snprintf(s->fail, sizeof(s->fail), "%s", why);
		return;
	}
	/* glibc's own list back, for the thread's exit. */
	syscall(SYS_set_robust_list, s->glibc_head, s->glibc_len);
}

static void *worker(void *arg)
{
	long idx = (long)arg;
	int done = 0;
	if (setup_thread((int)idx) != 0) {
		atomic_fetch_add(&recorded, 1);
		return NULL;
	}
	atomic_fetch_add(&recorded, 1);
	while (!atomic_load(&stop_workers)) {
		if (!done && atomic_load(&check_now)) {
			check_thread((int)idx);
			atomic_fetch_add(&checked, 1);
			done = 1;
		}
		atomic_fetch_add(&counters[idx], 1);
		tp_sleep_ms(10);
	}
	return NULL;
}

static void print_counters(const char *prefix)
{
	printf("%s", prefix);
	for (int i = 0; i < NTHREADS; i++)
		printf(" %lu", atomic_load(&counters[i]));
	printf("\n");
}

static int report_failures(void)
{
	int failed = 0;
	for (int i = 0; i < NTHREADS; i++) {
		if (st[i].fail[0]) {
			printf("FAIL threads4 thread %d: %s\n", i, st[i].fail);
			failed = 1;
		}
	}
	return failed;
}

int main(void)
{
	pthread_t tids[WORKERS];
	sigset_t term, old;

	tp_setup_stdout();
	/* Workers inherit a mask that blocks SIGTERM, so it always reaches the main thread. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	for (long i = 0; i < WORKERS; i++) {
		if (pthread_create(&tids[i], NULL, worker, (void *)(i + 1)) != 0) {
			printf("FAIL pthread_create\n");
			return 1;
		}
	}
	tp_install_term_handler();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	setup_thread(0);
	while (atomic_load(&recorded) < WORKERS)
		tp_sleep_ms(1);
	if (report_failures())
		return 1;
	tp_ready("threads4");

	while (!tp_term_requested) {
		atomic_fetch_add(&counters[0], 1);
		print_counters("counts");
		tp_sleep_ms(100);
	}

	check_thread(0);
	atomic_store(&check_now, 1);
	while (atomic_load(&checked) < WORKERS)
		tp_sleep_ms(1);
	/* Every worker must still be making progress. */
	unsigned long before[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		before[i] = atomic_load(&counters[i]);
	tp_sleep_ms(200);
	int stalled = 0;
	for (int i = 1; i < NTHREADS; i++)
		if (atomic_load(&counters[i]) == before[i])
			stalled++;
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(tids[i], NULL);
	if (report_failures())
		return 1;
	if (stalled) {
		print_counters("FAIL threads4 stalled workers, counts");
		return 1;
	}
	print_counters("PASS threads4");
	return 0;
}
