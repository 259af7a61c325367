/* threads4: the main thread plus 3 worker threads, each incrementing its own counter every
 * ~10 ms. The main thread prints all four counters every ~100 ms. On SIGTERM (delivered to
 * the main thread, the workers block it) the main thread checks that every worker advanced
 * during a last observation window, stops them and reports. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define WORKERS 3

static atomic_ulong counters[WORKERS + 1];
static atomic_int stop_workers;

static void *worker(void *arg)
{
	long idx = (long)arg;
	while (!atomic_load(&stop_workers)) {
		atomic_fetch_add(&counters[idx], 1);
		tp_sleep_ms(10);
	}
	return NULL;
}

static void print_counters(const char *prefix)
{
	printf("%s", prefix);
	for (int i = 0; i <= WORKERS; i++)
		printf(" %lu", atomic_load(&counters[i]));
	printf("\n");
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
	tp_ready("threads4");

	while (!tp_term_requested) {
		atomic_fetch_add(&counters[0], 1);
		print_counters("counts");
		tp_sleep_ms(100);
	}

	/* Every worker must still be making progress. */
	unsigned long before[WORKERS + 1];
	for (int i = 0; i <= WORKERS; i++)
		before[i] = atomic_load(&counters[i]);
	tp_sleep_ms(200);
	int stalled = 0;
	for (int i = 1; i <= WORKERS; i++)
		if (atomic_load(&counters[i]) == before[i])
			stalled++;
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(tids[i], NULL);
	if (stalled) {
		print_counters("FAIL threads4 stalled workers, counts");
		return 1;
	}
	print_counters("PASS threads4");
	return 0;
}
