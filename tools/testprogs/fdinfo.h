/* Reads one "key: value" field of /proc/self/fdinfo/FD (the first line starting with key). */
#ifndef TESTPROGS_FDINFO_H
#define TESTPROGS_FDINFO_H
#include "common.h"

static inline int tp_fdinfo_field(int fd, const char *key, char *out, size_t cap)
{
	char path[64], *text, *p;
	size_t klen = strlen(key);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (tp_read_file(path, &text) < 0)
		return -1;
	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, klen) == 0)
			break;
	}
	if (!p || !*p) {
		free(text);
		out[0] = 0;
		return -1;
	}
	p += klen;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strcspn(p, "\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = 0;
	free(text);
	return 0;
}
#endif
