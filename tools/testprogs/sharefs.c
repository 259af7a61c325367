/* sharefs DIR: a parent and a child created with clone(CLONE_FS) share one fs_struct (cwd,
 * root, umask). Before READY the child does chdir(DIR/a) and umask(027) after the clone and the
 * parent checks it sees both. On SIGTERM (to the parent): the parent checks cwd DIR/a (path and
 * inode) and umask 027 are still in force, then does chdir(DIR/b) and umask(077) and asks the
 * child (through a pipe) to check it sees them and to chdir(DIR) and umask(022); the parent then
 * checks it sees those. PASS only if the child exits 0. The child dies with the parent. */
#define _GNU_SOURCE
#include "common.h"
#include <limits.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int to_child[2], to_parent[2];
static const char *dir;
static char dir_a[PATH_MAX], dir_b[PATH_MAX];

static mode_t get_umask(void)
{
	mode_t m = umask(0);
	umask(m);
	return m;
}

/* 1 when the cwd is path (by name and by inode) and the umask is mask. */
static int fs_is(const char *who, const char *path, mode_t mask)
{
	char cwd[PATH_MAX];
	struct stat a, b;
	int ok = 1;
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, path) != 0) {
		printf("FAIL sharefs %s: cwd %s, expected %s\n", who, cwd, path);
		ok = 0;
	}
	if (stat(".", &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
		printf("FAIL sharefs %s: cwd is not the inode of %s\n", who, path);
		ok = 0;
	}
	if (get_umask() != mask) {
		printf("FAIL sharefs %s: umask %03o, expected %03o\n", who, (unsigned)get_umask(), (unsigned)mask);
		ok = 0;
	}
	return ok;
}

static int child_main(void *arg)
{
	int cmd;
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, SIG_IGN);
	if (chdir(dir_a) != 0)
		_exit(3);
	umask(027);
	tp_send_int(to_parent[1], 0);
	if (tp_recv_int(to_child[0], &cmd) != 0)
		_exit(4);
	if (!fs_is("child", dir_b, 077)) {
		tp_send_int(to_parent[1], 1);
		_exit(5);
	}
	if (chdir(dir) != 0)
		_exit(6);
	umask(022);
	tp_send_int(to_parent[1], 0);
	_exit(0);
}

int main(int argc, char **argv)
{
	static char stack[256 * 1024] __attribute__((aligned(16)));
	int ok, status, failed = 0;
	pid_t child;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc != 2) {
		fprintf(stderr, "usage: sharefs DIR\n");
		return 2;
	}
	dir = argv[1];
	snprintf(dir_a, sizeof(dir_a), "%s/a", dir);
	snprintf(dir_b, sizeof(dir_b), "%s/b", dir);
	if ((mkdir(dir_a, 0755) != 0 && errno != EEXIST) || (mkdir(dir_b, 0755) != 0 && errno != EEXIST)) {
		perror("mkdir");
		return 1;
	}
	if (chdir(dir) != 0 || pipe(to_child) != 0 || pipe(to_parent) != 0) {
		perror("setup");
		return 1;
	}
	umask(022);
	child = clone(child_main, stack + sizeof(stack), CLONE_FS | SIGCHLD, NULL);
	if (child < 0) {
		perror("clone");
		return 1;
	}
	if (tp_recv_int(to_parent[0], &ok) != 0 || ok != 0 || !fs_is("parent", dir_a, 027))
		return 1;
	printf("child %d\n", (int)child);
	tp_ready("sharefs");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	if (!fs_is("parent", dir_a, 027))
		failed = 1;
	if (chdir(dir_b) != 0)
		failed = 1;
	umask(077);
	tp_send_int(to_child[1], 0);
	if (tp_recv_int(to_parent[0], &ok) != 0 || ok != 0) {
		printf("FAIL sharefs: the child does not see the parent's chdir/umask\n");
		failed = 1;
	} else if (!fs_is("parent", dir, 022)) {
		failed = 1;
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			printf("FAIL sharefs: waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL sharefs: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed) {
		printf("FAIL sharefs\n");
		return 1;
	}
	printf("PASS sharefs\n");
	return 0;
}
