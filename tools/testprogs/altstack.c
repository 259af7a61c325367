/* altstack: a sigaltstack (64 KiB, mmap'd, a canary pattern in its lowest 4 KiB) and a
 * SIGUSR1 handler with SA_ONSTACK that checks it runs on that stack (a local's address is
 * inside it, and sigaltstack() reports SS_ONSTACK). The main loop raises SIGUSR1 every
 * ~100 ms. On SIGTERM: sigaltstack() must report the recorded stack, the handler must have
 * run on it every time, more often than at READY, once more now, and the canary is intact.
 * Prints the run count every 10 runs. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#define ALT_SIZE (64 * 1024)
#define CANARY 4096

static unsigned char *alt;
static volatile sig_atomic_t runs, off_stack;

static void on_usr1(int sig)
{
	volatile char here = 0;
	stack_t cur;
	(void)sig;
	runs++;
	uintptr_t a = (uintptr_t)&here;
	if (a < (uintptr_t)alt + CANARY || a >= (uintptr_t)alt + ALT_SIZE)
		off_stack++;
	if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_ONSTACK))
		off_stack++;
}

int main(void)
{
	stack_t ss, now;
	struct sigaction sa;

	tp_setup_stdout();
	tp_install_term_handler();
	alt = mmap(NULL, ALT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED) {
		printf("FAIL altstack mmap\n");
		return 1;
	}
	for (int i = 0; i < CANARY; i++)
		alt[i] = (unsigned char)(i * 7 + 3);
	ss.ss_sp = alt;
	ss.ss_size = ALT_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0) {
		printf("FAIL altstack sigaltstack: %s\n", strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	const int at_ready = runs;
	if (at_ready != 1 || off_stack) {
		printf("FAIL altstack handler did not run on the alternate stack before READY\n");
		return 1;
	}
	printf("altstack %p\n", (void *)alt);
	tp_ready("altstack");
	while (!tp_term_requested) {
		raise(SIGUSR1);
		if (runs % 10 == 0)
			printf("runs %d\n", (int)runs);
		tp_sleep_ms(100);
	}

	if (sigaltstack(NULL, &now) != 0 || now.ss_sp != (void *)alt || now.ss_size != ALT_SIZE || now.ss_flags != 0) {
		printf("FAIL altstack sigaltstack now %p size %zu flags %d, recorded %p %d\n", now.ss_sp, now.ss_size,
		       now.ss_flags, (void *)alt, ALT_SIZE);
		return 1;
	}
	int before = runs;
	raise(SIGUSR1);
	if (runs != before + 1 || off_stack || before <= at_ready) {
		printf("FAIL altstack runs %d (at READY %d), %d off the alternate stack\n", (int)runs, at_ready,
		       (int)off_stack);
		return 1;
	}
	for (int i = 0; i < CANARY; i++) {
		if (alt[i] != (unsigned char)(i * 7 + 3)) {
			printf("FAIL altstack canary byte %d\n", i);
			return 1;
		}
	}
	printf("PASS altstack %d runs\n", (int)runs);
	return 0;
}
