/* benchmem MIB: MIB MiB of private anonymous memory filled with a xorshift64 pattern (no page
 * is zero or compressible), checksummed once. Prints "checksum <hex>" and "READY benchmem <pid>",
 * then sleeps without touching the memory (so it adds no CPU noise to the benchmark) until
 * SIGTERM, when it re-checksums and prints "PASS benchmem ..." or "FAIL benchmem ...".
 * The protocol is that of tools/testprogs (see its README). */
#include "../testprogs/common.h"
#include <stdint.h>
#include <sys/mman.h>

static uint64_t checksum(const uint64_t *w, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 1099511628211ULL;
	return h;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 0;
	if (mib <= 0) {
		fprintf(stderr, "usage: benchmem MIB\n");
		return 2;
	}
	size_t size = (size_t)mib << 20, n = size / sizeof(uint64_t);
	tp_setup_stdout();
	tp_install_term_handler();
	uint64_t *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)mib;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
	const uint64_t expected = checksum(w, n);
	printf("checksum %016llx\n", (unsigned long long)expected);
	tp_ready("benchmem");
	while (!tp_term_requested)
		tp_sleep_ms(1000);
	uint64_t got = checksum(w, n);
	if (got != expected) {
		printf("FAIL benchmem checksum %016llx expected %016llx\n", (unsigned long long)got, (unsigned long long)expected);
		return 1;
	}
	printf("PASS benchmem %ld MiB checksum %016llx\n", mib, (unsigned long long)got);
	return 0;
}
