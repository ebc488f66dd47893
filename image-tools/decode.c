// SPDX-License-Identifier: MIT
/*
 * The host's whole-bundle decode (image_tools.h, tnd_bundle_decode), for
 * verify and publish: every record authenticated and expanded through
 * the record decoder the device uses (lib/record.c), the image hashed
 * and, when asked, written to a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"
#include "chunk.h"
#include "image_tools.h"
#include "record.h"
#include "util.h"

/* The image, as the stage hands it out: hashed, and written to fd when
 * the caller wants it (sequentially: a pipe is fine). */
struct image_out {
	struct tnd_sha256 h;
	int fd;
	uint64_t written;
};

static int put(struct image_out *o, const uint8_t *data, size_t len)
{
	int r;

	tnd_sha256_update(&o->h, data, len);
	if (o->fd >= 0 && (r = tnd_write_full(o->fd, data, len)))
		return tnd_err_errno(TND_E_IO, -r, "cannot write the image");
	o->written += len;
	return 0;
}

static int out_write(void *ctx, uint64_t off, const uint8_t *data, size_t len, uint32_t crc)
{
	struct image_out *o = ctx;

	(void)crc;
	if (off != o->written)
		return tnd_err_set(TND_E_INTERNAL, "image written out of order");
	return put(o, data, len);
}

static int out_zero(void *ctx, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];
	struct image_out *o = ctx;
	int r = 0;

	if (off != o->written)
		return tnd_err_set(TND_E_INTERNAL, "image written out of order");
	while (len && !r) {
		size_t n = len > sizeof(zeros) ? sizeof(zeros) : (size_t)len;

		r = put(o, zeros, n);
		len -= n;
	}
	return r;
}

/* Without its base a delta yields no image: only the chain and the
 * records are checked, and nothing is written. */
static int discard_write(void *ctx, uint64_t off, const uint8_t *d, size_t len, uint32_t crc)
{
	(void)ctx, (void)off, (void)d, (void)len, (void)crc;
	return 0;
}

static int discard_zero(void *ctx, uint64_t off, uint64_t len)
{
	(void)ctx, (void)off, (void)len;
	return 0;
}

int tnd_bundle_decode(struct tnd_bundle_reader *r, const char *base_path, int out_fd,
		      bool *image_checked)
{
	const struct tnd_manifest *m = &r->manifest;
	bool delta = m->payload_type == TND_PAYLOAD_DELTA;
	struct image_out out = {.fd = out_fd};
	struct tnd_image_sink sink = {.write = out_write, .zero = out_zero, .ctx = &out};
	struct tnd_image_stage *stage = NULL;
	struct tnd_manifest stream_only;
	uint8_t *in = malloc(m->chunk_size), *buf = malloc(m->chunk_size);
	uint8_t got[TND_SHA256_LEN];
	struct tnd_inflater inf;
	struct tnd_record rec;
	int ret, base_fd = -1;

	*image_checked = !delta || base_path;
	tnd_sha256_init(&out.h);
	if (!in || !buf || tnd_inflater_init(&inf)) {
		free(in);
		free(buf);
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	}
	if (delta && base_path) {
		if ((base_fd = open(base_path, O_RDONLY | O_CLOEXEC)) < 0) {
			ret = tnd_err_errno(TND_E_IO, errno, "cannot open %s", base_path);
			goto out;
		}
		if (!(ret = tnd_image_stage_new(&stage, m, base_fd, 0, &sink)))
			tnd_image_stage_inline(stage);
	} else if (delta) {
		/* the op stream alone: records checked, nothing decoded */
		stream_only = *m;
		stream_only.payload_type = TND_PAYLOAD_FULL;
		sink = (struct tnd_image_sink){.write = discard_write, .zero = discard_zero};
		ret = tnd_image_stage_new(&stage, &stream_only, -1, 0, &sink);
	} else {
		ret = tnd_image_stage_new(&stage, m, -1, 0, &sink);
	}
	if (ret)
		goto out;
	while ((ret = tnd_bundle_next(r, &rec, in, m->chunk_size)) == 1) {
		const uint8_t *data;

		if ((ret = tnd_record_expand(&inf, &rec, in, buf, true, &data)) ||
		    (ret = tnd_image_stage_put(stage, &rec, data)))
			break;
	}
	if (!ret)
		ret = tnd_image_stage_finish(stage);
	tnd_sha256_final(&out.h, got);
	if (!ret && *image_checked && memcmp(got, m->image_sha256, TND_SHA256_LEN) != 0)
		ret = tnd_err_set(TND_E_FORMAT, "image SHA-256 differs from the manifest");
out:
	tnd_image_stage_free(stage);
	if (base_fd >= 0)
		close(base_fd);
	tnd_inflater_free(&inf);
	free(in);
	free(buf);
	return ret;
}
