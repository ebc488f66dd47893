// SPDX-License-Identifier: MIT
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "util.h"

int tnd_record_expand(struct tnd_inflater *inf, const struct tnd_record *rec, const uint8_t *in,
		      uint8_t *buf, bool check_crc, const uint8_t **out)
{
	int ret;

	switch (rec->type) {
	case TND_REC_ZERO:
		*out = NULL;
		return 0;
	case TND_REC_DEFLATE:
		if ((ret = tnd_inflate_chunk(inf, in, rec->stored_len, buf, rec->out_len)))
			return tnd_err_prefix(ret, "chunk %u", rec->index);
		*out = buf;
		break;
	default: /* TND_REC_STORED: tnd_bundle_authenticate refused other types */
		*out = in;
		break;
	}
	if (check_crc && tnd_crc32(*out, rec->out_len) != rec->out_crc32)
		return tnd_err_set(TND_E_FORMAT, "chunk %u: CRC-32 mismatch", rec->index);
	return 0;
}

struct tnd_image_stage {
	struct tnd_image_sink sink;
	struct tnd_delta_dec *dec; /* NULL for a full payload */
	uint64_t start;		   /* a resume: the slot holds [0, start) */
	uint64_t off;		   /* image offset of the next byte the decoder emits */
	uint64_t written;	   /* image offset reached */
};

/* The delta decoder's output (lib/delta.h: at most one check span at a
 * time, checked against the signed stream where its version has checks):
 * on to the sink, zero runs as such, what a resume already has dropped. */
static int delta_emit(void *ctx, const uint8_t *data, size_t len, uint32_t crc)
{
	struct tnd_image_stage *s = ctx;
	int ret;

	if (s->off + len <= s->start) {
		s->off += len;
		return 0;
	}
	if (s->off < s->start) {
		data += s->start - s->off;
		len -= (size_t)(s->start - s->off);
		s->off = s->start;
		crc = tnd_crc32(data, len); /* of the part handed on */
	}
	if (tnd_is_zero(data, len))
		ret = s->sink.zero(s->sink.ctx, s->off, len);
	else
		ret = s->sink.write(s->sink.ctx, s->off, data, len, crc);
	s->off += len;
	s->written = s->off;
	return ret;
}

int tnd_image_stage_new(struct tnd_image_stage **out, const struct tnd_manifest *m, int base_fd,
			uint64_t start, const struct tnd_image_sink *sink)
{
	struct tnd_image_stage *s;
	int ret;

	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	s->sink = *sink;
	s->start = s->written = start;
	if (m->payload_type == TND_PAYLOAD_DELTA) {
		if (base_fd < 0) {
			free(s);
			return tnd_err_set(TND_E_INTERNAL, "delta without a base");
		}
		if ((ret = tnd_delta_dec_new(&s->dec, base_fd, m->base_size, m->image_size))) {
			free(s);
			return ret;
		}
		/* The decoder emits from the check span that holds start on;
		 * delta_emit drops what lies before start. */
		s->off = start - start % TND_DELTA_CHECK_SPAN;
		tnd_delta_dec_skip_to(s->dec, start);
		/* The manifest said which format the stream is: it must be. */
		tnd_delta_dec_require(s->dec, m->delta_format);
	}
	*out = s;
	return 0;
}

int tnd_image_stage_put(struct tnd_image_stage *s, const struct tnd_record *rec,
			const uint8_t *data)
{
	static const uint8_t zeros[4096];
	int ret = 0;

	if (!s->dec) {
		ret = data ? s->sink.write(s->sink.ctx, rec->out_offset, data, rec->out_len,
					   rec->out_crc32)
			   : s->sink.zero(s->sink.ctx, rec->out_offset, rec->out_len);
		if (!ret)
			s->written = rec->out_offset + rec->out_len;
		return ret;
	}
	if (data)
		return tnd_delta_dec_feed(s->dec, data, rec->out_len, delta_emit, s);
	/* a run of zeros in the op stream (the builder makes zero records of
	 * whatever it chunks): fed in small pieces, never allocated */
	for (uint64_t left = rec->out_len; left && !ret;) {
		size_t n = left > sizeof(zeros) ? sizeof(zeros) : (size_t)left;

		ret = tnd_delta_dec_feed(s->dec, zeros, n, delta_emit, s);
		left -= n;
	}
	return ret;
}

int tnd_image_stage_finish(struct tnd_image_stage *s)
{
	return s->dec ? tnd_delta_dec_finish(s->dec) : 0;
}

void tnd_image_stage_inline(struct tnd_image_stage *s)
{
	if (s->dec)
		tnd_delta_dec_inline(s->dec);
}

uint64_t tnd_image_stage_written(const struct tnd_image_stage *s)
{
	return s->written;
}

void tnd_image_stage_free(struct tnd_image_stage *s)
{
	if (!s)
		return;
	tnd_delta_dec_free(s->dec);
	free(s);
}
