/* posixtimer: POSIX timers (timer_create, raw syscalls so the ids are the kernel's):
 *   A  CLOCK_MONOTONIC, every 50 ms, SIGEV_SIGNAL SIGRTMIN+3 with si_value PERIODIC_VALUE
 *   B  CLOCK_REALTIME, absolute one-shot an hour ahead, SIGUSR2, sival_ptr = &marker
 *   -  one created and deleted (the ids are not contiguous)
 *   D  CLOCK_MONOTONIC, disarmed, SIGUSR2 value 33
 *   E  CLOCK_MONOTONIC one-shot in 1000 s, SIGEV_THREAD_ID aimed at the main thread, value 44
 *   F  CLOCK_BOOTTIME, SIGEV_NONE, 2000 s then every 7 s
 * On SIGTERM: /proc/self/timers lists exactly these ids with their signal, value, notify
 * mode/target and clock; timer_gettime gives the intervals and plausible time left (never more
 * than was set; B still ends at its absolute time or later); A still fires with its si_value
 * and si_timerid (at least 5 times in a 500 ms window). */
#include "common.h"
#include <stdint.h>
#include <sys/syscall.h>

#define PERIOD_NS 50000000L
#define PERIODIC_VALUE 0x5eed1234

static volatile sig_atomic_t fired, bad_si;
static int id_a = -1;
static int marker;

static void on_periodic(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != PERIODIC_VALUE || si->si_timerid != id_a)
		bad_si = 1;
	else
		fired++;
}

static int k_timer_create(clockid_t clk, struct sigevent *sev)
{
	int id = -1;
	if (syscall(SYS_timer_create, clk, sev, &id) != 0)
		return -1;
	return id;
}

static int k_settime(int id, int flags, long long value_ns, long long interval_ns)
{
	struct itimerspec its = { { interval_ns / 1000000000LL, interval_ns % 1000000000LL },
				  { value_ns / 1000000000LL, value_ns % 1000000000LL } };
	return (int)syscall(SYS_timer_settime, id, flags, &its, NULL);
}

static int k_gettime(int id, long long *value_ns, long long *interval_ns)
{
	struct itimerspec its;
	if (syscall(SYS_timer_gettime, id, &its) != 0)
		return -1;
	*value_ns = its.it_value.tv_sec * 1000000000LL + its.it_value.tv_nsec;
	*interval_ns = its.it_interval.tv_sec * 1000000000LL + its.it_interval.tv_nsec;
	return 0;
}

struct expect {
	const char *name;
	int id;
	int clock;
	int signo;
	unsigned long value;
	const char *notify; /* as /proc/PID/timers words it: "signal/pid", "signal/tid", "none/pid" */
};

static int check_proc_timers(struct expect *ex, int n, int tid)
{
	char *text;
	int seen = 0;
	if (tp_read_file("/proc/self/timers", &text) < 0) {
		printf("FAIL posixtimer cannot read /proc/self/timers\n");
		return 1;
	}
	for (char *rec = strstr(text, "ID: "); rec; rec = strstr(rec + 1, "ID: ")) {
		if (rec != text && rec[-1] != '\n')
			continue; /* the "ID: " inside "ClockID: " */
		int id, signo, target, clk;
		unsigned long value;
		char how[32];
		if (sscanf(rec, "ID: %d\nsignal: %d/%lx\nnotify: %31[a-z/].%d\nClockID: %d", &id, &signo, &value, how,
			   &target, &clk) != 6) {
			printf("FAIL posixtimer cannot parse /proc/self/timers record: %.80s\n", rec);
			return 1;
		}
		int k;
		for (k = 0; k < n && ex[k].id != id; k++)
			;
		if (k == n) {
			printf("FAIL posixtimer unexpected timer id %d in /proc/self/timers\n", id);
			return 1;
		}
		seen++;
		/* SIGEV_NONE timers show signal 0 in newer kernels and their signo in older ones. */
		int signo_ok = signo == ex[k].signo || (strcmp(ex[k].notify, "none/pid") == 0);
		if (!signo_ok || clk != ex[k].clock || strcmp(how, ex[k].notify) != 0 ||
		    (strcmp(ex[k].notify, "none/pid") != 0 && value != ex[k].value) ||
		    target != (strcmp(how, "signal/tid") == 0 ? tid : (int)getpid())) {
			printf("FAIL posixtimer timer %s (id %d): signal %d/%lx notify %s.%d clock %d\n", ex[k].name, id, signo,
			       value, how, target, clk);
			return 1;
		}
	}
	free(text);
	if (seen != n) {
		printf("FAIL posixtimer /proc/self/timers lists %d timers, expected %d\n", seen, n);
		return 1;
	}
	return 0;
}

int main(void)
{
	struct sigaction sa;
	struct sigevent sev;
	int tid = (int)syscall(SYS_gettid);

	tp_setup_stdout();
	tp_install_term_handler();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_periodic;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 3, &sa, NULL);
	/* SIGUSR2 must never arrive (B, D and E do not fire while the program runs). */

	long long t_created = tp_now_ns(CLOCK_MONOTONIC);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN + 3;
	sev.sigev_value.sival_int = PERIODIC_VALUE;
	id_a = k_timer_create(CLOCK_MONOTONIC, &sev);

	sev.sigev_signo = SIGUSR2;
	sev.sigev_value.sival_ptr = &marker;
	int id_b = k_timer_create(CLOCK_REALTIME, &sev);

	sev.sigev_value.sival_int = 22;
	int id_gap = k_timer_create(CLOCK_MONOTONIC, &sev);

	sev.sigev_value.sival_ptr = NULL;
	sev.sigev_value.sival_int = 33;
	int id_d = k_timer_create(CLOCK_MONOTONIC, &sev);

	sev.sigev_notify = SIGEV_THREAD_ID;
	sev._sigev_un._tid = tid;
	sev.sigev_value.sival_ptr = NULL;
	sev.sigev_value.sival_int = 44;
	int id_e = k_timer_create(CLOCK_MONOTONIC, &sev);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_NONE;
	int id_f = k_timer_create(CLOCK_BOOTTIME, &sev);

	if (id_a < 0 || id_b < 0 || id_gap < 0 || id_d < 0 || id_e < 0 || id_f < 0) {
		printf("FAIL posixtimer timer_create: %s\n", strerror(errno));
		return 1;
	}
	if (syscall(SYS_timer_delete, id_gap) != 0) {
		printf("FAIL posixtimer timer_delete: %s\n", strerror(errno));
		return 1;
	}
	long long b_at = tp_now_ns(CLOCK_REALTIME) + 3600LL * 1000000000LL;
	if (k_settime(id_a, 0, PERIOD_NS, PERIOD_NS) || k_settime(id_b, TIMER_ABSTIME, b_at, 0) ||
	    k_settime(id_e, 0, 1000LL * 1000000000LL, 0) ||
	    k_settime(id_f, 0, 2000LL * 1000000000LL, 7LL * 1000000000LL)) {
		printf("FAIL posixtimer timer_settime: %s\n", strerror(errno));
		return 1;
	}
	printf("ids A=%d B=%d gap=%d D=%d E=%d F=%d\n", id_a, id_b, id_gap, id_d, id_e, id_f);
	while (fired < 3 && !bad_si)
		tp_sleep_ms(10);
	tp_ready("posixtimer");
	while (!tp_term_requested && !bad_si)
		tp_sleep_ms(100);

	struct expect ex[] = {
		{ "A", id_a, CLOCK_MONOTONIC, SIGRTMIN + 3, PERIODIC_VALUE, "signal/pid" },
		{ "B", id_b, CLOCK_REALTIME, SIGUSR2, (unsigned long)&marker, "signal/pid" },
		{ "D", id_d, CLOCK_MONOTONIC, SIGUSR2, 33, "signal/pid" },
		{ "E", id_e, CLOCK_MONOTONIC, SIGUSR2, 44, "signal/tid" },
		{ "F", id_f, CLOCK_BOOTTIME, 0, 0, "none/pid" },
	};
	if (check_proc_timers(ex, 5, tid))
		return 1;

	long long v, iv;
	long long mono_elapsed = tp_now_ns(CLOCK_MONOTONIC) - t_created;
	if (k_gettime(id_a, &v, &iv) || iv != PERIOD_NS || v <= 0 || v > PERIOD_NS) {
		printf("FAIL posixtimer A: value %lld interval %lld\n", v, iv);
		return 1;
	}
	long long b_left = b_at - tp_now_ns(CLOCK_REALTIME);
	if (k_gettime(id_b, &v, &iv) || iv != 0 || v <= 0 || v > 3600LL * 1000000000LL || v < b_left - 1000000000LL) {
		printf("FAIL posixtimer B: value %lld (expected about %lld) interval %lld\n", v, b_left, iv);
		return 1;
	}
	if (k_gettime(id_d, &v, &iv) || iv != 0 || v != 0) {
		printf("FAIL posixtimer D (disarmed): value %lld interval %lld\n", v, iv);
		return 1;
	}
	if (k_gettime(id_e, &v, &iv) || iv != 0 || v > 1000LL * 1000000000LL || v < 1000LL * 1000000000LL - mono_elapsed) {
		printf("FAIL posixtimer E: value %lld interval %lld (elapsed %lld)\n", v, iv, mono_elapsed);
		return 1;
	}
	if (k_gettime(id_f, &v, &iv) || iv != 7LL * 1000000000LL || v <= 0 || v > 2000LL * 1000000000LL) {
		printf("FAIL posixtimer F: value %lld interval %lld\n", v, iv);
		return 1;
	}
	if (k_gettime(id_gap, &v, &iv) == 0 || errno != EINVAL) {
		printf("FAIL posixtimer the deleted id %d exists again\n", id_gap);
		return 1;
	}

	int c1 = fired;
	long long end = tp_now_ns(CLOCK_MONOTONIC) + 500000000LL;
	while (tp_now_ns(CLOCK_MONOTONIC) < end && !bad_si)
		tp_sleep_ms(10);
	if (bad_si) {
		printf("FAIL posixtimer a timer signal came with a wrong si_code/si_value/si_timerid\n");
		return 1;
	}
	if (fired - c1 < 5) {
		printf("FAIL posixtimer A fired %d times in 500 ms\n", (int)(fired - c1));
		return 1;
	}
	printf("PASS posixtimer fired %d\n", (int)fired);
	return 0;
}
