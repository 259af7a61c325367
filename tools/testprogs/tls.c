/* tls: thread-local storage reached through the thread pointer (fs base on x86_64, r13 on
 * ppc64). Records the thread pointer, pthread_self(), the address of a __thread variable and
 * on x86_64 arch_prctl(ARCH_GET_FS/GS) and the TCB self-pointer at %fs:0; __thread data is
 * set up (a string, a 4 KiB pattern) and a __thread counter advances with a global shadow.
 * On SIGTERM all of it must be unchanged (the counter equal to its shadow).
 * Prints the counter every ~200 ms. */
#include "common.h"
#include <pthread.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <asm/prctl.h>
#include <sys/syscall.h>
#endif

static __thread unsigned long tls_counter = 7;
static __thread char tls_name[32] = "initial";
static __thread uint32_t tls_big[1024];
static unsigned long shadow;

struct regs {
	uintptr_t tp, self, var, fs, gs, fs0;
};

static void read_regs(struct regs *r)
{
	memset(r, 0, sizeof(*r));
	r->tp = (uintptr_t)tp_thread_pointer();
	r->self = (uintptr_t)pthread_self();
	r->var = (uintptr_t)&tls_counter;
#if defined(__x86_64__)
	unsigned long fs = 0, gs = 0;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
	syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
	r->fs = fs;
	r->gs = gs;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(r->fs0));
#endif
}

int main(void)
{
	struct regs want, now;

	tp_setup_stdout();
	tp_install_term_handler();
	snprintf(tls_name, sizeof(tls_name), "tls-%d", (int)getpid());
	for (int i = 0; i < 1024; i++)
		tls_big[i] = (uint32_t)i * 2654435761u;
	read_regs(&want);
#if defined(__x86_64__)
	if (want.fs != want.tp || want.fs0 != want.tp) {
		printf("FAIL tls fs base %#lx, %%fs:0 %#lx, thread pointer %#lx\n", (unsigned long)want.fs,
		       (unsigned long)want.fs0, (unsigned long)want.tp);
		return 1;
	}
#endif
	printf("tp %#lx\n", (unsigned long)want.tp);
	tp_ready("tls");
	while (!tp_term_requested) {
		tls_counter++;
		shadow++;
		printf("%lu\n", tls_counter);
		tp_sleep_ms(200);
	}

	read_regs(&now);
	if (memcmp(&now, &want, sizeof(now)) != 0) {
		printf("FAIL tls tp %#lx self %#lx var %#lx fs %#lx gs %#lx fs:0 %#lx; recorded %#lx %#lx %#lx %#lx %#lx "
		       "%#lx\n",
		       (unsigned long)now.tp, (unsigned long)now.self, (unsigned long)now.var, (unsigned long)now.fs,
		       (unsigned long)now.gs, (unsigned long)now.fs0, (unsigned long)want.tp, (unsigned long)want.self,
		       (unsigned long)want.var, (unsigned long)want.fs, (unsigned long)want.gs,
		       (unsigned long)want.fs0);
		return 1;
	}
	char name[32];
	snprintf(name, sizeof(name), "tls-%d", (int)getpid());
	if (tls_counter != shadow + 7 || strcmp(tls_name, name) != 0) {
		printf("FAIL tls counter %lu shadow %lu name '%s'\n", tls_counter, shadow, tls_name);
		return 1;
	}
	for (int i = 0; i < 1024; i++) {
		if (tls_big[i] != (uint32_t)i * 2654435761u) {
			printf("FAIL tls data word %d\n", i);
			return 1;
		}
	}
	printf("PASS tls %lu ticks\n", shadow);
	return 0;
}
