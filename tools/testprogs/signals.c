/* signals: signal dispositions, the blocked mask and pending signals.
 *   SIGUSR1       SA_SIGINFO|SA_RESTART handler, sa_mask {SIGHUP, SIGWINCH}
 *   SIGRTMIN+2    SA_SIGINFO handler, sa_mask {SIGURG}
 *   SIGUSR2       plain handler, SA_RESTART|SA_NODEFER
 *   SIGPIPE       ignored
 *   blocked       SIGUSR2, SIGRTMIN+2, SIGQUIT, SIGTTIN
 *   pending       SIGUSR2 raised by the thread, SIGRTMIN+2 sigqueue'd twice to the process
 *                 (si_value 111 then 222), all before READY
 * On SIGTERM: the mask and every sigaction (handler, flags, mask) must be as recorded and
 * sigpending() exactly {SIGUSR2, SIGRTMIN+2}; then it unblocks them and checks that the
 * handlers run (SIGUSR2 once; SIGRTMIN+2 twice, SI_QUEUE from its own pid with 111 then 222)
 * with their sa_mask applied, that a fresh SIGUSR1 reaches its handler, and that writing to a
 * pipe without reader fails with EPIPE (SIGPIPE still ignored).
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <signal.h>

#define SIGRT (SIGRTMIN + 2)

static volatile sig_atomic_t usr1_runs, usr2_runs, rt_runs, usr1_code, usr1_pid, usr1_mask_ok, rt_mask_ok;
static volatile int rt_values[4], rt_codes[4], rt_pids[4];

static int mask_has(int a, int b, int c)
{
	sigset_t m;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	return sigismember(&m, a) == 1 && sigismember(&m, b) == 1 && (c == 0 || sigismember(&m, c) == 1);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	usr1_runs++;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	usr1_mask_ok = mask_has(SIGHUP, SIGWINCH, sig);
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	int i = rt_runs;
	if (i < 4) {
		rt_values[i] = si->si_value.sival_int;
		rt_codes[i] = si->si_code;
		rt_pids[i] = si->si_pid;
	}
	rt_mask_ok = mask_has(SIGURG, sig, 0);
	rt_runs++;
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_runs++;
}

struct disp {
	int sig;
	const char *name;
	struct sigaction want;
};

static struct disp disps[4];

static void install(int i, int sig, const char *name, void (*h)(int), void (*sa)(int, siginfo_t *, void *), int flags,
		    int m1, int m2)
{
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	if (sa)
		act.sa_sigaction = sa;
	else
		act.sa_handler = h;
	act.sa_flags = flags;
	sigemptyset(&act.sa_mask);
	if (m1)
		sigaddset(&act.sa_mask, m1);
	if (m2)
		sigaddset(&act.sa_mask, m2);
	if (sigaction(sig, &act, NULL) != 0) {
		printf("FAIL signals sigaction %s: %s\n", name, strerror(errno));
		exit(1);
	}
	disps[i].sig = sig;
	disps[i].name = name;
	sigaction(sig, NULL, &disps[i].want); /* as the kernel reports it (flags incl. SA_RESTORER) */
}

static int same_set(const sigset_t *a, const sigset_t *b)
{
	for (int s = 1; s <= SIGRTMAX; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

static int check_pending(const char *when)
{
	sigset_t pend, want;
	sigpending(&pend);
	sigemptyset(&want);
	sigaddset(&want, SIGUSR2);
	sigaddset(&want, SIGRT);
	if (!same_set(&pend, &want)) {
		printf("FAIL signals pending set wrong %s:", when);
		for (int s = 1; s <= SIGRTMAX; s++)
			if (sigismember(&pend, s))
				printf(" %d", s);
		printf("\n");
		return 1;
	}
	return 0;
}

int main(void)
{
	sigset_t block, cur;
	unsigned long ticks = 0;
	pid_t me = getpid();

	tp_setup_stdout();
	tp_install_term_handler();
	install(0, SIGUSR1, "SIGUSR1", NULL, on_usr1, SA_SIGINFO | SA_RESTART, SIGHUP, SIGWINCH);
	install(1, SIGRT, "SIGRTMIN+2", NULL, on_rt, SA_SIGINFO, SIGURG, 0);
	install(2, SIGUSR2, "SIGUSR2", on_usr2, NULL, SA_RESTART | SA_NODEFER, 0, 0);
	install(3, SIGPIPE, "SIGPIPE", SIG_IGN, NULL, 0, 0, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTTIN);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigprocmask(SIG_BLOCK, NULL, &block); /* the full mask as recorded */
	raise(SIGUSR2);
	union sigval v1 = { .sival_int = 111 }, v2 = { .sival_int = 222 };
	if (sigqueue(me, SIGRT, v1) != 0 || sigqueue(me, SIGRT, v2) != 0) {
		printf("FAIL signals sigqueue: %s\n", strerror(errno));
		return 1;
	}
	if (check_pending("before READY"))
		return 1;
	tp_ready("signals");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (!same_set(&cur, &block)) {
		printf("FAIL signals blocked mask changed\n");
		return 1;
	}
	for (int i = 0; i < 4; i++) {
		struct sigaction now;
		sigaction(disps[i].sig, NULL, &now);
		if (now.sa_handler != disps[i].want.sa_handler || now.sa_flags != disps[i].want.sa_flags ||
		    !same_set(&now.sa_mask, &disps[i].want.sa_mask)) {
			printf("FAIL signals %s disposition: handler %p flags %#x, recorded %p %#x\n", disps[i].name,
			       (void *)now.sa_handler, (unsigned)now.sa_flags, (void *)disps[i].want.sa_handler,
			       (unsigned)disps[i].want.sa_flags);
			return 1;
		}
	}
	if (check_pending("after READY"))
		return 1;
	if (usr2_runs || rt_runs || usr1_runs) {
		printf("FAIL signals a handler ran while its signal was blocked\n");
		return 1;
	}
	sigset_t unblock;
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGUSR2);
	sigaddset(&unblock, SIGRT);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
	if (usr2_runs != 1 || rt_runs != 2) {
		printf("FAIL signals after unblocking: SIGUSR2 ran %d times, SIGRTMIN+2 %d times\n", (int)usr2_runs,
		       (int)rt_runs);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		if (rt_values[i] != (i ? 222 : 111) || rt_codes[i] != SI_QUEUE || rt_pids[i] != me) {
			printf("FAIL signals RT signal %d: value %d code %d pid %d\n", i, rt_values[i], rt_codes[i],
			       rt_pids[i]);
			return 1;
		}
	}
	if (!rt_mask_ok) {
		printf("FAIL signals SIGRTMIN+2 handler ran without its sa_mask\n");
		return 1;
	}
	kill(me, SIGUSR1);
	if (usr1_runs != 1 || usr1_code != SI_USER || usr1_pid != me || !usr1_mask_ok) {
		printf("FAIL signals SIGUSR1: runs %d code %d pid %d mask ok %d\n", (int)usr1_runs, (int)usr1_code,
		       (int)usr1_pid, (int)usr1_mask_ok);
		return 1;
	}
	int p[2];
	if (pipe(p) != 0) {
		printf("FAIL signals pipe\n");
		return 1;
	}
	close(p[0]);
	if (write(p[1], "x", 1) != -1 || errno != EPIPE) {
		printf("FAIL signals write to a broken pipe did not fail with EPIPE\n");
		return 1;
	}
	printf("PASS signals %lu ticks\n", ticks);
	return 0;
}
