/* umaskcwd: umask 027 and the working directory DIR (the test creates it).
 *   umaskcwd DIR
 * On SIGTERM: the umask (from umask() and /proc/self/status) must still be 027, getcwd() the
 * recorded path and "." the same inode as DIR; a file created with mode 0666 gets 0640.
 * Prints a counter every ~200 ms. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

#define MASK 027

int main(int argc, char **argv)
{
	char cwd[4096], now[4096];
	struct stat dir_st, st;
	unsigned long ticks = 0;

	tp_setup_stdout();
	tp_install_term_handler();
	if (argc < 2) {
		fprintf(stderr, "usage: umaskcwd DIR\n");
		return 2;
	}
	umask(MASK);
	if (chdir(argv[1]) != 0 || !getcwd(cwd, sizeof(cwd)) || stat(".", &dir_st) != 0) {
		printf("FAIL umaskcwd chdir %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("cwd %s\n", cwd);
	tp_ready("umaskcwd");
	while (!tp_term_requested) {
		printf("%lu\n", ++ticks);
		tp_sleep_ms(200);
	}

	mode_t m = umask(MASK);
	if (m != MASK) {
		printf("FAIL umaskcwd umask %03o\n", (unsigned)m);
		return 1;
	}
	char *status;
	unsigned proc_mask = 0777;
	if (tp_read_file("/proc/self/status", &status) > 0) {
		char *u = strstr(status, "\nUmask:");
		if (u)
			sscanf(u + 7, "%o", &proc_mask);
	}
	if (proc_mask != MASK) {
		printf("FAIL umaskcwd /proc/self/status Umask %03o\n", proc_mask);
		return 1;
	}
	if (!getcwd(now, sizeof(now)) || strcmp(now, cwd) != 0) {
		printf("FAIL umaskcwd cwd '%s' recorded '%s'\n", now, cwd);
		return 1;
	}
	if (stat(".", &st) != 0 || st.st_dev != dir_st.st_dev || st.st_ino != dir_st.st_ino) {
		printf("FAIL umaskcwd '.' is another directory\n");
		return 1;
	}
	char probe[64];
	snprintf(probe, sizeof(probe), "umaskcwd-probe-%d", (int)getpid());
	int fd = open(probe, O_CREAT | O_EXCL | O_WRONLY, 0666);
	if (fd < 0 || fstat(fd, &st) != 0) {
		printf("FAIL umaskcwd create %s: %s\n", probe, strerror(errno));
		return 1;
	}
	close(fd);
	unlink(probe);
	if ((st.st_mode & 0777) != (0666 & ~MASK)) {
		printf("FAIL umaskcwd new file mode %03o\n", (unsigned)(st.st_mode & 0777));
		return 1;
	}
	printf("PASS umaskcwd %s %lu ticks\n", cwd, ticks);
	return 0;
}
