/* memfd: A = memfd "tp-memfd" (MFD_ALLOW_SEALING | MFD_CLOEXEC) with 3 pages + 100 bytes of a
 * pattern, grown to 64 KiB (a hole), offset 1234, sealed F_SEAL_SHRINK | F_SEAL_GROW;
 * B = memfd "tp-empty" (no sealing: F_SEAL_SEAL); C = A reopened read-only through /proc (another
 * open file of the same inode). Descriptors only, no mapping.
 * On SIGTERM: names, sizes, contents, offset, seals, flags, and that C sees a write to A. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define FAIL(...) do { printf("FAIL memfd " __VA_ARGS__); printf("\n"); return 1; } while (0)
#define DATA (3 * 4096 + 100)
#define SIZE 65536

static unsigned char pat(long i) { return (unsigned char)((i * 7 + 3) % 253); }

int main(void)
{
	static unsigned char buf[SIZE];
	char path[64], link[256];

	tp_setup_stdout();
	tp_install_term_handler();
	int a = memfd_create("tp-memfd", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	int b = memfd_create("tp-empty", 0);
	if (a < 0 || b < 0)
		FAIL("create: %s", strerror(errno));
	for (long i = 0; i < DATA; i++)
		buf[i] = pat(i);
	if (write(a, buf, DATA) != DATA || ftruncate(a, SIZE) != 0 || lseek(a, 1234, SEEK_SET) != 1234)
		FAIL("fill: %s", strerror(errno));
	if (fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
		FAIL("seal: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
	int c = open(path, O_RDONLY);
	if (c < 0)
		FAIL("reopen: %s", strerror(errno));
	tp_ready("memfd");
	/* A bounded sleep, not pause(): a SIGTERM handled just as a restore resumes the task (before
	 * it re-enters the interrupted call) must not be missed. */
	while (!tp_term_requested)
		tp_sleep_ms(50);

	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, "/memfd:tp-memfd (deleted)"))
		FAIL("A is %s", link);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strcmp(link, "/memfd:tp-empty (deleted)"))
		FAIL("B is %s", link);
	struct stat sa, sb, sc;
	fstat(a, &sa);
	fstat(b, &sb);
	fstat(c, &sc);
	if (sa.st_size != SIZE || sb.st_size != 0 || sa.st_ino != sc.st_ino || sa.st_ino == sb.st_ino)
		FAIL("sizes %lld %lld inodes %lu %lu %lu", (long long)sa.st_size, (long long)sb.st_size, sa.st_ino, sb.st_ino, sc.st_ino);
	if (lseek(a, 0, SEEK_CUR) != 1234 || lseek(c, 0, SEEK_CUR) != 0)
		FAIL("offsets");
	if (fcntl(a, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW) || fcntl(b, F_GET_SEALS) != F_SEAL_SEAL)
		FAIL("seals %x %x", fcntl(a, F_GET_SEALS), fcntl(b, F_GET_SEALS));
	if (!(fcntl(a, F_GETFD) & FD_CLOEXEC) || (fcntl(b, F_GETFD) & FD_CLOEXEC) || (fcntl(c, F_GETFL) & O_ACCMODE) != O_RDONLY || (fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR)
		FAIL("flags");
	memset(buf, 0xee, SIZE);
	if (pread(c, buf, SIZE, 0) != SIZE)
		FAIL("read");
	for (long i = 0; i < SIZE; i++)
		if (buf[i] != (i < DATA ? pat(i) : 0))
			FAIL("byte %ld is %d", i, buf[i]);
	if (pwrite(a, "Z", 1, 5) != 1 || pread(c, buf, 1, 5) != 1 || buf[0] != 'Z')
		FAIL("C does not see A");
	if (write(c, "Z", 1) != -1 || ftruncate(a, 10) != -1)
		FAIL("C writable or A shrinkable");
	printf("PASS memfd\n");
	return 0;
}
