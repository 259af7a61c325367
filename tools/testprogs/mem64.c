/* mem64: fills 64 MiB of private anonymous memory with a position-dependent pattern and
 * re-verifies its checksum forever (one pass every ~100 ms). Any page lost or corrupted by a
 * dump/restore changes the checksum. */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

#define SIZE (64UL << 20)

static uint64_t checksum(const uint64_t *words, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ words[i]) * 1099511628211ULL;
	return h;
}

int main(void)
{
	size_t n = SIZE / sizeof(uint64_t);
	unsigned long passes = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	uint64_t *words = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (words == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < n; i++) {
		/* xorshift64: no page is all zeroes, so every page must be dumped. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		words[i] = x;
	}
	const uint64_t expected = checksum(words, n);
	printf("checksum %016llx\n", (unsigned long long)expected);
	tp_ready("mem64");

	while (!tp_term_requested) {
		uint64_t got = checksum(words, n);
		passes++;
		if (got != expected) {
			printf("FAIL mem64 pass %lu checksum %016llx expected %016llx\n", passes,
			       (unsigned long long)got, (unsigned long long)expected);
			return 1;
		}
		if (passes % 10 == 0)
			printf("ok %lu\n", passes);
		tp_sleep_ms(100);
	}
	uint64_t got = checksum(words, n);
	if (got != expected) {
		printf("FAIL mem64 final checksum %016llx expected %016llx\n", (unsigned long long)got,
		       (unsigned long long)expected);
		return 1;
	}
	printf("PASS mem64 %lu passes\n", passes);
	return 0;
}
