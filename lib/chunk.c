// SPDX-License-Identifier: MIT
#include "chunk.h"

#include <string.h>

#ifdef CONFIG_INFLATE_LIBDEFLATE
int tnd_inflater_init(struct tnd_inflater *inf)
{
	memset(inf, 0, sizeof(*inf));
	inf->d = libdeflate_alloc_decompressor();
	if (!inf->d)
		return tnd_err_set(TND_E_NOMEM, "cannot set up libdeflate");
	inf->ready = 1;
	return 0;
}

void tnd_inflater_free(struct tnd_inflater *inf)
{
	if (inf && inf->ready) {
		libdeflate_free_decompressor(inf->d);
		inf->ready = 0;
	}
}

int tnd_inflate_chunk(struct tnd_inflater *inf, const uint8_t *in, size_t in_len, uint8_t *out,
		      size_t out_len)
{
	size_t in_used = 0, got = 0;
	enum libdeflate_result r;

	r = libdeflate_deflate_decompress_ex(inf->d, in, in_len, out, out_len, &in_used, &got);
	if (r != LIBDEFLATE_SUCCESS || got != out_len || in_used != in_len)
		return tnd_err_set(TND_E_FORMAT, "compressed chunk does not inflate to %zu bytes",
				   out_len);
	return 0;
}

uint32_t tnd_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
	return libdeflate_crc32(crc, data, len);
}
#else
int tnd_inflater_init(struct tnd_inflater *inf)
{
	memset(inf, 0, sizeof(*inf));
	if (inflateInit2(&inf->zs, -15) != Z_OK)
		return tnd_err_set(TND_E_NOMEM, "cannot set up zlib inflate");
	inf->ready = 1;
	return 0;
}

void tnd_inflater_free(struct tnd_inflater *inf)
{
	if (inf && inf->ready) {
		inflateEnd(&inf->zs);
		inf->ready = 0;
	}
}

int tnd_inflate_chunk(struct tnd_inflater *inf, const uint8_t *in, size_t in_len, uint8_t *out,
		      size_t out_len)
{
	z_stream *zs = &inf->zs;
	int zr;

	if (inflateReset(zs) != Z_OK)
		return tnd_err_set(TND_E_INTERNAL, "zlib inflateReset failed");
	zs->next_in = (Bytef *)in;
	zs->avail_in = (uInt)in_len;
	zs->next_out = out;
	zs->avail_out = (uInt)out_len;
	zr = inflate(zs, Z_FINISH);
	if (zr != Z_STREAM_END || zs->avail_out != 0 || zs->avail_in != 0)
		return tnd_err_set(TND_E_FORMAT,
				   "compressed chunk does not inflate to %zu bytes (%s)", out_len,
				   zs->msg ? zs->msg : "length mismatch");
	return 0;
}

uint32_t tnd_crc32_update(uint32_t crc, const uint8_t *data, size_t len)
{
	uLong c = crc;

	/* zlib takes uInt lengths: feed huge buffers in pieces. */
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, data, n);
		data += n;
		len -= n;
	}
	return (uint32_t)c;
}
#endif

int tnd_deflater_init(struct tnd_deflater *def, int level)
{
	memset(def, 0, sizeof(*def));
	if (deflateInit2(&def->zs, level, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return tnd_err_set(TND_E_NOMEM, "cannot set up zlib deflate");
	def->ready = 1;
	return 0;
}

void tnd_deflater_free(struct tnd_deflater *def)
{
	if (def && def->ready) {
		deflateEnd(&def->zs);
		def->ready = 0;
	}
}

size_t tnd_deflate_chunk(struct tnd_deflater *def, const uint8_t *in, size_t in_len, uint8_t *out,
			 size_t cap)
{
	z_stream *zs = &def->zs;

	if (deflateReset(zs) != Z_OK)
		return 0;
	zs->next_in = (Bytef *)in;
	zs->avail_in = (uInt)in_len;
	zs->next_out = out;
	zs->avail_out = (uInt)(cap < in_len ? cap : in_len);
	/* Output space is capped at the input size: Z_BUF_ERROR / Z_OK
	 * here means "not smaller", and the caller stores the chunk. */
	if (deflate(zs, Z_FINISH) != Z_STREAM_END)
		return 0;
	if (zs->total_out >= in_len)
		return 0;
	return zs->total_out;
}

uint32_t tnd_crc32(const uint8_t *data, size_t len)
{
	return tnd_crc32_update(0, data, len);
}

uint32_t tnd_crc32_combine(uint32_t a, uint32_t b, uint64_t len_b)
{
	return (uint32_t)crc32_combine(a, b, (z_off_t)len_b);
}

uint32_t tnd_crc32_zeros(uint64_t len)
{
	static const uint8_t zero = 0;
	uint32_t acc = 0, blk = (uint32_t)crc32(0L, &zero, 1); /* 2^k zero bytes */

	for (uint64_t n = 1; len; n <<= 1, len >>= 1) {
		if (len & 1)
			acc = tnd_crc32_combine(acc, blk, n);
		if (len > 1)
			blk = tnd_crc32_combine(blk, blk, n);
	}
	return acc;
}
