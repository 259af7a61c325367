/* itimer: ITIMER_REAL every 50 ms, SIGALRM counted by a handler (SA_RESTART).
 * On SIGTERM: the interval must still be 50 ms, the count must have grown since READY, and
 * during a last 500 ms window the timer must keep firing (at least 5 more; 10 expected).
 * Prints the count every 10 alarms. */
#include "common.h"
#include <sys/time.h>

#define PERIOD_US 50000

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

int main(void)
{
	struct sigaction sa;
	struct itimerval it = { { 0, PERIOD_US }, { 0, PERIOD_US } }, now;

	tp_setup_stdout();
	tp_install_term_handler();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (setitimer(ITIMER_REAL, &it, NULL) != 0) {
		printf("FAIL itimer setitimer: %s\n", strerror(errno));
		return 1;
	}
	while (alarms < 3)
		pause();
	const int at_ready = alarms;
	tp_ready("itimer");
	int printed = 0;
	while (!tp_term_requested) {
		pause();
		if (alarms / 10 != printed) {
			printed = alarms / 10;
			printf("alarms %d\n", (int)alarms);
		}
	}

	int c1 = alarms;
	long long end = tp_now_ns(CLOCK_MONOTONIC) + 500000000LL;
	while (tp_now_ns(CLOCK_MONOTONIC) < end)
		tp_sleep_ms(10);
	int c2 = alarms;
	getitimer(ITIMER_REAL, &now);
	if (now.it_interval.tv_sec != 0 || now.it_interval.tv_usec != PERIOD_US) {
		printf("FAIL itimer interval %ld.%06ld\n", (long)now.it_interval.tv_sec, (long)now.it_interval.tv_usec);
		return 1;
	}
	if (now.it_value.tv_sec != 0 || now.it_value.tv_usec <= 0 || now.it_value.tv_usec > PERIOD_US) {
		printf("FAIL itimer not armed: value %ld.%06ld\n", (long)now.it_value.tv_sec, (long)now.it_value.tv_usec);
		return 1;
	}
	if (c1 <= at_ready || c2 - c1 < 5) {
		printf("FAIL itimer alarms: %d at READY, %d at SIGTERM, %d 500 ms later\n", at_ready, c1, c2);
		return 1;
	}
	printf("PASS itimer %d alarms (%d at READY, %d in the last 500 ms)\n", c2, at_ready, c2 - c1);
	return 0;
}
