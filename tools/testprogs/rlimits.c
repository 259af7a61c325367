/* rlimits: lowers soft limits of several resources (and the hard limit of two; lowering needs
 * no privilege) to values a fresh process would not have, then on SIGTERM compares every
 * resource's limits (0..RLIM_NLIMITS-1) with what getrlimit() returned after the changes, and
 * checks that the lowered RLIMIT_NOFILE is enforced.
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <fcntl.h>
#include <sys/resource.h>

struct change {
	int res;
	const char *name;
	rlim_t soft; /* lowered to min(this, hard); if the current soft is already lower: soft - 1 */
	rlim_t hard; /* RLIM_INFINITY: keep */
};

static const struct change changes[] = {
	{ RLIMIT_NOFILE, "NOFILE", 777, RLIM_INFINITY },
	{ RLIMIT_CORE, "CORE", 0, 3ULL << 30 },
	{ RLIMIT_STACK, "STACK", 6ULL << 20, RLIM_INFINITY },
	{ RLIMIT_FSIZE, "FSIZE", (5ULL << 30) + 4096, RLIM_INFINITY },
	{ RLIMIT_CPU, "CPU", 86400 * 7, RLIM_INFINITY },
	{ RLIMIT_MSGQUEUE, "MSGQUEUE", 400000, 700000 },
	{ RLIMIT_MEMLOCK, "MEMLOCK", 1ULL << 20, RLIM_INFINITY },
	{ RLIMIT_AS, "AS", 1ULL << 40, RLIM_INFINITY },
	{ RLIMIT_DATA, "DATA", 1ULL << 39, RLIM_INFINITY },
	{ RLIMIT_SIGPENDING, "SIGPENDING", 1000, RLIM_INFINITY },
	{ RLIMIT_RTTIME, "RTTIME", 3000000, RLIM_INFINITY },
};
#define NCHANGES (sizeof(changes) / sizeof(changes[0]))

int main(void)
{
	struct rlimit want[RLIM_NLIMITS];
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	for (size_t i = 0; i < NCHANGES; i++) {
		const struct change *c = &changes[i];
		struct rlimit rl;
		getrlimit(c->res, &rl);
		if (c->hard != RLIM_INFINITY && (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > c->hard))
			rl.rlim_max = c->hard;
		rlim_t soft = c->soft;
		if (rl.rlim_max != RLIM_INFINITY && soft > rl.rlim_max)
			soft = rl.rlim_max;
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= soft)
			soft = rl.rlim_cur > 0 ? rl.rlim_cur - 1 : 0;
		rl.rlim_cur = soft;
		if (setrlimit(c->res, &rl) != 0) {
			printf("FAIL rlimits setrlimit %s: %s\n", c->name, strerror(errno));
			return 1;
		}
	}
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		getrlimit(r, &want[r]);
		printf("limit %d %llu %llu\n", r, (unsigned long long)want[r].rlim_cur,
		       (unsigned long long)want[r].rlim_max);
	}
	tp_ready("rlimits");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit now;
		getrlimit(r, &now);
		if (now.rlim_cur != want[r].rlim_cur || now.rlim_max != want[r].rlim_max) {
			printf("FAIL rlimits resource %d is %llu/%llu, recorded %llu/%llu\n", r,
			       (unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
			       (unsigned long long)want[r].rlim_cur, (unsigned long long)want[r].rlim_max);
			return 1;
		}
	}
	/* The NOFILE limit is enforced: a descriptor number at the limit cannot be created. */
	int limit = (int)want[RLIMIT_NOFILE].rlim_cur;
	if (dup2(1, limit) != -1 || errno != EBADF || dup2(1, limit - 1) != limit - 1) {
		printf("FAIL rlimits NOFILE %d not enforced as recorded\n", limit);
		return 1;
	}
	close(limit - 1);
	printf("PASS rlimits %lu ticks\n", ticks);
	return 0;
}
