/* shmanon: shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS), one kernel object seen by a
 * parent and its child, and a second one only the parent maps.
 *
 * BIG (1 MiB, 16 pages even with 64 KiB pages) is mapped before fork. Layout (offsets in it):
 *   [0, 128K)      pattern; the child unmaps it, so its view starts at pgoff 128K
 *   [128K, 640K)   pattern; both check it
 *   [640K, 896K)   never written (holes): must read as zeros
 *   [896K, 1M)     control page: words the two tasks exchange
 * SMALL (3 pages) is mapped by the parent after fork: pages 0 and 2 hold a pattern, page 1 is
 * never written; then it is made read-only ("r--s").
 *
 * Before READY the child writes HELLO into the control page and the parent waits to see it.
 * Both re-check their patterns every ~100 ms. On SIGTERM the parent forwards it; then the
 * parent writes PING, the child waits to see PING and answers PONG, and the parent waits to
 * see PONG: writes by each task reach the other, so the sharing survived a restore. The child
 * dies with the parent (PR_SET_PDEATHSIG). */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define KIB 1024UL
#define BIG_SIZE (1024 * KIB)
#define CHILD_OFF (128 * KIB)
#define HOLE_OFF (640 * KIB)
#define CTL_OFF (896 * KIB)

#define HELLO 0x48454c4cu
#define PING 0x50494e47u
#define PONG 0x504f4e47u

static volatile uint32_t *ctl_parent_to_child, *ctl_child_to_parent;
static unsigned char *big;
static pid_t child;

static uint32_t pattern(size_t word, uint32_t salt)
{
	return (uint32_t)(word * 2654435761u) ^ salt;
}

static void fill(void *p, size_t from, size_t to, uint32_t salt)
{
	uint32_t *w = p;
	for (size_t i = from / 4; i < to / 4; i++)
		w[i] = pattern(i, salt);
}

/* 0, or prints why and returns -1. */
static int check(const char *who, const void *p, size_t from, size_t to, uint32_t salt)
{
	const uint32_t *w = p;
	for (size_t i = from / 4; i < to / 4; i++) {
		uint32_t want = salt ? pattern(i, salt) : 0;
		if (w[i] != want) {
			printf("FAIL shmanon %s: word at offset %zu is 0x%x, expected 0x%x\n", who, i * 4, w[i], want);
			return -1;
		}
	}
	return 0;
}

/* Waits up to ~10 s for *word == value. */
static int wait_word(volatile uint32_t *word, uint32_t value)
{
	for (int i = 0; i < 1000; i++) {
		if (*word == value)
			return 0;
		tp_sleep_ms(10);
	}
	return -1;
}

static int check_big(const char *who, size_t from)
{
	if (check(who, big, from, HOLE_OFF, 0x5a17c0deu) || check(who, big, HOLE_OFF, CTL_OFF, 0))
		return -1;
	return 0;
}

static int run_child(void)
{
	if (munmap(big, CHILD_OFF) != 0) {
		printf("FAIL shmanon child: munmap: %s\n", strerror(errno));
		return 1;
	}
	*ctl_child_to_parent = HELLO;
	while (!tp_term_requested) {
		if (check_big("child", CHILD_OFF))
			return 1;
		tp_sleep_ms(100);
	}
	if (check_big("child", CHILD_OFF))
		return 1;
	if (wait_word(ctl_parent_to_child, PING)) {
		printf("FAIL shmanon child: the parent's PING never arrived (0x%x)\n", *ctl_parent_to_child);
		return 1;
	}
	*ctl_child_to_parent = PONG;
	/* The parent may still be reading the words: keep the pages mapped until it is done. */
	return 0;
}

static void parent_on_term(int sig)
{
	(void)sig;
	tp_term_requested = 1;
	if (child > 0)
		kill(child, SIGTERM);
}

int main(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct sigaction sa;
	char perms[8];

	tp_setup_stdout();
	tp_install_term_handler();
	big = mmap(NULL, BIG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (big == MAP_FAILED) {
		printf("FAIL shmanon: mmap: %s\n", strerror(errno));
		return 1;
	}
	fill(big, 0, HOLE_OFF, 0x5a17c0deu);
	ctl_parent_to_child = (volatile uint32_t *)(big + CTL_OFF);
	ctl_child_to_parent = (volatile uint32_t *)(big + CTL_OFF + 64);

	child = fork();
	if (child < 0) {
		printf("FAIL shmanon: fork: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(run_child());
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = parent_on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	if (tp_term_requested)
		parent_on_term(SIGTERM);

	size_t small_size = 3 * (size_t)ps;
	unsigned char *small = mmap(NULL, small_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED) {
		printf("FAIL shmanon: mmap small: %s\n", strerror(errno));
		return 1;
	}
	fill(small, 0, ps, 0x0badf00du);
	fill(small, 2 * ps, 3 * ps, 0x0badf00du);
	if (mprotect(small, small_size, PROT_READ) != 0) {
		printf("FAIL shmanon: mprotect: %s\n", strerror(errno));
		return 1;
	}
	if (wait_word(ctl_child_to_parent, HELLO)) {
		printf("FAIL shmanon: the child's HELLO never arrived\n");
		return 1;
	}
	printf("child %d\n", (int)child);
	tp_ready("shmanon");

	int failed = 0;
	while (!tp_term_requested) {
		if (check_big("parent", 0) || check("small", small, 0, ps, 0x0badf00du) || check("small", small, ps, 2 * ps, 0)
		    || check("small", small, 2 * ps, 3 * ps, 0x0badf00du)) {
			failed = 1;
			break;
		}
		tp_sleep_ms(100);
	}
	if (!failed && (check_big("parent", 0) || check("small", small, 0, ps, 0x0badf00du) || check("small", small, ps, 2 * ps, 0)
			|| check("small", small, 2 * ps, 3 * ps, 0x0badf00du)))
		failed = 1;
	tp_maps_perms(small, perms);
	if (!failed && strcmp(perms, "r--s") != 0) {
		printf("FAIL shmanon: small mapping has perms %s, expected r--s\n", perms);
		failed = 1;
	}
	tp_maps_perms(big, perms);
	if (!failed && strcmp(perms, "rw-s") != 0) {
		printf("FAIL shmanon: big mapping has perms %s, expected rw-s\n", perms);
		failed = 1;
	}
	*ctl_parent_to_child = PING;
	if (!failed && wait_word(ctl_child_to_parent, PONG)) {
		printf("FAIL shmanon: the child's PONG never arrived (0x%x)\n", *ctl_child_to_parent);
		failed = 1;
	}
	int status;
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			printf("FAIL shmanon: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL shmanon: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed || !tp_term_requested) {
		printf("FAIL shmanon\n");
		return 1;
	}
	printf("PASS shmanon\n");
	return 0;
}
