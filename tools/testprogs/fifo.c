/* fifo PATH: a FIFO made at PATH, opened for reading (O_NONBLOCK) and for writing, holding
 * "fifo-data-123" unread. On SIGTERM: both descriptors are that FIFO (inode of PATH), the
 * flags, the buffered data comes out, then nothing; new data still flows. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define FAIL(...) do { printf("FAIL fifo " __VA_ARGS__); printf("\n"); return 1; } while (0)

int main(int argc, char **argv)
{
	char buf[64];
	struct stat st, sr, sw;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2)
		FAIL("usage: fifo PATH");
	unlink(argv[1]);
	if (mkfifo(argv[1], 0600) != 0)
		FAIL("mkfifo: %s", strerror(errno));
	int r = open(argv[1], O_RDONLY | O_NONBLOCK);
	int w = open(argv[1], O_WRONLY);
	if (r < 0 || w < 0 || write(w, "fifo-data-123", 13) != 13)
		FAIL("setup: %s", strerror(errno));
	tp_ready("fifo");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (stat(argv[1], &st) || fstat(r, &sr) || fstat(w, &sw) || !S_ISFIFO(st.st_mode) || sr.st_ino != st.st_ino || sw.st_ino != st.st_ino)
		FAIL("not the FIFO at %s", argv[1]);
	if (!(fcntl(r, F_GETFL) & O_NONBLOCK) || (fcntl(w, F_GETFL) & O_NONBLOCK) || (fcntl(r, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(w, F_GETFL) & O_ACCMODE) != O_WRONLY)
		FAIL("flags");
	ssize_t n = read(r, buf, sizeof(buf));
	if (n != 13 || memcmp(buf, "fifo-data-123", 13))
		FAIL("read %zd", n);
	if (read(r, buf, sizeof(buf)) != -1 || errno != EAGAIN)
		FAIL("more data");
	if (write(w, "more", 4) != 4 || read(r, buf, sizeof(buf)) != 4)
		FAIL("does not flow");
	printf("PASS fifo\n");
	return 0;
}
