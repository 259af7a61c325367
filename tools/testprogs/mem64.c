/* mem64: mem with 64 MiB, under its own name (READY mem64 / PASS mem64); see memfill.h. */
#include "memfill.h"

int main(void)
{
	return mem_main("mem64", 64);
}
