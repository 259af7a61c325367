/* counter: one thread incrementing a counter and printing it every ~100 ms.
 * A shadow copy (count * 3) lives in a separate variable so a restore that corrupts memory
 * shows up as a mismatch. */
#include "common.h"

int main(void)
{
	unsigned long count = 0, shadow = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	tp_ready("counter");
	while (!tp_term_requested) {
		count++;
		shadow += 3;
		printf("%lu\n", count);
		tp_sleep_ms(100);
	}
	if (shadow != count * 3) {
		printf("FAIL counter %lu shadow %lu\n", count, shadow);
		return 1;
	}
	printf("PASS counter %lu\n", count);
	return 0;
}
