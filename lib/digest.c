// SPDX-License-Identifier: MIT
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "chunk.h"
#include "util.h"

/* Large enough for the kernel's read-ahead to keep a disk busy, small
 * enough for a device's memory budget. */
#define BUF_SIZE (256u * 1024)

int tnd_digest_fd(int fd, uint64_t size, const char *name, int code, struct tnd_sha256 *h,
		  uint32_t *crc, uint64_t *got)
{
	uint8_t *buf = malloc(BUF_SIZE);
	uint64_t pos = 0;
	int ret = 0;

	if (got)
		*got = 0;
	if (!buf)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	posix_fadvise(fd, 0, size == TND_DIGEST_TO_END ? 0 : (off_t)size, POSIX_FADV_SEQUENTIAL);
	while (pos < size) {
		size_t want = size - pos < BUF_SIZE ? (size_t)(size - pos) : BUF_SIZE;
		ssize_t n = pread(fd, buf, want, (off_t)pos);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = tnd_err_errno(code, errno, "cannot read %s", name);
			break;
		}
		if (n == 0) {
			if (size != TND_DIGEST_TO_END)
				ret = tnd_err_set(
				    TND_E_TRUNCATED, "%s ends after %llu bytes, %llu expected",
				    name, (unsigned long long)pos, (unsigned long long)size);
			break;
		}
		if (h)
			tnd_sha256_update(h, buf, (size_t)n);
		if (crc)
			*crc = tnd_crc32_update(*crc, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	free(buf);
	if (got)
		*got = pos;
	return ret;
}

int tnd_sha256_path(const char *path, uint8_t out[TND_SHA256_LEN], uint64_t *size)
{
	struct tnd_sha256 h;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return tnd_err_errno(errno == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, errno,
				     "cannot open %s", path);
	tnd_sha256_init(&h);
	ret = tnd_digest_fd(fd, TND_DIGEST_TO_END, path, TND_E_IO, &h, NULL, size);
	tnd_sha256_final(&h, out);
	close(fd);
	return ret;
}
