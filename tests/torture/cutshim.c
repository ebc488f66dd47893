// SPDX-License-Identifier: MIT
/*
 * cutshim: an LD_PRELOAD library that turns any write-path system call of
 * a process into a power cut, and an undo journal that lets the torture
 * test throw away what a real power cut would have lost.
 *
 * Built twice from this file (tests/torture/torture.mk):
 *   cutshim.so    LD_PRELOAD into `tandem`
 *   cutrestore    applies the journal after the process was killed
 *
 * Only calls on files and directories under $CUTSHIM_DIR (the simulated
 * device), and on the block devices named in $CUTSHIM_BLK (its slots when
 * they are loop devices), are counted, journaled or cut; everything else
 * (stderr, the bundle, /proc) passes straight through.
 *
 * Environment of the preloaded process:
 *   CUTSHIM_DIR=DIR        absolute path of the simulated device (required)
 *   CUTSHIM_BLK=DEV:DEV    block devices that are part of the device too
 *                          (absolute paths, colon-separated)
 *   CUTSHIM_CUT=N          SIGKILL the process at the start of the Nth
 *                          counted call (1-based; unset or 0: never)
 *   CUTSHIM_TEAR=1         if that call is a write, apply a prefix of it
 *                          first: a write torn by the cut
 *   CUTSHIM_JOURNAL=FILE   keep an undo journal (the lost-writes model)
 *   CUTSHIM_COUNT=FILE     at a normal exit, write the number of counted calls
 *   CUTSHIM_TRACE=FILE     append one line per counted call: "N op path args",
 *                          and notes that are no cut points, "@N op path args"
 *                          (N: the counted calls before): an open with
 *                          O_DIRECT, a pread (read-direct or read-buffered),
 *                          mincore (pages, pages resident) and the result
 *                          of a BLKZEROOUT (0 or errno). The torture test
 *                          reads them to prove the block-device paths ran.
 *
 * Counted calls (each is a cut point, "before call N"): write, pwrite,
 * pwrite64, fsync, fdatasync, sync_file_range, fallocate, rename,
 * renameat, renameat2, open/openat that create or truncate a file, and
 * the ioctls BLKZEROOUT and BLKDISCARD (traced as "ioctl-blkzeroout",
 * "ioctl-blkdiscard").
 * libubootenv (linked statically into tandem) writes its environment
 * copies with write() and fsync() through the PLT, so they are counted
 * like tandem's own calls. Calls are serialised by one mutex, so the
 * count is well defined; with several threads (writer and verifier of
 * the slot) the order of calls near a window boundary can differ
 * between two runs, so a cut point N is reproducible in kind, not
 * always to the exact call.
 *
 * The lost-writes model (CUTSHIM_JOURNAL; `cutrestore JOURNAL DIR SEED`):
 * before a counted call modifies a file, the bytes it will overwrite are
 * appended to the journal; a sync is appended after it returns. After the
 * kill, cutrestore undoes, newest first, every modification that no
 * later barrier made durable:
 *   - a write/pwrite/fallocate (or an O_TRUNC) to a file is durable once
 *     fsync or fdatasync on that file returned, or sync_file_range with
 *     SYNC_FILE_RANGE_WAIT_AFTER over a range that covers it;
 *   - the same for a block device (a write, or a BLKZEROOUT/BLKDISCARD
 *     journaled as a write of its range): a completed ioctl is not taken
 *     as durable by itself, only once a later fsync/fdatasync of the
 *     device (a cache flush) or a sync_file_range covering it returned;
 *   - a rename, and the creation of a file, are durable once an fsync of
 *     the parent directory (the new name's directory for a rename)
 *     returned. An undone rename puts the file back under its old name
 *     and the replaced file (kept as a hard link while the process ran)
 *     back under the new one.
 * SEED 0 loses every modification that is not durable (the page cache was
 * never written back); SEED > 0 loses each one independently with
 * probability 1/2 (some were written back, in any order), which also
 * models a device reordering its writes.
 *
 * Limits of the model, on purpose or not:
 *   - Granularity is the system call: a lost or kept write is lost or
 *     kept whole, except the one torn by CUTSHIM_TEAR (a byte-granular
 *     prefix, harsher than real sectors; CUTSHIM_TEAR_SECTOR=512 ends it
 *     on a sector boundary instead). Real devices tear at sector
 *     or page granularity inside any unsynced write.
 *   - sync_file_range(WAIT_AFTER) is taken as durable for its range, as
 *     for a block device without a volatile write cache; on a file it
 *     persists neither metadata nor the device cache (tandem ends with
 *     fsync before it relies on the slot).
 *   - fsync of a file does not make its directory entry durable here
 *     (POSIX does not promise it; ext4 often does).
 *   - mmap writes, pwritev/writev, copy_file_range and ioctls other than
 *     BLKZEROOUT/BLKDISCARD are not seen. unlink is not undone.
 *   - A block device is restored through its page cache, as the process
 *     wrote it: what the model loses is what the page cache (and a
 *     volatile write cache below it, for the flush-only rule above) had
 *     not yet made durable. Sector-level tearing inside one write and a
 *     device that reorders the sectors of one request are not modelled
 *     (lostrand loses whole calls).
 *   - With SEED > 0, a lost write that had extended a file shrinks it
 *     again only as far as later kept writes allow; overlapping
 *     unsynced writes to the same bytes with one lost and a later one
 *     kept are restored in journal order (the later one's bytes may be
 *     partly replaced by older ones). tandem does not write the same
 *     bytes twice between barriers.
 *   - Metadata other than size (mode, times) and the file system's own
 *     journal are not modelled: this is the page cache, not ext4.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define JMAGIC 0x4c4e4a54u /* "TJNL" */

enum { R_WRITE = 1, R_SYNC, R_RANGE_SYNC, R_DIR_SYNC, R_CREATE, R_RENAME };

struct jrec {
	uint32_t magic, type;
	uint64_t dev, ino;   /* file written or synced; R_RENAME: the file renamed */
	uint64_t pdev, pino; /* parent directory (R_CREATE, R_RENAME: of the new name) */
	uint64_t off, len;   /* R_WRITE: range written; R_RANGE_SYNC: range (len 0: to EOF) */
	uint64_t oldsize;    /* R_WRITE: file size before */
	uint64_t oldlen;     /* R_WRITE: old bytes that follow; R_RENAME: 1 if a backup link */
	uint32_t p1len, p2len;
};

#ifndef CUTSHIM_RESTORE_MAIN
/* ------------------------------------------------------------ the shim */

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off64_t, off64_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static int (*real_mincore)(void *, size_t, unsigned char *);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char devdir[PATH_MAX];
static size_t devdir_len;
/* CUTSHIM_BLK: block devices that belong to the device (its slots) */
#define MAX_BLK 8
static char blkdev[MAX_BLK][PATH_MAX];
static int nblk;
static unsigned long cut_at, ncalls;
static int tear, jfd = -1, tfd = -1;
static unsigned long tear_sector;  /* CUTSHIM_TEAR_SECTOR: tears end on its multiples */
static unsigned long tear_eighths; /* CUTSHIM_TEAR_EIGHTHS: how much of the write (1..7) */
static const char *count_file;

#define RESOLVE(f) (real_##f = (__typeof__(real_##f))dlsym(RTLD_NEXT, #f))

static void resolve(void)
{
	RESOLVE(write);
	RESOLVE(pwrite);
	RESOLVE(pwrite64);
	RESOLVE(fsync);
	RESOLVE(fdatasync);
	RESOLVE(sync_file_range);
	RESOLVE(fallocate);
	RESOLVE(fallocate64);
	RESOLVE(rename);
	RESOLVE(renameat);
	RESOLVE(renameat2);
	RESOLVE(open);
	RESOLVE(open64);
	RESOLVE(openat);
	RESOLVE(openat64);
	RESOLVE(ioctl);
	RESOLVE(pread);
	RESOLVE(pread64);
	RESOLVE(mincore);
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *d = getenv("CUTSHIM_DIR"), *s;

	resolve();
	if (!d || !realpath(d, devdir)) {
		devdir[0] = '\0';
		return;
	}
	devdir_len = strlen(devdir);
	if ((s = getenv("CUTSHIM_BLK"))) {
		char list[PATH_MAX * 2], *save = NULL, *tok;

		snprintf(list, sizeof(list), "%s", s);
		for (tok = strtok_r(list, ":", &save); tok && nblk < MAX_BLK;
		     tok = strtok_r(NULL, ":", &save))
			if (realpath(tok, blkdev[nblk]))
				nblk++;
	}
	s = getenv("CUTSHIM_CUT");
	cut_at = s ? strtoul(s, NULL, 10) : 0;
	s = getenv("CUTSHIM_TEAR");
	tear = s && *s == '1';
	s = getenv("CUTSHIM_TEAR_SECTOR");
	tear_sector = s ? strtoul(s, NULL, 10) : 0;
	s = getenv("CUTSHIM_TEAR_EIGHTHS");
	tear_eighths = s ? strtoul(s, NULL, 10) : 0;
	count_file = getenv("CUTSHIM_COUNT");
	if ((s = getenv("CUTSHIM_JOURNAL")) && *s)
		jfd = real_open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if ((s = getenv("CUTSHIM_TRACE")) && *s)
		tfd = real_open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

__attribute__((destructor)) static void shim_fini(void)
{
	char buf[32];
	int fd, n;

	if (!devdir[0] || !count_file)
		return;
	fd = real_open(count_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%lu\n", ncalls);
	if (real_write(fd, buf, (size_t)n) < 0)
		(void)0; /* a test helper: nothing better to do */
	close(fd);
}

static int under_dev(const char *abs)
{
	if (!devdir[0])
		return 0;
	for (int i = 0; i < nblk; i++)
		if (strcmp(abs, blkdev[i]) == 0)
			return 1;
	return strncmp(abs, devdir, devdir_len) == 0 &&
	       (abs[devdir_len] == '/' || abs[devdir_len] == '\0');
}

/* The path an fd refers to, if it is under the device directory. */
static int fd_path(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	if (!devdir[0] || fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, size - 1);
	if (n <= 0)
		return 0;
	out[n] = '\0';
	return under_dev(out);
}

/* An absolute, lexically joined path for (dirfd, path); good enough for
 * the absolute paths tandem uses. */
static int abs_path(int dirfd, const char *path, char *out, size_t size)
{
	char base[PATH_MAX];

	if (!devdir[0] || !path)
		return 0;
	if (path[0] == '/') {
		snprintf(out, size, "%s", path);
	} else {
		if (dirfd == AT_FDCWD) {
			if (!getcwd(base, sizeof(base)))
				return 0;
		} else if (!fd_path(dirfd, base, sizeof(base))) {
			return 0;
		}
		if (snprintf(out, size, "%s/%s", base, path) >= (int)size)
			return 0;
	}
	return under_dev(out);
}

static void parent_of(const char *path, struct stat *st)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (stat(dir, st) < 0)
		memset(st, 0, sizeof(*st));
}

static void jwrite(const struct jrec *r, const char *p1, const char *p2, const void *old)
{
	struct iovec iov[4] = {
	    {(void *)r, sizeof(*r)},
	    {(void *)p1, r->p1len},
	    {(void *)p2, r->p2len},
	    {(void *)old, r->oldlen && old ? r->oldlen : 0},
	};

	/* One writev: a SIGKILL from outside leaves whole records (cutrestore
	 * ignores a truncated last one, whose call had not started). */
	if (writev(jfd, iov, 4) < 0)
		(void)0;
}

static void trace(const char *op, const char *path, long long a, long long b)
{
	char buf[PATH_MAX + 128];
	int n;

	if (tfd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%lu %s %s %lld %lld\n", ncalls, op, path, a, b);
	if (n > 0 && real_write(tfd, buf, (size_t)n) < 0)
		(void)0;
}

/* A note in the trace: no cut point, N is the number of calls before. */
static void note(const char *op, const char *path, long long a, long long b)
{
	char buf[PATH_MAX + 128];
	int n;

	if (tfd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "@%lu %s %s %lld %lld\n", ncalls, op, path, a, b);
	if (n > 0 && real_write(tfd, buf, (size_t)n) < 0)
		(void)0;
}

/* Counts a call and kills the process when it is the chosen one. Called
 * with mu held. Returns 1 if the caller must tear its write first. */
static int count(const char *op, const char *path, long long a, long long b)
{
	ncalls++;
	trace(op, path, a, b);
	if (cut_at && ncalls == cut_at)
		return 1;
	return 0;
}

static __attribute__((noreturn)) void die_now(void)
{
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

/* Journals the bytes [off, off+len) of the file behind fd before a write;
 * whole: all of the file from off (an O_TRUNC, journaled with len 0). */
static void journal_write(int fd, const char *path, uint64_t off, uint64_t len, int whole)
{
	struct jrec r = {.magic = JMAGIC, .type = R_WRITE, .off = off, .len = len};
	char link[64];
	struct stat st;
	void *old = NULL;
	int rfd;

	if (jfd < 0 || fstat(fd, &st) < 0)
		return;
	r.dev = st.st_dev;
	r.ino = st.st_ino;
	r.oldsize = (uint64_t)st.st_size;
	/* A block device: its size never changes, and is not st_size. */
	if (S_ISBLK(st.st_mode) && real_ioctl(fd, BLKGETSIZE64, &r.oldsize) < 0)
		r.oldsize = 0;
	r.p1len = (uint32_t)strlen(path);
	if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && off < r.oldsize) {
		uint64_t n = whole || r.oldsize - off < len ? r.oldsize - off : len;

		/* The fd may be write-only: read through a fresh descriptor. */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		rfd = real_open(link, O_RDONLY | O_CLOEXEC);
		old = n ? malloc(n) : NULL;
		if (rfd >= 0 && old) {
			ssize_t got = real_pread(rfd, old, n, (off_t)off);

			r.oldlen = got > 0 ? (uint64_t)got : 0;
		}
		if (rfd >= 0)
			close(rfd);
	}
	jwrite(&r, path, "", old);
	free(old);
}

static void journal_sync(int fd, int type, uint64_t off, uint64_t len)
{
	struct jrec r = {.magic = JMAGIC, .type = (uint32_t)type, .off = off, .len = len};
	struct stat st;

	if (jfd < 0 || fstat(fd, &st) < 0)
		return;
	if (type == R_SYNC && S_ISDIR(st.st_mode))
		r.type = R_DIR_SYNC;
	r.dev = st.st_dev;
	r.ino = st.st_ino;
	jwrite(&r, "", "", NULL);
}

static ssize_t do_write(int fd, const void *buf, size_t len, off64_t off, int positional,
			const char *op)
{
	char path[PATH_MAX];
	ssize_t ret;
	uint64_t where;

	if (!fd_path(fd, path, sizeof(path)))
		return positional ? real_pwrite64(fd, buf, len, off) : real_write(fd, buf, len);
	pthread_mutex_lock(&mu);
	if (positional) {
		where = (uint64_t)off;
	} else {
		int fl = fcntl(fd, F_GETFL);
		struct stat st;

		if ((fl & O_APPEND) && fstat(fd, &st) == 0)
			where = (uint64_t)st.st_size;
		else
			where = (uint64_t)lseek(fd, 0, SEEK_CUR);
	}
	if (count(op, path, (long long)where, (long long)len)) {
		if (tear && len > 1) {
			/* A prefix reaches the file: 1/8 .. 7/8 of it, chosen by N
			 * (or by CUTSHIM_TEAR_EIGHTHS). */
			unsigned long k =
			    tear_eighths >= 1 && tear_eighths <= 7 ? tear_eighths : cut_at % 7 + 1;
			size_t part = len * k / 8;

			if (!part)
				part = 1;
			/* Storage that writes whole sectors (the GRUB block,
			 * which has no checksum to tell a torn sector) tears
			 * only between them: the prefix ends on a boundary. */
			if (tear_sector) {
				uint64_t end = (where + part) / tear_sector * tear_sector;

				part = end > where ? (size_t)(end - where) : 0;
			}
			if (part) {
				journal_write(fd, path, where, part, 0);
				if (positional)
					(void)real_pwrite64(fd, buf, part, off);
				else
					(void)real_write(fd, buf, part);
			}
		}
		die_now();
	}
	journal_write(fd, path, where, len, 0);
	ret = positional ? real_pwrite64(fd, buf, len, off) : real_write(fd, buf, len);
	pthread_mutex_unlock(&mu);
	return ret;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	return do_write(fd, buf, len, 0, 0, "write");
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return do_write(fd, buf, len, off, 1, "pwrite");
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	return do_write(fd, buf, len, off, 1, "pwrite");
}

static int do_sync(int fd, int data_only)
{
	char path[PATH_MAX];
	int ret;

	if (!fd_path(fd, path, sizeof(path)))
		return data_only ? real_fdatasync(fd) : real_fsync(fd);
	pthread_mutex_lock(&mu);
	if (count(data_only ? "fdatasync" : "fsync", path, 0, 0))
		die_now();
	ret = data_only ? real_fdatasync(fd) : real_fsync(fd);
	if (ret == 0)
		journal_sync(fd, R_SYNC, 0, 0);
	pthread_mutex_unlock(&mu);
	return ret;
}

int fsync(int fd)
{
	return do_sync(fd, 0);
}

int fdatasync(int fd)
{
	return do_sync(fd, 1);
}

int sync_file_range(int fd, off_t off, off_t len, unsigned flags)
{
	char path[PATH_MAX];
	int ret;

	if (!fd_path(fd, path, sizeof(path)))
		return real_sync_file_range(fd, off, len, flags);
	pthread_mutex_lock(&mu);
	if (count("sync_file_range", path, (long long)off, (long long)len))
		die_now();
	ret = real_sync_file_range(fd, off, len, flags);
	if (ret == 0 && (flags & SYNC_FILE_RANGE_WAIT_AFTER) && (flags & SYNC_FILE_RANGE_WRITE))
		journal_sync(fd, R_RANGE_SYNC, (uint64_t)off, (uint64_t)len);
	pthread_mutex_unlock(&mu);
	return ret;
}

static int do_fallocate(int fd, int mode, off64_t off, off64_t len)
{
	char path[PATH_MAX];
	int ret;

	if (!fd_path(fd, path, sizeof(path)))
		return real_fallocate64(fd, mode, off, len);
	pthread_mutex_lock(&mu);
	if (count("fallocate", path, (long long)off, (long long)len))
		die_now();
	journal_write(fd, path, (uint64_t)off, (uint64_t)len, 0);
	ret = real_fallocate64(fd, mode, off, len);
	pthread_mutex_unlock(&mu);
	return ret;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	return do_fallocate(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	return do_fallocate(fd, mode, off, len);
}

/* BLKZEROOUT and BLKDISCARD write a range of a block device below its
 * page cache: a cut point each, journaled as a write of the range. */
int ioctl(int fd, unsigned long req, ...)
{
	char path[PATH_MAX];
	va_list ap;
	void *arg;
	int ret, e;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if ((req != BLKZEROOUT && req != BLKDISCARD) || !fd_path(fd, path, sizeof(path)))
		return real_ioctl(fd, req, arg);
	const uint64_t *range = arg;

	pthread_mutex_lock(&mu);
	if (count(req == BLKZEROOUT ? "ioctl-blkzeroout" : "ioctl-blkdiscard", path,
		  (long long)range[0], (long long)range[1]))
		die_now();
	journal_write(fd, path, range[0], range[1], 0);
	ret = real_ioctl(fd, req, arg);
	e = errno;
	note(req == BLKZEROOUT ? "blkzeroout-result" : "blkdiscard-result", path, range[0],
	     ret < 0 ? e : 0);
	pthread_mutex_unlock(&mu);
	errno = e;
	return ret;
}

/* Reads are no cut points: noted only when tracing, to show which
 * read-back path ran (O_DIRECT or through the page cache). */
static void note_read(int fd, off64_t off, size_t len)
{
	char path[PATH_MAX];
	int fl, e = errno;

	if (tfd < 0 || !fd_path(fd, path, sizeof(path)))
		return;
	fl = fcntl(fd, F_GETFL);
	pthread_mutex_lock(&mu);
	note(fl >= 0 && (fl & O_DIRECT) ? "read-direct" : "read-buffered", path, (long long)off,
	     (long long)len);
	pthread_mutex_unlock(&mu);
	errno = e;
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t ret = real_pread(fd, buf, len, off);

	note_read(fd, off, len);
	return ret;
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
	ssize_t ret = real_pread64(fd, buf, len, off);

	note_read(fd, off, len);
	return ret;
}

/* The page-cache residency test: how many of the pages were resident. */
int mincore(void *addr, size_t len, unsigned char *vec)
{
	int ret = real_mincore(addr, len, vec), e = errno;

	if (tfd >= 0 && ret == 0) {
		size_t pages = (len + 4095) / 4096, res = 0;

		for (size_t i = 0; i < pages; i++)
			res += vec[i] & 1;
		pthread_mutex_lock(&mu);
		note("mincore", "-", (long long)pages, (long long)res);
		pthread_mutex_unlock(&mu);
	}
	errno = e;
	return ret;
}

static unsigned long nbackup;

static int do_rename(int olddir, const char *oldp, int newdir, const char *newp, unsigned flags,
		     int kind)
{
	char a[PATH_MAX], b[PATH_MAX], bak[PATH_MAX + 64] = "";
	int ret;

#define REAL_RENAME()                                                                              \
	(kind == 0   ? real_rename(oldp, newp)                                                     \
	 : kind == 1 ? real_renameat(olddir, oldp, newdir, newp)                                   \
		     : real_renameat2(olddir, oldp, newdir, newp, flags))
	if (!abs_path(olddir, oldp, a, sizeof(a)) || !abs_path(newdir, newp, b, sizeof(b)))
		return REAL_RENAME();
	pthread_mutex_lock(&mu);
	if (count("rename", b, 0, 0))
		die_now();
	if (jfd >= 0) {
		struct jrec r = {.magic = JMAGIC, .type = R_RENAME};
		struct stat pst, sst;

		/* Keep the file about to be replaced, as the same inode, so an
		 * undone rename can put it back with its journaled writes. */
		snprintf(bak, sizeof(bak), "%s.cutshim-bak-%lu", b, ++nbackup);
		r.oldlen = link(b, bak) == 0;
		/* The file being renamed: cutrestore undoes the rename only if
		 * this inode is at the new name (a kill from outside can come
		 * between this record and the rename). */
		if (stat(a, &sst) == 0) {
			r.dev = sst.st_dev;
			r.ino = sst.st_ino;
		}
		parent_of(b, &pst);
		r.pdev = pst.st_dev;
		r.pino = pst.st_ino;
		r.off = nbackup;
		r.p1len = (uint32_t)strlen(a);
		r.p2len = (uint32_t)strlen(b);
		jwrite(&r, a, b, NULL);
	}
	ret = REAL_RENAME();
	pthread_mutex_unlock(&mu);
	return ret;
#undef REAL_RENAME
}

int rename(const char *oldp, const char *newp)
{
	return do_rename(AT_FDCWD, oldp, AT_FDCWD, newp, 0, 0);
}

int renameat(int olddir, const char *oldp, int newdir, const char *newp)
{
	return do_rename(olddir, oldp, newdir, newp, 0, 1);
}

int renameat2(int olddir, const char *oldp, int newdir, const char *newp, unsigned flags)
{
	return do_rename(olddir, oldp, newdir, newp, flags, 2);
}

/* open/openat that create or truncate a file under the device: a cut
 * point, and journaled (creation, or the old content for O_TRUNC). */
static void before_open(int dirfd, const char *path, int flags)
{
	char a[PATH_MAX];
	struct stat st;

	if ((flags & O_DIRECT) && tfd >= 0 && abs_path(dirfd, path, a, sizeof(a))) {
		pthread_mutex_lock(&mu);
		note("open-direct", a, flags & O_ACCMODE, 0);
		pthread_mutex_unlock(&mu);
	}
	if (!(flags & (O_CREAT | O_TRUNC)) || !(flags & (O_WRONLY | O_RDWR)) ||
	    !abs_path(dirfd, path, a, sizeof(a)))
		return;
	pthread_mutex_lock(&mu);
	if (count("open", a, flags & O_CREAT, flags & O_TRUNC))
		die_now();
	if (stat(a, &st) < 0) {
		if (jfd >= 0 && (flags & O_CREAT)) {
			struct jrec r = {.magic = JMAGIC, .type = R_CREATE};
			struct stat pst;

			parent_of(a, &pst);
			r.pdev = pst.st_dev;
			r.pino = pst.st_ino;
			r.p1len = (uint32_t)strlen(a);
			jwrite(&r, a, "", NULL);
		}
	} else if ((flags & O_TRUNC) && S_ISREG(st.st_mode) && st.st_size > 0) {
		int fd = real_open(a, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			/* The whole old content, as a write of length 0 at 0. */
			journal_write(fd, a, 0, 0, 1);
			close(fd);
		}
	}
	pthread_mutex_unlock(&mu);
}

#define OPEN_MODE()                                                                                \
	mode_t mode = 0;                                                                           \
	if (flags & (O_CREAT | O_TMPFILE)) {                                                       \
		va_list ap;                                                                        \
		va_start(ap, flags);                                                               \
		mode = va_arg(ap, mode_t);                                                         \
		va_end(ap);                                                                        \
	}

int open(const char *path, int flags, ...)
{
	OPEN_MODE();
	before_open(AT_FDCWD, path, flags);
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	OPEN_MODE();
	before_open(AT_FDCWD, path, flags);
	return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE();
	before_open(dirfd, path, flags);
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE();
	before_open(dirfd, path, flags);
	return real_openat64(dirfd, path, flags, mode);
}

#else
/* ------------------------------------------------------- cutrestore */

#include <ftw.h>

struct rec {
	struct jrec h;
	char *p1, *p2;
	long oldpos; /* where the old bytes are in the journal */
	int lost;
};

static struct {
	uint64_t dev, ino;
	char path[PATH_MAX];
} *inodes;
static size_t ninodes, capinodes;

static int walk(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)f;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (ninodes == capinodes) {
		capinodes = capinodes ? 2 * capinodes : 64;
		inodes = realloc(inodes, capinodes * sizeof(*inodes));
		if (!inodes)
			return 1;
	}
	inodes[ninodes].dev = st->st_dev;
	inodes[ninodes].ino = st->st_ino;
	snprintf(inodes[ninodes].path, sizeof(inodes[ninodes].path), "%s", path);
	/* A backup link names the same inode as a live file: prefer the live
	 * name, but any will do for writing into the inode. */
	ninodes++;
	return 0;
}

static const char *path_of(uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < ninodes; i++)
		if (inodes[i].dev == dev && inodes[i].ino == ino)
			return inodes[i].path;
	return NULL;
}

static uint64_t rng;
static int coin(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (int)(rng & 1);
}

static int covers(const struct jrec *s, const struct jrec *w)
{
	if (s->dev != w->dev || s->ino != w->ino)
		return 0;
	if (s->type == R_SYNC)
		return 1;
	if (s->type != R_RANGE_SYNC)
		return 0;
	return w->off >= s->off && (s->len == 0 || w->off + w->len <= s->off + s->len);
}

int main(int argc, char **argv)
{
	struct rec *r = NULL;
	size_t n = 0, cap = 0;
	unsigned long lost = 0, kept = 0;
	FILE *j;

	if (argc != 4) {
		fprintf(stderr, "usage: cutrestore JOURNAL DEVICE_DIR SEED\n");
		return 2;
	}
	rng = strtoull(argv[3], NULL, 10);
	rng = rng ? rng * 0x9e3779b97f4a7c15ull : 0;
	j = fopen(argv[1], "rb");
	if (!j)
		return 0; /* nothing was journaled */
	for (;;) {
		struct rec x = {0};

		if (fread(&x.h, sizeof(x.h), 1, j) != 1 || x.h.magic != JMAGIC)
			break;
		x.p1 = calloc(1, x.h.p1len + 1);
		x.p2 = calloc(1, x.h.p2len + 1);
		if (!x.p1 || !x.p2 || fread(x.p1, 1, x.h.p1len, j) != x.h.p1len ||
		    fread(x.p2, 1, x.h.p2len, j) != x.h.p2len)
			break;
		x.oldpos = ftell(j);
		if (x.h.type == R_WRITE && fseek(j, (long)x.h.oldlen, SEEK_CUR))
			break;
		if (x.h.type == R_WRITE) { /* a truncated last record: its call never ran */
			struct stat st;

			if (fstat(fileno(j), &st) || x.oldpos + (long)x.h.oldlen > st.st_size)
				break;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			r = realloc(r, cap * sizeof(*r));
			if (!r)
				return 1;
		}
		r[n++] = x;
	}
	/* Durability, then the coin for what was not durable. */
	for (size_t i = 0; i < n; i++) {
		int durable = 0;

		if (r[i].h.type != R_WRITE && r[i].h.type != R_CREATE && r[i].h.type != R_RENAME)
			continue;
		for (size_t k = i + 1; k < n && !durable; k++) {
			if (r[i].h.type == R_WRITE)
				durable = covers(&r[k].h, &r[i].h);
			else
				durable = r[k].h.type == R_DIR_SYNC && r[k].h.dev == r[i].h.pdev &&
					  r[k].h.ino == r[i].h.pino;
		}
		r[i].lost = !durable && (rng == 0 || coin());
		if (r[i].lost)
			lost++;
		else if (!durable)
			kept++;
	}
	/* Undo, newest first. */
	for (size_t i = n; i-- > 0;) {
		const struct jrec *h = &r[i].h;

		if (h->type == R_RENAME) {
			char bak[PATH_MAX + 64];

			snprintf(bak, sizeof(bak), "%s.cutshim-bak-%lu", r[i].p2,
				 (unsigned long)h->off);
			struct stat st;
			int done = stat(r[i].p2, &st) == 0 && st.st_dev == h->dev &&
				   st.st_ino == h->ino;

			if (r[i].lost && done) {
				if (rename(r[i].p2, r[i].p1) < 0)
					perror(r[i].p2);
				if (h->oldlen && rename(bak, r[i].p2) < 0)
					perror(bak);
			} else if (h->oldlen) {
				unlink(bak);
			}
			continue;
		}
		if (!r[i].lost)
			continue;
		if (h->type == R_CREATE) {
			unlink(r[i].p1);
			continue;
		}
		if (h->type != R_WRITE)
			continue;
		ninodes = 0;
		if (nftw(argv[2], walk, 16, FTW_PHYS))
			return 1;
		const char *p = path_of(h->dev, h->ino);
		struct stat bst;

		/* A block device outside DEVICE_DIR (a slot on a loop device):
		 * its journaled path, if it is still the same device node. */
		if (!p && stat(r[i].p1, &bst) == 0 && S_ISBLK(bst.st_mode) && bst.st_dev == h->dev &&
		    bst.st_ino == h->ino)
			p = r[i].p1;
		if (!p)
			continue; /* unlinked since: nothing to restore */
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			perror(p);
			continue;
		}
		if (h->oldlen) {
			char *buf = malloc(h->oldlen);

			if (!buf || fseek(j, r[i].oldpos, SEEK_SET) ||
			    fread(buf, 1, h->oldlen, j) != h->oldlen ||
			    pwrite(fd, buf, h->oldlen, (off_t)h->off) != (ssize_t)h->oldlen)
				perror(p);
			free(buf);
		}
		if (h->off + h->len > h->oldsize) {
			/* The write had grown the file: shrink it back, but not
			 * below what later kept writes reach. */
			uint64_t size = h->oldsize;

			for (size_t k = i + 1; k < n; k++)
				if (r[k].h.type == R_WRITE && !r[k].lost && r[k].h.dev == h->dev &&
				    r[k].h.ino == h->ino && r[k].h.off + r[k].h.len > size)
					size = r[k].h.off + r[k].h.len;
			if (ftruncate(fd, (off_t)size) < 0)
				perror(p);
		}
		close(fd);
	}
	/* A kill from outside between a backup link() and its journal record
	 * leaves a backup no record names: remove every one left. */
	ninodes = 0;
	if (nftw(argv[2], walk, 16, FTW_PHYS))
		return 1;
	for (size_t i = 0; i < ninodes; i++)
		if (strstr(inodes[i].path, ".cutshim-bak-"))
			unlink(inodes[i].path);
	printf("%zu records, %lu lost, %lu unsynced kept\n", n, lost, kept);
	fclose(j);
	return 0;
}
#endif
