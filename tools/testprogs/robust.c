/* robust: per-thread robust futex lists and the personality.
 * The main thread registers a robust list head of its own (set_robust_list: not glibc's, so a
 * restore that left glibc's or none in place shows); a worker thread registers another whose
 * list holds one "lock" (a futex word with the worker's tid, as a robust mutex owner writes it).
 * The personality gets ADDR_NO_RANDOMIZE and UNAME26 (harmless while running: the first only
 * matters at exec, the second changes what uname() reports).
 * On SIGTERM: get_robust_list of both threads gives the same heads and lengths, the personality
 * is the same and uname() still says 2.6.x; then the worker exits and the kernel, walking the
 * list it has registered for it, must mark the lock FUTEX_OWNER_DIED (before that, joining the
 * live worker must say EBUSY: glibc's copy of its tid, the clear_child_tid word, is intact).
 * `nopers`: the personality is left alone (CRIU 4.1 does not restore it).
 * Prints a counter every ~200 ms. */
#define _GNU_SOURCE /* pthread_tryjoin_np */
#include "common.h"
#include <linux/futex.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

struct lock {
	struct robust_list list;
	uint32_t word;
};

static struct robust_list_head main_head;
static struct robust_list_head worker_head;
static struct lock worker_lock;
static volatile int worker_tid;
static volatile int worker_stop;

static long get_robust(int tid, void **head, size_t *len)
{
	return syscall(SYS_get_robust_list, tid, head, len);
}

static void *worker(void *arg)
{
	(void)arg;
	int tid = (int)syscall(SYS_gettid);
	worker_lock.word = (uint32_t)tid;
	worker_lock.list.next = &worker_head.list;
	worker_head.list.next = &worker_lock.list;
	worker_head.futex_offset = (long)(offsetof(struct lock, word) - offsetof(struct lock, list));
	worker_head.list_op_pending = NULL;
	if (syscall(SYS_set_robust_list, &worker_head, sizeof(worker_head)) != 0) {
		printf("FAIL robust set_robust_list (worker): %s\n", strerror(errno));
		exit(1);
	}
	__atomic_store_n(&worker_tid, tid, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&worker_stop, __ATOMIC_SEQ_CST))
		tp_sleep_ms(50);
	return NULL; /* the thread exits: the kernel walks worker_head */
}

/* 0 when thread `tid` (0: this one) has `want` registered with the kernel's length. */
static int check_head(const char *who, int tid, void *want)
{
	void *head = NULL;
	size_t len = 0;
	if (get_robust(tid, &head, &len) != 0) {
		printf("FAIL robust get_robust_list(%s): %s\n", who, strerror(errno));
		return 1;
	}
	if (head != want || len != sizeof(struct robust_list_head)) {
		printf("FAIL robust %s head %p len %zu, want %p len %zu\n", who, head, len, want,
		       sizeof(struct robust_list_head));
		return 1;
	}
	return 0;
}

static int check_personality(unsigned want)
{
	int now = personality(0xffffffff);
	struct utsname u;
	if (now < 0 || (unsigned)now != want) {
		printf("FAIL robust personality %#x, want %#x\n", (unsigned)now, want);
		return 1;
	}
	if (uname(&u) != 0 || strncmp(u.release, "2.6.", 4) != 0) {
		printf("FAIL robust UNAME26 set but uname release is '%s'\n", u.release);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th;
	unsigned long ticks = 0;
	int pers = !(argc > 1 && strcmp(argv[1], "nopers") == 0);

	tp_setup_stdout();
	tp_install_term_handler();

	int orig = personality(0xffffffff);
	unsigned want = (unsigned)orig | ADDR_NO_RANDOMIZE | UNAME26;
	if (!pers)
		want = (unsigned)orig;
	else if (orig < 0 || personality(want) < 0 || check_personality(want) != 0) {
		printf("FAIL robust cannot set personality %#x: %s\n", want, strerror(errno));
		return 1;
	}

	main_head.list.next = &main_head.list; /* empty */
	main_head.futex_offset = 8;
	main_head.list_op_pending = NULL;
	if (syscall(SYS_set_robust_list, &main_head, sizeof(main_head)) != 0) {
		printf("FAIL robust set_robust_list: %s\n", strerror(errno));
		return 1;
	}
	if (pthread_create(&th, NULL, worker, NULL) != 0) {
		printf("FAIL robust pthread_create\n");
		return 1;
	}
	while (!__atomic_load_n(&worker_tid, __ATOMIC_SEQ_CST))
		tp_sleep_ms(1);
	if (check_head("main", 0, &main_head) || check_head("worker", worker_tid, &worker_head))
		return 1;
	printf("personality %#x main head %p worker %d head %p\n", want, (void *)&main_head, worker_tid,
	       (void *)&worker_head);
	tp_ready("robust");

	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	int tid = worker_tid;
	if (check_head("main", 0, &main_head) || check_head("worker", tid, &worker_head) ||
	    (pers && check_personality(want)))
		return 1;
	if (main_head.list.next != &main_head.list || main_head.futex_offset != 8 ||
	    worker_head.list.next != &worker_lock.list || worker_lock.word != (uint32_t)tid) {
		printf("FAIL robust list memory changed (lock word %#x, tid %d)\n", worker_lock.word, tid);
		return 1;
	}
	/* glibc's tid of the live worker (its clear_child_tid word) must not read 0. */
	int busy = pthread_tryjoin_np(th, NULL);
	if (busy != EBUSY) {
		printf("FAIL robust pthread_tryjoin_np of the live worker gave %d, want EBUSY\n", busy);
		return 1;
	}
	__atomic_store_n(&worker_stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	/* The kernel marks a dead owner's lock: the tid replaced by FUTEX_OWNER_DIED. */
	uint32_t word = __atomic_load_n(&worker_lock.word, __ATOMIC_SEQ_CST);
	if (word != FUTEX_OWNER_DIED) {
		printf("FAIL robust the exited worker's lock word is %#x, want FUTEX_OWNER_DIED %#x\n", word,
		       FUTEX_OWNER_DIED);
		return 1;
	}
	printf("PASS robust %lu ticks\n", ticks);
	return 0;
}
