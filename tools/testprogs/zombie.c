/* zombie: a parent with a zombie child (it exited with code 7 and is not reaped) and a child
 * stopped by SIGSTOP. On SIGTERM: waitpid(WNOHANG) of the zombie's pid returns that pid at once
 * with exit status 7; the stopped child's /proc state is 'T'; after SIGCONT it runs again
 * (state no longer 'T'), takes a SIGTERM in its handler and exits 0. The stopped child dies
 * with the parent (PR_SET_PDEATHSIG), so killing the parent by PID leaves nothing behind. */
#include "common.h"
#include <sys/prctl.h>
#include <sys/wait.h>

static char state_of(pid_t pid)
{
	char path[64], *text, st = '?';
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (tp_read_file(path, &text) < 0)
		return '?';
	char *p = strrchr(text, ')');
	if (p && p[1] == ' ')
		st = p[2];
	free(text);
	return st;
}

int main(void)
{
	tp_setup_stdout();
	tp_install_term_handler();

	pid_t zombie = fork();
	if (zombie == 0)
		_exit(7);
	pid_t stopped = fork();
	if (stopped == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		while (!tp_term_requested)
			tp_sleep_ms(20);
		_exit(0);
	}
	if (zombie < 0 || stopped < 0) {
		printf("FAIL zombie fork\n");
		return 1;
	}
	/* Wait (without reaping) until the first child is a zombie and the second is stopped. */
	while (state_of(zombie) != 'Z')
		tp_sleep_ms(5);
	kill(stopped, SIGSTOP);
	int status;
	if (waitpid(stopped, &status, WUNTRACED) != stopped || !WIFSTOPPED(status)) {
		printf("FAIL zombie the child did not stop (status 0x%x)\n", status);
		return 1;
	}
	printf("children zombie %d stopped %d\n", (int)zombie, (int)stopped);
	tp_ready("zombie");
	while (!tp_term_requested)
		tp_sleep_ms(100);

	pid_t got = waitpid(zombie, &status, WNOHANG);
	if (got != zombie || !WIFEXITED(status) || WEXITSTATUS(status) != 7) {
		printf("FAIL zombie waitpid(%d) gave %d status 0x%x (%s)\n", (int)zombie, (int)got, status,
		       got < 0 ? strerror(errno) : "");
		return 1;
	}
	char st = state_of(stopped);
	if (st != 'T') {
		printf("FAIL zombie the stopped child %d is in state %c\n", (int)stopped, st);
		return 1;
	}
	kill(stopped, SIGCONT);
	for (int i = 0; i < 400 && (st = state_of(stopped)) == 'T'; i++)
		tp_sleep_ms(5);
	if (st == 'T') {
		printf("FAIL zombie the child %d stays stopped after SIGCONT\n", (int)stopped);
		return 1;
	}
	kill(stopped, SIGTERM);
	for (;;) {
		got = waitpid(stopped, &status, 0);
		if (got < 0 && errno == EINTR)
			continue;
		break;
	}
	if (got != stopped || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL zombie the continued child %d: waitpid %d status 0x%x\n", (int)stopped, (int)got, status);
		return 1;
	}
	printf("PASS zombie\n");
	return 0;
}
