// SPDX-License-Identifier: MIT
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define LOCK_FILE "lock"

/* "pid N (tandem install ...)" for the message, from the holder's
 * command line; just the pid when it cannot be read. */
static void describe(pid_t pid, char *out, size_t size)
{
	char path[64], *text = NULL;
	size_t n = 0;
	int len;

	len = snprintf(out, size, "pid %ld", (long)pid);
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if (tnd_read_small_file(path, 4096, &text, &n)) {
		tnd_err_clear();
		return;
	}
	for (size_t i = 0; i + 1 < n; i++)
		if (!text[i])
			text[i] = ' ';
	if (n && len > 0 && (size_t)len < size)
		snprintf(out + len, size - (size_t)len, ": %s", text);
	free(text);
}

int tnd_lock_take(struct tnd_lock *l, const struct tnd_config *cfg, const char *what)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[PATH_MAX], who[256];
	int fd;

	l->fd = -1;
	if (snprintf(path, sizeof(path), "%s/" LOCK_FILE, cfg->state_dir) >= (int)sizeof(path))
		return tnd_err_set(TND_E_CONFIG, "state_dir is too long");
	if (mkdir(cfg->state_dir, 0755) < 0 && errno != EEXIST)
		return tnd_err_errno(TND_E_STATE, errno, "cannot create %s", cfg->state_dir);
	/* Never a symlink someone planted (O_NOFOLLOW); nothing is written to
	 * it, so it is created once and never changes. */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return tnd_err_errno(TND_E_STATE, errno, "cannot open %s", path);
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		int e = errno;

		if (e != EAGAIN && e != EACCES) {
			close(fd);
			return tnd_err_errno(TND_E_STATE, e, "cannot lock %s", path);
		}
		/* POSIX record locks name their holder: the message can say
		 * who (an open file description lock could not). */
		fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
		if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
			describe(fl.l_pid, who, sizeof(who));
		else
			snprintf(who, sizeof(who), "pid unknown");
		close(fd);
		return tnd_err_set(TND_E_BUSY,
				   "another tandem is running (%s): %s waits for it to finish; "
				   "try again then",
				   who, what);
	}
	l->fd = fd;
	return 0;
}

void tnd_lock_release(struct tnd_lock *l)
{
	if (l->fd < 0)
		return;
	close(l->fd); /* releases the lock */
	l->fd = -1;
}
