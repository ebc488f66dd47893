/* SPDX-License-Identifier: MIT */
/*
 * The one record decoder: turns authenticated bundle records into image
 * bytes, for the device's install pipeline (updater/install/pipeline.c)
 * and the host's inspect, verify and publish alike, so both sides read a
 * payload the same way. Two steps, so that the costly one can run on
 * several threads:
 *
 *   tnd_record_expand     any thread, any order: one record's stored bytes
 *                         to its output (stored, inflated, or zeros);
 *   tnd_image_stage_put   strictly in record order: the output on to an
 *                         image sink, straight for a full payload, through
 *                         the delta decoder (lib/delta.h) for a delta.
 *
 * Only authenticated records may be passed in (tnd_bundle_authenticate or
 * tnd_bundle_next said so): nothing here checks where they came from.
 */
#ifndef TANDEM_RECORD_H
#define TANDEM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "chunk.h"

/* Where image bytes go, in order: write() with the CRC-32 they must read
 * back as, zero() for a run of zeros (which a slot may write for free). */
struct tnd_image_sink {
	int (*write)(void *ctx, uint64_t off, const uint8_t *data, size_t len, uint32_t crc);
	int (*zero)(void *ctx, uint64_t off, uint64_t len);
	void *ctx;
};

/*
 * An authenticated record's data `in` to its output: *out points into in
 * for a stored record, into buf (at least out_len bytes) after inflating,
 * and is NULL for a zero record (out_len zeros). With check_crc the
 * output's CRC-32 must be the record's (the host checks it; the device
 * compares it with what it reads back from the slot instead).
 */
int tnd_record_expand(struct tnd_inflater *inf, const struct tnd_record *rec, const uint8_t *in,
		      uint8_t *buf, bool check_crc, const uint8_t **out) TND_MUST_CHECK;

struct tnd_image_stage;

/*
 * The ordered step for the payload m describes. A delta reads its base
 * from base_fd (borrowed, read only; the caller checked that it is the
 * delta's base or relies on the stream's checks, lib/delta.h) and must
 * be the op-stream version the manifest names. start: a resumed install,
 * whose slot holds the image's [0, start) already: nothing before it is
 * handed to the sink (a full payload's records start there; a delta's op
 * stream is read from its beginning and its decoder skips ahead). The
 * sink is copied; its ctx is borrowed.
 */
int tnd_image_stage_new(struct tnd_image_stage **out, const struct tnd_manifest *m, int base_fd,
			uint64_t start, const struct tnd_image_sink *sink) TND_MUST_CHECK;
/* One record's output, in record order (data NULL: a zero record). The
 * sink may be called from the delta decoder's helper thread, but only
 * within this call, never twice at once, always in image order. */
int tnd_image_stage_put(struct tnd_image_stage *s, const struct tnd_record *rec,
			const uint8_t *data) TND_MUST_CHECK;
/* After the last record: a delta's stream must have ended exactly. */
int tnd_image_stage_finish(struct tnd_image_stage *s) TND_MUST_CHECK;
/* A delta's span checks on the calling thread (lib/delta.h,
 * tnd_delta_dec_inline): for single-threaded callers such as the host's
 * tools. Call before the first put. */
void tnd_image_stage_inline(struct tnd_image_stage *s);
/* Image bytes handed to the sink so far, plus the resumed start. */
uint64_t tnd_image_stage_written(const struct tnd_image_stage *s);
/* Accepts NULL. */
void tnd_image_stage_free(struct tnd_image_stage *s);

#endif
