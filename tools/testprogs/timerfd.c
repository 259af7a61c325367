/* timerfd [expired]: A CLOCK_MONOTONIC every second (TFD_NONBLOCK), B CLOCK_REALTIME absolute
 * one-shot an hour ahead, C CLOCK_BOOTTIME relative one-shot of 1000 s (TFD_CLOEXEC), D
 * disarmed, E a 1 ms one-shot expired before READY and never read (1 tick pending); with
 * "expired", F every 50 ms, expired before READY and never read (the kernel re-arms it only on
 * a read: CRIU 4.1 records no time left and its restore disarms it).
 * On SIGTERM: clocks, flags, settime flags (fdinfo), intervals and remaining times; A still
 * fires (a tick within 2.5 s); E still holds exactly 1 tick; F still fires (3 ticks in 300 ms). */
#define _GNU_SOURCE
#include "common.h"
#include <poll.h>
#include "fdinfo.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/timerfd.h>

#define FAIL(...) do { printf("FAIL timerfd " __VA_ARGS__); printf("\n"); return 1; } while (0)
#define NS(ts) ((long long)(ts).tv_sec * 1000000000LL + (ts).tv_nsec)

int main(int argc, char **argv)
{
	int expired = argc > 1 && strcmp(argv[1], "expired") == 0;
	int f = -1;
	struct itimerspec its, cur;
	struct timespec now;
	uint64_t ticks;
	char buf[64];

	tp_setup_stdout();
	tp_install_term_handler();
	int a = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	int b = timerfd_create(CLOCK_REALTIME, 0);
	int c = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC);
	int d = timerfd_create(CLOCK_MONOTONIC, 0);
	int e = timerfd_create(CLOCK_MONOTONIC, 0);
	if (a < 0 || b < 0 || c < 0 || d < 0 || e < 0)
		FAIL("create: %s", strerror(errno));
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = its.it_interval.tv_sec = 1;
	timerfd_settime(a, 0, &its, NULL);
	if (expired) {
		f = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
		memset(&its, 0, sizeof(its));
		its.it_value.tv_nsec = its.it_interval.tv_nsec = 50000000;
		if (f < 0 || timerfd_settime(f, 0, &its, NULL) != 0)
			FAIL("F: %s", strerror(errno));
	}
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = now.tv_sec + 3600;
	timerfd_settime(b, TFD_TIMER_ABSTIME, &its, NULL);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = 1000;
	timerfd_settime(c, 0, &its, NULL);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_nsec = 1000000;
	timerfd_settime(e, 0, &its, NULL);
	tp_sleep_ms(120);
	tp_ready("timerfd");
	/* A bounded wait, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. A's ticks are read as soon as they
	 * come: CRIU 4.1 records an expired, unread periodic timerfd as disarmed (see "expired"). */
	while (!tp_term_requested) {
		struct pollfd p = { .fd = a, .events = POLLIN };
		if (poll(&p, 1, 50) == 1)
			(void)!read(a, &ticks, 8);
	}

	const char *clocks[5] = { "1", "0", "7", "1", "1" };
	int fds[5] = { a, b, c, d, e };
	for (int i = 0; i < 5; i++) {
		if (tp_fdinfo_field(fds[i], "clockid:", buf, sizeof(buf)) || strcmp(buf, clocks[i]))
			FAIL("timer %c clockid '%s'", 'A' + i, buf);
	}
	if (!(fcntl(a, F_GETFL) & O_NONBLOCK) || (fcntl(b, F_GETFL) & O_NONBLOCK) || !(fcntl(c, F_GETFD) & FD_CLOEXEC) || (fcntl(a, F_GETFD) & FD_CLOEXEC))
		FAIL("flags");
	if (tp_fdinfo_field(b, "settime flags:", buf, sizeof(buf)) || strtol(buf, NULL, 8) != TFD_TIMER_ABSTIME)
		FAIL("B settime flags '%s'", buf);
	if (tp_fdinfo_field(c, "settime flags:", buf, sizeof(buf)) || strtol(buf, NULL, 8) != 0)
		FAIL("C settime flags '%s'", buf);
	timerfd_gettime(a, &cur);
	if (NS(cur.it_interval) != 1000000000LL || NS(cur.it_value) <= 0 || NS(cur.it_value) > 1000000000LL)
		FAIL("A interval %lld value %lld", NS(cur.it_interval), NS(cur.it_value));
	timerfd_gettime(b, &cur);
	if (NS(cur.it_interval) != 0 || cur.it_value.tv_sec > 3600 || cur.it_value.tv_sec < 3300)
		FAIL("B interval %lld remaining %lld s", NS(cur.it_interval), (long long)cur.it_value.tv_sec);
	timerfd_gettime(c, &cur);
	if (NS(cur.it_interval) != 0 || cur.it_value.tv_sec >= 1000 || cur.it_value.tv_sec < 700)
		FAIL("C interval %lld remaining %lld s", NS(cur.it_interval), (long long)cur.it_value.tv_sec);
	timerfd_gettime(d, &cur);
	if (NS(cur.it_interval) != 0 || NS(cur.it_value) != 0)
		FAIL("D armed");
	fcntl(e, F_SETFL, O_NONBLOCK);
	if (read(e, &ticks, 8) != 8 || ticks != 1)
		FAIL("E ticks %llu", (unsigned long long)ticks);
	if (read(e, &ticks, 8) != -1 || errno != EAGAIN)
		FAIL("E fires again");
	long long until = tp_now_ns(CLOCK_MONOTONIC) + 2500000000LL;
	while (read(a, &ticks, 8) != 8) {
		if (tp_now_ns(CLOCK_MONOTONIC) > until)
			FAIL("A does not fire");
		tp_sleep_ms(10);
	}
	if (expired) {
		if (read(f, &ticks, 8) != 8 || ticks < 1)
			FAIL("F no ticks");
		tp_sleep_ms(300);
		if (read(f, &ticks, 8) != 8 || ticks < 3)
			FAIL("F only %llu ticks in 300 ms", (unsigned long long)ticks);
	}
	printf("PASS timerfd%s\n", expired ? " expired" : "");
	return 0;
}
