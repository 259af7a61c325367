/* ptypair: a pseudo-terminal pair made by the program. The parent opens the master
 * (posix_openpt, grantpt, unlockpt), sets a window size, and keeps a second, non-blocking
 * descriptor of the slave. The child starts a session (setsid), opens the slave and makes it
 * its controlling terminal (TIOCSCTTY) and foreground group, switches it to raw mode without
 * echo, and answers every byte the parent writes to the master with its upper case. With `fg`
 * the echoer is a grandchild in its own process group, made the terminal's foreground group
 * (tcsetpgrp); the child, the session leader, waits (CRIU 4.1 loses the grandchild's ctty).
 * Nothing is left queued in the pty when READY is printed (a round-trip is done first).
 * On SIGTERM the parent checks: a new round-trip works; termios (raw, no echo, VMIN 1) and the
 * window size are as set; its descriptor flags; the child's session, tty_nr and tpgid in
 * /proc/CHILD/stat name the slave and the echoer's group (`fg`: the echoer is in that session on
 * that terminal). The child and the echoer check their session and ctty the same way from inside
 * and exit 0 on SIGTERM. Both die with their parent (PR_SET_PDEATHSIG).
 * `ptypair queued`: the parent also writes 2 bytes to its slave descriptor that the master keeps
 * unread (a dump must refuse them, see packages/core/test/pty.test.ts); read back on SIGTERM.
 * `ptypair devtty`: the child also keeps /dev/tty open; it must still reach the pty. The modes
 * `fg` and `devtty` combine. */
#define _GNU_SOURCE
#include "common.h"
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

#define ROWS 37
#define COLS 101
#define XPIX 640
#define YPIX 480

static pid_t child;
/* SIGTERM is blocked except inside sigsuspend/ppoll: no window where it lands between the check
 * of the flag and a blocking call (right after a restore the harness sends it at once). */
static sigset_t run_mask;
/* `devtty`: the child keeps /dev/tty open (CRIU 4.1 refuses to dump that: "ctty inheritance"). */
static int devtty = -1, want_devtty;
/* `fg`: the child hands the terminal to a grandchild's group (CRIU 4.1 loses the grandchild's ctty). */
static int want_fg;
/* The termios the child set, as the parent saw it before READY. */
static struct termios saved;

static void parent_on_term(int sig)
{
	(void)sig;
	tp_term_requested = 1;
}

/* The kernel's tty_nr encoding of a dev_t (new_encode_dev). */
static unsigned tty_nr_of(dev_t d)
{
	unsigned ma = major(d), mi = minor(d);
	return (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
}

/* session, tty_nr and tpgid of a task from /proc/PID/stat. */
static int stat_of(pid_t pid, int *sid, unsigned *tty_nr, int *tpgid)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (tp_read_file(path, &text) < 0)
		return -1;
	char *p = strrchr(text, ')');
	int ppid, pgrp;
	char state;
	int n = p ? sscanf(p + 2, "%c %d %d %d %u %d", &state, &ppid, &pgrp, sid, tty_nr, tpgid) : 0;
	free(text);
	return n == 6 ? 0 : -1;
}

/* The terminal as a member of the session sees it: its ctty (tty_nr) and the foreground group
 * `fg` (tpgid, tcgetpgrp), the session `sid`. */
static int ctty_checks(const char *who, int sfd, pid_t sid, pid_t fg)
{
	struct stat st;
	int s, tpgid;
	unsigned nr;
	if (getsid(0) != sid)
		return printf("FAIL ptypair %s: sid %d, not %d\n", who, (int)getsid(0), (int)sid), 1;
	if (tcgetpgrp(sfd) != fg)
		return printf("FAIL ptypair %s: tcgetpgrp %d, want %d\n", who, (int)tcgetpgrp(sfd), (int)fg), 1;
	if (tcgetsid(sfd) != sid)
		return printf("FAIL ptypair %s: tcgetsid %d\n", who, (int)tcgetsid(sfd)), 1;
	if (fstat(sfd, &st) != 0 || stat_of(getpid(), &s, &nr, &tpgid) != 0)
		return printf("FAIL ptypair %s: stat\n", who), 1;
	if (nr != tty_nr_of(st.st_rdev) || tpgid != fg)
		return printf("FAIL ptypair %s: tty_nr %#x (slave %#x) tpgid %d\n", who, nr, tty_nr_of(st.st_rdev), tpgid), 1;
	if (want_devtty) {
		struct winsize ws;
		if (fstat(devtty, &st) != 0 || st.st_rdev != makedev(5, 0))
			return printf("FAIL ptypair %s: the /dev/tty descriptor is gone\n", who), 1;
		if (ioctl(devtty, TIOCGWINSZ, &ws) != 0 || ws.ws_row != ROWS || ws.ws_col != COLS || tcgetpgrp(devtty) != fg)
			return printf("FAIL ptypair %s: /dev/tty does not reach the pty: %s\n", who, strerror(errno)), 1;
	}
	/* /dev/tty must name the same terminal. */
	int t = open("/dev/tty", O_RDWR | O_NOCTTY);
	if (t < 0)
		return printf("FAIL ptypair %s: open /dev/tty: %s\n", who, strerror(errno)), 1;
	close(t);
	return 0;
}

/* Answers every byte read from the slave with its upper case until SIGTERM. */
static int echo_loop(const char *who, int sfd)
{
	if (write(sfd, "K", 1) != 1)
		return printf("FAIL ptypair %s: write\n", who), 1;
	while (!tp_term_requested) {
		unsigned char buf[64];
		struct pollfd p = { sfd, POLLIN, 0 };
		if (ppoll(&p, 1, NULL, &run_mask) < 0) {
			if (errno == EINTR)
				continue;
			return printf("FAIL ptypair %s: ppoll: %s\n", who, strerror(errno)), 1;
		}
		ssize_t n = read(sfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return printf("FAIL ptypair %s: read %zd: %s\n", who, n, strerror(errno)), 1;
		for (ssize_t i = 0; i < n; i++)
			buf[i] = (unsigned char)toupper(buf[i]);
		if (write(sfd, buf, (size_t)n) != n)
			return printf("FAIL ptypair %s: write back\n", who), 1;
	}
	return 0;
}

/* `fg`: the grandchild, in its own process group, the foreground one. */
static int run_echoer(int sfd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Read only once foreground (a background reader gets SIGTTIN). */
	for (int i = 0; tcgetpgrp(sfd) != getpid(); i++) {
		if (i > 5000)
			return printf("FAIL ptypair echoer: never made foreground\n"), 1;
		tp_sleep_ms(1);
	}
	if (echo_loop("echoer", sfd))
		return 1;
	return ctty_checks("echoer", sfd, getppid(), getpid());
}

/* The child: session leader on the slave, which it hands to the echoer's group. */
static int run_child(const char *name)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setsid() < 0)
		return printf("FAIL ptypair child: setsid: %s\n", strerror(errno)), 1;
	int sfd = open(name, O_RDWR | O_NOCTTY);
	if (sfd < 0)
		return printf("FAIL ptypair child: open %s: %s\n", name, strerror(errno)), 1;
	if (ioctl(sfd, TIOCSCTTY, 0) != 0)
		return printf("FAIL ptypair child: TIOCSCTTY: %s\n", strerror(errno)), 1;
	struct termios t;
	tcgetattr(sfd, &t);
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(sfd, TCSANOW, &t) != 0)
		return printf("FAIL ptypair child: tcsetattr: %s\n", strerror(errno)), 1;
	if (want_devtty && (devtty = open("/dev/tty", O_RDWR)) < 0)
		return printf("FAIL ptypair child: open /dev/tty: %s\n", strerror(errno)), 1;
	if (!want_fg) {
		if (tcsetpgrp(sfd, getpgrp()) != 0)
			return printf("FAIL ptypair child: tcsetpgrp: %s\n", strerror(errno)), 1;
		if (echo_loop("child", sfd))
			return 1;
		return ctty_checks("child", sfd, getpid(), getpid());
	}
	pid_t echoer = fork();
	if (echoer < 0)
		return printf("FAIL ptypair child: fork\n"), 1;
	if (echoer == 0) {
		setpgid(0, 0);
		_exit(run_echoer(sfd));
	}
	/* Both sides set the group: no race with the echoer's own setpgid. */
	setpgid(echoer, echoer);
	if (tcsetpgrp(sfd, echoer) != 0)
		return printf("FAIL ptypair child: tcsetpgrp: %s\n", strerror(errno)), 1;
	while (!tp_term_requested)
		sigsuspend(&run_mask);
	int failed = ctty_checks("child", sfd, getpid(), echoer);
	kill(echoer, SIGTERM);
	int status;
	while (waitpid(echoer, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL ptypair child: echoer status 0x%x\n", status);
		failed = 1;
	}
	return failed;
}

/* Reads exactly `len` bytes from the master (5 s at most). */
static int read_exact(int mfd, char *out, size_t len)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { mfd, POLLIN, 0 };
		int r = poll(&p, 1, 5000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(mfd, out + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int round_trip(int mfd, const char *msg)
{
	char want[64], got[64];
	size_t len = strlen(msg);
	for (size_t i = 0; i < len; i++)
		want[i] = (char)toupper((unsigned char)msg[i]);
	if (write(mfd, msg, len) != (ssize_t)len)
		return printf("FAIL ptypair: write to master: %s\n", strerror(errno)), 1;
	if (read_exact(mfd, got, len) != 0)
		return printf("FAIL ptypair: no answer to '%s'\n", msg), 1;
	if (memcmp(got, want, len) != 0)
		return printf("FAIL ptypair: answer '%.*s' to '%s'\n", (int)len, got, msg), 1;
	return 0;
}

static int parent_checks(int mfd, int sfd2)
{
	if (round_trip(mfd, "after restore, hello"))
		return 1;
	struct termios t, t2;
	memset(&t, 0, sizeof(t));
	memset(&t2, 0, sizeof(t2));
	if (tcgetattr(mfd, &t) != 0 || (t.c_lflag & (ICANON | ECHO)) || (t.c_oflag & OPOST) || t.c_cc[VMIN] != 1 || t.c_cc[VTIME] != 0)
		return printf("FAIL ptypair: termios lflag %#x oflag %#x vmin %d\n", t.c_lflag, t.c_oflag, t.c_cc[VMIN]), 1;
	if (tcgetattr(sfd2, &t2) != 0 || t.c_iflag != t2.c_iflag || t.c_oflag != t2.c_oflag || t.c_cflag != t2.c_cflag ||
	    t.c_lflag != t2.c_lflag || memcmp(t.c_cc, t2.c_cc, sizeof(t.c_cc)) != 0)
		return printf("FAIL ptypair: slave termios differs from the master's view\n"), 1;
	if (t.c_iflag != saved.c_iflag || t.c_oflag != saved.c_oflag || t.c_cflag != saved.c_cflag || t.c_lflag != saved.c_lflag ||
	    memcmp(t.c_cc, saved.c_cc, sizeof(t.c_cc)) != 0)
		return printf("FAIL ptypair: termios iflag %#x oflag %#x cflag %#x lflag %#x, set %#x %#x %#x %#x\n", t.c_iflag, t.c_oflag,
			      t.c_cflag, t.c_lflag, saved.c_iflag, saved.c_oflag, saved.c_cflag, saved.c_lflag), 1;
	struct winsize ws;
	if (ioctl(sfd2, TIOCGWINSZ, &ws) != 0 || ws.ws_row != ROWS || ws.ws_col != COLS || ws.ws_xpixel != XPIX || ws.ws_ypixel != YPIX)
		return printf("FAIL ptypair: winsize %ux%u %ux%u\n", ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel), 1;
	int fl = fcntl(sfd2, F_GETFL);
	if ((fl & O_ACCMODE) != O_RDWR || !(fl & O_NONBLOCK))
		return printf("FAIL ptypair: slave fd flags %#x\n", fl), 1;
	if ((fcntl(mfd, F_GETFL) & O_ACCMODE) != O_RDWR || !(fcntl(mfd, F_GETFD) & FD_CLOEXEC))
		return printf("FAIL ptypair: master fd flags %#x/%#x\n", fcntl(mfd, F_GETFL), fcntl(mfd, F_GETFD)), 1;
	/* Both descriptors are the same pair: the slave the master names. */
	struct stat a, b;
	char *name = ptsname(mfd);
	if (!name || stat(name, &a) != 0 || fstat(sfd2, &b) != 0 || a.st_rdev != b.st_rdev)
		return printf("FAIL ptypair: the slave descriptor is not the master's peer (%s)\n", name ? name : "?"), 1;
	int sid, tpgid;
	unsigned nr;
	if (stat_of(child, &sid, &nr, &tpgid) != 0)
		return printf("FAIL ptypair: /proc/%d/stat\n", (int)child), 1;
	if (sid != child || nr != tty_nr_of(b.st_rdev) || (want_fg ? tpgid == child || tpgid <= 0 : tpgid != child))
		return printf("FAIL ptypair: child sid %d tty_nr %#x (want %#x) tpgid %d\n", sid, nr, tty_nr_of(b.st_rdev), tpgid), 1;
	if (!want_fg)
		return 0;
	/* The foreground group is the echoer's: the child's child, in the child's session. */
	int esid, etpgid;
	unsigned enr;
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", tpgid);
	int eppid = -1;
	if (tp_read_file(path, &text) > 0 && strrchr(text, ')'))
		sscanf(strrchr(text, ')') + 2, "%*c %d", &eppid);
	free(text);
	if (eppid != child || stat_of(tpgid, &esid, &enr, &etpgid) != 0 || esid != child || enr != nr || etpgid != tpgid)
		return printf("FAIL ptypair: foreground group %d: ppid %d sid %d tty_nr %#x tpgid %d\n", tpgid, eppid, esid, enr, etpgid), 1;
	return 0;
}

int main(int argc, char **argv)
{
	int queued = argc > 1 && strcmp(argv[1], "queued") == 0;
	for (int i = 1; i < argc; i++) {
		want_devtty |= strcmp(argv[i], "devtty") == 0;
		want_fg |= strcmp(argv[i], "fg") == 0;
	}
	struct sigaction sa;

	tp_setup_stdout();
	tp_install_term_handler();
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &run_mask);
	sigdelset(&run_mask, SIGTERM);
	int mfd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (mfd < 0 || grantpt(mfd) != 0 || unlockpt(mfd) != 0) {
		printf("FAIL ptypair: posix_openpt: %s\n", strerror(errno));
		return 1;
	}
	char name[64];
	if (ptsname_r(mfd, name, sizeof(name)) != 0) {
		printf("FAIL ptypair: ptsname\n");
		return 1;
	}
	struct winsize ws = { ROWS, COLS, XPIX, YPIX };
	if (ioctl(mfd, TIOCSWINSZ, &ws) != 0) {
		printf("FAIL ptypair: TIOCSWINSZ: %s\n", strerror(errno));
		return 1;
	}
	int sfd2 = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (sfd2 < 0) {
		printf("FAIL ptypair: open %s: %s\n", name, strerror(errno));
		return 1;
	}
	child = fork();
	if (child < 0) {
		printf("FAIL ptypair: fork\n");
		return 1;
	}
	if (child == 0) {
		close(mfd);
		close(sfd2);
		_exit(run_child(name));
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = parent_on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);

	char k;
	if (read_exact(mfd, &k, 1) != 0 || k != 'K') {
		printf("FAIL ptypair: the child did not start\n");
		kill(child, SIGKILL);
		return 1;
	}
	if (round_trip(mfd, "hello pty")) {
		kill(child, SIGKILL);
		return 1;
	}
	memset(&saved, 0, sizeof(saved));
	tcgetattr(mfd, &saved);
	printf("child %d on %s\n", (int)child, name);
	/* `queued`: bytes the slave wrote that the master has not read (a dump must refuse them). */
	if (queued && write(sfd2, "zz", 2) != 2) {
		printf("FAIL ptypair: write to the slave\n");
		kill(child, SIGKILL);
		return 1;
	}
	tp_ready("ptypair");
	while (!tp_term_requested)
		sigsuspend(&run_mask);

	char zz[2];
	int failed = queued && (read_exact(mfd, zz, 2) != 0 || memcmp(zz, "zz", 2) != 0);
	if (failed)
		printf("FAIL ptypair: the queued bytes are gone\n");
	failed = parent_checks(mfd, sfd2) || failed;
	kill(child, SIGTERM);
	int status;
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL ptypair: child status 0x%x\n", status);
		failed = 1;
	}
	if (failed) {
		printf("FAIL ptypair\n");
		return 1;
	}
	printf("PASS ptypair\n");
	return 0;
}
