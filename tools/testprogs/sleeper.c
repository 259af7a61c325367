/* sleeper: sleeps in nanosleep, PERIOD_MS at a time (default 5000), so a dump almost always
 * catches it inside the syscall. An interrupted sleep (EINTR: a signal, or the restart a
 * restore turns into EINTR) is resumed with the remaining time the kernel reported, so each
 * cycle must take at least PERIOD_MS in CLOCK_MONOTONIC time and not absurdly more.
 *   sleeper [PERIOD_MS]
 * Prints "sleep N" before each cycle. On SIGTERM it finishes the cycle in progress (that
 * resumption is checked like the others), then reports. */
#include "common.h"

#define SLACK_NS (120LL * 1000000000LL) /* a dump+restore may stretch one cycle this much */

int main(int argc, char **argv)
{
	long period_ms = argc > 1 ? atol(argv[1]) : 5000;
	unsigned long cycles = 0, eintrs = 0;
	long long period_ns = period_ms * 1000000LL;

	tp_setup_stdout();
	tp_install_term_handler();
	if (period_ms <= 0) {
		fprintf(stderr, "usage: sleeper [PERIOD_MS]\n");
		return 2;
	}
	const long long start = tp_now_ns(CLOCK_MONOTONIC);
	const long long start_real = tp_now_ns(CLOCK_REALTIME);
	tp_ready("sleeper");
	for (;;) {
		struct timespec req = { period_ms / 1000, (period_ms % 1000) * 1000000L }, rem;
		long long t0 = tp_now_ns(CLOCK_MONOTONIC);
		printf("sleep %lu\n", cycles + 1);
		while (nanosleep(&req, &rem) != 0) {
			if (errno != EINTR) {
				printf("FAIL sleeper nanosleep: %s\n", strerror(errno));
				return 1;
			}
			long long left = rem.tv_sec * 1000000000LL + rem.tv_nsec;
			if (rem.tv_nsec < 0 || rem.tv_nsec >= 1000000000L || left < 0 || left > period_ns) {
				printf("FAIL sleeper cycle %lu: remaining time %lld.%09ld out of range\n", cycles + 1,
				       (long long)rem.tv_sec, rem.tv_nsec);
				return 1;
			}
			eintrs++;
			req = rem;
		}
		long long took = tp_now_ns(CLOCK_MONOTONIC) - t0;
		cycles++;
		if (took < period_ns) {
			printf("FAIL sleeper cycle %lu woke early: %lld ns of %lld\n", cycles, took, period_ns);
			return 1;
		}
		if (took > period_ns + SLACK_NS) {
			printf("FAIL sleeper cycle %lu took %lld ns (period %lld)\n", cycles, took, period_ns);
			return 1;
		}
		if (tp_term_requested)
			break;
	}
	long long total = tp_now_ns(CLOCK_MONOTONIC) - start;
	long long total_real = tp_now_ns(CLOCK_REALTIME) - start_real;
	if (total < (long long)cycles * period_ns || total_real < (long long)cycles * period_ns - 1000000000LL) {
		printf("FAIL sleeper %lu cycles in %lld ns (realtime %lld ns)\n", cycles, total, total_real);
		return 1;
	}
	printf("PASS sleeper %lu cycles %lu interruptions %lld ms\n", cycles, eintrs, total / 1000000);
	return 0;
}
