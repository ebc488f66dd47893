/* SPDX-License-Identifier: MIT */
/*
 * Delta encoder (host side): writes the op stream of lib/delta.h for a
 * base -> target image pair. Whole-block reuse (aligned blocks found
 * anywhere in the base, as filesystems move files) plus bsdiff-style
 * approximate matching of the changed regions against a hash index of
 * the whole base; control, diff and extra bytes go to separate compressed
 * sub-streams (the trick that makes bsdiff's diffs small).
 */
#ifndef TANDEM_DELTA_ENCODE_H
#define TANDEM_DELTA_ENCODE_H

#include <stdint.h>

#include "delta.h"
#include "error.h"

struct tnd_delta_enc_opts {
	int level;	     /* deflate level of the sub-streams, 1..9; 0: 9 */
	unsigned threads;    /* worker threads; 0: online CPUs */
	unsigned block_size; /* whole-block reuse granule, a multiple of 8; 0: 4096 */
	int verbose;	     /* progress and timing on stderr */
	/* Never rebuild xz streams on the device (the even versions), for
	 * devices built without CONFIG_DELTA_XZ. Builds without it never do. */
	int no_xz;
	/* Format version to write, 1 to 6; 0: the newest, 6. Versions come in
	 * pairs: 1 and 2 unchecked, 3 and 4 with CRC-32 checks, 5 and 6 with
	 * SHA-256 checks (docs/delta-format.md); the odd one of a pair is
	 * written when no xz stream is rebuilt (an odd format, no_xz, or
	 * nothing to rebuild). */
	unsigned format;
};

struct tnd_delta_stats {
	uint64_t base_size, target_size;
	uint64_t out_size; /* op stream bytes written */
	uint64_t n_ops, n_frames;
	uint64_t checks; /* CHECK records, one per check span of target */
	/* target bytes produced by each op kind */
	uint64_t copy_bytes, add_bytes, extra_bytes, fill_bytes;
	uint64_t block_bytes; /* of copy_bytes: found by whole-block reuse */
	uint64_t raw[TND_DELTA_NSTREAMS], comp[TND_DELTA_NSTREAMS];
	double t_index, t_match, t_compress, t_total; /* seconds */
	/* format version 2 */
	int version;		    /* of the op stream written: 1..6, even with xz ops */
	uint64_t xz_base_streams;   /* xz streams found in the base */
	uint64_t xz_target_streams; /* ... in the target */
	uint64_t xz_streams;	    /* target streams rebuilt (XZ ops) */
	uint64_t xz_clen, xz_ulen;  /* their bytes, compressed and content */
	uint64_t xz_loads;	    /* base streams the decoder will decode */
	double t_xz;		    /* seconds spent finding and checking them */
};

/*
 * Writes the op stream for base_path -> target_path to out_fd (borrowed,
 * written sequentially from its current position). o may be NULL for the
 * defaults; st may be NULL. The images are mapped read-only; host memory
 * is about base + target + half a byte per base byte (the index), plus
 * the diff bytes of ADD ops before they are compressed; with xz streams
 * rebuilt, both expanded images instead of the mapped ones. Bases of up
 * to 32 GiB.
 */
int tnd_delta_encode(const char *base_path, const char *target_path, int out_fd,
		     const struct tnd_delta_enc_opts *o, struct tnd_delta_stats *st) TND_MUST_CHECK;

#endif
