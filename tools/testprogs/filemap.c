/* filemap: private mappings of a file (the test writes FILE, at least 8 pages, any content).
 *   a: all 8 pages PROT_READ|PROT_WRITE, MAP_PRIVATE. Page 2 is overwritten, page 5 gets 100
 *      bytes changed, pages 0, 1, 3 are read (faulted in), pages 4, 6, 7 are never touched.
 *   b: pages 4..7 PROT_READ, MAP_PRIVATE, at file offset 4 pages.
 * The descriptor is closed after mapping. On SIGTERM: a's modified bytes are still there, all
 * its other bytes and all of b equal the file (read again now), the file itself is unchanged,
 * and /proc/self/maps names FILE with the right offsets and permissions.
 *   filemap FILE
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>

#define PAGES 8

static unsigned char modified(long off)
{
	return (unsigned char)(0xc3 ^ (off * 5));
}

static int is_modified(long ps, long off)
{
	return off / ps == 2 || (off >= 5 * ps && off < 5 * ps + 100);
}

static int check_maps(const void *addr, const char *perms, long offset, const char *file)
{
	char line[1024], p[8], path[4096] = "";
	unsigned long off = 0;
	if (tp_maps_line(addr, line, sizeof(line)) != 0 ||
	    sscanf(line, "%*s %7s %lx %*s %*s %4095s", p, &off, path) < 2) {
		printf("FAIL filemap no mapping at %p\n", addr);
		return 1;
	}
	if (strcmp(p, perms) != 0 || (long)off != offset || strcmp(path, file) != 0) {
		printf("FAIL filemap maps line '%s' (want %s offset %lx %s)\n", line, perms, offset, file);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)(PAGES * ps);
	unsigned long ticks = 0;
	char file[4096];

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2 || !realpath(argv[1], file)) {
		fprintf(stderr, "usage: filemap FILE\n");
		return 2;
	}
	int fd = open(file, O_RDONLY);
	unsigned char *orig = malloc(len);
	if (fd < 0 || pread(fd, orig, len, 0) != (ssize_t)len) {
		printf("FAIL filemap %s must hold %d pages\n", file, PAGES);
		return 1;
	}
	unsigned long long file_hash = tp_hash(orig, len);
	unsigned char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	unsigned char *b = mmap(NULL, len / 2, PROT_READ, MAP_PRIVATE, fd, len / 2);
	close(fd);
	if (a == MAP_FAILED || b == MAP_FAILED) {
		printf("FAIL filemap mmap: %s\n", strerror(errno));
		return 1;
	}
	for (long off = 0; off < (long)len; off++)
		if (is_modified(ps, off))
			a[off] = modified(off);
	volatile unsigned char sink = 0;
	sink ^= a[0] ^ a[ps] ^ a[3 * ps];
	(void)sink;
	printf("a %p b %p\n", (void *)a, (void *)b);
	tp_ready("filemap");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	unsigned char *now = malloc(len);
	fd = open(file, O_RDONLY);
	if (fd < 0 || pread(fd, now, len, 0) != (ssize_t)len || tp_hash(now, len) != file_hash) {
		printf("FAIL filemap %s changed on disk\n", file);
		return 1;
	}
	close(fd);
	for (long off = 0; off < (long)len; off++) {
		unsigned char want = is_modified(ps, off) ? modified(off) : now[off];
		if (a[off] != want) {
			printf("FAIL filemap a page %ld byte %ld is %u, want %u (%s)\n", off / ps, off % ps, a[off], want,
			       is_modified(ps, off) ? "modified" : "file");
			return 1;
		}
	}
	if (memcmp(b, now + len / 2, len / 2) != 0) {
		printf("FAIL filemap b differs from the file\n");
		return 1;
	}
	/* Page 2 is now anonymous copy-on-write data but the mapping still names the file. */
	if (check_maps(a, "rw-p", 0, file) || check_maps(a + 7 * ps, "rw-p", 0, file) ||
	    check_maps(b, "r--p", (long)len / 2, file))
		return 1;
	printf("PASS filemap %lu ticks\n", ticks);
	return 0;
}
