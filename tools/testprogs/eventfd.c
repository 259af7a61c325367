/* eventfd [sem]: three eventfds: A (counter 42, EFD_NONBLOCK, close-on-exec), B = dup(A), and
 * C (counter 3; EFD_SEMAPHORE with "sem": CRIU 4.1 does not record the semaphore mode, criu-ts
 * does). On SIGTERM: flags, fdinfo counters, A reads 42 then EAGAIN, a write through
 * B is read through A (one open file), C gives 1 three times (or 3 at once), then EAGAIN. */
#define _GNU_SOURCE
#include "common.h"
#include "fdinfo.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>

#define FAIL(...) do { printf("FAIL eventfd " __VA_ARGS__); printf("\n"); return 1; } while (0)

int main(int argc, char **argv)
{
	int sem = argc > 1 && strcmp(argv[1], "sem") == 0;
	uint64_t v;
	char buf[64];

	tp_setup_stdout();
	tp_install_term_handler();
	int a = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
	int c = eventfd(3, sem ? EFD_SEMAPHORE : 0);
	if (a < 0 || c < 0)
		FAIL("setup: %s", strerror(errno));
	v = 37;
	if (write(a, &v, 8) != 8)
		FAIL("write: %s", strerror(errno));
	int b = dup(a);
	tp_ready("eventfd");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	if (!(fcntl(a, F_GETFL) & O_NONBLOCK) || !(fcntl(a, F_GETFD) & FD_CLOEXEC))
		FAIL("A flags 0%o fd flags %d", fcntl(a, F_GETFL), fcntl(a, F_GETFD));
	if (fcntl(b, F_GETFD) & FD_CLOEXEC)
		FAIL("B is close-on-exec");
	if (fcntl(c, F_GETFL) & O_NONBLOCK)
		FAIL("C is non-blocking");
	if (tp_fdinfo_field(a, "eventfd-count:", buf, sizeof(buf)) || strtoull(buf, NULL, 16) != 42)
		FAIL("A eventfd-count '%s'", buf);
	if (tp_fdinfo_field(c, "eventfd-count:", buf, sizeof(buf)) || strtoull(buf, NULL, 16) != 3)
		FAIL("C eventfd-count '%s'", buf);
	if (tp_fdinfo_field(c, "eventfd-semaphore:", buf, sizeof(buf)) == 0 && atoi(buf) != sem)
		FAIL("C eventfd-semaphore %s, expected %d", buf, sem);
	if (read(a, &v, 8) != 8 || v != 42)
		FAIL("A read %llu", (unsigned long long)v);
	if (read(a, &v, 8) != -1 || errno != EAGAIN)
		FAIL("A second read did not give EAGAIN");
	v = 7;
	if (write(b, &v, 8) != 8 || read(a, &v, 8) != 8 || v != 7)
		FAIL("write through B not seen through A");
	fcntl(c, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < (sem ? 3 : 1); i++) {
		if (read(c, &v, 8) != 8 || v != (uint64_t)(sem ? 1 : 3))
			FAIL("C read %d gave %llu", i, (unsigned long long)v);
	}
	if (read(c, &v, 8) != -1 || errno != EAGAIN)
		FAIL("C not empty");
	printf("PASS eventfd%s\n", sem ? " sem" : "");
	return 0;
}
