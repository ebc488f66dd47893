/* SPDX-License-Identifier: MIT */
/*
 * The delta encoder's view of xz streams in an image (format version 2,
 * docs/delta-format.md): an "expanded" copy of the image in which xz
 * streams are replaced by (target) or followed by (base) their contents,
 * and the map from expanded offsets back to the image. The encoder diffs
 * the expanded target against the expanded base and translates each op
 * through the maps. Without xz streams (or without CONFIG_DELTA_XZ) the
 * map is one raw piece and the expanded image is the image itself.
 */
#ifndef TANDEM_DELTA_XZMAP_H
#define TANDEM_DELTA_XZMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#ifdef CONFIG_DELTA_XZ
#include "delta_xz.h"
#endif

struct xz_piece {
	uint64_t x0, len; /* range in the expanded image */
	/* raw: image offset of x0; content: image offset of the xz stream */
	uint64_t off;
	bool content;
	/* target content pieces: how to rebuild the stream */
	uint64_t clen;
	uint32_t crc;
#ifdef CONFIG_DELTA_XZ
	struct tnd_dxz_settings set;
#endif
};

struct xz_map {
	struct xz_piece *p;
	size_t n;
	const uint8_t *data; /* the expanded image (the image itself if own is NULL) */
	uint8_t *own;
	uint64_t size;
	uint32_t max_content; /* largest content piece */
	/* what the scan found, for the encoder's statistics */
	uint64_t streams, expanded, same, irreproducible, too_big;
	uint64_t expanded_clen, expanded_ulen;
};

/* Identity map: the image as one raw piece. */
int tnd_xzmap_plain(const uint8_t *img, uint64_t size, struct xz_map *m) TND_MUST_CHECK;

#ifdef CONFIG_DELTA_XZ
/* Base: every decodable xz stream stays in place and its content follows
 * it, so ops can read either. */
int tnd_xzmap_base(const uint8_t *img, uint64_t size, unsigned threads,
		   struct xz_map *m) TND_MUST_CHECK;
/* Target: xz streams that liblzma rebuilds bit for bit and that are not
 * byte-identical to a stream of the base are replaced by their contents. */
int tnd_xzmap_target(const uint8_t *img, uint64_t size, const uint8_t *base,
		     const struct xz_map *bm, unsigned threads, int verbose,
		     struct xz_map *m) TND_MUST_CHECK;
#endif

/* Index of the piece holding expanded offset x (x < m->size). */
size_t tnd_xzmap_find(const struct xz_map *m, uint64_t x);

void tnd_xzmap_free(struct xz_map *m);

#endif
