/* epoll: EP (EPOLL_CLOEXEC) watches an eventfd holding 1 (EPOLLIN, data 0x1122334455667788),
 * a pipe's read end holding "x" (EPOLLIN | EPOLLET, data 0xabc) and its write end (EPOLLOUT,
 * data 3); EP2 watches EP (EPOLLIN, data 99). Nothing is waited for before READY.
 * On SIGTERM: the "tfd:" lines of EP's fdinfo, what epoll_wait reports on both, and that
 * EPOLL_CTL_MOD/DEL/ADD find the targets by their descriptor numbers. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define FAIL(...) do { printf("FAIL epoll " __VA_ARGS__); printf("\n"); return 1; } while (0)

struct want { int fd; unsigned events; unsigned long long data; int seen; };

int main(void)
{
	struct epoll_event ev, got[8];
	int p[2];

	tp_setup_stdout();
	tp_install_term_handler();
	int efd = eventfd(1, 0);
	if (efd < 0 || pipe(p) != 0 || write(p[1], "x", 1) != 1)
		FAIL("setup: %s", strerror(errno));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int ep2 = epoll_create(1);
	struct want w[3] = {
		{ efd, EPOLLIN, 0x1122334455667788ULL, 0 },
		{ p[0], EPOLLIN | EPOLLET, 0xabc, 0 },
		{ p[1], EPOLLOUT, 3, 0 },
	};
	for (int i = 0; i < 3; i++) {
		ev.events = w[i].events;
		ev.data.u64 = w[i].data;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, w[i].fd, &ev) != 0)
			FAIL("add %d: %s", w[i].fd, strerror(errno));
	}
	ev.events = EPOLLIN;
	ev.data.u64 = 99;
	if (epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev) != 0)
		FAIL("add ep: %s", strerror(errno));
	tp_ready("epoll");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (!(fcntl(ep, F_GETFD) & FD_CLOEXEC) || (fcntl(ep2, F_GETFD) & FD_CLOEXEC))
		FAIL("fd flags");
	/* fdinfo: one tfd line per target */
	char path[64], *text;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	if (tp_read_file(path, &text) < 0)
		FAIL("fdinfo");
	int lines = 0;
	for (char *l = strstr(text, "tfd:"); l; l = strstr(l + 1, "tfd:")) {
		int tfd;
		unsigned events;
		unsigned long long data;
		if (sscanf(l, "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
			FAIL("tfd line");
		int ok = 0;
		for (int i = 0; i < 3; i++)
			if (w[i].fd == tfd && (events & ~(unsigned)(EPOLLERR | EPOLLHUP)) == w[i].events && w[i].data == data)
				ok = 1;
		if (!ok)
			FAIL("unexpected tfd %d events %x data %llx", tfd, events, data);
		lines++;
	}
	free(text);
	if (lines != 3)
		FAIL("%d targets", lines);
	int n = epoll_wait(ep2, got, 8, 0);
	if (n != 1 || got[0].data.u64 != 99 || !(got[0].events & EPOLLIN))
		FAIL("ep2 reports %d", n);
	n = epoll_wait(ep, got, 8, 0);
	if (n != 3)
		FAIL("ep reports %d events", n);
	for (int i = 0; i < n; i++) {
		int ok = 0;
		for (int j = 0; j < 3; j++) {
			if (got[i].data.u64 == w[j].data && (got[i].events & w[j].events & ~EPOLLET)) {
				w[j].seen++;
				ok = 1;
			}
		}
		if (!ok)
			FAIL("event %x data %llx", got[i].events, (unsigned long long)got[i].data.u64);
	}
	ev.events = EPOLLOUT;
	ev.data.u64 = 5;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev) != 0)
		FAIL("MOD eventfd: %s", strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL) != 0)
		FAIL("DEL pipe: %s", strerror(errno));
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != -1 || errno != EEXIST)
		FAIL("ADD again did not give EEXIST");
	n = epoll_wait(ep, got, 8, 0);
	if (n != 1 || got[0].data.u64 != 5)
		FAIL("after MOD/DEL: %d events", n);
	printf("PASS epoll\n");
	return 0;
}
