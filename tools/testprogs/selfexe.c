/* selfexe: /proc/self/exe. Records its readlink() target, the executable's dev/inode and its
 * first 4 KiB; on SIGTERM the link must name the same path, that path must still open as the
 * same file, /proc/self/exe must open as that file too, and the bytes must match.
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

static int exe_state(char *path, size_t cap, struct stat *st, unsigned char *head, size_t headlen)
{
	ssize_t n = readlink("/proc/self/exe", path, cap - 1);
	if (n <= 0)
		return -1;
	path[n] = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	int ok = fstat(fd, st) == 0 && pread(fd, head, headlen, 0) == (ssize_t)headlen;
	close(fd);
	return ok ? 0 : -1;
}

int main(void)
{
	char path[4096], now_path[4096];
	struct stat st, now_st, self_st;
	unsigned char head[4096], now_head[4096];
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	if (exe_state(path, sizeof(path), &st, head, sizeof(head)) != 0) {
		printf("FAIL selfexe cannot read /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	printf("exe %s\n", path);
	tp_ready("selfexe");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	if (exe_state(now_path, sizeof(now_path), &now_st, now_head, sizeof(now_head)) != 0) {
		printf("FAIL selfexe /proc/self/exe unreadable now: %s\n", strerror(errno));
		return 1;
	}
	if (strcmp(path, now_path) != 0) {
		printf("FAIL selfexe exe is '%s', recorded '%s'\n", now_path, path);
		return 1;
	}
	int fd = open("/proc/self/exe", O_RDONLY);
	if (fd < 0 || fstat(fd, &self_st) != 0) {
		printf("FAIL selfexe open /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	if (now_st.st_dev != st.st_dev || now_st.st_ino != st.st_ino || self_st.st_dev != st.st_dev ||
	    self_st.st_ino != st.st_ino) {
		printf("FAIL selfexe exe is another file (inode %lu / %lu, recorded %lu)\n", (unsigned long)now_st.st_ino,
		       (unsigned long)self_st.st_ino, (unsigned long)st.st_ino);
		return 1;
	}
	if (memcmp(head, now_head, sizeof(head)) != 0) {
		printf("FAIL selfexe exe content changed\n");
		return 1;
	}
	printf("PASS selfexe %s %lu ticks\n", path, ticks);
	return 0;
}
