/* inetlisten: TCP listeners and a bound UDP socket, on ports the kernel chose.
 *   T4: TCP on 127.0.0.1, SO_REUSEADDR, SO_KEEPALIVE, SO_RCVBUF 65536, backlog 5;
 *   T6: TCP on ::1, IPV6_V6ONLY, SO_REUSEADDR, SO_REUSEPORT, non-blocking;
 *   TA: TCP on 0.0.0.0 (any address), SO_REUSEADDR;
 *   U:  UDP on 127.0.0.1, SO_BROADCAST, nothing queued.
 * On SIGTERM: the ports (getsockname) and options are those set before, each listener accepts
 * a new connection and data flows through it, U receives a datagram. */
#define _GNU_SOURCE
#include "common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define FAIL(...) do { printf("FAIL inetlisten " __VA_ARGS__); printf("\n"); return 1; } while (0)

static int opt(int s, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	if (getsockopt(s, level, name, &v, &l) != 0)
		return -1;
	return v;
}

static int set(int s, int level, int name, int v)
{
	return setsockopt(s, level, name, &v, sizeof(v));
}

static int port_of(int s)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	if (getsockname(s, (struct sockaddr *)&a, &l) != 0)
		return -1;
	return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port : ((struct sockaddr_in *)&a)->sin_port);
}

/* An address of family f on loopback with port p. */
static socklen_t loop_addr(int f, int p, struct sockaddr_storage *a)
{
	memset(a, 0, sizeof(*a));
	if (f == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)a;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(p);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)a;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4->sin_port = htons(p);
	return sizeof(*s4);
}

static int bound(int f, int type, int any, int p)
{
	struct sockaddr_storage a;
	socklen_t l = loop_addr(f, p, &a);
	if (any)
		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(INADDR_ANY);
	int s = socket(f, type, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, l) != 0)
		return -1;
	return s;
}

/* bind after the options that must precede it */
static int listener(int f, int any, int v6only, int reuseport)
{
	int s = socket(f, SOCK_STREAM, 0);
	struct sockaddr_storage a;
	socklen_t l = loop_addr(f, 0, &a);
	if (any)
		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(INADDR_ANY);
	if (s < 0 || set(s, SOL_SOCKET, SO_REUSEADDR, 1) != 0)
		return -1;
	if (v6only && set(s, IPPROTO_IPV6, IPV6_V6ONLY, 1) != 0)
		return -1;
	if (reuseport && set(s, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
		return -1;
	if (bind(s, (struct sockaddr *)&a, l) != 0)
		return -1;
	return s;
}

/* A new client of the listener on loopback port p: accepted, data flows both ways. */
static int accepts(int l, int f, int p)
{
	struct sockaddr_storage a;
	socklen_t len = loop_addr(f, p, &a);
	char buf[8];
	int c = socket(f, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, len) != 0)
		return 0;
	int fl = fcntl(l, F_GETFL);
	fcntl(l, F_SETFL, fl & ~O_NONBLOCK);
	int s = accept(l, NULL, NULL);
	fcntl(l, F_SETFL, fl);
	int ok = s >= 0 && send(c, "tcp", 3, 0) == 3 && recv(s, buf, sizeof(buf), 0) == 3 && memcmp(buf, "tcp", 3) == 0 &&
		 send(s, "ack", 3, 0) == 3 && recv(c, buf, sizeof(buf), 0) == 3 && memcmp(buf, "ack", 3) == 0;
	close(c);
	if (s >= 0)
		close(s);
	return ok;
}

int main(void)
{
	tp_setup_stdout();
	tp_install_term_handler();

	int t4 = listener(AF_INET, 0, 0, 0);
	if (t4 < 0 || set(t4, SOL_SOCKET, SO_KEEPALIVE, 1) || set(t4, SOL_SOCKET, SO_RCVBUF, 65536) || listen(t4, 5) != 0)
		FAIL("127.0.0.1 listener: %s", strerror(errno));
	int t6 = listener(AF_INET6, 0, 1, 1);
	if (t6 < 0 || listen(t6, 9) != 0 || fcntl(t6, F_SETFL, O_NONBLOCK) != 0)
		FAIL("::1 listener: %s", strerror(errno));
	int ta = listener(AF_INET, 1, 0, 0);
	if (ta < 0 || listen(ta, 16) != 0)
		FAIL("0.0.0.0 listener: %s", strerror(errno));
	int u = bound(AF_INET, SOCK_DGRAM, 0, 0);
	if (u < 0 || set(u, SOL_SOCKET, SO_BROADCAST, 1) != 0)
		FAIL("UDP socket: %s", strerror(errno));
	int p4 = port_of(t4), p6 = port_of(t6), pa = port_of(ta), pu = port_of(u);
	int rcvbuf = opt(t4, SOL_SOCKET, SO_RCVBUF);
	tp_ready("inetlisten");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (port_of(t4) != p4 || port_of(t6) != p6 || port_of(ta) != pa || port_of(u) != pu)
		FAIL("ports %d %d %d %d, were %d %d %d %d", port_of(t4), port_of(t6), port_of(ta), port_of(u), p4, p6, pa, pu);
	if (opt(t4, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(t6, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(ta, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		FAIL("not listening");
	if (opt(t4, SOL_SOCKET, SO_REUSEADDR) != 1 || opt(t4, SOL_SOCKET, SO_KEEPALIVE) != 1 || opt(t4, SOL_SOCKET, SO_RCVBUF) != rcvbuf)
		FAIL("options of the 127.0.0.1 listener: reuseaddr %d keepalive %d rcvbuf %d (was %d)", opt(t4, SOL_SOCKET, SO_REUSEADDR),
		     opt(t4, SOL_SOCKET, SO_KEEPALIVE), opt(t4, SOL_SOCKET, SO_RCVBUF), rcvbuf);
	if (opt(t6, IPPROTO_IPV6, IPV6_V6ONLY) != 1 || opt(t6, SOL_SOCKET, SO_REUSEPORT) != 1 || !(fcntl(t6, F_GETFL) & O_NONBLOCK))
		FAIL("options of the ::1 listener");
	if (opt(ta, SOL_SOCKET, SO_REUSEPORT) != 0 || opt(u, SOL_SOCKET, SO_BROADCAST) != 1 || opt(u, SOL_SOCKET, SO_TYPE) != SOCK_DGRAM)
		FAIL("options of the any-address listener or the UDP socket");
	if (!accepts(t4, AF_INET, p4) || !accepts(t6, AF_INET6, p6) || !accepts(ta, AF_INET, pa))
		FAIL("a listener does not accept: %s", strerror(errno));
	struct sockaddr_storage a;
	socklen_t len = loop_addr(AF_INET, pu, &a);
	char buf[8];
	int c = socket(AF_INET, SOCK_DGRAM, 0);
	if (c < 0 || sendto(c, "udp", 3, 0, (struct sockaddr *)&a, len) != 3 || recv(u, buf, sizeof(buf), 0) != 3 || memcmp(buf, "udp", 3) != 0)
		FAIL("the UDP socket does not receive: %s", strerror(errno));
	printf("PASS inetlisten\n");
	return 0;
}
