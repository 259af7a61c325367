/* The body of mem and mem64: SIZE MiB of private anonymous memory filled with a
 * position-dependent pattern (no page is all zeroes, so every page must be dumped), plus a
 * 4 MiB region where only every 4th page was written (the others must stay zero). The
 * checksum of both is re-verified every ~100 ms and on SIGTERM. */
#ifndef TESTPROGS_MEMFILL_H
#define TESTPROGS_MEMFILL_H
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#define SPARSE (4UL << 20)

static uint64_t mem_checksum(const uint64_t *words, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ words[i]) * 1099511628211ULL;
	return h;
}

static int mem_main(const char *name, unsigned long mib)
{
	size_t size = mib << 20, n = size / sizeof(uint64_t);
	long ps = sysconf(_SC_PAGESIZE);
	unsigned long passes = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	uint64_t *words = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *sparse = mmap(NULL, SPARSE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (words == MAP_FAILED || sparse == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < n; i++) {
		/* xorshift64 */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		words[i] = x;
	}
	size_t words_per_page = (size_t)ps / sizeof(uint64_t), sn = SPARSE / sizeof(uint64_t);
	for (size_t i = 0; i < sn; i += 4 * words_per_page)
		sparse[i + 5] = i + 1;
	const uint64_t expected = mem_checksum(words, n), expected_sparse = mem_checksum(sparse, sn);
	printf("checksum %016llx\n", (unsigned long long)expected);
	tp_ready(name);

	for (;;) {
		int last = tp_term_requested;
		uint64_t got = mem_checksum(words, n), got_sparse = mem_checksum(sparse, sn);
		passes++;
		if (got != expected || got_sparse != expected_sparse) {
			printf("FAIL %s pass %lu checksum %016llx expected %016llx (sparse %016llx expected %016llx)\n",
			       name, passes, (unsigned long long)got, (unsigned long long)expected,
			       (unsigned long long)got_sparse, (unsigned long long)expected_sparse);
			return 1;
		}
		if (last)
			break;
		if (passes % 10 == 0)
			printf("ok %lu\n", passes);
		tp_sleep_ms(100);
	}
	printf("PASS %s %lu MiB %lu passes\n", name, mib, passes);
	return 0;
}
#endif
