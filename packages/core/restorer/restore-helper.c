/*
 * The restore helper: a do-nothing task the restorer starts detached and holds under ptrace.
 * The restorer makes it clone3() the task to restore with the dumped PID (set_tid), then
 * rebuilds that child's whole state by injected syscalls. No libc, so the child starts with
 * as few mappings as possible.
 */
#include "arch.h"

void helper_main(void)
{
	for (;;) {
#ifdef __NR_pause
		sys6(__NR_pause, 0, 0, 0, 0, 0, 0);
#else
		sys6(__NR_ppoll, 0, 0, 0, 0, 0, 0);
#endif
	}
}
