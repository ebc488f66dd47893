/* SPDX-License-Identifier: MIT */
/*
 * Delta op stream: format constants and the device-side decoder.
 *
 * The op stream turns a base image (the active slot) into a target image.
 * It is consumed strictly in order (never seeks), reads the base with
 * pread at random, and emits the target strictly sequentially. The full
 * byte layout is in docs/delta-format.md; the encoder lives in
 * image-tools/delta_encode.c.
 *
 * Layout in one line: a 28-byte header, then frames. Each frame carries a
 * piece of one of three sub-streams (control ops, diff bytes, extra bytes),
 * each sub-stream being one compressed stream cut at flush points, so the
 * decoder holds at most one frame's worth of each plus the codec state:
 * its memory does not depend on the image sizes (TND_DELTA_DEC_MEM).
 */
#ifndef TANDEM_DELTA_H
#define TANDEM_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TND_DELTA_MAGIC	  "TNDD"
#define TND_DELTA_VERSION 1
#define TND_DELTA_HDR_LEN 28
/* Uncompressed bytes a frame may carry: 64 KiB. Fixed by the format so a
 * stream cannot ask the device for bigger buffers. */
#define TND_DELTA_FRAME_LOG2 16
#define TND_DELTA_FRAME_MAX  ((uint32_t)1 << TND_DELTA_FRAME_LOG2)
/* Compressed bytes a frame may carry: deflate's stored-block worst case
 * plus the flush marker fits well inside this. */
#define TND_DELTA_FRAME_CMAX (TND_DELTA_FRAME_MAX + TND_DELTA_FRAME_MAX / 64 + 64)
/* Longest op record in the control stream: tag + two 10-byte varints. */
#define TND_DELTA_OP_MAX 21

/*
 * Format version 2: version 1 plus ops that rebuild xz streams (squashfs
 * blocks) from their decompressed contents, which are diffed instead of
 * the compressed bytes. Read by builds with CONFIG_DELTA_XZ only; the
 * encoder writes version 1 whenever it uses none of the new ops. Header
 * byte 9 is then the log2 of the largest stream content an op may name.
 */
#define TND_DELTA_VERSION_XZ 2
#define TND_DELTA_OP_MAX_XZ  31 /* tag + three 10-byte varints (XCOPY, XADD) */
/*
 * Versions 3 and 4: versions 1 and 2 with a CHECK record after every
 * TND_DELTA_CHECK_SPAN bytes of target (and after the last, shorter
 * span): the CRC-32 of that span, which the decoder compares with what it
 * made before it hands out a byte of it. A CRC-32 is no authenticator:
 * whoever can write the base can change a span and keep its CRC-32
 * (docs/security.md, "Delta against the wrong base"). Still read.
 */
#define TND_DELTA_VERSION_CHECKED    3
#define TND_DELTA_VERSION_XZ_CHECKED 4
#define TND_DELTA_CHECK_SPAN	     ((uint32_t)1 << 16)
/*
 * Versions 5 and 6: versions 3 and 4, but the CHECK record carries the
 * SHA-256 of its span, and spans are TND_DELTA_SHA_SPAN long (256 KiB:
 * 33 bytes per span cost the delta what 5 bytes per 64 KiB did, see
 * docs/delta-format.md). With the record signed in the bundle, every
 * output byte is authenticated before it is written, so the device need
 * not hash its whole booted slot first. The encoder writes these.
 */
#define TND_DELTA_VERSION_SHA	 5
#define TND_DELTA_VERSION_XZ_SHA 6
#define TND_DELTA_SHA_SPAN	 ((uint32_t)1 << 18)
#define TND_DELTA_VERSION_MAX	 TND_DELTA_VERSION_XZ_SHA

/* Does version v rebuild xz streams (ops 5 to 7)? */
static inline int tnd_delta_version_xz(unsigned v)
{
	return v == TND_DELTA_VERSION_XZ || v == TND_DELTA_VERSION_XZ_CHECKED ||
	       v == TND_DELTA_VERSION_XZ_SHA;
}

/* Does version v check every span of output before handing it out? */
static inline int tnd_delta_version_checked(unsigned v)
{
	return v >= TND_DELTA_VERSION_CHECKED && v <= TND_DELTA_VERSION_XZ_SHA;
}

/* Are those checks cryptographic: is every output byte compared with a
 * signed SHA-256 before it is handed out? (3 and 4 carry a CRC-32, which
 * finds accidents, not an attacker: for them, and for 1 and 2, the device
 * hashes the whole image as it reads it back, before it records or
 * activates it, updater/install/transaction.c.) */
static inline int tnd_delta_version_authenticated(unsigned v)
{
	return v == TND_DELTA_VERSION_SHA || v == TND_DELTA_VERSION_XZ_SHA;
}

/* Target bytes per CHECK record of version v (0: no checks). */
static inline uint32_t tnd_delta_check_span(unsigned v)
{
	return tnd_delta_version_authenticated(v) ? TND_DELTA_SHA_SPAN
	       : tnd_delta_version_checked(v)	  ? TND_DELTA_CHECK_SPAN
						  : 0;
}

/* Can this build decode op streams of version v? */
static inline int tnd_delta_version_supported(unsigned v)
{
#ifdef CONFIG_DELTA_XZ
	return v >= TND_DELTA_VERSION && v <= TND_DELTA_VERSION_MAX;
#else
	return v == TND_DELTA_VERSION || v == TND_DELTA_VERSION_CHECKED ||
	       v == TND_DELTA_VERSION_SHA;
#endif
}
#define TND_DELTA_XZ_LOG2_MIN 12
#define TND_DELTA_XZ_LOG2_MAX 20 /* 1 MiB: squashfs's largest block */
/* Decoded base streams a decoder keeps (least recently used goes); the
 * encoder replays this to avoid ops that would make it decode often. */
#define TND_DELTA_XZ_SLOTS 2

/* Sub-streams; a frame's tag is the stream index + 1, tag 0 ends the stream. */
enum tnd_delta_stream {
	TND_DELTA_S_CTRL = 0,
	TND_DELTA_S_DIFF = 1,
	TND_DELTA_S_EXTRA = 2,
	TND_DELTA_NSTREAMS = 3,
};

#define TND_DELTA_TAG_END 0
/* Tag bit: the frame's payload is its raw bytes, even in a deflate stream
 * (which still takes them into its window, see docs/delta-format.md). */
#define TND_DELTA_TAG_STORED 0x80

/* Per-stream codecs, one byte each in the header. */
enum tnd_delta_codec {
	TND_DELTA_CODEC_NONE = 0,    /* frames hold the bytes as they are */
	TND_DELTA_CODEC_DEFLATE = 1, /* one raw deflate stream, Z_SYNC_FLUSH per frame */
};

/* Control-stream op tags. */
enum tnd_delta_op {
	TND_DELTA_OP_COPY = 1,	/* len, base delta: target = base */
	TND_DELTA_OP_ADD = 2,	/* len, base delta: target = base + diff (mod 256) */
	TND_DELTA_OP_EXTRA = 3, /* len: target = extra bytes */
	TND_DELTA_OP_FILL = 4,	/* len, byte: target = byte repeated */
	/* version 2 */
	TND_DELTA_OP_XZ = 5,	/* clen, ulen, crc32, settings: the next ulen bytes
				   made by ops are the content of an xz stream of
				   clen target bytes */
	TND_DELTA_OP_XCOPY = 6, /* len, stream delta, offset delta: target = the
				   content of an xz stream in the base */
	TND_DELTA_OP_XADD = 7,	/* as XCOPY, plus diff bytes (mod 256) */
	/* versions 3 to 6 */
	TND_DELTA_OP_CHECK = 8, /* of the target span just completed, no
				   length: crc32 (4 bytes, big-endian) in 3
				   and 4, SHA-256 (32 bytes) in 5 and 6 */
};
#define TND_DELTA_CHECK_LEN	5
#define TND_DELTA_CHECK_SHA_LEN 33

/* Spans of versions 5 and 6 a decoder holds: one being made, two being
 * hashed or handed out (with the helper thread; one without). */
#define TND_DELTA_SPANS 3
/* Upper bound of the decoder's own heap use (buffers + zlib state), for
 * docs and tests: 3 stream buffers, base cache, 3 inflaters and the
 * output: one 64 KiB buffer for versions 1 to 4; for 5 and 6,
 * TND_DELTA_SPANS spans of 256 KiB (one with tnd_delta_dec_inline())
 * and 64 KiB of zeros. */
#define TND_DELTA_DEC_MEM                                                                          \
	(5 * 65536 + TND_DELTA_SPANS * (size_t)TND_DELTA_SHA_SPAN + 3 * 48 * 1024 + 4096)
/* Version 2 adds, for 2^log2-byte stream contents: the content being
 * collected, its recompressed form, two decoded base streams; plus
 * liblzma's encoder or decoder (TND_DXZ_ENC_MEM, mapped only while used). */
#define TND_DELTA_XZ_MEM(log2) (4 * ((size_t)1 << (log2)) + 65536)

/* Zigzag + LEB128 varints, shared with the encoder. */
static inline uint64_t tnd_delta_zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* Writes v as LEB128 into p (at least 10 bytes); returns the length. */
static inline size_t tnd_delta_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

struct tnd_delta_dec;

/* Largest piece of target the decoder hands out at once: 64 KiB, a check
 * span of versions 3 and 4, a quarter of one of versions 5 and 6. Pieces
 * start at multiples of it, and so does a resumed decoder's output. */
#define TND_DELTA_OUT_MAX TND_DELTA_CHECK_SPAN

/*
 * Receives target bytes in order: buf holds len bytes (1 to
 * TND_DELTA_OUT_MAX, valid during the call) whose CRC-32 (zlib's) is crc,
 * computed once by the decoder (in versions 3 and 4 it is the CRC-32 the
 * signed op stream names for them), so that the slot writer need not
 * compute it again. From version 3 on, the bytes were compared with the
 * signed op stream before the call (versions 5 and 6: their span's
 * SHA-256). Returns 0 or a negative TND_E_* code, which aborts decoding
 * and is returned as is.
 *
 * Which thread calls it: for versions 1 to 4, and for 5 and 6 after
 * tnd_delta_dec_inline(), the thread in tnd_delta_dec_feed(). For
 * versions 5 and 6 otherwise, that thread or the decoder's helper thread,
 * whichever is free when a span is ready (lib/delta.c, struct span). In
 * both cases the calls never overlap (one returns before the next
 * starts, and all that the previous one wrote is visible to the next),
 * they come in target order, and they happen only while
 * tnd_delta_dec_feed() runs: before it returns, feed() waits until every
 * span it completed is checked and handed out, so emit()'s state may be
 * read, and the slot flushed, as soon as it returns. When it returns 0,
 * everything made so far is handed out but for a span still waiting for
 * its CHECK record; tnd_delta_dec_finish() returns 0 only after all of
 * the target was. emit() must not call into the decoder nor depend on
 * which thread runs it; a message it sets with tnd_err_set() reaches the
 * caller's thread with its error.
 */
typedef int (*tnd_delta_emit_fn)(void *ctx, const uint8_t *buf, size_t len, uint32_t crc);

/*
 * Creates a decoder. base_fd (borrowed, must stay open until free) is read
 * with pread only, never beyond base_size; the decoder emits exactly
 * target_size bytes. Both sizes must equal the ones in the stream header.
 * *out is freed with tnd_delta_dec_free().
 */
int tnd_delta_dec_new(struct tnd_delta_dec **out, int base_fd, uint64_t base_size,
		      uint64_t target_size) TND_MUST_CHECK;

/*
 * The stream's header must name this version (the one a signed manifest
 * promised), or feeding it fails. Call before the first byte.
 */
void tnd_delta_dec_require(struct tnd_delta_dec *d, uint8_t version);

/*
 * Resuming: the target bytes below off, rounded down to TND_DELTA_OUT_MAX
 * (64 KiB), are already in place, and emit() sees the target from that
 * offset on. Ops whose output lies wholly below the check span holding it
 * are skipped (their sub-stream bytes consumed, the base not read, xz
 * streams not rebuilt) and those spans are neither checked nor handed
 * out; in versions 5 and 6 the span holding it (256 KiB) is made and
 * checked whole, and handed out from the rounded offset. Call before the
 * first byte.
 */
void tnd_delta_dec_skip_to(struct tnd_delta_dec *d, uint64_t off);

/*
 * Versions 5 and 6: verify spans and call emit() in the calling thread,
 * with no helper thread (for callers that want no thread, e.g. a fuzzer
 * or a host tool; it costs the caller's thread a SHA-256 of every byte).
 * Call before the first byte. If the helper thread cannot be started the
 * decoder works this way too.
 */
void tnd_delta_dec_inline(struct tnd_delta_dec *d);

/*
 * Consumes op-stream bytes in any split (down to one byte at a time) and
 * calls emit() with target bytes in order (see tnd_delta_emit_fn).
 * Malformed input is TND_E_FORMAT, a failed base read TND_E_IO, output
 * that differs from its CHECK record TND_E_INCOMPATIBLE (nothing of that
 * span or after it is handed out), an emit() error that error, returned
 * as is with its message whichever thread called emit(). Errors come in
 * target order: a span that fails its check, or whose emit() fails, is
 * reported by the feed() that completed it, in preference to an error
 * of the same call about later bytes, and nothing after it is handed
 * out. After an error the decoder only accepts tnd_delta_dec_free().
 */
int tnd_delta_dec_feed(struct tnd_delta_dec *d, const uint8_t *data, size_t len,
		       tnd_delta_emit_fn emit, void *ctx) TND_MUST_CHECK;

/* After the last byte: TND_E_FORMAT unless the stream ended cleanly with
 * exactly target_size bytes made, every span checked and handed out. */
int tnd_delta_dec_finish(struct tnd_delta_dec *d) TND_MUST_CHECK;

/* Accepts NULL, and a decoder in any state: a helper thread (idle
 * between feed() calls but for read-ahead requests) is stopped and
 * joined. Does not close base_fd. */
void tnd_delta_dec_free(struct tnd_delta_dec *d);

#endif
