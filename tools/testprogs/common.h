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

static volatile sig_atomic_t tp_term_requested;

static void tp_on_term(int sig)
{
	(void)sig;
	tp_term_requested = 1;
}

/* SIGTERM only sets a flag: the main loop notices it and reports. No SA_RESTART, so blocking
 * calls return EINTR and the loops re-check the flag. */
static void tp_install_term_handler(void)
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

static void tp_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	/* An interrupted sleep is fine: the caller re-checks tp_term_requested. */
	nanosleep(&ts, NULL);
}

/* Line-buffered output so a reader of the log file sees each line as soon as it is printed. */
static void tp_setup_stdout(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static void tp_ready(const char *name)
{
	printf("READY %s %d\n", name, (int)getpid());
	fflush(stdout);
}

#endif
