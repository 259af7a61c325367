/* sched: threads and a child process under different scheduling policies. The main thread is
 * SCHED_OTHER with nice 2; worker threads are SCHED_BATCH (nice 5), SCHED_IDLE, and, when the
 * kernel lets us (root), SCHED_FIFO priority 10 and SCHED_RR priority 20; a forked child is
 * SCHED_BATCH with nice 7. Each worker counts in a sleep loop. On SIGTERM the main thread checks
 * every thread's policy (sched_getscheduler), priority (sched_getparam) and nice (getpriority),
 * that every worker still counts, forwards SIGTERM to the child, which checks its own the same
 * way, and reports PASS only if the child exits 0. The child dies with the parent. */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct want {
	const char *name;
	int policy, prio, nice;
	volatile pid_t tid;
	volatile unsigned long count;
	volatile int ready; /* 1 set up, -1 not permitted, -2 failed */
};

static struct want workers[] = {
	{ "batch", SCHED_BATCH, 0, 5, 0, 0, 0 },
	{ "idle", SCHED_IDLE, 0, 0, 0, 0, 0 },
	{ "fifo", SCHED_FIFO, 10, 0, 0, 0, 0 },
	{ "rr", SCHED_RR, 20, 0, 0, 0, 0 },
};
#define NWORKERS (int)(sizeof(workers) / sizeof(workers[0]))

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Puts the calling thread under w's policy. 0, or -1 when the kernel does not permit it. */
static int apply(struct want *w)
{
	struct sched_param sp = { .sched_priority = w->prio };
	if (setpriority(PRIO_PROCESS, gettid_(), w->nice) != 0)
		return -2;
	if (sched_setscheduler(0, w->policy, &sp) != 0)
		return errno == EPERM ? -1 : -2;
	return 0;
}

/* 1 when tid runs under w's policy, priority and nice. */
static int check(const char *who, pid_t tid, const struct want *w)
{
	struct sched_param sp;
	int policy = sched_getscheduler(tid), ok = 1;
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, tid);
	if (policy != w->policy) {
		printf("FAIL sched %s (%d): policy %d, expected %d\n", who, (int)tid, policy, w->policy);
		ok = 0;
	}
	if (sched_getparam(tid, &sp) != 0 || sp.sched_priority != w->prio) {
		printf("FAIL sched %s (%d): priority %d, expected %d\n", who, (int)tid, sp.sched_priority, w->prio);
		ok = 0;
	}
	/* SCHED_IDLE ignores nice but keeps it; RT policies too. */
	if (errno != 0 || nice != w->nice) {
		printf("FAIL sched %s (%d): nice %d, expected %d\n", who, (int)tid, nice, w->nice);
		ok = 0;
	}
	return ok;
}

static void *worker(void *arg)
{
	struct want *w = arg;
	w->tid = gettid_();
	int r = apply(w);
	w->ready = r == 0 ? 1 : r;
	for (;;) {
		w->count++;
		tp_sleep_ms(20);
	}
	return NULL;
}

static int child_main(void)
{
	struct want me = { "child", SCHED_BATCH, 0, 7, 0, 0, 0 };
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (apply(&me) != 0)
		return 3;
	while (!tp_term_requested)
		tp_sleep_ms(100);
	return check("child", getpid(), &me) ? 0 : 1;
}

int main(void)
{
	struct want main_want = { "main", SCHED_OTHER, 0, 2, 0, 0, 0 };
	pthread_t th[NWORKERS];
	unsigned long before[NWORKERS];
	int failed = 0, status;
	pid_t child;

	tp_setup_stdout();
	tp_install_term_handler();
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		_exit(child_main());
	if (apply(&main_want) != 0) {
		printf("FAIL sched: cannot set nice\n");
		return 1;
	}
	for (int i = 0; i < NWORKERS; i++) {
		if (pthread_create(&th[i], NULL, worker, &workers[i]) != 0) {
			printf("FAIL sched: pthread_create\n");
			return 1;
		}
	}
	for (int i = 0; i < NWORKERS; i++) {
		while (workers[i].ready == 0 || workers[i].count == 0)
			tp_sleep_ms(5);
		if (workers[i].ready == -2) {
			printf("FAIL sched: cannot set up %s\n", workers[i].name);
			return 1;
		}
		if (workers[i].ready == -1) {
			/* Real-time policies need privilege: without it that thread checks SCHED_OTHER. */
			printf("note: %s not permitted, checked as SCHED_OTHER\n", workers[i].name);
			workers[i].policy = SCHED_OTHER;
			workers[i].prio = 0;
		}
	}
	tp_ready("sched");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	if (!check("main", getpid(), &main_want))
		failed = 1;
	for (int i = 0; i < NWORKERS; i++) {
		if (!check(workers[i].name, workers[i].tid, &workers[i]))
			failed = 1;
		before[i] = workers[i].count;
	}
	for (int i = 0; i < NWORKERS; i++) {
		int waited = 0;
		while (workers[i].count == before[i] && waited < 10000) {
			tp_sleep_ms(10);
			waited += 10;
		}
		if (workers[i].count == before[i]) {
			printf("FAIL sched: thread %s stopped counting\n", workers[i].name);
			failed = 1;
		}
	}
	kill(child, SIGTERM);
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			printf("FAIL sched: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL sched: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed) {
		printf("FAIL sched\n");
		return 1;
	}
	printf("PASS sched\n");
	return 0;
}
