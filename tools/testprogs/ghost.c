/* ghost DIR: deleted-but-open files ("ghost files").
 * DIR/ghost.dat (mode 0640): 10000 bytes written, opened again read-only (offset 77), unlinked,
 * then 500 more bytes written through the first descriptor (O_RDWR, offset left at 4321).
 * DIR/ghostmap.dat (mode 0600, 3 pages): mapped MAP_SHARED and MAP_PRIVATE, its descriptor
 * closed, unlinked; then page 0 of the shared mapping and page 0 of the private one (a COW copy)
 * written, page 1 of the private one read, page 2 untouched.
 * DIR/cwd (mode 0751): made the working directory, then removed.
 * On SIGTERM: st_nlink 0, sizes, modes, one inode behind both descriptors, offsets, flags,
 * contents, /proc links and maps names "(deleted)", the mappings' contents; writes still work
 * (through a descriptor: seen by the other; through the shared mapping: seen by the untouched
 * page of the private one); the working directory is that removed directory. */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define FAIL(...) do { printf("FAIL ghost " __VA_ARGS__); printf("\n"); return 1; } while (0)
#define HEAD 10000
#define TAIL 500
#define SIZE (HEAD + TAIL)

static unsigned char pat(long i) { return (unsigned char)((i * 13 + 5) % 251); }
static unsigned char pat2(long i) { return (unsigned char)((i * 3 + 1) % 239); }

static int fd_link_is(int fd, const char *want)
{
	char path[64], link[4096];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	return strcmp(link, want) == 0;
}

/* The path and inode of the maps line of addr. */
static int maps_name(const void *addr, char *name, size_t cap, unsigned long *ino)
{
	char line[4096];
	int off = 0;
	if (tp_maps_line(addr, line, sizeof(line)) != 0)
		return -1;
	if (sscanf(line, "%*s %*s %*s %*s %lu %n", ino, &off) < 1 || !off)
		return -1;
	tp_copy(name, cap, line + off);
	return 0;
}

int main(int argc, char **argv)
{
	static unsigned char buf[SIZE + 16];
	char data[4096], mapf[4096], want[4200], name[4200];
	struct stat sa, sb;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2)
		FAIL("usage: ghost DIR");
	long ps = sysconf(_SC_PAGESIZE);
	snprintf(data, sizeof(data), "%s/ghost.dat", argv[1]);
	snprintf(mapf, sizeof(mapf), "%s/ghostmap.dat", argv[1]);
	unlink(data);
	unlink(mapf);

	int a = open(data, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (a < 0 || fchmod(a, 0640) != 0)
		FAIL("create %s: %s", data, strerror(errno));
	for (long i = 0; i < HEAD; i++)
		buf[i] = pat(i);
	if (write(a, buf, HEAD) != HEAD)
		FAIL("write: %s", strerror(errno));
	int b = open(data, O_RDONLY);
	if (b < 0 || lseek(b, 77, SEEK_SET) != 77)
		FAIL("reopen: %s", strerror(errno));
	if (unlink(data) != 0)
		FAIL("unlink: %s", strerror(errno));
	for (long i = HEAD; i < SIZE; i++)
		buf[i] = pat(i);
	if (write(a, buf + HEAD, TAIL) != TAIL || lseek(a, 4321, SEEK_SET) != 4321)
		FAIL("write after unlink: %s", strerror(errno));

	int m = open(mapf, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (m < 0 || fchmod(m, 0600) != 0)
		FAIL("create %s: %s", mapf, strerror(errno));
	unsigned char *page = malloc(ps);
	for (long p = 0; p < 3; p++) {
		for (long i = 0; i < ps; i++)
			page[i] = pat2(p * ps + i);
		if (write(m, page, ps) != ps)
			FAIL("write map file: %s", strerror(errno));
	}
	unsigned char *sh = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	unsigned char *pr = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, m, 0);
	if (sh == MAP_FAILED || pr == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	close(m);
	if (unlink(mapf) != 0)
		FAIL("unlink %s: %s", mapf, strerror(errno));
	memset(sh + 100, 'S', 200);   /* the file itself */
	memset(pr + 1000, 'P', 300);  /* a private copy of page 0 */
	volatile unsigned char sink = pr[ps + 5];
	(void)sink;

	char cwd[4120];
	snprintf(cwd, sizeof(cwd), "%s/cwd", argv[1]);
	rmdir(cwd);
	if (mkdir(cwd, 0700) != 0 || chmod(cwd, 0751) != 0 || chdir(cwd) != 0 || rmdir(cwd) != 0)
		FAIL("cwd %s: %s", cwd, strerror(errno));
	tp_ready("ghost");
	while (!tp_term_requested)
		tp_sleep_ms(50);

	/* The descriptors. */
	snprintf(want, sizeof(want), "%s (deleted)", data);
	if (!fd_link_is(a, want) || !fd_link_is(b, want))
		FAIL("fd links are not %s", want);
	if (fstat(a, &sa) || fstat(b, &sb))
		FAIL("fstat: %s", strerror(errno));
	if (sa.st_nlink != 0 || sa.st_size != SIZE || (sa.st_mode & 07777) != 0640 || !S_ISREG(sa.st_mode))
		FAIL("nlink %lu size %lld mode %o", (unsigned long)sa.st_nlink, (long long)sa.st_size, sa.st_mode);
	if (sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev)
		FAIL("two inodes behind the descriptors (%lu, %lu)", (unsigned long)sa.st_ino, (unsigned long)sb.st_ino);
	if (lseek(a, 0, SEEK_CUR) != 4321 || lseek(b, 0, SEEK_CUR) != 77)
		FAIL("offsets %lld %lld", (long long)lseek(a, 0, SEEK_CUR), (long long)lseek(b, 0, SEEK_CUR));
	if ((fcntl(a, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(b, F_GETFL) & O_ACCMODE) != O_RDONLY)
		FAIL("access modes");
	memset(buf, 0, sizeof(buf));
	if (pread(b, buf, sizeof(buf), 0) != SIZE)
		FAIL("read size");
	for (long i = 0; i < SIZE; i++)
		if (buf[i] != pat(i))
			FAIL("byte %ld is %d", i, buf[i]);
	if (write(a, "ghostly", 7) != 7 || lseek(a, 0, SEEK_CUR) != 4328 || pread(b, buf, 7, 4321) != 7 || memcmp(buf, "ghostly", 7))
		FAIL("a write through the first descriptor is not seen by the second");
	if (lseek(b, 0, SEEK_END) != SIZE)
		FAIL("size changed");

	/* The mappings. */
	unsigned long ish, ipr;
	snprintf(want, sizeof(want), "%s (deleted)", mapf);
	if (maps_name(sh, name, sizeof(name), &ish) || strcmp(name, want))
		FAIL("shared mapping is '%s'", name);
	if (maps_name(pr, name, sizeof(name), &ipr) || strcmp(name, want))
		FAIL("private mapping is '%s'", name);
	if (ish != ipr || ish == 0)
		FAIL("mapping inodes %lu %lu", ish, ipr);
	char perms[8];
	tp_maps_perms(sh, perms);
	if (strcmp(perms, "rw-s"))
		FAIL("shared perms %s", perms);
	tp_maps_perms(pr, perms);
	if (strcmp(perms, "rw-p"))
		FAIL("private perms %s", perms);
	for (long i = 0; i < 3 * ps; i++) {
		unsigned char es = (i >= 100 && i < 300) ? 'S' : pat2(i);
		unsigned char ep = (i >= 1000 && i < 1300) ? 'P' : (i < ps && i >= 100 && i < 300) ? 'S' : pat2(i);
		if (sh[i] != es)
			FAIL("shared byte %ld is %d", i, sh[i]);
		/* page 0 of the private mapping was copied after the shared write reached the file */
		if (pr[i] != ep)
			FAIL("private byte %ld is %d", i, pr[i]);
	}
	/* The working directory. */
	char link[4200];
	ssize_t ln = readlink("/proc/self/cwd", link, sizeof(link) - 1);
	link[ln > 0 ? ln : 0] = 0;
	snprintf(want, sizeof(want), "%s (deleted)", cwd);
	if (strcmp(link, want))
		FAIL("cwd is '%s'", link);
	struct stat sc;
	if (stat(".", &sc) || !S_ISDIR(sc.st_mode) || sc.st_nlink != 0 || (sc.st_mode & 07777) != 0751)
		FAIL("cwd nlink %lu mode %o", (unsigned long)sc.st_nlink, sc.st_mode);
	if (open("new", O_CREAT | O_WRONLY, 0600) != -1 || errno != ENOENT)
		FAIL("a file could be made in the removed working directory");
	sh[2 * ps + 7] = 'W';
	if (pr[2 * ps + 7] != 'W')
		FAIL("the private mapping's untouched page does not see the shared mapping's write");
	pr[2 * ps + 8] = 'Q';
	if (sh[2 * ps + 8] == 'Q')
		FAIL("a private write reached the file");
	printf("PASS ghost\n");
	return 0;
}
