/* SPDX-License-Identifier: MIT */
/*
 * Writing an image into a slot (a block device or a regular file) and
 * proving the device holds it.
 *
 * Writes go through the page cache so the kernel can batch them and keep
 * the device busy without our memory. Every `window` bytes the writer
 * starts write-back of the range and hands it to a verifier thread, which
 * waits for the range to reach the device, drops it from the cache and
 * reads it back to compare with the CRC-32 the signed record carries;
 * zero ranges must read as zeros. The writer meanwhile fills the next
 * windows (up to three may wait), so device latency overlaps with
 * decompression and with the write-out of later windows instead of
 * stalling them. tnd_slot_finish() fsyncs and checks the last window, so
 * a write the device lost or corrupted is found before the slot can be
 * activated.
 *
 * Reading back from the device, not from the cache: once a window is
 * dropped from the cache, mincore() proves none of its pages is cached
 * any more, and then ordinary reads (with the kernel's read-ahead) must
 * fetch every byte from the device. A page that stays cached sends the
 * window to O_DIRECT reads instead. O_DIRECT is not the first choice
 * because on a filesystem (ext4) it holds the file's inode lock for the
 * whole device read, and the writer's next write waits for it: measured
 * on a 512 MiB install into a file slot, 0.3 s of a 0.8 s install.
 * Zero ranges of a regular file that are holes (or were never written)
 * are neither punched nor read: the filesystem, not the device, makes
 * them read as zeros.
 *
 * Memory: a 64 KiB read buffer, four small tables and a residency map
 * of one byte per page of a window, whatever the image size.
 */
#ifndef TANDEM_SLOT_H
#define TANDEM_SLOT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"

struct tnd_rb_entry {
	uint64_t off;
	uint64_t len;
	uint32_t crc;
	bool zero;
};

#define TND_RB_WINDOWS 4

struct tnd_rb_window {
	struct tnd_rb_entry *e;
	size_t n;
	uint64_t start, end;
	bool final;
};

struct tnd_slot_writer {
	int fd;
	int rfd; /* read-back through the cache, once it holds none of a window */
	int dfd; /* read-back with O_DIRECT, when it does; -1: not supported */
	bool is_blk;
	char path[PATH_MAX];
	uint64_t dev_size;
	uint8_t *rbuf; /* the verifier's */
	size_t rbuf_size;
	unsigned char *resident; /* mincore() map of a window */
	size_t resident_size;
	/* A ring: the writer fills win[cur]; up to TND_RB_WINDOWS - 1 full
	 * windows wait for (or are in) verification from win[head] on, so the
	 * device writes some windows out while others are read back. */
	struct tnd_rb_window win[TND_RB_WINDOWS];
	int cur, head, nqueued;
	size_t win_cap;
	uint64_t window;
	/* Verifier thread; nqueued counts full windows not yet verified. */
	pthread_t verifier;
	bool started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int err;
	char errmsg[TND_ERR_MSG_MAX];
	uint64_t verified; /* bytes read back and found right */
	/* Called by the verifier thread, outside the lock, each time
	 * everything before image offset `end` is written, synced and read
	 * back right; an error fails the install. NULL: not called. */
	int (*durable)(void *ctx, uint64_t end);
	void *durable_ctx;
	/* tnd_slot_hash_readback(): SHA-256 of every byte read back, in order. */
	bool hashing;
	struct tnd_sha256 rb_hash;
};

/*
 * Makes w a writer that holds nothing: every descriptor -1, so that
 * tnd_slot_close() on it closes nothing (a writer filled in by hand had
 * its O_DIRECT descriptor 0, and every early failure closed standard
 * input). tnd_slot_open() starts with it.
 */
void tnd_slot_writer_init(struct tnd_slot_writer *w);

/* Size of a block device or regular file. */
int tnd_slot_dev_size(const char *path, uint64_t *size) TND_MUST_CHECK;

/*
 * The SHA-256 (tnd_slot_hash) or CRC-32 (tnd_slot_crc) of the first size
 * bytes of a slot as the medium holds them: written pages are synced and
 * dropped from the cache first. A device shorter than size: TND_E_SLOT.
 */
int tnd_slot_hash(const char *dev, uint64_t size, uint8_t out[32]) TND_MUST_CHECK;
int tnd_slot_crc(const char *dev, uint64_t size, uint32_t *crc) TND_MUST_CHECK;

/* Opens path for writing an image of image_size bytes made of chunks of
 * at most chunk_size. A block device is opened exclusively, so a mounted
 * one is refused. */
int tnd_slot_open(struct tnd_slot_writer *w, const char *path, uint64_t image_size,
		  uint32_t chunk_size, uint64_t window) TND_MUST_CHECK;
/* Writes len bytes at off; crc is the CRC-32 they must read back as. */
/* A resumed install: the first write will be at off (before any write). */
void tnd_slot_start_at(struct tnd_slot_writer *w, uint64_t off);
int tnd_slot_write(struct tnd_slot_writer *w, uint64_t off, const uint8_t *data, size_t len,
		   uint32_t crc) TND_MUST_CHECK;
/* Makes [off, off+len) read as zeros (hole punching or BLKZEROOUT when the
 * device supports it, so runs of zeros cost no data transfer). */
int tnd_slot_zero(struct tnd_slot_writer *w, uint64_t off, uint64_t len) TND_MUST_CHECK;
/* Before the first write of an image written from offset 0: the verifier
 * also hashes everything it reads back (zero ranges that it need not read
 * as zeros), so that after tnd_slot_finish() tnd_slot_readback_sha256()
 * gives the SHA-256 of the slot as the device returned it. Used where no
 * signed CRC-32 vouches for each range (a delta's output). */
void tnd_slot_hash_readback(struct tnd_slot_writer *w);
void tnd_slot_readback_sha256(struct tnd_slot_writer *w, uint8_t out[TND_SHA256_LEN]);
/* fsync, then read back whatever was not yet checked. */
int tnd_slot_finish(struct tnd_slot_writer *w) TND_MUST_CHECK;
/* After a failure elsewhere: syncs and reads back what was written, so
 * that w->durable learns how far it is good. The writer takes no more
 * writes after it. */
int tnd_slot_flush(struct tnd_slot_writer *w) TND_MUST_CHECK;
/* Closes; accepts a writer that is only initialised or already closed. */
void tnd_slot_close(struct tnd_slot_writer *w);

#endif
