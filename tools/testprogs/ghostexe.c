/* ghostexe DIR: runs from a deleted executable. Copies its own binary to DIR/ghostexe-copy
 * (mode 0750), execs the copy, which unlinks itself. On SIGTERM: /proc/self/exe is
 * "DIR/ghostexe-copy (deleted)" with st_nlink 0, mode 0750, the size and contents of the copy,
 * and it is the file the program's code is mapped from (same inode as the maps line of main). */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define FAIL(...) do { printf("FAIL ghostexe " __VA_ARGS__); printf("\n"); return 1; } while (0)
#define MARK "--copied"

/* FNV-1a of a whole file, and its size. */
static int file_hash(const char *path, unsigned long long *h, long long *size)
{
	static unsigned char buf[65536];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	*h = tp_hash("", 0);
	*size = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			*h = (*h ^ buf[i]) * 1099511628211ULL;
		*size += n;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static char copy[4096], want[4200], link[4200];
	static unsigned char buf[65536];

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2)
		FAIL("usage: ghostexe DIR");
	snprintf(copy, sizeof(copy), "%s/ghostexe-copy", argv[1]);
	if (argc < 3 || strcmp(argv[2], MARK)) {
		int in = open("/proc/self/exe", O_RDONLY);
		unlink(copy);
		int out = open(copy, O_WRONLY | O_CREAT | O_EXCL, 0700);
		if (in < 0 || out < 0)
			FAIL("copy: %s", strerror(errno));
		for (;;) {
			ssize_t n = read(in, buf, sizeof(buf));
			if (n < 0 || (n > 0 && write(out, buf, n) != n))
				FAIL("copy: %s", strerror(errno));
			if (n == 0)
				break;
		}
		if (fchmod(out, 0750) || close(out) || close(in))
			FAIL("copy: %s", strerror(errno));
		execl(copy, copy, argv[1], MARK, (char *)NULL);
		FAIL("exec %s: %s", copy, strerror(errno));
	}
	unsigned long long h0, h1;
	long long size0, size1;
	if (file_hash(copy, &h0, &size0) || unlink(copy))
		FAIL("unlink %s: %s", copy, strerror(errno));
	tp_ready("ghostexe");
	while (!tp_term_requested)
		tp_sleep_ms(50);

	ssize_t n = readlink("/proc/self/exe", link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	snprintf(want, sizeof(want), "%s (deleted)", copy);
	if (strcmp(link, want))
		FAIL("exe is '%s'", link);
	struct stat st;
	if (stat("/proc/self/exe", &st) || st.st_nlink != 0 || (st.st_mode & 07777) != 0750 || !S_ISREG(st.st_mode))
		FAIL("exe nlink %lu mode %o", (unsigned long)st.st_nlink, st.st_mode);
	if (file_hash("/proc/self/exe", &h1, &size1) || h1 != h0 || size1 != size0)
		FAIL("exe contents: %lld bytes (%llx), want %lld (%llx)", size1, h1, size0, h0);
	char line[4200];
	unsigned long ino = 0;
	if (tp_maps_line((void *)main, line, sizeof(line)) || sscanf(line, "%*s %*s %*s %*s %lu", &ino) != 1 || ino != st.st_ino)
		FAIL("main is mapped from inode %lu, exe is %lu", ino, (unsigned long)st.st_ino);
	if (!strstr(line, want))
		FAIL("main's mapping is '%s'", line);
	printf("PASS ghostexe\n");
	return 0;
}
