/* inotify DIR: an inotify instance (non-blocking) watching DIR for IN_CREATE|IN_DELETE and
 * DIR/file for IN_MODIFY, with a gap in the watch descriptors (a first watch was removed), and
 * a second, blocking instance with no watches. Nothing is queued when READY is printed.
 * On SIGTERM: the watch descriptors are the ones recorded before READY (fdinfo too), creating
 * a file in DIR and writing to DIR/file give exactly the expected events, and nothing else. */
#include "common.h"
#include <fcntl.h>
#include <sys/inotify.h>

static char dir[4096], file[4200];

#define FAIL(...) do { printf("FAIL inotify " __VA_ARGS__); printf("\n"); return 1; } while (0)

/* One event of `ifd` within ~2 s; returns its wd and mask. */
static int next_event(int ifd, int *wd, unsigned *mask, char *name, size_t namelen)
{
	char buf[sizeof(struct inotify_event) + 256] __attribute__((aligned(8)));
	for (int i = 0; i < 200; i++) {
		ssize_t n = read(ifd, buf, sizeof(buf));
		if (n >= (ssize_t)sizeof(struct inotify_event)) {
			struct inotify_event *e = (struct inotify_event *)buf;
			*wd = e->wd;
			*mask = e->mask;
			snprintf(name, namelen, "%s", e->len ? e->name : "");
			return 0;
		}
		tp_sleep_ms(10);
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: inotify DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(file, sizeof(file), "%s/file", dir);
	tp_setup_stdout();
	tp_install_term_handler();
	int f = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (f < 0) {
		perror(file);
		return 2;
	}
	close(f);
	int ifd = inotify_init1(IN_NONBLOCK);
	int empty = inotify_init1(IN_CLOEXEC);
	int gone = inotify_add_watch(ifd, file, IN_ACCESS);
	inotify_rm_watch(ifd, gone);
	int wdir = inotify_add_watch(ifd, dir, IN_CREATE | IN_DELETE);
	int wfile = inotify_add_watch(ifd, file, IN_MODIFY);
	if (ifd < 0 || empty < 0 || wdir < 0 || wfile < 0) {
		perror("inotify");
		return 2;
	}
	/* Drain the IN_IGNORED of the removed watch. */
	char drain[512];
	while (read(ifd, drain, sizeof(drain)) > 0)
		;
	tp_ready("inotify");
	while (!tp_term_requested)
		tp_sleep_ms(50);

	int wd;
	unsigned mask;
	char name[256];
	if (next_event(ifd, &wd, &mask, name, sizeof(name)) == 0)
		FAIL("an event was queued after the restore: wd %d mask %x", wd, mask);
	if (!(fcntl(ifd, F_GETFL) & O_NONBLOCK) || !(fcntl(empty, F_GETFD) & FD_CLOEXEC))
		FAIL("flags");
	char path[4300];
	snprintf(path, sizeof(path), "%s/new", dir);
	int n = open(path, O_CREAT | O_WRONLY, 0644);
	close(n);
	if (next_event(ifd, &wd, &mask, name, sizeof(name)) || wd != wdir || !(mask & IN_CREATE) || strcmp(name, "new"))
		FAIL("create: wd %d (want %d) mask %x name '%s'", wd, wdir, mask, name);
	f = open(file, O_WRONLY | O_APPEND);
	if (write(f, "x", 1) != 1)
		FAIL("write");
	close(f);
	if (next_event(ifd, &wd, &mask, name, sizeof(name)) || wd != wfile || !(mask & IN_MODIFY))
		FAIL("modify: wd %d (want %d) mask %x", wd, wfile, mask);
	unlink(path);
	if (next_event(ifd, &wd, &mask, name, sizeof(name)) || wd != wdir || !(mask & IN_DELETE))
		FAIL("delete: wd %d (want %d) mask %x", wd, wdir, mask);
	/* A new watch takes the next free descriptor. */
	int w3 = inotify_add_watch(ifd, "/", IN_OPEN);
	if (w3 <= wfile)
		FAIL("a new watch got wd %d, not after %d", w3, wfile);
	printf("PASS inotify wd %d %d\n", wdir, wfile);
	return 0;
}
