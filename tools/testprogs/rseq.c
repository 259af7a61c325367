/* rseq: the restartable-sequences area glibc (>= 2.35) registers for the thread.
 * On SIGTERM: the registration must still exist (registering the same area again fails with
 * EBUSY; it would succeed on an unregistered thread), the area must be the recorded one, and
 * the kernel must keep it updated: cpu_id equals sched_getcpu(), and after pinning the thread
 * to another CPU (when it may run on more than one) cpu_id follows.
 * Prints a counter every ~200 ms. */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <stdint.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

static struct rseq *area(void)
{
	return (struct rseq *)((char *)tp_thread_pointer() + __rseq_offset);
}

static int cpu_matches(volatile struct rseq *rs, int *seen_cpu, int *seen_rseq)
{
	/* A migration between the two reads is possible: retry a few times. */
	for (int i = 0; i < 20; i++) {
		*seen_rseq = (int)rs->cpu_id;
		*seen_cpu = sched_getcpu();
		if (*seen_rseq == *seen_cpu && (int)rs->cpu_id_start == *seen_cpu)
			return 1;
		sched_yield();
	}
	return 0;
}

int main(void)
{
	unsigned long ticks = 0;
	int cpu, rcpu;

	tp_setup_stdout();
	tp_install_term_handler();
	if (__rseq_size == 0) {
		printf("FAIL rseq glibc did not register rseq (__rseq_size 0)\n");
		return 1;
	}
	volatile struct rseq *rs = area();
	struct rseq *recorded = area();
	if (!cpu_matches(rs, &cpu, &rcpu)) {
		printf("FAIL rseq cpu_id %d but sched_getcpu %d before READY\n", rcpu, cpu);
		return 1;
	}
	printf("rseq area %p size %u cpu %d\n", (void *)recorded, __rseq_size, cpu);
	tp_ready("rseq");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	if (area() != recorded) {
		printf("FAIL rseq area moved to %p from %p\n", (void *)area(), (void *)recorded);
		return 1;
	}
	/* glibc registers sizeof(struct rseq) (32) bytes; __rseq_size may be smaller (features). */
	long r1 = syscall(SYS_rseq, recorded, 32, 0, RSEQ_SIG);
	int e1 = errno;
	long r2 = r1 == 0 || e1 == EBUSY ? r1 : syscall(SYS_rseq, recorded, __rseq_size, 0, RSEQ_SIG);
	int e2 = r1 == 0 || e1 == EBUSY ? e1 : errno;
	if (r1 == 0 || r2 == 0) {
		printf("FAIL rseq the thread had no rseq registration\n");
		return 1;
	}
	if (e1 != EBUSY && e2 != EBUSY) {
		printf("FAIL rseq re-registration: %s / %s (a different area or signature is registered)\n",
		       strerror(e1), strerror(e2));
		return 1;
	}
	if (!cpu_matches(rs, &cpu, &rcpu)) {
		printf("FAIL rseq cpu_id %d but sched_getcpu %d\n", rcpu, cpu);
		return 1;
	}
	cpu_set_t allowed, one;
	int moved = 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 1) {
		for (int c = 0; c < CPU_SETSIZE && !moved; c++) {
			if (c == cpu || !CPU_ISSET(c, &allowed))
				continue;
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			if (sched_setaffinity(0, sizeof(one), &one) != 0)
				continue;
			sched_yield();
			if (sched_getcpu() != c || !cpu_matches(rs, &cpu, &rcpu) || rcpu != c) {
				printf("FAIL rseq pinned to cpu %d: cpu_id %d, sched_getcpu %d\n", c, rcpu, cpu);
				return 1;
			}
			moved = 1;
		}
		sched_setaffinity(0, sizeof(allowed), &allowed);
	}
	printf("PASS rseq cpu %d%s %lu ticks\n", cpu, moved ? " (followed a migration)" : "", ticks);
	return 0;
}
