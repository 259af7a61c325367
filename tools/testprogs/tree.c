/* tree: a parent with two children joined by a pipe. The writer sends an increasing u32
 * sequence, a burst of BACKLOG records first and then one every ~100 ms; the reader takes one
 * every ~100 ms, so the pipe normally holds unread data (a dump must save it). The reader
 * checks that the sequence arrives without gaps. The writer prints READY after its burst. The
 * parent waits for both. On SIGTERM the parent forwards it to the children and reports PASS
 * only if both exit with status 0 (the reader exits 1 on a sequence error). Children die with
 * the parent (PR_SET_PDEATHSIG) so killing the parent by PID never leaves them behind. */
#include "common.h"
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define BACKLOG 3

static int run_writer(int fd)
{
	uint32_t seq = 0;
	while (!tp_term_requested) {
		seq++;
		if (write(fd, &seq, sizeof(seq)) != (ssize_t)sizeof(seq)) {
			if (errno == EINTR) {
				seq--;
				continue;
			}
			return tp_term_requested ? 0 : 1;
		}
		if (seq < BACKLOG)
			continue;
		if (seq == BACKLOG)
			tp_ready("tree");
		tp_sleep_ms(100);
	}
	return 0;
}

static int run_reader(int fd)
{
	uint32_t expect = 1, got;
	while (!tp_term_requested) {
		ssize_t n = read(fd, &got, sizeof(got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return tp_term_requested ? 0 : 1;
		if (n != (ssize_t)sizeof(got) || got != expect) {
			printf("FAIL tree reader: expected %u got %u (n=%zd)\n", expect, got, n);
			return 1;
		}
		printf("seq %u\n", got);
		expect++;
		tp_sleep_ms(100);
	}
	return 0;
}

static pid_t kids[2];

/* The parent forwards SIGTERM from inside the handler: no window where it is already blocked
 * in waitpid() but has not forwarded yet. */
static void parent_on_term(int sig)
{
	(void)sig;
	tp_term_requested = 1;
	if (kids[0] > 0)
		kill(kids[0], SIGTERM);
	if (kids[1] > 0)
		kill(kids[1], SIGTERM);
}

static pid_t spawn(int role, int fds[2])
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (role == 0) {
		close(fds[0]);
		_exit(run_writer(fds[1]));
	}
	close(fds[1]);
	_exit(run_reader(fds[0]));
}

int main(void)
{
	int fds[2];
	int failed = 0;
	struct sigaction sa;

	tp_setup_stdout();
	tp_install_term_handler();
	if (pipe(fds) != 0) {
		perror("pipe");
		return 1;
	}
	kids[0] = spawn(0, fds);
	kids[1] = spawn(1, fds);
	if (kids[0] < 0 || kids[1] < 0) {
		printf("FAIL fork\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = parent_on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	/* A SIGTERM that arrived while the children were being created was not forwarded. */
	if (tp_term_requested)
		parent_on_term(SIGTERM);
	close(fds[0]);
	close(fds[1]);
	printf("children %d %d\n", (int)kids[0], (int)kids[1]);

	int left = 2;
	while (left > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		left--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("FAIL tree child %d status 0x%x\n", (int)pid, status);
			failed = 1;
		}
	}
	if (!tp_term_requested)
		failed = 1;
	if (failed) {
		printf("FAIL tree\n");
		return 1;
	}
	printf("PASS tree\n");
	return 0;
}
