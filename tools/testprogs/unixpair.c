/* unixpair: a SOCK_STREAM socketpair with "hello" queued one way and "world!!" the other, and a
 * SOCK_DGRAM socketpair with three datagrams queued ("one", "two2", "three"), S[0] non-blocking,
 * and a half-closed SOCK_STREAM pair: H[0] queued "bye" then shut its sending side down
 * (shutdown(SHUT_WR)), H[1] queued "late" to H[0].
 * On SIGTERM: exactly that data comes out (datagram boundaries kept), then nothing; new data
 * still flows both ways; socket types and flags. The half-closed pair: H[1] reads "bye" then
 * EOF, a send on H[0] fails with EPIPE, H[0] still reads "late" and then what H[1] sends. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/socket.h>

#define FAIL(...) do { printf("FAIL unixpair " __VA_ARGS__); printf("\n"); return 1; } while (0)

static int type_of(int fd)
{
	int t = -1;
	socklen_t l = sizeof(t);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l);
	return t;
}

int main(void)
{
	int s[2], d[2], h[2];

	tp_setup_stdout();
	tp_install_term_handler();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_DGRAM, 0, d) || socketpair(AF_UNIX, SOCK_STREAM, 0, h))
		FAIL("socketpair: %s", strerror(errno));
	fcntl(s[0], F_SETFL, O_NONBLOCK);
	if (send(s[0], "hello", 5, 0) != 5 || send(s[1], "world!!", 7, 0) != 7)
		FAIL("send stream");
	if (send(d[0], "one", 3, 0) != 3 || send(d[0], "two2", 4, 0) != 4 || send(d[0], "three", 5, 0) != 5)
		FAIL("send dgram");
	if (send(h[0], "bye", 3, 0) != 3 || send(h[1], "late", 4, 0) != 4 || shutdown(h[0], SHUT_WR) != 0)
		FAIL("half-closed pair: %s", strerror(errno));
	tp_ready("unixpair");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (type_of(s[0]) != SOCK_STREAM || type_of(s[1]) != SOCK_STREAM || type_of(d[0]) != SOCK_DGRAM || type_of(d[1]) != SOCK_DGRAM)
		FAIL("types");
	if (!(fcntl(s[0], F_GETFL) & O_NONBLOCK) || (fcntl(s[1], F_GETFL) & O_NONBLOCK))
		FAIL("flags");
	if (!tp_recv_expect(s[1], "hello") || !tp_recv_empty(s[1]))
		FAIL("stream queue of S[1]");
	if (!tp_recv_expect(s[0], "world!!") || !tp_recv_empty(s[0]))
		FAIL("stream queue of S[0]");
	if (!tp_recv_expect(d[1], "one") || !tp_recv_expect(d[1], "two2") || !tp_recv_expect(d[1], "three") || !tp_recv_empty(d[1]) || !tp_recv_empty(d[0]))
		FAIL("datagram queue");
	if (send(s[1], "again", 5, 0) != 5 || !tp_recv_expect(s[0], "again") || send(d[1], "back", 4, 0) != 4 || !tp_recv_expect(d[0], "back"))
		FAIL("not connected any more");
	if (type_of(h[0]) != SOCK_STREAM || type_of(h[1]) != SOCK_STREAM)
		FAIL("half-closed pair: types");
	if (!tp_recv_expect(h[1], "bye"))
		FAIL("half-closed pair: H[1] did not read the data queued before the shutdown");
	char c;
	ssize_t n = recv(h[1], &c, 1, MSG_DONTWAIT);
	if (n != 0)
		FAIL("half-closed pair: H[1] got %zd (%s) after the data, not EOF", n, n < 0 ? strerror(errno) : "data");
	errno = 0;
	if (send(h[0], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != -1 || errno != EPIPE)
		FAIL("half-closed pair: a send on the shut side gave %s, not EPIPE", errno ? strerror(errno) : "success");
	/* Only H[0]'s sending side was shut: the other direction still works. */
	if (!tp_recv_expect(h[0], "late") || !tp_recv_empty(h[0]))
		FAIL("half-closed pair: H[0]'s queue");
	if (send(h[1], "still", 5, MSG_NOSIGNAL) != 5 || !tp_recv_expect(h[0], "still"))
		FAIL("half-closed pair: H[1] -> H[0] no longer flows");
	printf("PASS unixpair\n");
	return 0;
}
