/* vdsotime: four threads calling the vDSO's time functions in a tight loop (clock_gettime,
 * clock_getres, gettimeofday, time, getcpu), so a dump often catches one inside the vDSO.
 * Each thread checks that CLOCK_MONOTONIC never goes back, that the wall clocks agree with each
 * other, that getcpu gives a CPU that exists and that clock_getres is sane. On SIGTERM: no check
 * ever failed and every thread still advances. */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/time.h>

#define THREADS 4

static volatile unsigned long iterations[THREADS];
static volatile int failed;
static char failure[256];
static volatile int stop;

static void fail(const char *fmt, long long a, long long b)
{
	if (!__atomic_exchange_n(&failed, 1, __ATOMIC_SEQ_CST))
		snprintf(failure, sizeof(failure), fmt, a, b);
}

static void *hammer(void *arg)
{
	int id = (int)(long)arg;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	struct timespec prev = { 0, 0 };

	while (!stop) {
		struct timespec mono, real, res;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		if (mono.tv_sec < prev.tv_sec || (mono.tv_sec == prev.tv_sec && mono.tv_nsec < prev.tv_nsec))
			fail("CLOCK_MONOTONIC went back from %lld s to %lld s", prev.tv_sec, mono.tv_sec);
		prev = mono;
		if ((iterations[id] & 63) == 0) {
			struct timeval tv;
			struct timespec real2;
			unsigned cpu = ~0u, node;
			/* Bracketed by two CLOCK_REALTIME readings: a checkpoint may fall between any two calls. */
			clock_gettime(CLOCK_REALTIME, &real);
			gettimeofday(&tv, NULL);
			time_t t = time(NULL);
			clock_gettime(CLOCK_REALTIME, &real2);
			if (tv.tv_sec < real.tv_sec - 1 || tv.tv_sec > real2.tv_sec + 1)
				fail("gettimeofday %lld outside CLOCK_REALTIME readings around it (from %lld)", tv.tv_sec, real.tv_sec);
			if (t < real.tv_sec - 1 || t > real2.tv_sec + 1)
				fail("time() %lld outside CLOCK_REALTIME readings around it (from %lld)", t, real.tv_sec);
			if (getcpu(&cpu, &node) != 0 || cpu >= (unsigned)ncpu)
				fail("getcpu gave cpu %lld of %lld", (long long)cpu, ncpu);
			if (clock_getres(CLOCK_MONOTONIC, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0 || res.tv_nsec > 1000000)
				fail("clock_getres(CLOCK_MONOTONIC) %lld s %lld ns", res.tv_sec, res.tv_nsec);
		}
		iterations[id]++;
	}
	return NULL;
}

int main(void)
{
	pthread_t th[THREADS];
	unsigned long before[THREADS];
	int i;

	tp_setup_stdout();
	tp_install_term_handler();
	for (i = 1; i < THREADS; i++)
		pthread_create(&th[i], NULL, hammer, (void *)(long)i);
	tp_ready("vdsotime");
	/* The main thread hammers too, a slice at a time, so it notices SIGTERM. */
	while (!tp_term_requested) {
		struct timespec prev, now;
		clock_gettime(CLOCK_MONOTONIC, &prev);
		for (int k = 0; k < 100000 && !tp_term_requested; k++) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec < prev.tv_sec || (now.tv_sec == prev.tv_sec && now.tv_nsec < prev.tv_nsec))
				fail("CLOCK_MONOTONIC went back from %lld s to %lld s (main)", prev.tv_sec, now.tv_sec);
			prev = now;
			iterations[0]++;
		}
	}
	for (i = 1; i < THREADS; i++)
		before[i] = iterations[i];
	/* Every thread must still advance. A loaded machine may not run one of them for a while
	 * (five busy threads of ours on two cores among other jobs), so each gets up to 5 s. */
	for (i = 1; i < THREADS; i++) {
		for (int waited = 0; iterations[i] == before[i] && waited < 5000; waited += 20)
			tp_sleep_ms(20);
		if (iterations[i] == before[i]) {
			printf("FAIL vdsotime thread %d stopped at %lu iterations\n", i, before[i]);
			return 1;
		}
	}
	stop = 1;
	for (i = 1; i < THREADS; i++)
		pthread_join(th[i], NULL);
	if (failed) {
		printf("FAIL vdsotime %s\n", failure);
		return 1;
	}
	printf("PASS vdsotime %lu %lu %lu %lu\n", iterations[0], iterations[1], iterations[2], iterations[3]);
	return 0;
}
