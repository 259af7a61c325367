/* sharepos DIR: a parent and a forked child share one open file description. The parent opens
 * DIR/sharepos.data (8 KiB, byte i = i % 251) and reads 100 bytes, then forks; the child reads
 * 50 more through the inherited fd, so the parent sees offset 150. After the fork each task
 * also opens the file on its own (a description of its own) and seeks it: parent 1000, child
 * 2000. On SIGTERM (to the parent):
 *   - kcmp(KCMP_FILE) says the inherited fds are one file and the own fds two files;
 *   - the shared offset is still 150; the child reads 30 bytes (the data at 150) and the parent
 *     then sees 180 and reads the data at 180; the parent seeks to 3000 and the child sees 3000
 *     and reads the data there; the parent then sees 3004;
 *   - the own offsets are still 1000 and 2000, untouched by all of that.
 * PASS only if the child exits 0. The child dies with the parent (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define SIZE 8192
#define FAIL(...) do { printf("FAIL sharepos " __VA_ARGS__); printf("\n"); failed = 1; goto out; } while (0)

static int to_child[2], to_parent[2];

static long pos(int fd)
{
	return (long)lseek(fd, 0, SEEK_CUR);
}

/* Reads n bytes at the fd's offset and checks they are the file's bytes at `at`. */
static int read_expect(int fd, long at, int n)
{
	unsigned char buf[64];
	if (n > (int)sizeof(buf) || read(fd, buf, n) != n)
		return 0;
	for (int i = 0; i < n; i++)
		if (buf[i] != (unsigned char)((at + i) % 251))
			return 0;
	return 1;
}

/* The child: answers the parent's commands (1: read 30 and report the offset, 2: the offset
 * must be 3000, read 4 there; 0: exit). Replies are offsets, or -1 on a failed check. */
static int child_main(int fd, const char *path)
{
	int cmd, own;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, SIG_IGN);
	if (!read_expect(fd, 100, 50))
		return 3;
	own = open(path, O_RDONLY);
	if (own < 0 || lseek(own, 2000, SEEK_SET) != 2000)
		return 4;
	tp_send_int(to_parent[1], own);
	for (;;) {
		if (tp_recv_int(to_child[0], &cmd) != 0)
			return 5;
		if (cmd == 0)
			return 0;
		if (cmd == 1) {
			if (pos(fd) != 150 || !read_expect(fd, 150, 30)) {
				printf("FAIL sharepos child: shared offset %ld (expected 150) or its data\n", pos(fd));
				tp_send_int(to_parent[1], -1);
				continue;
			}
			tp_send_int(to_parent[1], (int)pos(fd));
		} else if (cmd == 2) {
			if (pos(fd) != 3000 || !read_expect(fd, 3000, 4)) {
				printf("FAIL sharepos child: the parent's lseek to 3000 not seen here (offset %ld)\n", pos(fd));
				tp_send_int(to_parent[1], -1);
				continue;
			}
			tp_send_int(to_parent[1], (int)pos(fd));
		} else if (cmd == 3) {
			tp_send_int(to_parent[1], (int)pos(own));
		}
	}
}

static long kcmp_file(pid_t a, pid_t b, int fa, int fb)
{
	return syscall(SYS_kcmp, a, b, KCMP_FILE, fa, fb);
}

int main(int argc, char **argv)
{
	char path[4096];
	unsigned char data[SIZE];
	int fd, own, child_own, r, status, failed = 0;
	pid_t child, me = getpid();
	long k;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2) {
		printf("usage: sharepos DIR\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/sharepos.data", argv[1]);
	for (int i = 0; i < SIZE; i++)
		data[i] = (unsigned char)(i % 251);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, SIZE) != SIZE || lseek(fd, 0, SEEK_SET) != 0 || !read_expect(fd, 0, 64) || !read_expect(fd, 64, 36)) {
		printf("FAIL sharepos setup %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
		perror("pipe");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("fork");
		return 1;
	}
	if (child == 0)
		_exit(child_main(fd, path));
	own = open(path, O_RDONLY);
	if (own < 0 || lseek(own, 1000, SEEK_SET) != 1000 || tp_recv_int(to_parent[0], &child_own) != 0) {
		printf("FAIL sharepos setup: own fds\n");
		kill(child, SIGKILL);
		return 1;
	}
	if (pos(fd) != 150) {
		printf("FAIL sharepos setup: the child's read did not move the shared offset (%ld)\n", pos(fd));
		kill(child, SIGKILL);
		return 1;
	}
	printf("child %d fd %d own %d child's own %d\n", (int)child, fd, own, child_own);
	tp_ready("sharepos");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	if ((k = kcmp_file(me, child, fd, fd)) != 0)
		FAIL("kcmp(KCMP_FILE) of the inherited fd %d: %ld (%s), not one file", fd, k, k < 0 ? strerror(errno) : "differ");
	if ((k = kcmp_file(me, child, own, child_own)) <= 0)
		FAIL("kcmp(KCMP_FILE) of the own fds %d/%d: %ld (%s), not two files", own, child_own, k, k < 0 ? strerror(errno) : "same");
	if (pos(fd) != 150)
		FAIL("shared offset %ld after restore, expected 150", pos(fd));
	tp_send_int(to_child[1], 1);
	if (tp_recv_int(to_parent[0], &r) != 0 || r != 180)
		FAIL("the child's read: it reported %d", r);
	if (pos(fd) != 180 || !read_expect(fd, 180, 20))
		FAIL("the child's read did not move the offset here (%ld, expected 180)", pos(fd));
	if (lseek(fd, 3000, SEEK_SET) != 3000)
		FAIL("lseek: %s", strerror(errno));
	tp_send_int(to_child[1], 2);
	if (tp_recv_int(to_parent[0], &r) != 0 || r != 3004)
		FAIL("the child did not see the lseek: it reported %d", r);
	if (pos(fd) != 3004)
		FAIL("the child's read at 3000 left the offset here at %ld, expected 3004", pos(fd));
	tp_send_int(to_child[1], 3);
	if (tp_recv_int(to_parent[0], &r) != 0 || r != 2000 || pos(own) != 1000)
		FAIL("own offsets moved: parent %ld (1000), child %d (2000)", pos(own), r);
out:
	tp_send_int(to_child[1], 0);
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			printf("FAIL sharepos: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL sharepos: child status 0x%x\n", status);
		return 1;
	}
	if (failed)
		return 1;
	printf("PASS sharepos\n");
	return 0;
}
