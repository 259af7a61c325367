/* fileio: an input file read sequentially (its offset must survive) and an O_APPEND log
 * written every ~50 ms (it must keep growing, each line appended once, in order).
 *   fileio INPUT LOG     INPUT holds byte i = i % 251 (the test writes it).
 * On SIGTERM: the input offset must equal what was consumed and the log must hold the
 * lines 1..N with no gap or repeat. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	unsigned char buf[16];
	unsigned long ticks = 0;
	off_t consumed = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: fileio INPUT LOG\n");
		return 2;
	}
	tp_setup_stdout();
	tp_install_term_handler();
	int in = open(argv[1], O_RDONLY);
	int log = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
	if (in < 0 || log < 0) {
		perror("open");
		return 2;
	}
	tp_ready("fileio");
	while (!tp_term_requested) {
		ssize_t n = read(in, buf, 10);
		if (n != 10) {
			printf("FAIL fileio short read %zd at %lld\n", n, (long long)consumed);
			return 1;
		}
		for (int i = 0; i < 10; i++) {
			if (buf[i] != (unsigned char)((consumed + i) % 251)) {
				printf("FAIL fileio byte %lld is %u\n", (long long)(consumed + i), buf[i]);
				return 1;
			}
		}
		consumed += 10;
		char line[64];
		int len = snprintf(line, sizeof(line), "line %lu\n", ++ticks);
		if (write(log, line, (size_t)len) != len) {
			printf("FAIL fileio log write\n");
			return 1;
		}
		if (ticks % 20 == 0)
			printf("tick %lu\n", ticks);
		tp_sleep_ms(50);
	}
	if (lseek(in, 0, SEEK_CUR) != consumed) {
		printf("FAIL fileio offset %lld expected %lld\n", (long long)lseek(in, 0, SEEK_CUR), (long long)consumed);
		return 1;
	}
	FILE *f = fopen(argv[2], "r");
	unsigned long expect = 1, got;
	while (f && fscanf(f, "line %lu\n", &got) == 1) {
		if (got != expect) {
			printf("FAIL fileio log line %lu where %lu expected\n", got, expect);
			return 1;
		}
		expect++;
	}
	if (expect - 1 != ticks) {
		printf("FAIL fileio log has %lu lines, %lu written\n", expect - 1, ticks);
		return 1;
	}
	printf("PASS fileio %lu ticks offset %lld\n", ticks, (long long)consumed);
	return 0;
}
