/* brk: grows the heap by 8 MiB with sbrk() in 1 MiB steps and fills it with a pattern.
 * On SIGTERM: sbrk(0) must be the recorded break, start_brk (/proc/self/stat field 47) the
 * recorded one, the data intact; then the heap must still grow: sbrk(2 MiB) more, write and
 * read it back, and shrink it again.
 * Nothing after the recording may call malloc (it can move the break): output goes through
 * printf only after its buffer was allocated by the first line.
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <fcntl.h>
#include <stdint.h>

#define GROW (8UL << 20)
#define STEP (1UL << 20)
#define MORE (2UL << 20)

static uint64_t word(size_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29);
}

/* start_brk from /proc/self/stat (field 47), read without stdio (no malloc). */
static unsigned long start_brk(void)
{
	char buf[4096];
	int fd = open("/proc/self/stat", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* comm may contain spaces */
	int field = 2;
	while (p && field < 47) {
		p = strchr(p + 1, ' ');
		field++;
	}
	return p ? strtoul(p + 1, NULL, 10) : 0;
}

int main(void)
{
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	printf("brk test\n"); /* allocates stdout's buffer now */
	char *base = sbrk(0);
	for (size_t done = 0; done < GROW; done += STEP) {
		if (sbrk((intptr_t)STEP) == (void *)-1) {
			printf("FAIL brk sbrk: %s\n", strerror(errno));
			return 1;
		}
	}
	char *end = sbrk(0);
	if (end != base + GROW) {
		printf("FAIL brk break moved by %td, not %lu\n", end - base, GROW);
		return 1;
	}
	uint64_t *w = (uint64_t *)base;
	for (size_t i = 0; i < GROW / 8; i++)
		w[i] = word(i);
	unsigned long sb = start_brk();
	printf("heap %p..%p start_brk %#lx\n", (void *)base, (void *)end, sb);
	tp_ready("brk");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	char *now = sbrk(0);
	unsigned long sb_now = start_brk();
	if (now != end || sb_now != sb) {
		printf("FAIL brk break %p start_brk %#lx, recorded %p %#lx\n", (void *)now, sb_now, (void *)end, sb);
		return 1;
	}
	for (size_t i = 0; i < GROW / 8; i++) {
		if (w[i] != word(i)) {
			printf("FAIL brk word %zu is %016llx\n", i, (unsigned long long)w[i]);
			return 1;
		}
	}
	if (sbrk((intptr_t)MORE) != end || sbrk(0) != end + MORE) {
		printf("FAIL brk cannot grow the heap after restore: %s\n", strerror(errno));
		return 1;
	}
	uint64_t *m = (uint64_t *)end;
	for (size_t i = 0; i < MORE / 8; i++)
		m[i] = ~word(i);
	for (size_t i = 0; i < MORE / 8; i++) {
		if (m[i] != ~word(i)) {
			printf("FAIL brk new heap word %zu\n", i);
			return 1;
		}
	}
	if (sbrk(-(intptr_t)MORE) == (void *)-1 || sbrk(0) != end) {
		printf("FAIL brk cannot shrink the heap\n");
		return 1;
	}
	printf("PASS brk %lu ticks heap %lu MiB\n", ticks, GROW >> 20);
	return 0;
}
