/* SPDX-License-Identifier: MIT */
/*
 * The install pipeline: the calling thread reads records, worker threads
 * hash them in parallel, authenticate them strictly in chain order,
 * expand them (lib/record.h: inflate) each into its own buffer and hand
 * them, each in its turn, to the image stage: straight into the slot for
 * a full image, through the delta decoder for a delta. Records move
 * through a fixed ring of jobs allocated once, so memory is (threads + 2)
 * chunks of input and one chunk of output per worker (and the delta
 * decoder's bounded buffers), whatever the image size, and no record is
 * expanded or written before it was authenticated.
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
 * A point an interrupted install can continue from (updater/install/
 * resume.c): every image byte before `out` is written, durable and read
 * back right. For a full payload `index` is a signed resume point of the
 * manifest (tnd_manifest_resume_point), which alone says what that
 * record must hash to; a delta's point names an image offset only.
 */
struct tnd_resume_point {
	uint64_t index;	       /* the record to continue with */
	uint64_t payload_read; /* payload bytes before it */
	uint64_t out;	       /* the image offset it starts at */
	uint32_t prefix_crc;   /* CRC-32 of the image's [0, out) */
};

struct tnd_pipeline_opts {
	unsigned threads;
	/* Delta payloads: the base image (the booted slot, read only); -1 for
	 * full images. */
	int base_fd;
	void (*progress)(void *ctx, const struct tnd_pipeline_stats *st);
	void *progress_ctx;
	volatile sig_atomic_t *cancel; /* set by a signal handler; may be NULL */
	/* Called from the slot writer's verifier whenever a newer point has
	 * become durable (about once per read-back window); an error fails
	 * the install. NULL: no checkpoints. */
	int (*checkpoint)(void *ctx, const struct tnd_resume_point *pt);
	void *checkpoint_ctx;
	/* A resumed install: the slot's [0, start_out) has CRC start_crc. A
	 * full payload's reader was moved to the record at start_out
	 * (tnd_bundle_resume); a delta's starts at record 0, and its decoder
	 * skips to start_out. */
	uint64_t start_out;
	uint32_t start_crc;
};

/* Streams every record of r into w, then tnd_slot_finish(w). What the
 * image is worth (its hash, for a delta whose stream does not
 * authenticate each span) is the caller's to check afterwards. */
int tnd_pipeline_run(struct tnd_bundle_reader *r, struct tnd_slot_writer *w,
		     const struct tnd_pipeline_opts *o) TND_MUST_CHECK;

#endif
