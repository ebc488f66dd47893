// SPDX-License-Identifier: MIT
/*
 * xz streams for delta format version 2: see delta_xz.h. liblzma does the
 * work; this file fixes the rules both sides share (which settings an op
 * may name, memory limits, what counts as one whole stream).
 */
#include "delta_xz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <lzma.h>

/*
 * liblzma's allocations are mapped directly, and kept in a tnd_dxz_mem for
 * the next stream rather than unmapped: the encoder needs 2.5 MiB for a
 * 128 KiB squashfs block, the decoder a few hundred KiB. With malloc,
 * glibc's adaptive mmap threshold would keep them in the heap whatever
 * their use; mapped, what is resident is what liblzma asked for plus the
 * few mappings kept (the encoder's, while a base stream is decoded).
 */
#define MAP_HDR 16

static void *map_alloc(void *opaque, size_t nmemb, size_t size)
{
	struct tnd_dxz_mem *mem = opaque;
	uint8_t *p;
	size_t n;

	if (size && nmemb > (SIZE_MAX - MAP_HDR) / size)
		return NULL;
	n = nmemb * size + MAP_HDR;
	for (unsigned i = 0; mem && i < mem->n; i++)
		if (mem->m[i].n == n) {
			p = mem->m[i].p;
			mem->m[i] = mem->m[--mem->n];
			return p + MAP_HDR;
		}
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memcpy(p, &n, sizeof(n));
	return p + MAP_HDR;
}

static void map_free(void *opaque, void *ptr)
{
	struct tnd_dxz_mem *mem = opaque;
	uint8_t *p;
	size_t n;

	if (!ptr)
		return;
	p = (uint8_t *)ptr - MAP_HDR;
	memcpy(&n, p, sizeof(n));
	if (mem && mem->n < TND_DXZ_MEM_SLOTS) {
		mem->m[mem->n].p = p;
		mem->m[mem->n++].n = n;
		return;
	}
	munmap(p, n);
}

void tnd_dxz_mem_free(struct tnd_dxz_mem *mem)
{
	while (mem->n) {
		mem->n--;
		munmap(mem->m[mem->n].p, mem->m[mem->n].n);
	}
}

static bool check_ok(uint8_t c)
{
	return (c == LZMA_CHECK_NONE || c == LZMA_CHECK_CRC32 || c == LZMA_CHECK_CRC64 ||
		c == LZMA_CHECK_SHA256) &&
	       lzma_check_is_supported((lzma_check)c);
}

/* Settings -> liblzma filter chain (f needs 3 entries). */
static int to_filters(const struct tnd_dxz_settings *s, lzma_options_lzma *opt, lzma_filter *f)
{
	uint32_t level = s->preset & 0x7f;
	int i = 0;

	if (level > 9 || s->dict > 40 || !check_ok(s->check) ||
	    lzma_lzma_preset(opt, level | (s->preset & TND_DXZ_EXTREME ? LZMA_PRESET_EXTREME : 0)))
		return tnd_err_set(TND_E_FORMAT,
				   "delta: xz settings check %u, preset %u%s, dictionary %u "
				   "not supported",
				   s->check, level, s->preset & TND_DXZ_EXTREME ? "e" : "",
				   s->dict);
	/* LZMA2's dictionary property: 2 or 3 times a power of two */
	opt->dict_size = s->dict == 40 ? UINT32_MAX : (2u | (s->dict & 1u)) << (s->dict / 2 + 11);
	if (s->bcj) {
		if (s->bcj < LZMA_FILTER_X86 || s->bcj > 0x0a ||
		    !lzma_filter_encoder_is_supported(s->bcj))
			return tnd_err_set(TND_E_FORMAT,
					   "delta: xz filter 0x%02x not supported by this build",
					   s->bcj);
		f[i].id = s->bcj;
		f[i++].options = NULL;
	}
	f[i].id = LZMA_FILTER_LZMA2;
	f[i++].options = opt;
	f[i].id = LZMA_VLI_UNKNOWN;
	f[i].options = NULL;
	return 0;
}

int tnd_dxz_check(const struct tnd_dxz_settings *s)
{
	lzma_options_lzma opt;
	lzma_filter f[3];
	uint64_t mem;
	int r = to_filters(s, &opt, f);

	if (r)
		return r;
	mem = lzma_raw_encoder_memusage(f);
	if (mem > TND_DXZ_ENC_MEM)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: xz settings need %llu KiB to compress, over the "
				   "%u KiB limit",
				   (unsigned long long)(mem / 1024), TND_DXZ_ENC_MEM / 1024);
	return 0;
}

size_t tnd_dxz_bound(size_t n)
{
	return lzma_stream_buffer_bound(n);
}

int tnd_dxz_encode(struct tnd_dxz_mem *mem, const struct tnd_dxz_settings *s, const uint8_t *in,
		   size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	const lzma_allocator alloc = {map_alloc, map_free, mem};
	lzma_options_lzma opt;
	lzma_filter f[3];
	size_t pos = 0;
	lzma_ret lr;
	int r = tnd_dxz_check(s);

	*out_len = 0;
	if (r)
		return r;
	r = to_filters(s, &opt, f);
	if (r)
		return r;
	lr = lzma_stream_buffer_encode(f, (lzma_check)s->check, &alloc, in, n, out, &pos, cap);
	if (lr == LZMA_MEM_ERROR)
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory compressing an xz stream");
	if (lr != LZMA_OK)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: %zu bytes do not compress to at most %zu xz bytes (%d)",
				   n, cap, (int)lr);
	*out_len = pos;
	return 0;
}

int tnd_dxz_decode(struct tnd_dxz_mem *mem, tnd_dxz_input_fn input, void *ctx, uint8_t *out,
		   uint32_t cap, uint32_t *out_len, uint64_t *in_len)
{
	const lzma_allocator alloc = {map_alloc, map_free, mem};
	lzma_stream z = LZMA_STREAM_INIT;
	uint64_t given = 0, in_max = tnd_dxz_bound(cap);
	lzma_ret lr;
	int r = 0;

	*out_len = 0;
	z.allocator = &alloc;
	/* No flags: exactly one stream, and decoding stops at its footer. */
	if (lzma_stream_decoder(&z, TND_DXZ_DEC_MEM, 0) != LZMA_OK)
		return tnd_err_set(TND_E_NOMEM, "delta: cannot set up an xz decoder");
	z.next_out = out;
	z.avail_out = cap;
	for (;;) {
		if (!z.avail_in) {
			const uint8_t *p;
			size_t n;

			if (given == in_max) {
				r = tnd_err_set(TND_E_FORMAT,
						"delta: base xz stream longer than %llu bytes",
						(unsigned long long)in_max);
				break;
			}
			r = input(ctx, &p, &n);
			if (r)
				break;
			if (!n) {
				r = tnd_err_set(TND_E_FORMAT,
						"delta: base xz stream truncated at the end of the "
						"base");
				break;
			}
			if (n > in_max - given)
				n = (size_t)(in_max - given);
			z.next_in = p;
			z.avail_in = n;
			given += n;
		}
		lr = lzma_code(&z, LZMA_RUN);
		if (lr == LZMA_STREAM_END)
			break;
		if (lr == LZMA_OK)
			continue;
		if (lr == LZMA_BUF_ERROR && !z.avail_out)
			r = tnd_err_set(TND_E_FORMAT,
					"delta: base xz stream holds more than %u bytes", cap);
		else if (lr == LZMA_MEMLIMIT_ERROR)
			r = tnd_err_set(TND_E_FORMAT,
					"delta: base xz stream needs more than %u KiB to decode",
					TND_DXZ_DEC_MEM / 1024);
		else if (lr == LZMA_MEM_ERROR)
			r = tnd_err_set(TND_E_NOMEM, "delta: out of memory decoding xz");
		else
			r = tnd_err_set(TND_E_FORMAT, "delta: no valid xz stream in the base (%d)",
					(int)lr);
		break;
	}
	if (!r) {
		*out_len = cap - (uint32_t)z.avail_out;
		if (in_len)
			*in_len = z.total_in;
	}
	lzma_end(&z);
	return r;
}

int tnd_dxz_probe(const uint8_t *p, size_t n, struct tnd_dxz_settings *s)
{
	lzma_filter f[LZMA_FILTERS_MAX + 1];
	lzma_stream_flags sf;
	lzma_block b;
	uint8_t prop = 0;
	int r = 0, nf, i;

	memset(s, 0, sizeof(*s));
	if (n < LZMA_STREAM_HEADER_SIZE + 1 || lzma_stream_header_decode(&sf, p) != LZMA_OK)
		return tnd_err_set(TND_E_UNSUPPORTED, "no xz stream header");
	p += LZMA_STREAM_HEADER_SIZE;
	n -= LZMA_STREAM_HEADER_SIZE;
	memset(&b, 0, sizeof(b));
	b.version = 0;
	b.check = sf.check;
	b.filters = f;
	b.header_size = lzma_block_header_size_decode(p[0]);
	if (p[0] == 0 || b.header_size > n || lzma_block_header_decode(&b, NULL, p) != LZMA_OK)
		return tnd_err_set(TND_E_UNSUPPORTED, "no xz block header");
	for (nf = 0; f[nf].id != LZMA_VLI_UNKNOWN; nf++)
		;
	if (nf < 1 || nf > 2 || f[nf - 1].id != LZMA_FILTER_LZMA2 ||
	    lzma_properties_size(&(uint32_t){0}, &f[nf - 1]) != LZMA_OK)
		r = TND_E_UNSUPPORTED;
	if (!r && nf == 2) {
		const lzma_options_bcj *bo = f[0].options;

		if (f[0].id < LZMA_FILTER_X86 || f[0].id > 0x0a || (bo && bo->start_offset))
			r = TND_E_UNSUPPORTED;
		else
			s->bcj = (uint8_t)f[0].id;
	}
	if (!r && lzma_properties_encode(&f[nf - 1], &prop) != LZMA_OK)
		r = TND_E_UNSUPPORTED;
	for (i = 0; i < nf; i++)
		free(f[i].options);
	if (r)
		return tnd_err_set(TND_E_UNSUPPORTED, "xz filters an XZ op cannot express");
	s->check = (uint8_t)sf.check;
	s->preset = 6;
	s->dict = prop;
	return 0;
}
