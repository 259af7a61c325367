/* unixnamed DIR [noacceptname]: named unix sockets.
 *   L: a SOCK_STREAM listener bound to DIR/listen.sock (mode 0640, backlog 7), nothing pending;
 *   C: a client connected to L, A: the connection L accepted; "ping" queued C->A, "pong!" A->C;
 *   M: a SOCK_STREAM listener on the abstract name "\0unixnamed-PID-abs";
 *   D: a SOCK_DGRAM socket bound to DIR/dgram.sock with three datagrams queued ("d1", "dd2",
 *      "ddd3"), sent by a socket closed since; E: a SOCK_DGRAM socket on an abstract name, empty;
 *   U: an unnamed SOCK_DGRAM socket, never connected.
 * On SIGTERM: names (getsockname, getpeername), the mode of DIR/listen.sock, the queued data
 * exactly, then nothing; the pair still works both ways; L and M accept new connections; D and
 * E still receive datagrams; U is still unconnected and sends to E. "noacceptname" leaves out the names of the accepted connection (A's
 * own name and C's peer name, the listener's path), which CRIU 4.1's restore loses. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define FAIL(...) do { printf("FAIL unixnamed " __VA_ARGS__); printf("\n"); return 1; } while (0)

static struct sockaddr_un addr_of(const char *path, int abstract, socklen_t *len)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	if (abstract) {
		/* a.sun_path[0] stays 0 */
		memcpy(a.sun_path + 1, path, strlen(path));
		*len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
	} else {
		tp_copy(a.sun_path, sizeof(a.sun_path), path);
		*len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
	}
	return a;
}

static int bound(int type, const char *path, int abstract)
{
	socklen_t len;
	struct sockaddr_un a = addr_of(path, abstract, &len);
	int s = socket(AF_UNIX, type, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, len) != 0)
		return -1;
	return s;
}

static int connect_to(int type, const char *path, int abstract)
{
	socklen_t len;
	struct sockaddr_un a = addr_of(path, abstract, &len);
	int s = socket(AF_UNIX, type, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, len) != 0)
		return -1;
	return s;
}

/* 1 when the address (getsockname or getpeername) of s is the name. */
static int has_name(int s, int peer, const char *path, int abstract)
{
	socklen_t want_len, len = sizeof(struct sockaddr_un);
	struct sockaddr_un want = addr_of(path, abstract, &want_len), got;
	memset(&got, 0, sizeof(got));
	if ((peer ? getpeername(s, (struct sockaddr *)&got, &len) : getsockname(s, (struct sockaddr *)&got, &len)) != 0)
		return 0;
	return len == want_len && memcmp(&got, &want, len) == 0;
}

/* A new client connects to the listener and the listener accepts it; data flows. */
static int accepts(int l, const char *path, int abstract)
{
	int c = connect_to(SOCK_STREAM, path, abstract);
	if (c < 0)
		return 0;
	int a = accept(l, NULL, NULL);
	int ok = a >= 0 && send(c, "new", 3, 0) == 3 && tp_recv_expect(a, "new");
	close(c);
	if (a >= 0)
		close(a);
	return ok;
}

static int dgram_to(const char *path, int abstract, const char *msg)
{
	socklen_t len;
	struct sockaddr_un a = addr_of(path, abstract, &len);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	int ok = s >= 0 && sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&a, len) == (ssize_t)strlen(msg);
	if (s >= 0)
		close(s);
	return ok;
}

int main(int argc, char **argv)
{
	char lpath[108], dpath[108], mname[64], ename[64];
	struct stat st;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2)
		FAIL("usage: unixnamed DIR");
	snprintf(lpath, sizeof(lpath), "%s/listen.sock", argv[1]);
	snprintf(dpath, sizeof(dpath), "%s/dgram.sock", argv[1]);
	snprintf(mname, sizeof(mname), "unixnamed-%d-abs", (int)getpid());
	snprintf(ename, sizeof(ename), "unixnamed-%d-dgram", (int)getpid());
	unlink(lpath);
	unlink(dpath);

	int l = bound(SOCK_STREAM, lpath, 0);
	if (l < 0 || chmod(lpath, 0640) != 0 || listen(l, 7) != 0)
		FAIL("listener: %s", strerror(errno));
	int c = connect_to(SOCK_STREAM, lpath, 0);
	int a = c < 0 ? -1 : accept(l, NULL, NULL);
	if (a < 0)
		FAIL("connect/accept: %s", strerror(errno));
	if (send(c, "ping", 4, 0) != 4 || send(a, "pong!", 5, 0) != 5)
		FAIL("send stream");
	int m = bound(SOCK_STREAM, mname, 1);
	if (m < 0 || listen(m, 3) != 0)
		FAIL("abstract listener: %s", strerror(errno));
	int d = bound(SOCK_DGRAM, dpath, 0);
	if (d < 0 || !dgram_to(dpath, 0, "d1") || !dgram_to(dpath, 0, "dd2") || !dgram_to(dpath, 0, "ddd3"))
		FAIL("datagram socket: %s", strerror(errno));
	int e = bound(SOCK_DGRAM, ename, 1);
	if (e < 0)
		FAIL("abstract datagram socket: %s", strerror(errno));
	int u = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (u < 0)
		FAIL("unnamed datagram socket: %s", strerror(errno));
	tp_ready("unixnamed");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (!has_name(l, 0, lpath, 0))
		FAIL("name of the path listener");
	int acceptname = !(argc > 2 && strcmp(argv[2], "noacceptname") == 0);
	if (acceptname && (!has_name(a, 0, lpath, 0) || !has_name(c, 1, lpath, 0)))
		FAIL("names of the accepted connection: local %d, peer of the client %d", has_name(a, 0, lpath, 0), has_name(c, 1, lpath, 0));
	if (!has_name(m, 0, mname, 1) || !has_name(d, 0, dpath, 0) || !has_name(e, 0, ename, 1))
		FAIL("names of the abstract listener and the datagram sockets");
	if (stat(lpath, &st) != 0 || !S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640)
		FAIL("%s: mode %o", lpath, (unsigned)st.st_mode);
	if (!tp_recv_expect(a, "ping") || !tp_recv_empty(a) || !tp_recv_expect(c, "pong!") || !tp_recv_empty(c))
		FAIL("stream queues");
	if (!tp_recv_expect(d, "d1") || !tp_recv_expect(d, "dd2") || !tp_recv_expect(d, "ddd3") || !tp_recv_empty(d) || !tp_recv_empty(e))
		FAIL("datagram queue");
	if (send(c, "again", 5, 0) != 5 || !tp_recv_expect(a, "again") || send(a, "back", 4, 0) != 4 || !tp_recv_expect(c, "back"))
		FAIL("the accepted pair is not connected any more");
	if (!accepts(l, lpath, 0) || !accepts(m, mname, 1))
		FAIL("a listener does not accept: %s", strerror(errno));
	if (!dgram_to(dpath, 0, "x") || !tp_recv_expect(d, "x") || !dgram_to(ename, 1, "y") || !tp_recv_expect(e, "y"))
		FAIL("a datagram socket does not receive: %s", strerror(errno));
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);
	if (getpeername(u, (struct sockaddr *)&peer, &plen) == 0 || errno != ENOTCONN)
		FAIL("the unnamed datagram socket is connected");
	socklen_t elen;
	struct sockaddr_un ea = addr_of(ename, 1, &elen);
	if (sendto(u, "z", 1, 0, (struct sockaddr *)&ea, elen) != 1 || !tp_recv_expect(e, "z"))
		FAIL("the unnamed datagram socket cannot send: %s", strerror(errno));
	printf("PASS unixnamed%s\n", acceptname ? "" : " (names of the accepted connection not checked)");
	return 0;
}
