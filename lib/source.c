// SPDX-License-Identifier: MIT
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t fd_read(struct tnd_source *src, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(src->fd, buf, len);

		if (n >= 0)
			return n;
		if (errno != EINTR)
			return tnd_err_errno(TND_E_IO, errno, "cannot read %s", src->name);
	}
}

static int fd_skip_to(struct tnd_source *src, uint64_t pos)
{
	if (lseek(src->fd, (off_t)pos, SEEK_SET) < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot seek in %s", src->name);
	return 0;
}

static void fd_close(struct tnd_source *src)
{
	if (src->fd > STDERR_FILENO)
		close(src->fd);
}

int tnd_source_open_file(struct tnd_source **out, const char *path)
{
	struct tnd_source *src;
	struct stat st;

	src = calloc(1, sizeof(*src));
	if (!src)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	src->read = fd_read;
	src->close = fd_close;
	if (strcmp(path, "-") == 0) {
		src->fd = STDIN_FILENO;
		snprintf(src->name, sizeof(src->name), "standard input");
	} else {
		src->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (src->fd < 0) {
			int e = errno;

			free(src);
			return tnd_err_errno(e == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, e,
					     "cannot open %s", path);
		}
		snprintf(src->name, sizeof(src->name), "%s", path);
	}
	if (fstat(src->fd, &st) == 0 && S_ISREG(st.st_mode)) {
		src->size = (uint64_t)st.st_size;
		src->skip_to = fd_skip_to;
		/* The bundle is read once, front to back: tell the kernel, and
		 * do not let it crowd the page cache on a small device. */
		posix_fadvise(src->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	*out = src;
	return 0;
}

int tnd_source_read_exact(struct tnd_source *src, void *buf, size_t len, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = src->read(src, (char *)buf + done, len - done);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return tnd_err_set(TND_E_TRUNCATED,
					   "bundle is truncated: it ends inside %s", what);
		if (src->hashing)
			tnd_sha256_update(&src->hash, (char *)buf + done, (size_t)n);
		done += (size_t)n;
		src->pos += (uint64_t)n;
	}
	return 0;
}

int tnd_source_skip_to(struct tnd_source *src, uint64_t pos)
{
	uint8_t buf[4096];
	int ret;

	if (pos < src->pos)
		return tnd_err_set(TND_E_INTERNAL, "cannot move back in %s", src->name);
	if (src->skip_to) {
		if ((ret = src->skip_to(src, pos)))
			return ret;
		src->hash_gap |= pos > src->pos;
		src->pos = pos;
		return 0;
	}
	while (src->pos < pos) {
		size_t n = pos - src->pos < sizeof(buf) ? (size_t)(pos - src->pos) : sizeof(buf);

		if ((ret = tnd_source_read_exact(src, buf, n, "the part skipped to resume")))
			return ret;
	}
	return 0;
}

void tnd_source_hash_begin(struct tnd_source *src)
{
	tnd_sha256_init(&src->hash);
	src->hashing = true;
	src->hash_gap = src->pos != 0;
}

bool tnd_source_hash_end(struct tnd_source *src, uint8_t out[TND_SHA256_LEN])
{
	if (!src->hashing)
		return false;
	tnd_sha256_final(&src->hash, out);
	src->hashing = false;
	return !src->hash_gap;
}

void tnd_source_close(struct tnd_source *src)
{
	if (!src)
		return;
	if (src->close)
		src->close(src);
	free(src);
}
