// SPDX-License-Identifier: MIT
#include "slot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "crypto.h"
#include "digest.h"
#include "util.h"

#define ALIGN	  4096u
#define RBUF_SIZE (64u * 1024)

/* Not const: a const array of zeros lands in .rodata and adds 64 KiB to
 * the binary (a quarter of its size budget); in .bss it costs nothing on
 * flash. Never written. */
static uint8_t zeros[64 * 1024];

static void *verifier_main(void *arg);

int tnd_slot_dev_size(const char *path, uint64_t *size)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open slot %s", path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return tnd_err_errno(TND_E_SLOT, errno, "cannot stat slot %s", path);
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			int e = errno;

			close(fd);
			return tnd_err_errno(TND_E_SLOT, e, "cannot get the size of %s", path);
		}
	} else if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else {
		close(fd);
		return tnd_err_set(TND_E_SLOT, "slot %s is neither a block device nor a file",
				   path);
	}
	close(fd);
	return 0;
}

void tnd_slot_writer_init(struct tnd_slot_writer *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = w->rfd = w->dfd = -1;
}

int tnd_slot_open(struct tnd_slot_writer *w, const char *path, uint64_t image_size,
		  uint32_t chunk_size, uint64_t window)
{
	struct stat st;
	int ret;

	tnd_slot_writer_init(w);
	snprintf(w->path, sizeof(w->path), "%s", path);
	if ((ret = tnd_slot_dev_size(path, &w->dev_size)))
		return ret;
	if (w->dev_size < image_size)
		return tnd_err_set(TND_E_SLOT, "slot %s holds %llu bytes, the image needs %llu",
				   path, (unsigned long long)w->dev_size,
				   (unsigned long long)image_size);
	/* O_EXCL on a block device fails with EBUSY while it is mounted or
	 * otherwise claimed: never write under a mounted filesystem. */
	w->fd = open(path, O_WRONLY | O_CLOEXEC);
	if (w->fd >= 0 && fstat(w->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		close(w->fd);
		w->is_blk = true;
		w->fd = open(path, O_WRONLY | O_EXCL | O_CLOEXEC);
	}
	if (w->fd < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open slot %s for writing%s", path,
				     errno == EBUSY ? " (mounted or in use)" : "");
	w->rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (w->rfd < 0) {
		ret = tnd_err_errno(TND_E_SLOT, errno, "cannot open slot %s for reading", path);
		goto fail;
	}
	/* Only needed when a page will not leave the cache; -1 where the
	 * medium has no O_DIRECT (tmpfs before Linux 6.6, some FUSE). */
	w->dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	w->rbuf_size = RBUF_SIZE;
	w->window = window < chunk_size ? chunk_size : window;
	/* Entries are records of chunk_size, or a delta's pieces of at most
	 * 64 KiB: enough room that windows end where they should, below. */
	w->win_cap = (size_t)(w->window / (chunk_size < 65536 ? chunk_size : 65536)) + 2;
	/* A window is at most `window` plus one record. */
	w->resident_size = (size_t)((w->window + chunk_size) / ALIGN) + 2;
	if (posix_memalign((void **)&w->rbuf, ALIGN, w->rbuf_size) ||
	    !(w->resident = malloc(w->resident_size)) ||
	    !(w->win[0].e = calloc(TND_RB_WINDOWS * w->win_cap, sizeof(struct tnd_rb_entry)))) {
		ret = tnd_err_set(TND_E_NOMEM, "out of memory");
		goto fail;
	}
	for (int i = 1; i < TND_RB_WINDOWS; i++)
		w->win[i].e = w->win[0].e + i * w->win_cap;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->verifier, NULL, verifier_main, w)) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		ret = tnd_err_set(TND_E_NOMEM, "cannot start the read-back thread");
		goto fail;
	}
	w->started = true;
	return 0;
fail:
	tnd_slot_close(w);
	return ret;
}

/* Is [off, off+len) of a regular file a hole (or unwritten), which the
 * filesystem makes read as zeros? */
static bool is_hole(const struct tnd_slot_writer *w, uint64_t off, uint64_t len)
{
	off_t d;

	if (w->is_blk)
		return false;
	d = lseek(w->rfd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO; /* no data from off to the end */
	return (uint64_t)d >= off + len;
}

/* Reads len bytes at off into rbuf: through the cache (which the caller
 * proved holds none of them), or with O_DIRECT, whose lengths must be
 * aligned (the caller's offsets are). */
static int read_back(struct tnd_slot_writer *w, bool direct, uint64_t off, size_t len)
{
	size_t want = direct ? (len + ALIGN - 1) & ~(size_t)(ALIGN - 1) : len;
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(direct ? w->dfd : w->rfd, w->rbuf + done, want - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tnd_err_errno(TND_E_SLOT_IO, errno,
					     "slot %s: read-back at offset %llu", w->path,
					     (unsigned long long)(off + done));
		if (n == 0)
			return tnd_err_set(TND_E_SLOT_IO, "slot %s: read-back ended early at %llu",
					   w->path, (unsigned long long)(off + done));
		done += (size_t)n;
	}
	return 0;
}

/* Feeds len zero bytes to the read-back hash. */
static void hash_zeros(struct tnd_slot_writer *w, uint64_t len)
{
	while (len) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;

		tnd_sha256_update(&w->rb_hash, zeros, n);
		len -= n;
	}
}

static int check_entry(struct tnd_slot_writer *w, bool direct, const struct tnd_rb_entry *e)
{
	uint32_t crc = 0;
	bool ok = true;

	if (e->zero && is_hole(w, e->off, e->len)) {
		if (w->hashing)
			hash_zeros(w, e->len);
		return 0;
	}
	for (uint64_t pos = 0; pos < e->len && ok;) {
		size_t n = e->len - pos > w->rbuf_size ? w->rbuf_size : (size_t)(e->len - pos);
		int ret = read_back(w, direct, e->off + pos, n);

		if (ret)
			return ret;
		if (e->zero)
			ok = tnd_is_zero(w->rbuf, n);
		else
			crc = tnd_crc32_update(crc, w->rbuf, n);
		if (w->hashing)
			tnd_sha256_update(&w->rb_hash, w->rbuf, n);
		pos += n;
	}
	if (e->zero ? !ok : crc != e->crc)
		return tnd_err_set(TND_E_VERIFY,
				   "slot %s: data read back at offset %llu differs from what "
				   "was written (failing storage?)",
				   w->path, (unsigned long long)e->off);
	return 0;
}

/* Does the page cache still hold any page of [off, off+len)? Mapping the
 * range costs no memory: nothing is faulted in. When it cannot be told,
 * the answer is yes. */
static bool any_cached(struct tnd_slot_writer *w, uint64_t off, uint64_t len)
{
	uint64_t start = off & ~(uint64_t)(ALIGN - 1);
	size_t maplen = (size_t)(off + len - start), pages = (maplen + ALIGN - 1) / ALIGN;
	bool cached = true;
	void *m;

	if (!len)
		return false;
	if (pages > w->resident_size)
		return true;
	m = mmap(NULL, maplen, PROT_READ, MAP_SHARED, w->rfd, (off_t)start);
	if (m == MAP_FAILED)
		return true;
	if (mincore(m, maplen, w->resident) == 0) {
		cached = false;
		for (size_t i = 0; i < pages && !cached; i++)
			cached = w->resident[i] & 1;
	}
	munmap(m, maplen);
	return cached;
}

/* Verifier thread: waits for a window's range to reach the device, then
 * reads it back. The final window uses fsync, which also flushes the
 * device's volatile cache and, for files, the metadata. */
static int verify_window(struct tnd_slot_writer *w, const struct tnd_rb_window *win)
{
	uint64_t len = win->end - win->start;
	bool direct;
	int ret;

	if (win->final) {
		if (fsync(w->fd) < 0)
			return tnd_err_errno(TND_E_SLOT_IO, errno, "slot %s: fsync", w->path);
	} else if (len && sync_file_range(w->fd, (off_t)win->start, (off_t)len,
					  SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					      SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
		if (fdatasync(w->fd) < 0)
			return tnd_err_errno(TND_E_SLOT_IO, errno, "slot %s: sync", w->path);
	}
	/* Written back, so clean: dropping them cannot fail but for pages
	 * someone else holds, which any_cached() then finds. */
	if (len)
		posix_fadvise(w->rfd, (off_t)win->start, (off_t)len, POSIX_FADV_DONTNEED);
	direct = any_cached(w, win->start, len);
	if (direct && w->dfd < 0)
		return tnd_err_set(TND_E_SLOT_IO,
				   "slot %s: written pages at offset %llu stay in the page cache "
				   "and the device has no O_DIRECT: cannot read them back from "
				   "the device",
				   w->path, (unsigned long long)win->start);
	for (size_t i = 0; i < win->n; i++)
		if ((ret = check_entry(w, direct, &win->e[i])))
			return ret;
	/* What was read is cached now, and not needed there. */
	if (len && !direct)
		posix_fadvise(w->rfd, (off_t)win->start, (off_t)len, POSIX_FADV_DONTNEED);
	return 0;
}

static void *verifier_main(void *arg)
{
	struct tnd_slot_writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->nqueued && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->nqueued)
			break;
		struct tnd_rb_window *win = &w->win[w->head];
		int ret;

		pthread_mutex_unlock(&w->mu);
		ret = w->err ? w->err : verify_window(w, win);
		pthread_mutex_lock(&w->mu);
		if (ret && !w->err) {
			w->err = ret;
			snprintf(w->errmsg, sizeof(w->errmsg), "%s", tnd_err_msg());
		}
		if (!ret)
			w->verified += win->end - win->start;
		if (!ret && !win->final && w->durable) {
			pthread_mutex_unlock(&w->mu);
			ret = w->durable(w->durable_ctx, win->end);
			pthread_mutex_lock(&w->mu);
			if (ret && !w->err) {
				w->err = ret;
				snprintf(w->errmsg, sizeof(w->errmsg), "%s", tnd_err_msg());
			}
		}
		win->n = 0;
		w->head = (w->head + 1) % TND_RB_WINDOWS;
		w->nqueued--;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Waits until at most `max` windows wait for the verifier; returns its
 * error, if any, in the calling thread's error message. */
static int wait_verifier(struct tnd_slot_writer *w, int max)
{
	int ret;

	pthread_mutex_lock(&w->mu);
	while (w->nqueued > max && !w->err)
		pthread_cond_wait(&w->cv, &w->mu);
	ret = w->err;
	pthread_mutex_unlock(&w->mu);
	return ret ? tnd_err_set(ret, "%s", w->errmsg) : 0;
}

/* Hands the current window to the verifier and starts the next one. */
static int submit_window(struct tnd_slot_writer *w, bool final)
{
	struct tnd_rb_window *win = &w->win[w->cur];
	int ret, next = (w->cur + 1) % TND_RB_WINDOWS;

	/* Start write-back now, without waiting: the verifier waits for it. */
	if (!final && win->end > win->start)
		sync_file_range(w->fd, (off_t)win->start, (off_t)(win->end - win->start),
				SYNC_FILE_RANGE_WRITE);
	/* The next window must be free: at most TND_RB_WINDOWS - 2 others queued. */
	if ((ret = wait_verifier(w, TND_RB_WINDOWS - 2)))
		return ret;
	win->final = final;
	pthread_mutex_lock(&w->mu);
	w->nqueued++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	w->win[next].n = 0;
	w->win[next].start = w->win[next].end = win->end;
	w->cur = next;
	return 0;
}

static int add_entry(struct tnd_slot_writer *w, uint64_t off, uint64_t len, uint32_t crc, bool zero)
{
	struct tnd_rb_window *win = &w->win[w->cur];

	if (off != win->end)
		return tnd_err_set(TND_E_INTERNAL, "slot writes out of order");
	win->e[win->n++] = (struct tnd_rb_entry){.off = off, .len = len, .crc = crc, .zero = zero};
	win->end = off + len;
	/* Windows end at multiples of the window size (writes start at record
	 * boundaries and come in powers of two), so that no large folio of
	 * the page cache (up to 2 MiB) straddles two: dropping a window can
	 * only drop the folios wholly inside it, and one left over would send
	 * the window to O_DIRECT (seen with 8.1 MiB windows of a delta). */
	if (win->n == w->win_cap || win->end / w->window != win->start / w->window)
		return submit_window(w, false);
	return 0;
}

void tnd_slot_start_at(struct tnd_slot_writer *w, uint64_t off)
{
	w->win[w->cur].start = w->win[w->cur].end = off;
}

int tnd_slot_write(struct tnd_slot_writer *w, uint64_t off, const uint8_t *data, size_t len,
		   uint32_t crc)
{
	int r;

	r = tnd_pwrite_full(w->fd, data, len, (off_t)off);
	if (r)
		return tnd_err_errno(TND_E_SLOT_IO, -r, "slot %s: cannot write at offset %llu",
				     w->path, (unsigned long long)off);
	return add_entry(w, off, len, crc, false);
}

static int zero_by_writing(struct tnd_slot_writer *w, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;
		int r = tnd_pwrite_full(w->fd, zeros, n, (off_t)off);

		if (r)
			return tnd_err_errno(TND_E_SLOT_IO, -r,
					     "slot %s: cannot write at offset %llu", w->path,
					     (unsigned long long)off);
		off += n;
		len -= n;
	}
	return 0;
}

int tnd_slot_zero(struct tnd_slot_writer *w, uint64_t off, uint64_t len)
{
	bool done = false;
	int ret;

	if (w->is_blk) {
		uint64_t range[2] = {off, len};

		done = off % 512 == 0 && len % 512 == 0 && ioctl(w->fd, BLKZEROOUT, range) == 0;
	} else if (is_hole(w, off, len)) {
		/* A fresh file slot: nothing to do, and nothing to read back
		 * (punching would lock the file against the verifier). */
		done = true;
	} else {
		done = fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				 (off_t)len) == 0 ||
		       fallocate(w->fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0;
	}
	if (!done && (ret = zero_by_writing(w, off, len)))
		return ret;
	return add_entry(w, off, len, 0, true);
}

void tnd_slot_hash_readback(struct tnd_slot_writer *w)
{
	tnd_sha256_init(&w->rb_hash);
	w->hashing = true;
}

void tnd_slot_readback_sha256(struct tnd_slot_writer *w, uint8_t out[TND_SHA256_LEN])
{
	tnd_sha256_final(&w->rb_hash, out);
	w->hashing = false;
}

int tnd_slot_finish(struct tnd_slot_writer *w)
{
	int ret = submit_window(w, true);

	return ret ? ret : wait_verifier(w, 0);
}

int tnd_slot_flush(struct tnd_slot_writer *w)
{
	struct tnd_rb_window *win = &w->win[w->cur];
	int ret = 0;

	if (win->end > win->start)
		ret = submit_window(w, false);
	return ret ? ret : wait_verifier(w, 0);
}

void tnd_slot_close(struct tnd_slot_writer *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->verifier, NULL);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		w->started = false;
	}
	if (w->fd >= 0)
		close(w->fd);
	if (w->rfd >= 0)
		close(w->rfd);
	if (w->dfd >= 0)
		close(w->dfd);
	if (w->hashing) {
		uint8_t unused[TND_SHA256_LEN];

		tnd_slot_readback_sha256(w, unused);
	}
	free(w->rbuf);
	free(w->resident);
	free(w->win[0].e);
	w->fd = w->rfd = w->dfd = -1;
	w->rbuf = NULL;
	w->resident = NULL;
	for (int i = 0; i < TND_RB_WINDOWS; i++)
		w->win[i].e = NULL;
}

/* The slot as the medium holds it: written pages synced and dropped
 * from the cache first, then read front to back. */
static int read_slot(const char *dev, uint64_t size, struct tnd_sha256 *h, uint32_t *crc)
{
	uint64_t devsize;
	int fd, ret;

	if ((ret = tnd_slot_dev_size(dev, &devsize)))
		return ret;
	if (devsize < size)
		return tnd_err_set(TND_E_SLOT, "slot %s holds %llu bytes, the image needs %llu",
				   dev, (unsigned long long)devsize, (unsigned long long)size);
	if ((fd = open(dev, O_RDONLY | O_CLOEXEC)) < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open %s", dev);
	(void)fdatasync(fd);
	posix_fadvise(fd, 0, (off_t)size, POSIX_FADV_DONTNEED);
	ret = tnd_digest_fd(fd, size, dev, TND_E_SLOT_IO, h, crc, NULL);
	close(fd);
	return ret;
}

int tnd_slot_hash(const char *dev, uint64_t size, uint8_t out[32])
{
	struct tnd_sha256 h;
	int ret;

	tnd_sha256_init(&h);
	ret = read_slot(dev, size, &h, NULL);
	tnd_sha256_final(&h, out);
	return ret;
}

int tnd_slot_crc(const char *dev, uint64_t size, uint32_t *crc)
{
	*crc = 0;
	return read_slot(dev, size, NULL, crc);
}
