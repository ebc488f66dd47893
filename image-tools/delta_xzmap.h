/* SPDX-License-Identifier: MIT */
/*
 * The delta encoder's view of xz streams in an image (format version 2,
 * docs/delta-format.md): an "expanded" copy of the image in which xz
 * streams are replaced by their contents, and the map from expanded
 * offsets back to the image. The encoder diffs
 * the expanded target against the expanded base and translates each op
 * through the maps. Without xz streams (or without CONFIG_DELTA_XZ) the
 * map is one raw piece and the expanded image is the image itself.
 */
#ifndef TANDEM_DELTA_XZMAP_H
#define TANDEM_DELTA_XZMAP_H

#include <stdbool.h>
#include <stddef.h>
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
/*
 * Both images' maps. Target: xz streams that liblzma rebuilds bit for bit
 * and that the base does not hold byte for byte are replaced by their
 * contents. Base: streams the target does not hold are replaced by their
 * contents (for XCOPY/XADD), the others stay as they are (for COPY).
 */
int tnd_xzmap_pair(const uint8_t *base, uint64_t bsize, const uint8_t *tgt, uint64_t tsize,
		   unsigned threads, int verbose, struct xz_map *bm,
		   struct xz_map *tm) TND_MUST_CHECK;
#endif

/* Index of the piece holding expanded offset x (x < m->size). */
size_t tnd_xzmap_find(const struct xz_map *m, uint64_t x);

void tnd_xzmap_free(struct xz_map *m);

#endif
