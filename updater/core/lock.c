// SPDX-License-Identifier: MIT
/*
 * One tandem at a time (lock.h): an open file description lock on
 * state_dir/lock. Not a POSIX record lock: that one belongs to the
 * process, and any close() of any descriptor of the same file drops it,
 * so a symlink or a hard link to the lock file planted in state_dir (as
 * resume.json, say) would have freed it the moment Tandem read through
 * the link. An OFD lock lives as long as its own descriptor. It does not
 * name its holder, so the holder writes its pid into the file for the
 * message.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOCK_FILE "lock"

/* "pid N: tandem install ..." for the message, from the pid the holder
 * wrote into the lock file (read from the descriptor at hand: only
 * digits, it is only a message) and that process's command line. */
static void describe(int fd, char *out, size_t size)
{
	char path[64], buf[24], *text = NULL;
	ssize_t got = pread(fd, buf, sizeof(buf) - 1, 0);
	uint64_t pid;
	size_t n = 0;
	int len;

	buf[got > 0 ? got : 0] = '\0';
	buf[strspn(buf, "0123456789")] = '\0';
	if (tnd_parse_u64(buf, &pid) || pid == 0 || pid > INT_MAX) {
		tnd_err_clear();
		snprintf(out, size, "pid unknown");
		return;
	}
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
	char path[PATH_MAX], who[256], pid[24], old[24];
	struct stat sb;
	ssize_t got;
	int fd, n;

	l->fd = -1;
	if (snprintf(path, sizeof(path), "%s/" LOCK_FILE, cfg->state_dir) >= (int)sizeof(path))
		return tnd_err_set(TND_E_CONFIG, "state_dir is too long");
	if (mkdir(cfg->state_dir, 0755) < 0 && errno != EEXIST)
		return tnd_err_errno(TND_E_STATE, errno, "cannot create %s", cfg->state_dir);
	/* Never a symlink someone planted (O_NOFOLLOW); created once, only
	 * its content (the holder's pid) changes. */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0)
		return tnd_err_errno(TND_E_STATE, errno, "cannot open %s", path);
	/* ... and never another file under this name (a hard link), into
	 * which the pid below would be written. */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		close(fd);
		return tnd_err_set(
		    TND_E_STATE, "%s is not a file of its own (a link to another file?): remove it",
		    path);
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;

		if (e != EAGAIN && e != EACCES) {
			close(fd);
			return tnd_err_errno(TND_E_STATE, e, "cannot lock %s", path);
		}
		describe(fd, who, sizeof(who));
		close(fd);
		return tnd_err_set(TND_E_BUSY,
				   "another tandem is running (%s): %s waits for it to finish; "
				   "try again then",
				   who, what);
	}
	/* Taken: say who holds it (a failure here costs only the message).
	 * Not written again by the daemon's every poll. The pid is padded to
	 * a fixed width and written in place, never truncated first: on vfat
	 * (a common state_dir) a truncate frees the file's cluster and the
	 * write takes one again, and a power cut between those metadata
	 * writes left a directory entry pointing at a free cluster; the
	 * kernel then remounted the partition read-only at the next boot and
	 * every later install failed (tests/e2e sc_tandem_power_cut). Written
	 * in place, only the data block changes; the file grows once, when it
	 * is new (or was written by an older tandem), and is synced then. */
	n = snprintf(pid, sizeof(pid), "%-10ld\n", (long)getpid());
	got = pread(fd, old, sizeof(old), 0);
	if (got != n || memcmp(old, pid, (size_t)n)) {
		if (tnd_pwrite_full(fd, pid, (size_t)n, 0) < 0 || (got < n && fsync(fd) < 0))
			tnd_debug("cannot write the pid into %s", path);
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
