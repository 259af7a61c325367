/* envargs: the command line, environment and auxiliary vector as the kernel shows them.
 * Records /proc/self/{cmdline,environ,auxv}, the getauxval() values of AT_PAGESZ, AT_HWCAP,
 * AT_HWCAP2, AT_RANDOM (and the 16 bytes it points at), AT_EXECFN (and its string), AT_PHDR,
 * AT_ENTRY, and a copy of argv; on SIGTERM re-reads and compares all of them, and checks that
 * the kernel's auxv agrees with getauxval() (except the HWCAPs, which glibc may rewrite) and
 * that cmdline matches argv.
 *   envargs [ARGS...]   (the test passes a few args, some with spaces)
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <stdint.h>
#include <sys/auxv.h>

struct snap {
	char *cmdline, *environ_, *auxv;
	long cmdline_len, environ_len, auxv_len;
};

static const unsigned long keys[] = { AT_PAGESZ, AT_HWCAP, AT_HWCAP2, AT_RANDOM, AT_EXECFN, AT_PHDR, AT_ENTRY };
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int take(struct snap *s)
{
	s->cmdline_len = tp_read_file("/proc/self/cmdline", &s->cmdline);
	s->environ_len = tp_read_file("/proc/self/environ", &s->environ_);
	s->auxv_len = tp_read_file("/proc/self/auxv", &s->auxv);
	return s->cmdline_len < 0 || s->environ_len < 0 || s->auxv_len < 0 ? -1 : 0;
}

static int same(const char *what, const char *a, long alen, const char *b, long blen)
{
	if (alen == blen && memcmp(a, b, (size_t)alen) == 0)
		return 1;
	long i = 0;
	while (i < alen && i < blen && a[i] == b[i])
		i++;
	printf("FAIL envargs %s differs at byte %ld (length %ld, recorded %ld)\n", what, i, blen, alen);
	return 0;
}

int main(int argc, char **argv)
{
	struct snap before, after;
	unsigned long vals[NKEYS];
	unsigned char random_bytes[16];
	char execfn[4096];
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	if (take(&before) != 0) {
		printf("FAIL envargs cannot read /proc/self files\n");
		return 1;
	}
	for (size_t i = 0; i < NKEYS; i++)
		vals[i] = getauxval(keys[i]);
	if (!vals[3] || !vals[4]) {
		printf("FAIL envargs no AT_RANDOM/AT_EXECFN\n");
		return 1;
	}
	memcpy(random_bytes, (void *)vals[3], sizeof(random_bytes));
	snprintf(execfn, sizeof(execfn), "%s", (const char *)vals[4]);
	/* A private copy of argv, joined the way /proc/self/cmdline shows it. */
	size_t argv_len = 0;
	for (int i = 0; i < argc; i++)
		argv_len += strlen(argv[i]) + 1;
	char *argv_copy = malloc(argv_len), *p = argv_copy;
	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]) + 1;
		memcpy(p, argv[i], n);
		p += n;
	}
	printf("argc %d cmdline %ld bytes environ %ld bytes auxv %ld bytes\n", argc, before.cmdline_len,
	       before.environ_len, before.auxv_len);
	tp_ready("envargs");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	if (take(&after) != 0) {
		printf("FAIL envargs cannot re-read /proc/self files\n");
		return 1;
	}
	if (!same("cmdline", before.cmdline, before.cmdline_len, after.cmdline, after.cmdline_len) ||
	    !same("environ", before.environ_, before.environ_len, after.environ_, after.environ_len) ||
	    !same("auxv", before.auxv, before.auxv_len, after.auxv, after.auxv_len) ||
	    !same("cmdline vs argv", argv_copy, (long)argv_len, after.cmdline, after.cmdline_len))
		return 1;
	for (size_t i = 0; i < NKEYS; i++) {
		unsigned long now = getauxval(keys[i]);
		if (now != vals[i]) {
			printf("FAIL envargs getauxval(%lu) %#lx recorded %#lx\n", keys[i], now, vals[i]);
			return 1;
		}
	}
	/* The kernel's copy must agree with what libc saw at startup. */
	const unsigned long *av = (const unsigned long *)after.auxv;
	size_t seen = 0;
	for (long i = 0; (i + 2) * (long)sizeof(long) <= after.auxv_len && av[i] != AT_NULL; i += 2) {
		for (size_t k = 0; k < NKEYS; k++) {
			/* glibc on x86_64 reports its own AT_HWCAP bits, not the kernel's. */
			if (av[i] == keys[k] && keys[k] != AT_HWCAP && keys[k] != AT_HWCAP2) {
				seen++;
				if (av[i + 1] != vals[k]) {
					printf("FAIL envargs /proc/self/auxv key %lu = %#lx, getauxval %#lx\n", av[i],
					       av[i + 1], vals[k]);
					return 1;
				}
			}
		}
	}
	if (seen < 4) {
		printf("FAIL envargs only %zu of the recorded keys in /proc/self/auxv\n", seen);
		return 1;
	}
	if (vals[0] != (unsigned long)sysconf(_SC_PAGESIZE)) {
		printf("FAIL envargs AT_PAGESZ %lu\n", vals[0]);
		return 1;
	}
	if (memcmp(random_bytes, (void *)vals[3], sizeof(random_bytes)) != 0) {
		printf("FAIL envargs AT_RANDOM bytes changed\n");
		return 1;
	}
	if (strcmp(execfn, (const char *)vals[4]) != 0) {
		printf("FAIL envargs AT_EXECFN now '%s' recorded '%s'\n", (const char *)vals[4], execfn);
		return 1;
	}
	printf("PASS envargs argc %d %lu ticks\n", argc, ticks);
	return 0;
}
