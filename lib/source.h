/* SPDX-License-Identifier: MIT */
/*
 * Where bundle bytes come from: a file, standard input, and (device side)
 * HTTP(S) or a serial line. Every source is read strictly in order through
 * one function, so the bundle reader needs no seeking and never stores
 * the bundle.
 */
#ifndef TANDEM_SOURCE_H
#define TANDEM_SOURCE_H

#include <stdint.h>
#include <sys/types.h>

#include <stdbool.h>

#include "crypto.h"
#include "error.h"

struct tnd_source {
	/* Reads up to len bytes: returns the count, 0 at the end, or a
	 * negative TND_E_* code with the error message set. */
	ssize_t (*read)(struct tnd_source *src, void *buf, size_t len);
	void (*close)(struct tnd_source *src);
	/* Optional: positions the source so that the next read returns the
	 * byte at absolute offset pos (pos >= this->pos). A file seeks, HTTP
	 * sends a Range request; NULL means read and discard (standard input,
	 * serial). Used to resume an interrupted install at a checkpoint. */
	int (*skip_to)(struct tnd_source *src, uint64_t pos);
	uint64_t size;	/* total bytes when known (regular file), else 0 */
	uint64_t pos;	/* bytes handed out so far */
	char name[256]; /* for messages */
	int fd;
	/* tnd_source_hash_begin(): every byte handed out is hashed */
	bool hashing, hash_gap;
	struct tnd_sha256 hash;
};

/* Opens path, or standard input for "-". */
int tnd_source_open_file(struct tnd_source **out, const char *path) TND_MUST_CHECK;
/* Reads exactly len bytes; TND_E_TRUNCATED (message set) at an early end. */
int tnd_source_read_exact(struct tnd_source *src, void *buf, size_t len,
			  const char *what) TND_MUST_CHECK;
/* Moves to absolute offset pos (>= src->pos) through src->skip_to, or by
 * reading and discarding; src->pos is pos afterwards. */
int tnd_source_skip_to(struct tnd_source *src, uint64_t pos) TND_MUST_CHECK;
/*
 * From here on every byte read is hashed, so that a caller that expects a
 * particular file (a channel index entry names its size and SHA-256) can
 * compare the whole stream with it. Call before the first read. A skip
 * that does not read the bytes (a resumed install's seek or Range
 * request) leaves a gap.
 */
void tnd_source_hash_begin(struct tnd_source *src);
/* The SHA-256 of every byte read since begin; false when there is a gap
 * (the hash then covers no whole file and says nothing). */
bool tnd_source_hash_end(struct tnd_source *src, uint8_t out[TND_SHA256_LEN]);
/* Closes and frees; accepts NULL. */
void tnd_source_close(struct tnd_source *src);

#endif
