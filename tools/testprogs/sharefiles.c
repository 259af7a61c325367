/* sharefiles: a parent and a child created with clone(CLONE_FILES) share one descriptor table.
 * Before READY the child opens an eventfd (counter 5) after the clone and the parent opens a
 * memfd holding "shared-table"; each checks it sees the other's. On SIGTERM (to the parent):
 * the parent checks the child's eventfd is still there (count 5 in fdinfo), then asks the child
 * (through a pipe of the shared table) to check the memfd, open a new eventfd (counter 9) and
 * close its first eventfd; the parent then sees the new one (reads 9) and the old one closed
 * (EBADF). Both must also agree on the whole /proc/PID/fd list. PASS only if the child exits 0.
 * The child dies with the parent (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int to_child[2], to_parent[2];
static pid_t parent_pid;

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* The eventfd-count of fd from /proc/self/fdinfo, or -1. */
static long long efd_count(int fd)
{
	char path[64], *text, *p;
	long long v = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (tp_read_file(path, &text) < 0)
		return -1;
	p = strstr(text, "eventfd-count:");
	if (p)
		v = strtoll(p + 14, NULL, 16);
	free(text);
	return v;
}

/* The descriptor numbers open in pid's table (the first 256), as a bitmap. readlink() only: an
 * opendir() would itself add a descriptor to the shared table. */
static void fd_list(pid_t pid, unsigned char map[32])
{
	memset(map, 0, 32);
	for (int fd = 0; fd < 256; fd++) {
		char link[96], target[256];
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, fd);
		if (readlink(link, target, sizeof(target)) >= 0)
			map[fd / 8] |= (unsigned char)(1u << (fd % 8));
	}
}

static int child_main(void *arg)
{
	int efd, memfd, newfd;
	char buf[32];
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, SIG_IGN);
	if (getppid() != parent_pid)
		_exit(3);
	efd = eventfd(5, 0);
	if (efd < 0 || tp_send_int(to_parent[1], efd) != 0)
		_exit(4);
	/* The memfd the parent opened after our clone. */
	if (tp_recv_int(to_child[0], &memfd) != 0)
		_exit(5);
	if (!fd_open(memfd)) {
		printf("FAIL sharefiles child: parent's memfd %d not in the table before the dump\n", memfd);
		_exit(6);
	}
	tp_send_int(to_parent[1], 0);
	/* After the restore: the parent's request. */
	if (tp_recv_int(to_child[0], &memfd) != 0)
		_exit(7);
	memset(buf, 0, sizeof(buf));
	if (!fd_open(memfd) || pread(memfd, buf, 12, 0) != 12 || memcmp(buf, "shared-table", 12) != 0) {
		printf("FAIL sharefiles child: memfd %d not shared after restore (%s)\n", memfd, strerror(errno));
		tp_send_int(to_parent[1], -1);
		_exit(8);
	}
	newfd = eventfd(9, 0);
	close(efd);
	tp_send_int(to_parent[1], newfd);
	/* The parent compares the table from both sides, then lets us go. */
	if (tp_recv_int(to_child[0], &memfd) != 0)
		_exit(9);
	_exit(0);
}

int main(void)
{
	static char stack[256 * 1024] __attribute__((aligned(16)));
	int efd, memfd, newfd, ok, status, failed = 0;
	unsigned char mine[32], theirs[32];
	uint64_t v;
	pid_t child;

	tp_setup_stdout();
	tp_install_term_handler();
	parent_pid = getpid();
	if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
		perror("pipe");
		return 1;
	}
	child = clone(child_main, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (child < 0) {
		perror("clone");
		return 1;
	}
	if (tp_recv_int(to_parent[0], &efd) != 0 || !fd_open(efd)) {
		printf("FAIL sharefiles: the child's eventfd is not in the table\n");
		return 1;
	}
	memfd = memfd_create("sharefiles", 0);
	if (memfd < 0 || write(memfd, "shared-table", 12) != 12) {
		perror("memfd");
		return 1;
	}
	tp_send_int(to_child[1], memfd);
	if (tp_recv_int(to_parent[0], &ok) != 0 || ok != 0)
		return 1;
	printf("child %d efd %d memfd %d\n", (int)child, efd, memfd);
	tp_ready("sharefiles");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	if (!fd_open(efd) || efd_count(efd) != 5) {
		printf("FAIL sharefiles: child's eventfd %d lost (count %lld)\n", efd, efd_count(efd));
		failed = 1;
	}
	tp_send_int(to_child[1], memfd);
	if (tp_recv_int(to_parent[0], &newfd) != 0 || newfd < 0) {
		printf("FAIL sharefiles: the child failed\n");
		failed = 1;
	} else {
		if (!fd_open(newfd) || read(newfd, &v, sizeof(v)) != (ssize_t)sizeof(v) || v != 9) {
			printf("FAIL sharefiles: the child's new eventfd %d is not visible here\n", newfd);
			failed = 1;
		}
		if (fd_open(efd)) {
			printf("FAIL sharefiles: eventfd %d the child closed is still open here\n", efd);
			failed = 1;
		}
		fd_list(getpid(), mine);
		fd_list(child, theirs);
		if (memcmp(mine, theirs, sizeof(mine)) != 0) {
			printf("FAIL sharefiles: /proc/%d/fd and /proc/%d/fd differ\n", (int)getpid(), (int)child);
			failed = 1;
		}
	}
	tp_send_int(to_child[1], 0);
	while (waitpid(child, &status, __WALL) < 0) {
		if (errno != EINTR) {
			printf("FAIL sharefiles: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL sharefiles: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed) {
		printf("FAIL sharefiles\n");
		return 1;
	}
	printf("PASS sharefiles\n");
	return 0;
}
