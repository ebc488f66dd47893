/* SPDX-License-Identifier: MIT */
/*
 * The install pipeline: the calling thread reads records, worker threads
 * hash them in parallel, authenticate them strictly in chain order,
 * inflate them each into its own buffer and write them into the slot in
 * order, each in its turn. Records move through a fixed ring of jobs
 * allocated once, so memory is (threads + 2) chunks of input and one
 * chunk of output per worker (and one more for a delta's output),
 * whatever the image size, and no record is inflated or written before
 * it was authenticated.
 */
#ifndef TANDEM_PIPELINE_H
#define TANDEM_PIPELINE_H

#include <signal.h>
#include <stdint.h>

#include "bundle.h"
#include "slot.h"

struct tnd_pipeline_stats {
	uint64_t received; /* bundle bytes read from the source */
	uint64_t verified; /* payload bytes authenticated */
	uint64_t written;  /* image bytes written to the slot */
	uint64_t chunk;	   /* records authenticated so far */
	uint64_t chunks;   /* records in the bundle */
	uint64_t image_size;
};

/*
 * A point an interrupted install can continue from (updater/resume.c):
 * every image byte before `out` is written, durable and read back right.
 */
struct tnd_resume_point {
	uint64_t index;			/* the record to continue with */
	uint64_t payload_read;		/* payload bytes before it */
	uint64_t out;			/* the image offset it starts at */
	uint32_t prefix_crc;		/* CRC-32 of the image's [0, out) */
	uint8_t expect[TND_SHA256_LEN]; /* its hash, from the chain */
};

struct tnd_pipeline_opts {
	unsigned threads;
	/* Delta payloads: the base image (the booted slot, read only), whose
	 * hash the caller has checked; -1 for full images. */
	int base_fd;
	void (*progress)(void *ctx, const struct tnd_pipeline_stats *st);
	void *progress_ctx;
	volatile sig_atomic_t *cancel; /* set by a signal handler; may be NULL */
	/* Called from the slot writer's verifier whenever a newer point has
	 * become durable (about once per read-back window); an error fails
	 * the install. NULL: no checkpoints. For a delta the point's record
	 * is 0 (the op stream is read again from its start) and its `out` the
	 * image offset the decoder skips to. */
	int (*checkpoint)(void *ctx, const struct tnd_resume_point *pt);
	void *checkpoint_ctx;
	/* A resumed install: the slot's [0, start_out) has CRC start_crc. A
	 * full payload's reader was moved to the record at start_out
	 * (tnd_bundle_resume); a delta's starts at record 0, and its decoder
	 * skips to start_out. */
	uint64_t start_out;
	uint32_t start_crc;
};

/* Streams every record of r into w, then tnd_slot_finish(w). For a delta,
 * the writer decodes the op stream and the image it writes must hash to
 * the manifest's image SHA-256 (TND_E_INTEGRITY otherwise). */
int tnd_pipeline_run(struct tnd_bundle_reader *r, struct tnd_slot_writer *w,
		     const struct tnd_pipeline_opts *o) TND_MUST_CHECK;

#endif
