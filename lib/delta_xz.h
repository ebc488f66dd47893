/* SPDX-License-Identifier: MIT */
/*
 * xz streams inside images (squashfs blocks), for delta format version 2
 * (docs/delta-format.md): decoding a base image's stream and rebuilding a
 * target stream bit for bit from its contents and its encoder settings.
 * Shared by the device decoder (lib/delta.c) and the host encoder, so both
 * sides accept, decode and recompress by exactly the same rules. Built
 * only with CONFIG_DELTA_XZ (links liblzma).
 */
#ifndef TANDEM_DELTA_XZ_H
#define TANDEM_DELTA_XZ_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* How an xz stream was made: what the XZ op carries besides its sizes. */
struct tnd_dxz_settings {
	uint8_t check;	/* integrity check id: 0 none, 1 CRC32, 4 CRC64, 10 SHA-256 */
	uint8_t preset; /* liblzma preset 0..9, plus 0x80 for "extreme" */
	uint8_t dict;	/* LZMA2 dictionary-size property byte, 0..40 */
	uint8_t bcj;	/* 0, or the id of a BCJ filter before LZMA2 (4..10) */
};

#define TND_DXZ_EXTREME 0x80

/* liblzma memory a stream may need on the device. Encoder: preset 6 with
 * a 256 KiB dictionary needs 3.97 MiB (128 KiB, squashfs's default block:
 * 2.5 MiB); streams that need more are left as they are by the encoder
 * and refused by the decoder. Decoder: dictionaries up to 1 MiB. */
#define TND_DXZ_ENC_MEM (4u << 20)
#define TND_DXZ_DEC_MEM (2u << 20)

/*
 * Memory liblzma released, kept for its next stream: the caller owns it
 * (zero-initialised; tnd_dxz_mem_free() unmaps it), and passes it to
 * every call from one thread. Compressing the streams of an image asks for
 * the same sizes each time; mapping them afresh cost a squashfs delta
 * install 12% of its time in page faults and munmap. Where a function
 * takes NULL instead, nothing is kept.
 */
#define TND_DXZ_MEM_SLOTS 16
struct tnd_dxz_mem {
	struct {
		void *p;
		size_t n;
	} m[TND_DXZ_MEM_SLOTS];
	unsigned n;
};

void tnd_dxz_mem_free(struct tnd_dxz_mem *mem);

/* TND_E_FORMAT unless s names settings this build can encode within
 * TND_DXZ_ENC_MEM. */
int tnd_dxz_check(const struct tnd_dxz_settings *s) TND_MUST_CHECK;

/* Largest xz stream (single block) that n bytes can compress to. */
size_t tnd_dxz_bound(size_t n);

/*
 * Compresses in[0..n) with settings s into one xz stream, written to
 * out[0..cap); *out_len its length. TND_E_FORMAT when it does not fit.
 * The encoder's memory comes from, and goes back to, mem.
 */
int tnd_dxz_encode(struct tnd_dxz_mem *mem, const struct tnd_dxz_settings *s, const uint8_t *in,
		   size_t n, uint8_t *out, size_t cap, size_t *out_len) TND_MUST_CHECK;

/*
 * Input for tnd_dxz_decode: sets *p and *n to the next bytes of the stream's
 * source (the base image from the stream's offset on); *n == 0 at the end
 * of the base. Returns 0 or a TND_E_* code.
 */
typedef int (*tnd_dxz_input_fn)(void *ctx, const uint8_t **p, size_t *n);

/*
 * Decodes one xz stream (exactly one, no padding after it) whose first
 * byte is the first input byte, into out[0..cap). Refuses (TND_E_FORMAT)
 * anything else: no stream there, a corrupt or truncated one, more than
 * cap bytes of content, more than tnd_dxz_bound(cap) bytes of input,
 * settings needing more than TND_DXZ_DEC_MEM. *out_len: content bytes;
 * *in_len (may be NULL): the stream's length.
 */
int tnd_dxz_decode(struct tnd_dxz_mem *mem, tnd_dxz_input_fn input, void *ctx, uint8_t *out,
		   uint32_t cap, uint32_t *out_len, uint64_t *in_len) TND_MUST_CHECK;

/*
 * Reads the settings of the xz stream p[0..n) from its stream and block
 * headers (encoder side). Returns 0, or TND_E_UNSUPPORTED when the headers
 * name something an XZ op cannot express (other filters, filter options).
 * The preset is not in the headers: *s gets preset 6, the caller tries
 * others when recompression does not match.
 */
int tnd_dxz_probe(const uint8_t *p, size_t n, struct tnd_dxz_settings *s) TND_MUST_CHECK;

#endif
