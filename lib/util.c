// SPDX-License-Identifier: MIT
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void tnd_hex_encode(char *out, const uint8_t *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tnd_hex_decode(uint8_t *out, size_t len, const char *hex)
{
	if (!hex || strlen(hex) != 2 * len)
		return tnd_err_set(TND_E_FORMAT, "expected %zu hex digits", 2 * len);
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return tnd_err_set(TND_E_FORMAT, "invalid hex digit");
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

ssize_t tnd_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int tnd_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int tnd_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		done += (size_t)n;
	}
	return 0;
}

int tnd_pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

bool tnd_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	/* Check the first 16 bytes directly, then compare the buffer with
	 * itself shifted by 16: memcmp is vectorised, a byte loop is not. */
	if (len <= 16) {
		for (size_t i = 0; i < len; i++)
			if (p[i])
				return false;
		return true;
	}
	for (size_t i = 0; i < 16; i++)
		if (p[i])
			return false;
	return memcmp(p, p + 16, len - 16) == 0;
}

static int read_small(int dfd, const char *path, size_t max, char **out, size_t *out_len,
		      bool strict)
{
	int ret = TND_E_IO;
	char *buf = NULL;
	struct stat sb;
	ssize_t n;
	int fd;

	/* strict: never through a symlink, never blocked on a FIFO, never
	 * anything but a regular file (a device, a socket) */
	fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | (strict ? O_NOFOLLOW | O_NONBLOCK : 0));
	if (fd < 0)
		return tnd_err_errno(errno == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, errno,
				     errno == ELOOP && strict ? "refusing %s: a symbolic link"
							      : "cannot open %s",
				     path);
	if (strict && (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1)) {
		ret = tnd_err_set(TND_E_IO, "refusing %s: not a regular file of its own%s", path,
				  S_ISREG(sb.st_mode) ? " (a hard link)" : "");
		goto out_close;
	}
	buf = malloc(max + 1);
	if (!buf) {
		ret = tnd_err_set(TND_E_NOMEM, "out of memory reading %s", path);
		goto out_close;
	}
	n = tnd_read_full(fd, buf, max + 1);
	if (n < 0) {
		ret = tnd_err_errno(TND_E_IO, (int)-n, "cannot read %s", path);
		goto out_free;
	}
	if ((size_t)n > max) {
		ret = tnd_err_set(TND_E_IO, "%s is larger than %zu bytes", path, max);
		goto out_free;
	}
	buf[n] = '\0';
	*out = buf;
	if (out_len)
		*out_len = (size_t)n;
	buf = NULL;
	ret = 0;
out_free:
	free(buf);
out_close:
	close(fd);
	return ret;
}

int tnd_read_small_file(const char *path, size_t max, char **out, size_t *out_len)
{
	return read_small(AT_FDCWD, path, max, out, out_len, false);
}

int tnd_read_own_file(const char *path, size_t max, char **out, size_t *out_len)
{
	return read_small(AT_FDCWD, path, max, out, out_len, true);
}

int tnd_read_own_file_at(int dfd, const char *name, size_t max, char **out, size_t *out_len)
{
	return read_small(dfd, name, max, out, out_len, true);
}

int tnd_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return tnd_err_set(TND_E_USAGE, "'%s' is not a number", s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return tnd_err_set(TND_E_USAGE, "'%s' is not a number", s);
	*out = v;
	return 0;
}

int tnd_parse_size(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = s ? strlen(s) : 0;
	unsigned shift = 0;
	uint64_t v;

	if (n == 0 || n >= sizeof(num))
		return tnd_err_set(TND_E_USAGE, "'%s' is not a size", s ? s : "");
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (tnd_parse_u64(num, &v))
		return tnd_err_set(TND_E_USAGE, "'%s' is not a size", s);
	if (shift && v > (UINT64_MAX >> shift))
		return tnd_err_set(TND_E_USAGE, "size '%s' is too large", s);
	*out = v << shift;
	return 0;
}

double tnd_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tnd_child_fds(void)
{
	int fd = open("/dev/null", O_RDONLY);
	long max;

	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0)
		return;
#endif
	max = sysconf(_SC_OPEN_MAX);
	for (long i = 3; i < (max > 0 && max < 65536 ? max : 65536); i++)
		close((int)i);
}

void tnd_drain_last_line(int fd, char *last, size_t size)
{
	char buf[512];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		char *line, *save = NULL;

		buf[n] = '\0';
		for (line = strtok_r(buf, "\r\n", &save); line;
		     line = strtok_r(NULL, "\r\n", &save))
			snprintf(last, size, "%s", line);
	}
}
