/* mem: N MiB (default 64) of anonymous memory with a checksum; see memfill.h.
 *   mem [MIB] */
#include "memfill.h"

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 64;
	if (mib <= 0) {
		fprintf(stderr, "usage: mem [MIB]\n");
		return 2;
	}
	return mem_main("mem", (unsigned long)mib);
}
