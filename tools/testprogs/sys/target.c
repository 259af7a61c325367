/*
 * Tracee for the @criu/sys tests. It sets up state the tests look at from outside, prints where
 * that state lives, then prints one line per tick so the tests can see it run, stop, and notice
 * changes made to it through ptrace and process_vm_writev.
 *
 *   target                 run until killed
 *   target exit MS CODE    sleep MS milliseconds, then exit with CODE
 *
 * State: SIGUSR2 blocked; fd 10 is a dup of stdout; SIGUSR1 counted by a handler; an allow-all
 * seccomp filter installed (so PTRACE_SECCOMP_GET_FILTER has something to return).
 */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static char pattern[64] = "criu-ts-pattern-AAAAAAAAAAAAAAAA";
static volatile unsigned long word = 0x1122334455667788UL;
static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig) { (void)sig; usr1_count++; }

static void sleep_ms(long ms) {
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0) {}
}

static unsigned long long blocked_mask(void) {
	sigset_t cur;
	unsigned long long mask = 0;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	for (int s = 1; s <= 64; s++)
		if (sigismember(&cur, s) == 1) mask |= 1ULL << (s - 1);
	return mask;
}

static void allow_all_seccomp(void) {
	struct sock_filter insn = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { 1, &insn };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("seccomp");
		exit(2);
	}
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "exit") == 0) {
		printf("ready pid=%d\n", getpid());
		sleep_ms(atol(argv[2]));
		return atoi(argv[3]);
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	dup2(1, 10);
	allow_all_seccomp();

	printf("ready pid=%d pattern=%p word=%p\n", getpid(), (void *)pattern, (void *)&word);
	for (unsigned long tick = 0;; tick++) {
		printf("tick %lu pattern=%.32s word=%lx mask=%llx usr1=%d\n", tick, pattern, word, blocked_mask(), (int)usr1_count);
		sleep_ms(20);
	}
}
