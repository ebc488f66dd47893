// SPDX-License-Identifier: MIT
/*
 * inflate2: the decompression baseline of `make bench` (baseline B).
 *
 *   inflate2 [--threads N] [--auth KEYDIR] [--zlib] BUNDLE
 *
 * Reads a Tandem bundle in order, like the device does, and inflates every
 * record's data with N worker threads (default 2), throwing the output
 * away. It measures how fast this machine can turn the exact payload that
 * `tandem install` receives into image bytes when nothing is written:
 * the same records, the same chunk size, the same raw-deflate codec
 * (tnd_inflate_chunk from libtandem). Zero records cost nothing here, as
 * they should cost nothing in the installer.
 *
 * Without --auth the record framing is parsed directly and no hash is
 * computed: pure inflate, the "decompression to /dev/null" limit of
 * issue 2. With --auth KEYDIR the manifest signature is checked and every
 * record is authenticated through tnd_bundle_next (SHA-256 chain) on the
 * reading thread before it is handed to a worker: the CPU work of an
 * install minus the slot writes and the read-back.
 *
 * The codec is libtandem's tnd_inflate_chunk, so the baseline follows
 * whatever decoder Tandem is built with (zlib or libdeflate). --zlib
 * inflates with zlib directly instead, for comparison.
 *
 * Prints one JSON line: records, stored (payload) bytes, output bytes.
 * Timing is left to the caller (/usr/bin/time), so that wall time, CPU
 * time and peak RSS are measured the same way for every contender.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "chunk.h"
#include "error.h"
#include "manifest.h"
#include "sign.h"
#include "source.h"

#define NSLOTS 8
#define MAXTHREADS 8

enum slot_state { S_FREE, S_FULL, S_BUSY };

struct slot {
	enum slot_state state;
	uint8_t *in;
	size_t in_len;
	size_t out_len;
};

struct ctx {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot slots[NSLOTS];
	bool eof;
	bool use_zlib;
	int err;
	uint32_t chunk_size;
	uint64_t out_bytes;
};

static void *worker(void *arg)
{
	struct ctx *c = arg;
	struct tnd_inflater inf;
	z_stream zs;
	uint8_t *out = malloc(c->chunk_size);
	int bad;

	memset(&inf, 0, sizeof(inf));
	memset(&zs, 0, sizeof(zs));
	bad = c->use_zlib ? inflateInit2(&zs, -15) != Z_OK : tnd_inflater_init(&inf) != 0;
	if (!out || bad) {
		pthread_mutex_lock(&c->mu);
		c->err = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		free(out);
		return NULL;
	}
	pthread_mutex_lock(&c->mu);
	for (;;) {
		struct slot *s = NULL;

		for (int i = 0; i < NSLOTS; i++)
			if (c->slots[i].state == S_FULL) {
				s = &c->slots[i];
				break;
			}
		if (!s) {
			if (c->eof || c->err)
				break;
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		s->state = S_BUSY;
		pthread_mutex_unlock(&c->mu);
		int ret;
		if (c->use_zlib) {
			/* raw deflate, one stream per chunk, like the installer */
			inflateReset(&zs);
			zs.next_in = s->in;
			zs.avail_in = (uInt)s->in_len;
			zs.next_out = out;
			zs.avail_out = (uInt)s->out_len;
			ret = inflate(&zs, Z_FINISH) == Z_STREAM_END && zs.total_out == s->out_len ? 0 : -1;
		} else {
			ret = tnd_inflate_chunk(&inf, s->in, s->in_len, out, s->out_len);
		}
		pthread_mutex_lock(&c->mu);
		if (ret) {
			fprintf(stderr, "inflate2: %s\n", tnd_err_msg());
			c->err = 1;
		} else {
			c->out_bytes += s->out_len;
		}
		s->state = S_FREE;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	if (c->use_zlib)
		inflateEnd(&zs);
	else
		tnd_inflater_free(&inf);
	free(out);
	return NULL;
}

/* Hands one deflate record to the workers; waits for a free slot. */
static int submit(struct ctx *c, const uint8_t *buf, size_t len, size_t out_len)
{
	struct slot *s = NULL;

	pthread_mutex_lock(&c->mu);
	while (!c->err) {
		for (int i = 0; i < NSLOTS && !s; i++)
			if (c->slots[i].state == S_FREE)
				s = &c->slots[i];
		if (s)
			break;
		pthread_cond_wait(&c->cv, &c->mu);
	}
	if (c->err) {
		pthread_mutex_unlock(&c->mu);
		return -1;
	}
	/* The copy keeps the reader's buffer free for the next record; it is
	 * the same hand-off cost the installer's pipeline pays (or less). */
	memcpy(s->in, buf, len);
	s->in_len = len;
	s->out_len = out_len;
	s->state = S_FULL;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int main(int argc, char **argv)
{
	const char *keydir = NULL, *path = NULL;
	unsigned nthreads = 2;
	struct tnd_keyring kr = {0};
	struct tnd_verify_opts opts = {0};
	struct tnd_source *src = NULL;
	static struct tnd_bundle_reader r;
	struct ctx c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	pthread_t th[MAXTHREADS];
	uint64_t records = 0, stored = 0, zero_bytes = 0, stored_recs = 0;
	uint8_t *buf;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--zlib"))
			c.use_zlib = true;
		else if (!strcmp(argv[i], "--auth") && i + 1 < argc)
			keydir = argv[++i];
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else
			path = NULL, i = argc;
	}
	if (!path || nthreads < 1 || nthreads > MAXTHREADS) {
		fprintf(stderr, "usage: inflate2 [--threads N] [--auth KEYDIR] [--zlib] BUNDLE\n");
		return 2;
	}
	if (keydir) {
		if (tnd_keyring_load_dir(&kr, keydir))
			goto fail;
		opts.keyring = &kr;
	}
	if (tnd_source_open_file(&src, path) || tnd_bundle_open(&r, src, &opts))
		goto fail;
	if (keydir && !r.manifest.verified) {
		fprintf(stderr, "inflate2: manifest not verified\n");
		goto out;
	}
	c.chunk_size = r.manifest.chunk_size;
	if (!(buf = malloc(c.chunk_size)))
		goto out;
	for (int i = 0; i < NSLOTS; i++)
		if (!(c.slots[i].in = malloc(c.chunk_size)))
			goto out;
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, &c);

	for (;;) {
		struct tnd_record rec;
		uint8_t hdr[TND_RECORD_HDR_SIZE];
		int ret;

		if (keydir) {
			ret = tnd_bundle_next(&r, &rec, buf, c.chunk_size);
			if (ret < 0)
				goto join_fail;
			if (ret == 0)
				break;
		} else {
			/* Unauthenticated framing walk: lengths are still bounded. */
			if (records == r.manifest.chunks)
				break;
			if (tnd_source_read_exact(src, hdr, sizeof(hdr), "record") ||
			    tnd_record_decode(&rec, hdr))
				goto join_fail;
			/* Zero records may cover more than one chunk of output. */
			if (rec.stored_len > c.chunk_size ||
			    (rec.type != TND_REC_ZERO && rec.out_len > c.chunk_size)) {
				fprintf(stderr, "inflate2: record too long\n");
				goto join_fail;
			}
			if (tnd_source_read_exact(src, buf, rec.stored_len, "record"))
				goto join_fail;
		}
		records++;
		stored += rec.stored_len;
		if (rec.type == TND_REC_DEFLATE) {
			if (submit(&c, buf, rec.stored_len, rec.out_len))
				goto join;
		} else if (rec.type == TND_REC_ZERO) {
			zero_bytes += rec.out_len;
		} else {
			stored_recs++;
			pthread_mutex_lock(&c.mu);
			c.out_bytes += rec.out_len; /* stored: already image bytes */
			pthread_mutex_unlock(&c.mu);
		}
	}
	rc = 0;
	goto join;
join_fail:
	fprintf(stderr, "inflate2: %s\n", tnd_err_msg());
	rc = 1;
join:
	pthread_mutex_lock(&c.mu);
	c.eof = true;
	if (rc)
		c.err = 1;
	pthread_cond_broadcast(&c.cv);
	pthread_mutex_unlock(&c.mu);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	if (c.err)
		rc = 1;
	if (!rc)
		printf("{\"records\":%llu,\"stored_bytes\":%llu,\"out_bytes\":%llu,"
		       "\"zero_bytes\":%llu,\"stored_records\":%llu,\"threads\":%u,\"auth\":%s,"
		       "\"codec\":\"%s\"}\n",
		       (unsigned long long)records, (unsigned long long)stored,
		       (unsigned long long)(c.out_bytes + zero_bytes), (unsigned long long)zero_bytes,
		       (unsigned long long)stored_recs, nthreads, keydir ? "true" : "false",
		       c.use_zlib ? "zlib" : "libtandem");
	goto out;
fail:
	fprintf(stderr, "inflate2: %s\n", tnd_err_msg());
out:
	tnd_source_close(src);
	tnd_keyring_free(&kr);
	return rc;
}
