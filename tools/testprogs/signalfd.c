/* signalfd: SIGUSR1, SIGUSR2 and SIGRTMIN+1 blocked; A = signalfd {USR1, USR2} (SFD_NONBLOCK |
 * SFD_CLOEXEC), B = signalfd {RTMIN+1}; SIGUSR1 raised (pending) before READY.
 * On SIGTERM: fdinfo sigmask of both, flags, A reads the pending SIGUSR1 then EAGAIN, a new
 * SIGUSR2 through A, a sigqueue'd RTMIN+1 with value 77 through B. */
#define _GNU_SOURCE
#include "common.h"
#include "fdinfo.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/signalfd.h>

#define FAIL(...) do { printf("FAIL signalfd " __VA_ARGS__); printf("\n"); return 1; } while (0)

int main(void)
{
	sigset_t all, ma, mb;
	struct signalfd_siginfo si;
	char buf[64];

	tp_setup_stdout();
	tp_install_term_handler();
	sigemptyset(&ma);
	sigaddset(&ma, SIGUSR1);
	sigaddset(&ma, SIGUSR2);
	sigemptyset(&mb);
	sigaddset(&mb, SIGRTMIN + 1);
	sigemptyset(&all);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &all, NULL);
	int a = signalfd(-1, &ma, SFD_NONBLOCK | SFD_CLOEXEC);
	int b = signalfd(-1, &mb, 0);
	if (a < 0 || b < 0)
		FAIL("create: %s", strerror(errno));
	raise(SIGUSR1);
	tp_ready("signalfd");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	unsigned long long want_a = (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGUSR2 - 1));
	unsigned long long want_b = 1ULL << (SIGRTMIN + 1 - 1);
	if (tp_fdinfo_field(a, "sigmask:", buf, sizeof(buf)) || strtoull(buf, NULL, 16) != want_a)
		FAIL("A sigmask '%s'", buf);
	if (tp_fdinfo_field(b, "sigmask:", buf, sizeof(buf)) || strtoull(buf, NULL, 16) != want_b)
		FAIL("B sigmask '%s'", buf);
	if (!(fcntl(a, F_GETFL) & O_NONBLOCK) || !(fcntl(a, F_GETFD) & FD_CLOEXEC) || (fcntl(b, F_GETFL) & O_NONBLOCK) || (fcntl(b, F_GETFD) & FD_CLOEXEC))
		FAIL("flags");
	if (read(a, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1)
		FAIL("A did not read the pending SIGUSR1");
	if (read(a, &si, sizeof(si)) != -1 || errno != EAGAIN)
		FAIL("A not empty");
	raise(SIGUSR2);
	if (read(a, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR2)
		FAIL("A did not read SIGUSR2");
	union sigval v = { .sival_int = 77 };
	sigqueue(getpid(), SIGRTMIN + 1, v);
	if (read(b, &si, sizeof(si)) != sizeof(si) || (int)si.ssi_signo != SIGRTMIN + 1 || si.ssi_int != 77)
		FAIL("B read signo %u int %d", si.ssi_signo, si.ssi_int);
	printf("PASS signalfd\n");
	return 0;
}
