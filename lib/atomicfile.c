// SPDX-License-Identifier: MIT
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int tnd_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot open directory %s", dir);
	if (fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return tnd_err_errno(TND_E_IO, e, "cannot sync directory %s", dir);
	}
	close(fd);
	return 0;
}

int tnd_atomic_write_at(int dfd, const char *dir, const char *name, const void *data, size_t len,
			unsigned mode)
{
	char tmp[NAME_MAX + 1];
	int ret = TND_E_IO, fd, r;

	if (strchr(name, '/') || snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp))
		return tnd_err_set(TND_E_IO, "not a file name: %s", name);
	/* A fresh file, never one that is there: a leftover of a cut, or a
	 * symlink someone planted in the directory (state_dir may be on a
	 * partition others write), which O_TRUNC would have followed to
	 * overwrite any file with our data. unlinkat() removes the link
	 * itself; O_EXCL | O_NOFOLLOW refuse one that reappears in between. */
	if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT)
		return tnd_err_errno(TND_E_IO, errno, "cannot remove %s/%s", dir, tmp);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s/%s", dir, tmp);
	r = tnd_write_full(fd, data, len);
	if (r < 0) {
		tnd_err_errno(TND_E_IO, -r, "cannot write %s/%s", dir, tmp);
		goto fail;
	}
	if (fsync(fd) < 0) {
		tnd_err_errno(TND_E_IO, errno, "cannot sync %s/%s", dir, tmp);
		goto fail;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		tnd_err_errno(TND_E_IO, errno, "cannot rename %s/%s to %s", dir, tmp, name);
		goto fail;
	}
	/* Again after the rename: on vfat the directory entry of a renamed
	 * file is written with the file's inode, not by an fsync of the
	 * directory, so without this a power cut can lose a rename that was
	 * reported done (found by tests/e2e on a FAT data partition). On
	 * other file systems it costs nothing: the data is already synced. */
	if (fsync(fd) < 0) {
		int e = errno;

		close(fd);
		return tnd_err_errno(TND_E_IO, e, "cannot sync %s/%s", dir, name);
	}
	if (close(fd) < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot close %s/%s", dir, name);
	if (fsync(dfd) < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot sync directory %s", dir);
	return 0;
fail:
	close(fd);
	unlinkat(dfd, tmp, 0);
	return ret;
}

int tnd_atomic_write(const char *path, const void *data, size_t len, unsigned mode)
{
	char dir[PATH_MAX];
	const char *name;
	char *slash;
	int dfd, ret;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return tnd_err_set(TND_E_IO, "path too long: %s", path);
	slash = strrchr(dir, '/');
	name = slash ? path + (slash - dir) + 1 : path;
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot open directory %s", dir);
	ret = tnd_atomic_write_at(dfd, dir, name, data, len, mode);
	close(dfd);
	return ret;
}
