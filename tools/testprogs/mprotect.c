/* mprotect: mappings whose protections differ from how they were created, with data in them:
 *   ro     4 pages written, then PROT_READ
 *   none   2 pages written, then PROT_NONE (data must survive: checked after re-enabling read)
 *   exec   2 pages written, then PROT_READ|PROT_EXEC
 *   guard  [PROT_NONE][3 rw pages][PROT_NONE] (guard pages around a buffer)
 *   split  3 rw pages, the middle one PROT_READ (one mapping split into three)
 * On SIGTERM: every page's permissions in /proc/self/maps, every page's contents, and that
 * the guard pages and a read-only page really fault (SIGSEGV caught with sigsetjmp).
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>

static long ps;
static sigjmp_buf jump;
static volatile sig_atomic_t faults;

static void on_segv(int sig)
{
	(void)sig;
	faults++;
	siglongjmp(jump, 1);
}

static unsigned char pattern(const char *region, long page, long off)
{
	return (unsigned char)(region[0] * 31 + page * 7 + off * 13 + 1);
}

static void fill(unsigned char *p, const char *region, long pages)
{
	for (long pg = 0; pg < pages; pg++)
		for (long i = 0; i < ps; i++)
			p[pg * ps + i] = pattern(region, pg, i);
}

static int check_data(const unsigned char *p, const char *region, long pages)
{
	for (long pg = 0; pg < pages; pg++) {
		for (long i = 0; i < ps; i++) {
			if (p[pg * ps + i] != pattern(region, pg, i)) {
				printf("FAIL mprotect %s page %ld byte %ld is %u\n", region, pg, i, p[pg * ps + i]);
				return 1;
			}
		}
	}
	return 0;
}

static int check_perms(const unsigned char *p, long pages, const char *want, const char *region)
{
	for (long pg = 0; pg < pages; pg++) {
		char perms[8];
		tp_maps_perms(p + pg * ps, perms);
		if (strcmp(perms, want) != 0) {
			printf("FAIL mprotect %s page %ld perms %s, expected %s\n", region, pg, perms, want);
			return 1;
		}
	}
	return 0;
}

/* 1 if touching addr (reading, or writing when write is set) faults. */
static int faults_on(volatile unsigned char *addr, int write)
{
	int before = faults;
	if (sigsetjmp(jump, 1) == 0) {
		if (write)
			*addr = 1;
		else
			(void)*addr;
	}
	return faults != before;
}

static unsigned char *map(long pages)
{
	void *p = mmap(NULL, (size_t)(pages * ps), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("FAIL mprotect mmap: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

int main(void)
{
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	ps = sysconf(_SC_PAGESIZE);
	unsigned char *ro = map(4), *none = map(2), *ex = map(2), *guard = map(5), *split = map(3);
	fill(ro, "ro", 4);
	fill(none, "none", 2);
	fill(ex, "exec", 2);
	fill(guard + ps, "guard", 3);
	fill(split, "split", 3);
	if (mprotect(ro, 4 * ps, PROT_READ) || mprotect(none, 2 * ps, PROT_NONE) ||
	    mprotect(ex, 2 * ps, PROT_READ | PROT_EXEC) || mprotect(guard, ps, PROT_NONE) ||
	    mprotect(guard + 4 * ps, ps, PROT_NONE) || mprotect(split + ps, ps, PROT_READ)) {
		printf("FAIL mprotect mprotect: %s\n", strerror(errno));
		return 1;
	}
	printf("ro %p none %p exec %p guard %p split %p\n", (void *)ro, (void *)none, (void *)ex, (void *)guard,
	       (void *)split);
	tp_ready("mprotect");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	if (check_perms(ro, 4, "r--p", "ro") || check_perms(none, 2, "---p", "none") ||
	    check_perms(ex, 2, "r-xp", "exec") || check_perms(guard, 1, "---p", "guard-low") ||
	    check_perms(guard + ps, 3, "rw-p", "guard-middle") || check_perms(guard + 4 * ps, 1, "---p", "guard-high") ||
	    check_perms(split, 1, "rw-p", "split-0") || check_perms(split + ps, 1, "r--p", "split-1") ||
	    check_perms(split + 2 * ps, 1, "rw-p", "split-2"))
		return 1;
	if (check_data(ro, "ro", 4) || check_data(ex, "exec", 2) || check_data(guard + ps, "guard", 3) ||
	    check_data(split, "split", 3))
		return 1;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	if (!faults_on(guard, 0) || !faults_on(guard + 4 * ps, 0) || !faults_on(none + ps, 0) ||
	    !faults_on(ro + 2 * ps, 1) || !faults_on(split + ps, 1) || faults_on(split + 2 * ps, 1) ||
	    faults_on(guard + 2 * ps, 0)) {
		printf("FAIL mprotect protections not enforced (%d faults)\n", (int)faults);
		return 1;
	}
	split[2 * ps] = pattern("split", 2, 0); /* undo the probe write */
	guard[2 * ps] = guard[2 * ps];
	if (mprotect(none, 2 * ps, PROT_READ) != 0 || check_data(none, "none", 2))
		return 1;
	printf("PASS mprotect %lu ticks %d faults\n", ticks, (int)faults);
	return 0;
}
