/* madvise: anonymous regions with madvise() flags that show in /proc/self/smaps VmFlags:
 *   dontfork   MADV_DONTFORK    "dc"
 *   dontdump   MADV_DONTDUMP    "dd"
 *   hugepage   MADV_HUGEPAGE    "hg"  (2 MiB aligned, 2 MiB long)
 *   nohuge     MADV_NOHUGEPAGE  "nh"
 *   wipe       MADV_WIPEONFORK  "wf"
 *   plain      none of them
 * Each holds its own data. On SIGTERM every region must still have exactly its flag (and
 * none of the others) and its data. A kernel without THP or WIPEONFORK support (EINVAL)
 * skips that region and says so.
 *   madvise [nowipe]   nowipe: leave out the WIPEONFORK region (CRIU 4.1 does not dump the
 *                      "wf" flag, so its restores lose it; the oracle test uses this)
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

struct region {
	const char *name;
	int advice; /* -1: none */
	const char *flag;
	size_t len;
	unsigned char *p;
	int skipped;
};

static struct region regions[] = {
	{ "dontfork", MADV_DONTFORK, "dc", 4, NULL, 0 },   { "dontdump", MADV_DONTDUMP, "dd", 4, NULL, 0 },
	{ "hugepage", MADV_HUGEPAGE, "hg", 0, NULL, 0 },   { "nohuge", MADV_NOHUGEPAGE, "nh", 8, NULL, 0 },
	{ "wipe", MADV_WIPEONFORK, "wf", 4, NULL, 0 },     { "plain", -1, "", 4, NULL, 0 },
};
#define NREG (sizeof(regions) / sizeof(regions[0]))
static const char *all_flags[] = { "dc", "dd", "hg", "nh", "wf" };

static unsigned char pattern(size_t r, size_t i)
{
	return (unsigned char)((r + 1) * 37 + i * 11 + (i >> 12));
}

static int check(size_t r)
{
	struct region *g = &regions[r];
	char flags[256];
	tp_smaps_vmflags(g->p, flags, sizeof(flags));
	if (!flags[0]) {
		printf("FAIL madvise %s: no VmFlags for %p\n", g->name, (void *)g->p);
		return 1;
	}
	for (size_t f = 0; f < sizeof(all_flags) / sizeof(all_flags[0]); f++) {
		int want = !g->skipped && strcmp(all_flags[f], g->flag) == 0;
		if (tp_has_vmflag(flags, all_flags[f]) != want) {
			printf("FAIL madvise %s: VmFlags '%s' %s '%s'\n", g->name, flags, want ? "lacks" : "has",
			       all_flags[f]);
			return 1;
		}
	}
	for (size_t i = 0; i < g->len; i++) {
		if (g->p[i] != pattern(r, i)) {
			printf("FAIL madvise %s byte %zu is %u\n", g->name, i, g->p[i]);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int nowipe = argc > 1 && strcmp(argv[1], "nowipe") == 0;
	long ps = sysconf(_SC_PAGESIZE);
	const size_t huge = 2UL << 20;
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	for (size_t r = 0; r < NREG; r++) {
		struct region *g = &regions[r];
		/* Every region gets PROT_NONE neighbours so the kernel cannot merge it with another. */
		size_t len = g->len ? g->len * (size_t)ps : huge;
		size_t span = len + 2 * huge;
		unsigned char *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED) {
			printf("FAIL madvise mmap: %s\n", strerror(errno));
			return 1;
		}
		unsigned char *p = (unsigned char *)(((uintptr_t)base + huge) & ~(uintptr_t)(huge - 1));
		if (mprotect(p, len, PROT_READ | PROT_WRITE) != 0) {
			printf("FAIL madvise mprotect: %s\n", strerror(errno));
			return 1;
		}
		g->p = p;
		g->len = len;
		if (nowipe && g->advice == MADV_WIPEONFORK) {
			g->skipped = 1;
			printf("skip %s: by request\n", g->name);
		} else if (g->advice >= 0 && madvise(p, len, g->advice) != 0) {
			if (errno != EINVAL) {
				printf("FAIL madvise %s: %s\n", g->name, strerror(errno));
				return 1;
			}
			g->skipped = 1;
			printf("skip %s: not supported\n", g->name);
		}
		for (size_t i = 0; i < len; i++)
			p[i] = pattern(r, i);
		if (check(r))
			return 1;
		printf("%s %p %zu\n", g->name, (void *)p, len);
	}
	tp_ready("madvise");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}
	for (size_t r = 0; r < NREG; r++)
		if (check(r))
			return 1;
	printf("PASS madvise %lu ticks\n", ticks);
	return 0;
}
