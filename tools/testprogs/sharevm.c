/* sharevm [vmonly]: a parent and a child created with clone(CLONE_VM | CLONE_SIGHAND) (or only
 * CLONE_VM with "vmonly") share one address space (and one table of signal handlers), without
 * being threads of one process.
 * Before READY: the child maps 4 pages and fills them (the parent checks it sees them), the
 * parent fills a global array (the child checks it), the parent sets a SIGUSR2 handler, the
 * child blocks SIGHUP (its own mask) and, in vmonly mode, sets its own SIGUSR2 handler.
 * On SIGTERM (to the parent), checked on both sides:
 *   kcmp(KCMP_VM) says the two share an mm; kcmp(KCMP_SIGHAND) says they share handlers (or not,
 *   in vmonly mode); the child's pages and the parent's array are intact; the parent maps a new
 *   page after the restore and the child writes into it (so the mm is one, not two copies);
 *   the child sets a SIGUSR1 handler, which the parent then sees (or does not, in vmonly mode);
 *   SIGUSR2 is the parent's handler in both (or each its own); only the child blocks SIGHUP.
 * The two talk through shared variables only. The child uses no stdio (it shares the parent's
 * TLS, so stdio's recursive locks would take it for the parent): it reports through write(2).
 * The child dies with the parent (PR_SET_PDEATHSIG). PASS only if the child exits 0. */
#define _GNU_SOURCE
#include "common.h"
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define KCMP_VM 1
#define KCMP_SIGHAND 4
#define CHILD_PAGES 4

static volatile int cmd, reply;
static volatile unsigned char *volatile child_area;
static volatile unsigned char *volatile parent_page;
static long page_size;
static int vmonly;
static unsigned char parent_array[3 * 65536];
static char child_stack[256 * 1024] __attribute__((aligned(16)));

static void on_usr1_child(int sig) { (void)sig; }
static void on_usr2_parent(int sig) { (void)sig; }
static void on_usr2_child(int sig) { (void)sig; }

static void child_sleep(void)
{
	struct timespec ts = { 0, 10 * 1000000L };
	syscall(SYS_nanosleep, &ts, NULL);
}

/* write(2) of one line: the child must not touch stdio. */
static void child_fail(const char *what)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "FAIL sharevm child: %s\n", what);
	if (write(1, buf, (size_t)n) < 0)
		_exit(9);
}

static void *handler_of(int sig)
{
	struct sigaction sa;
	if (sigaction(sig, NULL, &sa) != 0)
		return (void *)-1;
	return (void *)sa.sa_handler;
}

static int blocked(int sig)
{
	sigset_t set;
	sigprocmask(SIG_SETMASK, NULL, &set);
	return sigismember(&set, sig);
}

static int child_checks(void)
{
	for (size_t i = 0; i < sizeof(parent_array); i++) {
		if (parent_array[i] != (unsigned char)(i * 7 + 3)) {
			child_fail("the parent's array differs");
			return -1;
		}
	}
	if (handler_of(SIGUSR2) != (vmonly ? (void *)on_usr2_child : (void *)on_usr2_parent)) {
		child_fail("SIGUSR2 handler is not the expected one");
		return -1;
	}
	if (!blocked(SIGHUP)) {
		child_fail("SIGHUP no longer blocked");
		return -1;
	}
	/* A page the parent mapped after the restore: visible only if the mm is one. */
	if (!parent_page || parent_page[0] != 'p') {
		child_fail("the parent's new page is not visible");
		return -1;
	}
	memset((void *)parent_page, 'k', (size_t)page_size);
	if (signal(SIGUSR1, on_usr1_child) == SIG_ERR) {
		child_fail("signal(SIGUSR1)");
		return -1;
	}
	return 1;
}

static int child_main(void *arg)
{
	int last = 0;
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	unsigned char *a = mmap(NULL, (size_t)page_size * CHILD_PAGES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		_exit(3);
	for (long i = 0; i < page_size * CHILD_PAGES; i++)
		a[i] = (unsigned char)(i * 13 + 1);
	if (vmonly && signal(SIGUSR2, on_usr2_child) == SIG_ERR)
		_exit(4);
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(SIG_BLOCK, &hup, NULL);
	child_area = a;
	for (;;) {
		int c = cmd;
		if (c != last) {
			last = c;
			if (c == 1)
				reply = child_checks();
			else if (c == 2)
				_exit(0);
		}
		child_sleep();
	}
	return 0;
}

static long kcmp(pid_t a, pid_t b, int type)
{
	return syscall(SYS_kcmp, a, b, type, 0, 0);
}

int main(int argc, char **argv)
{
	int failed = 0, status;
	pid_t child;

	vmonly = argc > 1 && strcmp(argv[1], "vmonly") == 0;
	tp_setup_stdout();
	tp_install_term_handler();
	page_size = sysconf(_SC_PAGESIZE);
	for (size_t i = 0; i < sizeof(parent_array); i++)
		parent_array[i] = (unsigned char)(i * 7 + 3);
	if (signal(SIGUSR2, on_usr2_parent) == SIG_ERR) {
		perror("signal");
		return 1;
	}
	child = clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | (vmonly ? 0 : CLONE_SIGHAND) | SIGCHLD, NULL);
	if (child < 0) {
		perror("clone");
		return 1;
	}
	while (!child_area)
		tp_sleep_ms(5);
	for (long i = 0; i < page_size * CHILD_PAGES; i++) {
		if (child_area[i] != (unsigned char)(i * 13 + 1)) {
			printf("FAIL sharevm: the child's pages are not visible before the dump\n");
			return 1;
		}
	}
	if (kcmp(getpid(), child, KCMP_VM) != 0) {
		printf("FAIL sharevm: kcmp(KCMP_VM) says the mm is not shared before the dump\n");
		return 1;
	}
	printf("child %d mode %s\n", (int)child, vmonly ? "vmonly" : "vm+sighand");
	tp_ready("sharevm");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	if (kcmp(getpid(), child, KCMP_VM) != 0) {
		printf("FAIL sharevm: kcmp(KCMP_VM) %ld: the address space is not shared\n", kcmp(getpid(), child, KCMP_VM));
		failed = 1;
	}
	long sh = kcmp(getpid(), child, KCMP_SIGHAND);
	if (vmonly ? sh == 0 : sh != 0) {
		printf("FAIL sharevm: kcmp(KCMP_SIGHAND) %ld in mode %s\n", sh, vmonly ? "vmonly" : "vm+sighand");
		failed = 1;
	}
	for (long i = 0; i < page_size * CHILD_PAGES; i++) {
		if (child_area[i] != (unsigned char)(i * 13 + 1)) {
			printf("FAIL sharevm: the child's pages differ at %ld\n", i);
			failed = 1;
			break;
		}
	}
	if (blocked(SIGHUP)) {
		printf("FAIL sharevm: the parent blocks SIGHUP (the child's mask)\n");
		failed = 1;
	}
	void *np = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (np == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	memset(np, 'p', (size_t)page_size);
	parent_page = np;
	reply = 0;
	cmd = 1;
	for (int i = 0; i < 1000 && reply == 0; i++)
		tp_sleep_ms(10);
	if (reply != 1) {
		printf("FAIL sharevm: the child did not answer (reply %d)\n", reply);
		failed = 1;
	} else {
		if (((volatile unsigned char *)np)[page_size - 1] != 'k') {
			printf("FAIL sharevm: the child's write to the new page is not visible\n");
			failed = 1;
		}
		void *h1 = handler_of(SIGUSR1);
		if (vmonly ? h1 != (void *)SIG_DFL : h1 != (void *)on_usr1_child) {
			printf("FAIL sharevm: SIGUSR1 handler %p after the child set its own (mode %s)\n", h1, vmonly ? "vmonly" : "vm+sighand");
			failed = 1;
		}
		if (handler_of(SIGUSR2) != (void *)on_usr2_parent) {
			printf("FAIL sharevm: the parent's SIGUSR2 handler changed\n");
			failed = 1;
		}
	}
	cmd = 2;
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			printf("FAIL sharevm: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL sharevm: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed) {
		printf("FAIL sharevm\n");
		return 1;
	}
	printf("PASS sharevm\n");
	return 0;
}
