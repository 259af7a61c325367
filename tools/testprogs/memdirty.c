/* memdirty: MIB MiB (default 64) of anonymous memory for iterative dumps. Every page holds a
 * pattern of (page index, generation); on SIGUSR1 the program rewrites a known 5% of the pages
 * (round r: pages with index % 20 == r % 20, generation + 1) and prints "DIRTIED <r> <pages>".
 * On SIGTERM every page is checked against its generation (kept in a separate small mapping).
 * Before READY it prints "MEM <hex address> <bytes>" so a test can find the region in pagemaps.
 * With "nothp" the region is madvise(MADV_NOHUGEPAGE)d: soft-dirty bits of a transparent huge
 * page cover all of it, so one write there marks every small page of it changed.
 *   memdirty [MIB] [nothp] */
#include "common.h"
#include <stdint.h>
#include <sys/mman.h>

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static uint64_t word(uint64_t page, uint64_t gen, uint64_t k)
{
	uint64_t x = (page << 20) ^ (gen << 44) ^ k ^ 0x9e3779b97f4a7c15ull;
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 64;
	if (mib <= 0) {
		fprintf(stderr, "usage: memdirty [MIB]\n");
		return 2;
	}
	tp_setup_stdout();
	tp_install_term_handler();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	long ps = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)mib << 20, npages = len / ps, words = ps / 8;
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *gen = mmap(NULL, npages * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || gen == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	if (argc > 2 && strcmp(argv[2], "nothp") == 0 && madvise(mem, len, MADV_NOHUGEPAGE) != 0) {
		perror("madvise");
		return 2;
	}
	for (size_t p = 0; p < npages; p++)
		for (size_t k = 0; k < words; k++)
			mem[p * words + k] = word(p, 0, k);
	printf("MEM %lx %zu\n", (unsigned long)mem, len);
	tp_ready("memdirty");

	long rounds = 0;
	while (!tp_term_requested) {
		if (usr1 > 0) {
			usr1--;
			size_t n = 0;
			for (size_t p = (size_t)(rounds % 20); p < npages; p += 20, n++) {
				gen[p]++;
				for (size_t k = 0; k < words; k++)
					mem[p * words + k] = word(p, gen[p], k);
			}
			printf("DIRTIED %ld %zu\n", rounds, n);
			rounds++;
			continue;
		}
		tp_sleep_ms(10);
	}
	for (size_t p = 0; p < npages; p++)
		for (size_t k = 0; k < words; k++)
			if (mem[p * words + k] != word(p, gen[p], k)) {
				printf("FAIL memdirty page %zu word %zu (generation %u)\n", p, k, gen[p]);
				return 1;
			}
	printf("PASS memdirty\n");
	return 0;
}
