/* pidns: a tree in pid, uts and ipc namespaces of its own, as a container's. The started
 * process clones the namespace init (clone(CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC)), prints
 * "READY pidns <host pid of the init>" once the tree is set up and exits: the init, pid 1 in its
 * namespace, is the root to dump. The init starts a session, sets hostname "criu-pidns",
 * domainname "criu-dom", kernel.msgmax 12345 and kernel.shmmni 2048 (ipc sysctls are the
 * namespace's), then forks A (pid 2), A forks B (pid 3), and the init forks D (pid 4), which
 * starts a counting thread (tid 5); D writes "hello-pidns" into a pipe A reads only at the end.
 * The init leaves a zombie child (pid 6, exit code 7) unreaped. On SIGTERM to the init (by its host pid)
 * each task checks its pid and parent pid in the namespace, its session and group, the names
 * and sysctls, D its thread's tid and that it still counts, the init its zombie; A reads the pipe and collects B, the init collects A and D and prints PASS or
 * FAIL. Needs root (CAP_SYS_ADMIN). */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#define HOST "criu-pidns"
#define DOMAIN "criu-dom"
#define MSGMAX "12345"
#define SHMMNI "2048"
#define MESSAGE "hello-pidns"

static char why[256];

static int read_sysctl(const char *path, char *out, size_t cap)
{
	char *text;
	if (tp_read_file(path, &text) < 0)
		return -1;
	text[strcspn(text, "\n")] = 0;
	tp_copy(out, cap, text);
	free(text);
	return 0;
}

static int write_sysctl(const char *path, const char *value)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fputs(value, f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* The state every task of the namespace shares, and its own pids. */
static int check_common(const char *who, pid_t pid, pid_t ppid)
{
	struct utsname u;
	char v[64];
	if (getpid() != pid || getppid() != ppid) {
		snprintf(why, sizeof(why), "%s: pid %d ppid %d, want %d %d", who, (int)getpid(), (int)getppid(), (int)pid, (int)ppid);
		return 1;
	}
	if (getsid(0) != 1 || getpgid(0) != 1) {
		snprintf(why, sizeof(why), "%s: sid %d pgid %d, want 1 1", who, (int)getsid(0), (int)getpgid(0));
		return 1;
	}
	if (uname(&u) != 0 || strcmp(u.nodename, HOST) != 0 || strcmp(u.domainname, DOMAIN) != 0) {
		snprintf(why, sizeof(why), "%s: nodename '%s' domainname '%s'", who, u.nodename, u.domainname);
		return 1;
	}
	if (read_sysctl("/proc/sys/kernel/msgmax", v, sizeof(v)) != 0 || strcmp(v, MSGMAX) != 0) {
		snprintf(why, sizeof(why), "%s: kernel.msgmax '%s'", who, v);
		return 1;
	}
	if (read_sysctl("/proc/sys/kernel/shmmni", v, sizeof(v)) != 0 || strcmp(v, SHMMNI) != 0) {
		snprintf(why, sizeof(why), "%s: kernel.shmmni '%s'", who, v);
		return 1;
	}
	return 0;
}

static void wait_term(void)
{
	while (!tp_term_requested)
		tp_sleep_ms(100);
}

/* A child's verdict: its exit status; a reason on stdout when it fails. */
static int finish(int failed)
{
	if (failed)
		printf("pidns detail: %s\n", why);
	return failed;
}

static int collect(pid_t pid, const char *who)
{
	int status;
	pid_t r;
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, sizeof(why), "%s (%d) failed (waitpid %d status 0x%x)", who, (int)pid, (int)r, r == pid ? status : 0);
		return 1;
	}
	return 0;
}

static int run_b(void)
{
	wait_term();
	return finish(check_common("B", 3, 2));
}

static int run_a(int rd, int ready)
{
	pid_t b = fork();
	if (b == 0)
		_exit(run_b());
	tp_send_int(ready, (int)b);
	wait_term();
	int failed = check_common("A", 2, 1);
	char buf[32] = { 0 };
	ssize_t n;
	while ((n = read(rd, buf, sizeof(buf) - 1)) < 0 && errno == EINTR)
		;
	if (!failed && (n != (ssize_t)strlen(MESSAGE) || strcmp(buf, MESSAGE) != 0)) {
		snprintf(why, sizeof(why), "A: read %zd bytes '%s' from the pipe", n, buf);
		failed = 1;
	}
	kill(b, SIGTERM);
	if (collect(b, "B") && !failed)
		failed = 1;
	return finish(failed);
}

static volatile long d_thread_tid, d_thread_ticks;

static void *d_thread(void *arg)
{
	(void)arg;
	for (;;) {
		d_thread_tid = syscall(SYS_gettid);
		d_thread_ticks++;
		tp_sleep_ms(20);
	}
	return NULL;
}

static int run_d(int wr, int started)
{
	pthread_t th;
	if (write(wr, MESSAGE, strlen(MESSAGE)) != (ssize_t)strlen(MESSAGE))
		return 1;
	/* A second thread: tid 5 in the namespace. */
	if (pthread_create(&th, NULL, d_thread, NULL) != 0)
		return 1;
	while (!d_thread_ticks)
		tp_sleep_ms(5);
	tp_send_int(started, 5);
	close(started);
	wait_term();
	int failed = check_common("D", 4, 1);
	long before = d_thread_ticks;
	tp_sleep_ms(200);
	if (!failed && (d_thread_tid != 5 || d_thread_ticks <= before)) {
		snprintf(why, sizeof(why), "D's thread: tid %ld (want 5), ticks %ld then %ld", d_thread_tid, before, d_thread_ticks);
		failed = 1;
	}
	return finish(failed);
}

static int fds[2];
static int sync_fd, sync_rd;

static int init_main(void *arg)
{
	(void)arg;
	int ready[2], b = 0;
	close(sync_rd);
	tp_install_term_handler();
	if (getpid() != 1 || setsid() != 1) {
		printf("FAIL pidns setup: pid %d, setsid\n", (int)getpid());
		return 1;
	}
	if (sethostname(HOST, strlen(HOST)) != 0 || setdomainname(DOMAIN, strlen(DOMAIN)) != 0 ||
	    write_sysctl("/proc/sys/kernel/msgmax", MSGMAX) != 0 || write_sysctl("/proc/sys/kernel/shmmni", SHMMNI) != 0) {
		printf("FAIL pidns setup: names or sysctls: %s\n", strerror(errno));
		return 1;
	}
	if (pipe(fds) != 0 || pipe(ready) != 0)
		return 1;
	pid_t a = fork();
	if (a == 0) {
		close(sync_fd);
		close(fds[1]);
		close(ready[0]);
		_exit(run_a(fds[0], ready[1]));
	}
	close(ready[1]);
	/* B exists before D is forked: the pids are 2, 3, 4. */
	if (tp_recv_int(ready[0], &b) != 0 || b != 3) {
		printf("FAIL pidns setup: B is %d\n", b);
		return 1;
	}
	close(ready[0]);
	if (pipe(ready) != 0)
		return 1;
	pid_t d = fork();
	if (d == 0) {
		close(fds[0]);
		close(ready[0]);
		_exit(run_d(fds[1], ready[1]));
	}
	close(fds[0]);
	close(fds[1]);
	close(ready[1]);
	/* D's thread exists (tid 5) before the zombie is made: pid 6. */
	int t = 0;
	if (tp_recv_int(ready[0], &t) != 0 || t != 5) {
		printf("FAIL pidns setup: D's thread\n");
		return 1;
	}
	close(ready[0]);
	pid_t z = fork();
	if (z == 0)
		_exit(7);
	siginfo_t si;
	if (a != 2 || d != 4 || z != 6 || waitid(P_PID, z, &si, WEXITED | WNOWAIT) != 0) {
		printf("FAIL pidns setup: A %d D %d Z %d\n", (int)a, (int)d, (int)z);
		return 1;
	}
	char one = 1;
	if (write(sync_fd, &one, 1) != 1)
		return 1;
	close(sync_fd);
	wait_term();
	int failed = check_common("init", 1, 0);
	kill(a, SIGTERM);
	kill(d, SIGTERM);
	char first[256];
	int status;
	if (!failed && (waitpid(z, &status, WNOHANG) != z || !WIFEXITED(status) || WEXITSTATUS(status) != 7)) {
		snprintf(why, sizeof(why), "init: the zombie %d is not there with exit code 7", (int)z);
		failed = 1;
	}
	tp_copy(first, sizeof(first), why);
	failed |= collect(a, "A");
	failed |= collect(d, "D");
	if (failed) {
		printf("FAIL pidns %s\n", first[0] ? first : why);
		return 1;
	}
	printf("PASS pidns\n");
	return 0;
}

int main(void)
{
	static char stack[256 * 1024] __attribute__((aligned(16)));
	int s[2];
	char one;
	tp_setup_stdout();
	if (pipe(s) != 0)
		return 1;
	sync_fd = s[1];
	sync_rd = s[0];
	pid_t init = clone(init_main, stack + sizeof(stack), CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, NULL);
	if (init < 0) {
		printf("FAIL pidns clone: %s\n", strerror(errno));
		return 1;
	}
	close(s[1]);
	if (read(s[0], &one, 1) != 1) {
		printf("FAIL pidns setup (the init exited)\n");
		return 1;
	}
	/* The init outlives us: it is the root of the tree to dump. */
	printf("READY pidns %d\n", (int)init);
	return 0;
}
