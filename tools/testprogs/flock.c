/* flock DIR: file locks held on descriptors of files in DIR.
 *   a = flock.a (O_RDWR): flock LOCK_EX
 *   b = flock.b (O_RDONLY): flock LOCK_SH
 *   c = posix.c (O_RDWR): POSIX record locks (F_SETLK): write [0,100), read [200,300), write [1000,EOF)
 *   e = posix.e (O_RDONLY): a POSIX read lock on the whole file
 *   d = ofd.d (O_RDWR): OFD locks (F_OFD_SETLK): write [10,20), read [40,50)
 * On SIGTERM: a forked child (another process, other open files) must see every lock as held by
 * this process: the flock()s conflict, F_GETLK reports each POSIX lock with its range, type and
 * this pid, F_OFD_GETLK each OFD lock (pid -1); /proc/locks lists the flock()s under this pid.
 * Then everything is unlocked and the child must see no lock at all. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define FAIL(...) do { printf("FAIL flock " __VA_ARGS__); printf("\n"); return 1; } while (0)

static char pa[4096], pb[4096], pc[4096], pd[4096], pe[4096];

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	return fcntl(fd, cmd, &fl);
}

/* Child side: "" when every lock looks as expected, else what differs. */
static char why[512];
#define BAD(...) do { snprintf(why, sizeof(why), __VA_ARGS__); return -1; } while (0)

static int getlk(int fd, int cmd, short type, off_t start, off_t len, short want, off_t wstart, off_t wlen, pid_t wpid)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (fcntl(fd, cmd, &fl) != 0)
		BAD("%s [%lld,+%lld): %s", cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", (long long)start, (long long)len, strerror(errno));
	if (fl.l_type != want)
		BAD("%s type %d [%lld,+%lld): got type %d (pid %d), want %d", cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", type, (long long)start, (long long)len, fl.l_type, (int)fl.l_pid, want);
	if (want != F_UNLCK && (fl.l_start != wstart || fl.l_len != wlen || fl.l_pid != wpid))
		BAD("lock [%lld,+%lld) pid %d, want [%lld,+%lld) pid %d", (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid, (long long)wstart, (long long)wlen, (int)wpid);
	return 0;
}

static int flock_try(const char *path, int op, int want_ok)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		BAD("open %s: %s", path, strerror(errno));
	int r = flock(fd, op | LOCK_NB);
	int e = errno;
	close(fd);
	if (want_ok && r != 0)
		BAD("flock(%s, %s) failed: %s", path, op == LOCK_EX ? "EX" : "SH", strerror(e));
	if (!want_ok && (r == 0 || e != EWOULDBLOCK))
		BAD("flock(%s, %s) did not conflict (%d %s)", path, op == LOCK_EX ? "EX" : "SH", r, strerror(e));
	return 0;
}

static int probe(pid_t owner, int held)
{
	int c = open(pc, O_RDWR), d = open(pd, O_RDWR), e = open(pe, O_RDWR);
	if (c < 0 || d < 0 || e < 0)
		BAD("open: %s", strerror(errno));
	short U = F_UNLCK;
	if (flock_try(pa, LOCK_EX, !held) || flock_try(pa, LOCK_SH, !held) || flock_try(pb, LOCK_SH, 1) || flock_try(pb, LOCK_EX, !held))
		return -1;
	if (getlk(c, F_GETLK, F_RDLCK, 0, 100, held ? F_WRLCK : U, 0, 100, owner) ||
	    getlk(c, F_GETLK, F_WRLCK, 50, 10, held ? F_WRLCK : U, 0, 100, owner) ||
	    getlk(c, F_GETLK, F_WRLCK, 200, 100, held ? F_RDLCK : U, 200, 100, owner) ||
	    getlk(c, F_GETLK, F_RDLCK, 200, 100, U, 0, 0, 0) ||
	    getlk(c, F_GETLK, F_WRLCK, 100, 100, U, 0, 0, 0) ||
	    getlk(c, F_GETLK, F_WRLCK, 300, 700, U, 0, 0, 0) ||
	    getlk(c, F_GETLK, F_RDLCK, 5000, 1, held ? F_WRLCK : U, 1000, 0, owner) ||
	    getlk(e, F_GETLK, F_WRLCK, 0, 0, held ? F_RDLCK : U, 0, 0, owner) ||
	    getlk(e, F_GETLK, F_RDLCK, 0, 0, U, 0, 0, 0) ||
	    getlk(d, F_OFD_GETLK, F_RDLCK, 0, 100, held ? F_WRLCK : U, 10, 10, -1) ||
	    getlk(d, F_OFD_GETLK, F_WRLCK, 30, 30, held ? F_RDLCK : U, 40, 10, -1) ||
	    getlk(d, F_OFD_GETLK, F_RDLCK, 30, 30, U, 0, 0, 0))
		return -1;
	return 0;
}

/* Runs probe() in a forked child; "" or the child's complaint in out. */
static void probe_in_child(int held, char *out, size_t cap)
{
	int p[2];
	pid_t me = getpid();
	out[0] = 0;
	if (pipe(p) != 0) {
		snprintf(out, cap, "pipe: %s", strerror(errno));
		return;
	}
	pid_t child = fork();
	if (child == 0) {
		close(p[0]);
		why[0] = 0;
		probe(me, held);
		if (write(p[1], why, strlen(why)) < 0)
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], out, cap - 1);
	out[n > 0 ? n : 0] = 0;
	close(p[0]);
	int st;
	waitpid(child, &st, 0);
	if (!out[0] && (!WIFEXITED(st) || WEXITSTATUS(st)))
		snprintf(out, cap, "child status %d", st);
}

/* /proc/locks has a FLOCK line of `kind` (READ/WRITE) for this inode and pid. */
static int proc_locks_has(int fd, const char *kind)
{
	struct stat st;
	char *text, want[128];
	if (fstat(fd, &st) || tp_read_file("/proc/locks", &text) < 0)
		return 0;
	snprintf(want, sizeof(want), "%d %02x:%02x:%lu ", (int)getpid(), major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino);
	int found = 0;
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char line[512];
		size_t n = strcspn(l, "\n");
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, l, n);
		line[n] = 0;
		if (strstr(line, " FLOCK ") && strstr(line, kind) && strstr(line, want))
			found = 1;
	}
	free(text);
	return found;
}

int main(int argc, char **argv)
{
	char msg[512];

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2)
		FAIL("usage: flock DIR");
	snprintf(pa, sizeof(pa), "%s/flock.a", argv[1]);
	snprintf(pb, sizeof(pb), "%s/flock.b", argv[1]);
	snprintf(pc, sizeof(pc), "%s/posix.c", argv[1]);
	snprintf(pd, sizeof(pd), "%s/ofd.d", argv[1]);
	snprintf(pe, sizeof(pe), "%s/posix.e", argv[1]);
	const char *all[] = { pa, pb, pc, pd, pe };
	for (int i = 0; i < 5; i++) {
		int fd = open(all[i], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, "0123456789", 10) != 10)
			FAIL("create %s: %s", all[i], strerror(errno));
		close(fd);
	}
	int a = open(pa, O_RDWR), b = open(pb, O_RDONLY), c = open(pc, O_RDWR), e = open(pe, O_RDONLY), d = open(pd, O_RDWR);
	if (a < 0 || b < 0 || c < 0 || d < 0 || e < 0)
		FAIL("open: %s", strerror(errno));
	if (flock(a, LOCK_EX) || flock(b, LOCK_SH))
		FAIL("flock: %s", strerror(errno));
	if (setlk(c, F_SETLK, F_WRLCK, 0, 100) || setlk(c, F_SETLK, F_RDLCK, 200, 100) || setlk(c, F_SETLK, F_WRLCK, 1000, 0) ||
	    setlk(e, F_SETLK, F_RDLCK, 0, 0))
		FAIL("F_SETLK: %s", strerror(errno));
	if (setlk(d, F_OFD_SETLK, F_WRLCK, 10, 10) || setlk(d, F_OFD_SETLK, F_RDLCK, 40, 10))
		FAIL("F_OFD_SETLK: %s", strerror(errno));
	probe_in_child(1, msg, sizeof(msg));
	if (msg[0])
		FAIL("before READY: %s", msg);
	tp_ready("flock");
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (!proc_locks_has(a, "WRITE") || !proc_locks_has(b, "READ"))
		FAIL("/proc/locks does not list this pid's flock()s");
	probe_in_child(1, msg, sizeof(msg));
	if (msg[0])
		FAIL("held: %s", msg);
	if (flock(a, LOCK_UN) || flock(b, LOCK_UN) || setlk(c, F_SETLK, F_UNLCK, 0, 0) || setlk(e, F_SETLK, F_UNLCK, 0, 0) ||
	    setlk(d, F_OFD_SETLK, F_UNLCK, 0, 0))
		FAIL("unlock: %s", strerror(errno));
	probe_in_child(0, msg, sizeof(msg));
	if (msg[0])
		FAIL("after unlocking: %s", msg);
	printf("PASS flock\n");
	return 0;
}
