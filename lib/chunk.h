/* SPDX-License-Identifier: MIT */
/*
 * Chunk data codec: raw deflate streams (no zlib header or Adler-32: the
 * record's SHA-256 already authenticates the data, and its CRC-32 checks
 * the output). Compression uses zlib. Decompression uses libdeflate when
 * CONFIG_INFLATE_LIBDEFLATE is set (a chunk is one buffer of known output
 * size, its best case) and zlib otherwise. One decompressor per thread,
 * reused, so nothing is allocated per chunk.
 */
#ifndef TANDEM_CHUNK_H
#define TANDEM_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>
#ifdef CONFIG_INFLATE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "error.h"

struct tnd_inflater {
#ifdef CONFIG_INFLATE_LIBDEFLATE
	struct libdeflate_decompressor *d;
#else
	z_stream zs;
#endif
	int ready;
};

int tnd_inflater_init(struct tnd_inflater *inf) TND_MUST_CHECK;
void tnd_inflater_free(struct tnd_inflater *inf);
/* Inflates in[0..in_len) into exactly out_len bytes; anything else
 * (short, long, trailing input) is TND_E_FORMAT. */
int tnd_inflate_chunk(struct tnd_inflater *inf, const uint8_t *in, size_t in_len, uint8_t *out,
		      size_t out_len) TND_MUST_CHECK;

struct tnd_deflater {
	z_stream zs;
	int ready;
};

int tnd_deflater_init(struct tnd_deflater *def, int level) TND_MUST_CHECK;
void tnd_deflater_free(struct tnd_deflater *def);
/* Deflates in into out (cap bytes). Returns the compressed length, or 0
 * when it would not be smaller than in (store it instead). */
size_t tnd_deflate_chunk(struct tnd_deflater *def, const uint8_t *in, size_t in_len, uint8_t *out,
			 size_t cap);

uint32_t tnd_crc32(const uint8_t *data, size_t len);
/* Continues crc (a CRC-32 of what came before; 0 to start) over data. */
uint32_t tnd_crc32_update(uint32_t crc, const uint8_t *data, size_t len);
/* CRC-32 of a followed by b, from their CRCs (b is len_b bytes long). */
uint32_t tnd_crc32_combine(uint32_t a, uint32_t b, uint64_t len_b);
/* CRC-32 of len zero bytes, in O(log len) steps. */
uint32_t tnd_crc32_zeros(uint64_t len);

#endif
