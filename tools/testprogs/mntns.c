// build-flags: -static
/*
 * mntns ROOTDIR [EXTDIR]: a task in a mount namespace of its own, with ROOTDIR as its root.
 * Outside (argv[1] = ROOTDIR): unshare(CLONE_NEWNS), everything private, ROOTDIR bound on itself
 * and populated: proc at /proc (/proc/sys bound read-only and, if EXTDIR is given, /proc/uptime
 * masked by the host's /dev/null, an external mount, as runc does), a tmpfs at /tmp (files, a
 * symlink, a device node, a fifo, owners and modes), a tmpfs /dev with a null node, a devpts
 * (newinstance) at /dev/pts and an mqueue, a read-only sysfs at /sys, a bind of /src at /bind and
 * a read-only one at /robind, a tmpfs made read-only at /rotmp, a shared tmpfs /shared and its
 * peer /peer, EXTDIR (if given) bound at /ext (external too); then pivot_root into it and exec
 * its own copy /mntns (static: nothing of the host is left mapped). Inside: stdio go to /log
 * (ROOTDIR/log from the host), /tmp/work/data is kept open and gets a byte every ~50 ms, cwd
 * /tmp/work. On SIGTERM: the mount table (mountpoints, fstypes, ro flags, one peer group: a mount
 * under /shared shows under /peer), the tmpfs contents, the masked and read-only proc parts, the
 * open file (same inode, offset = size = bytes written) and cwd. Dump it with
 * `--external mnt[/ext]:KEY1 --external mnt[/proc/uptime]:KEY2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void die(const char *what) {
  printf("FAIL mntns setup: %s: %s\n", what, strerror(errno));
  fflush(stdout);
  exit(1);
}

static void xmount(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data)) {
    char b[512];
    snprintf(b, sizeof(b), "mount %s on %s (%s)", src ? src : "none", dst, type ? type : "bind");
    die(b);
  }
}

static void put(const char *file, const char *text, mode_t mode) {
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(file);
  close(fd);
}

static char *at(const char *root, const char *rel) {
  static char bufs[4][4096];
  static int n;
  char *b = bufs[n++ % 4];
  snprintf(b, 4096, "%s%s", root, rel);
  return b;
}

static void copy_self(const char *dst) {
  int in = open("/proc/self/exe", O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0755);
  if (in < 0 || out < 0) die("copy /proc/self/exe");
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof(buf))) > 0)
    if (write(out, buf, n) != n) die("copy write");
  close(in);
  close(out);
}

static int outside(const char *root, const char *ext) {
  if (unshare(CLONE_NEWNS)) die("unshare");
  xmount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  xmount(root, root, NULL, MS_BIND, NULL);
  const char *dirs[] = {"/proc", "/tmp", "/dev", "/sys", "/src", "/bind", "/robind", "/rotmp", "/ext", "/shared", "/peer"};
  for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
    if (mkdir(at(root, dirs[i]), 0755) && errno != EEXIST) die(dirs[i]);
  copy_self(at(root, "/mntns"));
  put(at(root, "/src/file"), "bind-data\n", 0644);
  xmount("proc", at(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  // As runc does: a read-only part of proc, and a file of proc masked by the host's /dev/null (external).
  xmount(at(root, "/proc/sys"), at(root, "/proc/sys"), NULL, MS_BIND, NULL);
  xmount(NULL, at(root, "/proc/sys"), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
  if (ext) xmount("/dev/null", at(root, "/proc/uptime"), NULL, MS_BIND, NULL);
  xmount("mntns-tmp", at(root, "/tmp"), "tmpfs", MS_NOSUID, "size=4m,mode=1777");
  if (mkdir(at(root, "/tmp/work"), 0750) || chown(at(root, "/tmp/work"), 1234, 2345)) die("/tmp/work");
  put(at(root, "/tmp/work/data"), "hello", 0640);
  if (chown(at(root, "/tmp/work/data"), 1234, 2345)) die("chown data");
  if (symlink("data", at(root, "/tmp/work/link"))) die("symlink");
  if (mknod(at(root, "/tmp/nulldev"), S_IFCHR | 0666, makedev(1, 3))) die("mknod");
  if (mkfifo(at(root, "/tmp/fifo"), 0600)) die("mkfifo");
  xmount("tmpfs", at(root, "/dev"), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=64k");
  if (mknod(at(root, "/dev/null"), S_IFCHR | 0666, makedev(1, 3)) || mkdir(at(root, "/dev/pts"), 0755) || mkdir(at(root, "/dev/mqueue"), 0755)) die("/dev");
  xmount("devpts", at(root, "/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  xmount("mqueue", at(root, "/dev/mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  xmount("sysfs", at(root, "/sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  xmount(at(root, "/src"), at(root, "/bind"), NULL, MS_BIND, NULL);
  xmount(at(root, "/src"), at(root, "/robind"), NULL, MS_BIND, NULL);
  xmount(NULL, at(root, "/robind"), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
  xmount("mntns-ro", at(root, "/rotmp"), "tmpfs", 0, "size=1m");
  put(at(root, "/rotmp/file"), "ro-data\n", 0444);
  xmount(NULL, at(root, "/rotmp"), NULL, MS_REMOUNT | MS_RDONLY, "size=1m");
  if (ext) xmount(ext, at(root, "/ext"), NULL, MS_BIND, NULL);
  // A shared tmpfs and a bind of it: one peer group, inside the namespace only.
  xmount("mntns-shared", at(root, "/shared"), "tmpfs", 0, "size=1m");
  xmount(NULL, at(root, "/shared"), NULL, MS_SHARED, NULL);
  xmount(at(root, "/shared"), at(root, "/peer"), NULL, MS_BIND, NULL);
  if (chdir(root) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir("/")) die("pivot_root");
  char *argv[] = {"mntns", "--inside", ext ? "ext" : "noext", NULL};
  execv("/mntns", argv);
  die("exec /mntns");
  return 1;
}

static char why[4096];
static int bad(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (!why[0]) vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  return 1;
}

static const char *slurp(const char *file) {
  static char buf[8192];
  int fd = open(file, O_RDONLY);
  if (fd < 0) return "";
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

struct want { const char *mp, *fstype; int ro, sbro, seen; int shared; };

static void check_mounts(int ext) {
  struct want w[] = {
    {"/", NULL, 0, 0, 0, 0}, {"/proc", "proc", 0, 0, 0, 0}, {"/tmp", "tmpfs", 0, 0, 0, 0}, {"/dev", "tmpfs", 0, 0, 0, 0},
    {"/dev/pts", "devpts", 0, 0, 0, 0}, {"/sys", "sysfs", 1, 0, 0, 0}, {"/bind", NULL, 0, 0, 0, 0}, {"/robind", NULL, 1, 0, 0, 0},
    {"/rotmp", "tmpfs", 1, 1, 0, 0}, {"/shared", "tmpfs", 0, 0, 0, 0}, {"/peer", "tmpfs", 0, 0, 0, 0},
    {"/proc/sys", "proc", 1, 0, 0, 0}, {"/dev/mqueue", "mqueue", 0, 0, 0, 0}, {"/proc/uptime", "*", 0, 0, 0, 0}, {"/ext", NULL, 0, 0, 0, 0},
  };
  unsigned nw = sizeof(w) / sizeof(w[0]) - (ext ? 0 : 2); // the last two are external
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) { bad("cannot read mountinfo"); return; }
  char line[2048], rootfs[64] = "";
  unsigned lines = 0;
  while (fgets(line, sizeof(line), f)) {
    char mp[1024], opts[512], fstype[64], src[512], sopts[1024];
    char *dash = strstr(line, " - ");
    if (!dash || sscanf(line, "%*d %*d %*s %*s %1023s %511s", mp, opts) != 2 || sscanf(dash + 3, "%63s %511s %1023s", fstype, src, sopts) != 3) { bad("bad mountinfo line %s", line); continue; }
    lines++;
    int shared = 0;
    char *sh = strstr(line, " shared:");
    if (sh && sh < dash) shared = atoi(sh + 8);
    unsigned i;
    for (i = 0; i < nw && strcmp(w[i].mp, mp); i++) ;
    if (i == nw) { bad("unexpected mount %s (%s)", mp, fstype); continue; }
    if (w[i].seen++) bad("%s mounted twice", mp);
    w[i].shared = shared;
    if (shared && strcmp(mp, "/shared") && strcmp(mp, "/peer")) bad("%s is shared (%d)", mp, shared);
    if (!strcmp(mp, "/")) snprintf(rootfs, sizeof(rootfs), "%s", fstype);
    const char *want = w[i].fstype ? w[i].fstype : rootfs;
    if (strcmp(want, "*") && strcmp(fstype, want)) bad("%s is %s, not %s", mp, fstype, want);
    if ((strncmp(opts, "ro", 2) == 0 && (opts[2] == ',' || !opts[2])) != w[i].ro) bad("%s mount options %s", mp, opts);
    if ((strncmp(sopts, "ro", 2) == 0 && (sopts[2] == ',' || !sopts[2])) != w[i].sbro) bad("%s super options %s", mp, sopts);
    if (!strcmp(mp, "/tmp") && !strstr(sopts, "size=4096k")) bad("/tmp options %s", sopts);
    if (!strcmp(mp, "/dev/pts") && !strstr(sopts, "ptmxmode=666")) bad("/dev/pts options %s", sopts);
  }
  fclose(f);
  if (lines != nw) bad("%u mounts, want %u", lines, nw);
  // /shared and /peer: one peer group (the same shared:N), and a mount under one shows in the other.
  if (!w[9].shared || w[9].shared != w[10].shared) bad("/shared and /peer are not peers (shared:%d, shared:%d)", w[9].shared, w[10].shared);
  struct stat a, b;
  if (mkdir("/shared/sub", 0755) || mount("mntns-sub", "/shared/sub", "tmpfs", 0, "size=64k")) { bad("mount on /shared/sub: %s", strerror(errno)); return; }
  if (stat("/peer/sub", &a) || stat("/peer", &b) || a.st_dev == b.st_dev) bad("a mount on /shared/sub does not show at /peer/sub");
  umount2("/shared/sub", MNT_DETACH);
}

static int inside(int ext) {
  int log = open("/log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644), nul = open("/dev/null", O_RDONLY);
  if (log < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0) die("stdio");
  close(log);
  close(nul);
  setvbuf(stdout, NULL, _IONBF, 0);
  int fd = open("/tmp/work/data", O_RDWR | O_APPEND);
  if (fd < 0 || chdir("/tmp/work")) die("/tmp/work");
  signal(SIGTERM, on_term);
  printf("READY mntns %d\n", getpid());
  long written = 5;
  while (!stop) {
    if (write(fd, "x", 1) != 1) { bad("write: %s", strerror(errno)); break; }
    written++;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  struct stat a, b;
  char cwd[256];
  if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/tmp/work")) bad("cwd %s", cwd);
  if (fstat(fd, &a) || stat("/tmp/work/data", &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) bad("the open file is not /tmp/work/data");
  if (a.st_size != written || lseek(fd, 0, SEEK_CUR) != written) bad("data: size %ld offset %ld, written %ld", (long)a.st_size, (long)lseek(fd, 0, SEEK_CUR), written);
  if ((a.st_mode & 07777) != 0640 || a.st_uid != 1234 || a.st_gid != 2345) bad("data mode %o owner %d:%d", a.st_mode & 07777, a.st_uid, a.st_gid);
  if (stat("/tmp/work", &b) || (b.st_mode & 07777) != 0750 || b.st_uid != 1234 || b.st_gid != 2345) bad("/tmp/work mode/owner");
  if (stat("/tmp", &b) || (b.st_mode & 07777) != 01777) bad("/tmp mode %o", b.st_mode & 07777);
  char l[64] = "";
  if (readlink("/tmp/work/link", l, sizeof(l) - 1) != 4 || strcmp(l, "data")) bad("link -> %s", l);
  if (stat("/tmp/nulldev", &b) || !S_ISCHR(b.st_mode) || b.st_rdev != makedev(1, 3)) bad("/tmp/nulldev is not char 1:3");
  if (stat("/tmp/fifo", &b) || !S_ISFIFO(b.st_mode)) bad("/tmp/fifo is not a fifo");
  if (stat("/dev/null", &b) || !S_ISCHR(b.st_mode)) bad("/dev/null is not a char device");
  if (stat("/dev/pts/ptmx", &b)) bad("no /dev/pts/ptmx");
  if (strcmp(slurp("/bind/file"), "bind-data\n") || strcmp(slurp("/robind/file"), "bind-data\n")) bad("bind mounts do not show /src");
  if (strcmp(slurp("/rotmp/file"), "ro-data\n")) bad("/rotmp/file: '%s'", slurp("/rotmp/file"));
  if (open("/robind/new", O_WRONLY | O_CREAT, 0644) >= 0 || errno != EROFS) bad("/robind is writable");
  if (open("/rotmp/new", O_WRONLY | O_CREAT, 0644) >= 0 || errno != EROFS) bad("/rotmp is writable");
  if (open("/bind/new", O_WRONLY | O_CREAT, 0644) < 0) bad("/bind is not writable: %s", strerror(errno));
  else unlink("/bind/new");
  if (ext && strcmp(slurp("/ext/marker"), "ext-marker\n")) bad("/ext/marker: '%s'", slurp("/ext/marker"));
  if (ext && (stat("/proc/uptime", &b) || !S_ISCHR(b.st_mode) || b.st_rdev != makedev(1, 3))) bad("/proc/uptime is not masked by a null device");
  if (open("/proc/sys/kernel/hostname", O_WRONLY) >= 0 || errno != EROFS) bad("/proc/sys is writable");
  if (access("/proc/self/status", R_OK)) bad("no /proc");
  check_mounts(ext);
  if (why[0]) printf("FAIL mntns %s\n", why);
  else printf("PASS mntns\n");
  return why[0] ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "--inside")) return inside(!strcmp(argv[2], "ext"));
  if (argc < 2) {
    fprintf(stderr, "usage: mntns ROOTDIR [EXTDIR]\n");
    return 2;
  }
  return outside(argv[1], argc > 2 ? argv[2] : NULL);
}
