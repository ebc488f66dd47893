// SPDX-License-Identifier: MIT
/*
 * Delta codec: encoder/decoder round trips on synthetic image pairs, and
 * malformed op streams (truncated, corrupted, hand-made hostile ones) that
 * must be refused with TND_E_FORMAT without crashing or emitting more than
 * the target size. Sizes stay small so the suite is quick under ASan.
 */
#include "testutil.h"

#include <stdatomic.h>

#include "chunk.h"
#include "crypto.h"
#include "delta.h"
#include "delta_encode.h"
#include "error.h"
#include "util.h"
#ifdef CONFIG_DELTA_XZ
#include "delta_xz.h"
#endif

struct sink {
	uint8_t *buf;
	size_t len, cap;
	int fail_at; /* emit call number that fails, 0: never */
	int calls;
	int bad;	 /* pieces of a wrong size or CRC-32, overlapping calls */
	atomic_int busy; /* in a call: a second one must not start */
};

/* Collects the output; the CRC-32 the decoder hands over must be the
 * output's (the device writes it into the slot's read-back records). It
 * may run in the decoder's helper thread, where a cmocka assertion would
 * jump out of the wrong thread: it counts what is wrong in s->bad, which
 * the test's thread checks (sink_check). */
static int sink_emit(void *ctx, const uint8_t *buf, size_t len, uint32_t crc)
{
	struct sink *s = ctx;
	int r = 0;

	if (atomic_exchange(&s->busy, 1)) {
		s->bad++;
		return tnd_err_set(TND_E_INTERNAL, "test: emit() calls overlap");
	}
	s->calls++;
	if (s->fail_at && s->calls == s->fail_at) {
		r = tnd_err_set(TND_E_SLOT_IO, "test: emit refused");
	} else if (len == 0 || len > TND_DELTA_OUT_MAX || crc != tnd_crc32(buf, len)) {
		s->bad++;
		r = tnd_err_set(TND_E_INTERNAL, "test: a piece of %zu bytes, CRC-32 %08x", len,
				crc);
	} else if (s->len + len > s->cap) {
		uint8_t *p = realloc(s->buf, (s->len + len) * 2);

		if (p) {
			s->buf = p;
			s->cap = (s->len + len) * 2;
		} else {
			s->bad++;
			r = tnd_err_set(TND_E_NOMEM, "test: out of memory");
		}
	}
	if (!r) {
		memcpy(s->buf + s->len, buf, len);
		s->len += len;
	}
	atomic_store(&s->busy, 0);
	return r;
}

static void sink_check(const struct sink *s)
{
	assert_int_equal(s->bad, 0);
}

static uint64_t rng_state = 88172645463325252ull;

static uint8_t rnd8(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint8_t)(rng_state >> 24);
}

static uint8_t *rnd_buf(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = rnd8();
	return p;
}

/* Something like code: repetitive words with varying numbers in them. */
static uint8_t *code_buf(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = (i % 16 < 4) ? rnd8() : (uint8_t)("mov eax, [rbx+8]"[i % 16]);
	return p;
}

struct pair {
	const char *dir; /* borrowed */
	char base[PATH_MAX], target[PATH_MAX], patch[PATH_MAX];
	uint8_t *op;
	size_t op_len;
	int base_fd;
	struct tnd_delta_stats st;
};

/* Writes base and target, encodes in format version `format` (0: the
 * encoder's default), loads the op stream into p->op. */
static void encode_pair_as(struct pair *p, const char *dir, const uint8_t *b, size_t blen,
			   const uint8_t *t, size_t tlen, unsigned format)
{
	struct tnd_delta_enc_opts o = {.level = 6, .threads = 2, .format = format};
	struct tnd_delta_stats *st = &p->st;
	int fd;

	p->dir = dir;
	snprintf(p->base, sizeof(p->base), "%s/base", p->dir);
	snprintf(p->target, sizeof(p->target), "%s/target", p->dir);
	snprintf(p->patch, sizeof(p->patch), "%s/patch", p->dir);
	tu_write_file(p->base, b, blen);
	tu_write_file(p->target, t, tlen);
	fd = open(p->patch, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(tnd_delta_encode(p->base, p->target, fd, &o, st), 0);
	assert_int_equal(close(fd), 0);
	p->op = tu_read_file(p->patch, &p->op_len);
	assert_int_equal(st->out_size, p->op_len);
	assert_int_equal(st->target_size, tlen);
	p->base_fd = open(p->base, O_RDONLY);
	assert_true(p->base_fd >= 0);
}

static void encode_pair(struct pair *p, const char *dir, const uint8_t *b, size_t blen,
			const uint8_t *t, size_t tlen)
{
	encode_pair_as(p, dir, b, blen, t, tlen, 0);
}

static void free_pair(struct pair *p)
{
	close(p->base_fd);
	free(p->op);
}

/* Decodes op[0..len) in pieces of `piece` bytes, with the helper thread
 * of versions 5 and 6 (as the device) or inline; returns the first error
 * (0 if none), the output in *s. */
static int decode_as(int base_fd, uint64_t blen, uint64_t tlen, const uint8_t *op, size_t len,
		     size_t piece, struct sink *s, bool inl)
{
	struct tnd_delta_dec *d;
	size_t off = 0;
	int r;

	assert_int_equal(tnd_delta_dec_new(&d, base_fd, blen, tlen), 0);
	if (inl)
		tnd_delta_dec_inline(d);
	r = 0;
	while (off < len && !r) {
		size_t n = len - off < piece ? len - off : piece;

		r = tnd_delta_dec_feed(d, op + off, n, sink_emit, s);
		off += n;
	}
	if (!r)
		r = tnd_delta_dec_finish(d);
	tnd_delta_dec_free(d);
	sink_check(s);
	/* whatever happened, never more than the target */
	assert_true(s->len <= tlen);
	return r;
}

static int decode(int base_fd, uint64_t blen, uint64_t tlen, const uint8_t *op, size_t len,
		  size_t piece, struct sink *s)
{
	return decode_as(base_fd, blen, tlen, op, len, piece, s, false);
}

/* One scratch directory per test: forking rm -rf is slow under ASan. */
static int setup_dir(void **state)
{
	*state = tu_mkdtemp();
	return 0;
}

static int teardown_dir(void **state)
{
	tu_rmdir(*state);
	return 0;
}

static void roundtrip(const char *dir, const uint8_t *b, size_t blen, const uint8_t *t, size_t tlen,
		      size_t piece)
{
	struct pair p;
	struct sink s = {0};

	encode_pair(&p, dir, b, blen, t, tlen);
	assert_int_equal(decode(p.base_fd, blen, tlen, p.op, p.op_len, piece, &s), 0);
	assert_int_equal(s.len, tlen);
	if (tlen)
		assert_memory_equal(s.buf, t, tlen);
	free(s.buf);
	free_pair(&p);
}

static void test_identical(void **state)
{
	uint8_t *b = code_buf(300000);

	roundtrip(*state, b, 300000, b, 300000, 65536);
	free(b);
}

static void test_different(void **state)
{
	uint8_t *b = rnd_buf(100000), *t = rnd_buf(120000);

	roundtrip(*state, b, 100000, t, 120000, 65536);
	free(b);
	free(t);
}

static void test_tiny(void **state)
{
	static const size_t sizes[] = {0, 1, 4095, 4096, 4097};
	uint8_t *b = code_buf(4097), *t = code_buf(4097);
	size_t i, j;

	for (i = 0; i < TND_ARRAY_SIZE(sizes); i++)
		for (j = 0; j < TND_ARRAY_SIZE(sizes); j++) {
			roundtrip(*state, b, sizes[i], t, sizes[j], 65536);
			roundtrip(*state, b, sizes[i], b, sizes[j], 7);
		}
	free(b);
	free(t);
}

static void test_shifted_inserted(void **state)
{
	size_t n = 200000, i;
	uint8_t *b = code_buf(n), *t = malloc(n + 5000);

	assert_non_null(t);
	/* shifted by 7 bytes */
	roundtrip(*state, b, n, b + 7, n - 7, 65536);
	/* 1000 new bytes in the middle, sparse byte edits after them */
	memcpy(t, b, 100000);
	for (i = 0; i < 1000; i++)
		t[100000 + i] = rnd8();
	memcpy(t + 101000, b + 100000, n - 100000);
	for (i = 120000; i < n; i += 97)
		t[i] = (uint8_t)(t[i] + 3);
	roundtrip(*state, b, n, t, n + 1000, 65536);
	free(b);
	free(t);
}

static void test_blocks_moved(void **state)
{
	size_t nb = 64, bs = 4096, i;
	uint8_t *b = rnd_buf(nb * bs), *t = malloc(nb * bs);

	assert_non_null(t);
	for (i = 0; i < nb; i++)
		memcpy(t + i * bs, b + ((i * 37 + 5) % nb) * bs, bs);
	t[10 * bs + 100] ^= 0x55; /* one changed block */
	roundtrip(*state, b, nb * bs, t, nb * bs, 65536);
	free(b);
	free(t);
}

/* A filesystem-like image: half its blocks zero (left out of the suffix
 * array), files moved and edited between zero blocks. */
static void test_sparse_image(void **state)
{
	size_t bs = 4096, nb = 96, i;
	uint8_t *b = calloc(nb, bs), *t = calloc(nb, bs), *c = code_buf(nb * bs / 2);

	assert_non_null(b);
	assert_non_null(t);
	for (i = 0; i < nb; i += 2)
		memcpy(b + i * bs, c + (i / 2) * bs, bs);
	for (i = 1; i < nb; i += 2)
		memcpy(t + i * bs, c + (i / 2) * bs, bs);
	for (i = 5 * bs + 17; i < 40 * bs; i += 333)
		t[i] = (uint8_t)(t[i] ^ 0x20);
	memcpy(t + 50 * bs + 100, c + 7 * bs, 3 * bs); /* unaligned */
	roundtrip(*state, b, nb * bs, t, nb * bs, 65536);
	roundtrip(*state, t, nb * bs, b, nb * bs, 65536);
	free(b);
	free(t);
	free(c);
}

/* Incompressible extra frames are stored, and the deflated frame after
 * them refers back into their bytes through the window. */
static void test_stored_frames(void **state)
{
	size_t n = 65536 + 25536 + 40000;
	uint8_t *b = rnd_buf(1000), *t = rnd_buf(n), *c = code_buf(40000);

	memcpy(t + 65536, t + 40000, 25536);
	memcpy(t + 65536 + 25536, c, 40000);
	roundtrip(*state, b, 1000, t, n, 65536);
	roundtrip(*state, b, 1000, t, n, 1);
	free(b);
	free(t);
	free(c);
}

static void test_sizes_differ(void **state)
{
	uint8_t *b = code_buf(300000);

	roundtrip(*state, b, 100000, b, 300000, 65536);		/* target larger */
	roundtrip(*state, b, 300000, b + 50000, 100000, 65536); /* smaller */
	free(b);
}

static void test_byte_at_a_time(void **state)
{
	size_t n = 150000, i;
	uint8_t *b = code_buf(n), *t = malloc(n);

	assert_non_null(t);
	memcpy(t, b, n);
	for (i = 0; i < n; i += 301)
		t[i] = rnd8();
	memset(t + 70000, 0, 3000);
	roundtrip(*state, b, n, t, n, 1);
	free(b);
	free(t);
}

/* A pair that exercises every op and several frames per stream. */
static void mixed_pair_as(struct pair *p, const char *dir, uint8_t **tp, size_t *tlen,
			  unsigned format)
{
	size_t n = 300000, i;
	uint8_t *b = code_buf(n), *t = malloc(n);

	assert_non_null(t);
	memcpy(t, b, n);
	for (i = 0; i < n; i += 211)
		t[i] = (uint8_t)(t[i] + 1);
	for (i = 150000; i < 230000; i++)
		t[i] = rnd8();
	memset(t + 250000, 0xa5, 10000);
	memcpy(t + 262144, b + 4096 * 3, 8192); /* moved blocks */
	encode_pair_as(p, dir, b, n, t, n, format);
	free(b);
	*tp = t;
	*tlen = n;
}

static void mixed_pair(struct pair *p, const char *dir, uint8_t **tp, size_t *tlen)
{
	mixed_pair_as(p, dir, tp, tlen, 0);
}

static void test_truncated(void **state)
{
	struct pair p;
	uint8_t *t;
	size_t tlen, cut, step;

	mixed_pair(&p, *state, &t, &tlen);
	step = p.op_len / 200 + 1;
	for (cut = 0; cut < p.op_len; cut += step) {
		struct sink s = {0};

		assert_int_equal(decode(p.base_fd, tlen, tlen, p.op, cut, 4096, &s), TND_E_FORMAT);
		if (s.len)
			assert_memory_equal(s.buf, t, s.len);
		free(s.buf);
	}
	for (cut = p.op_len - 40; cut < p.op_len; cut++) {
		struct sink s = {0};

		assert_int_equal(decode(p.base_fd, tlen, tlen, p.op, cut, 4096, &s), TND_E_FORMAT);
		free(s.buf);
	}
	free(t);
	free_pair(&p);
}

static void test_corrupted(void **state)
{
	struct pair p;
	uint8_t *t, *bad;
	size_t tlen, i;

	mixed_pair(&p, *state, &t, &tlen);
	bad = malloc(p.op_len);
	assert_non_null(bad);
	/* flip bytes all over: any result is fine but a crash or an overrun */
	for (i = 0; i < p.op_len; i += p.op_len / 300 + 1) {
		struct sink s = {0};
		int r;

		memcpy(bad, p.op, p.op_len);
		bad[i] ^= (uint8_t)(1u << (i % 8));
		r = decode(p.base_fd, tlen, tlen, bad, p.op_len, 65536, &s);
		/* INCOMPATIBLE: a span that does not match its CRC-32 */
		assert_true(r == 0 || r == TND_E_FORMAT || r == TND_E_UNSUPPORTED ||
			    r == TND_E_INCOMPATIBLE);
		free(s.buf);
	}
	/* trailing byte after the end tag */
	{
		struct sink s = {0};
		uint8_t *longer = malloc(p.op_len + 1);

		assert_non_null(longer);
		memcpy(longer, p.op, p.op_len);
		longer[p.op_len] = 0;
		assert_int_equal(decode(p.base_fd, tlen, tlen, longer, p.op_len + 1, 65536, &s),
				 TND_E_FORMAT);
		free(longer);
		free(s.buf);
	}
	/* sizes that disagree with the header */
	{
		struct sink s = {0};

		assert_int_equal(decode(p.base_fd, tlen - 1, tlen, p.op, p.op_len, 65536, &s),
				 TND_E_FORMAT);
		assert_int_equal(decode(p.base_fd, tlen, tlen + 1, p.op, p.op_len, 65536, &s),
				 TND_E_FORMAT);
		free(s.buf);
	}
	/* an emit error aborts and comes back unchanged */
	{
		struct sink s = {.fail_at = 2};

		assert_int_equal(decode(p.base_fd, tlen, tlen, p.op, p.op_len, 65536, &s),
				 TND_E_SLOT_IO);
		free(s.buf);
	}
	free(bad);
	free(t);
	free_pair(&p);
}

/* ---- hand-made streams (codec NONE) for the bounds checks ---- */

struct hand {
	uint8_t b[512];
	size_t n;
};

static void h_put(struct hand *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void h_varint(struct hand *h, uint64_t v)
{
	uint8_t tmp[10];

	h_put(h, tmp, tnd_delta_put_varint(tmp, v));
}

static void h_header_v(struct hand *h, uint64_t bsz, uint64_t tsz, uint8_t version)
{
	uint8_t hdr[TND_DELTA_HDR_LEN] = {0};

	memcpy(hdr, TND_DELTA_MAGIC, 4);
	hdr[4] = version;
	hdr[5] = TND_DELTA_FRAME_LOG2;
	tnd_put_be64(hdr + 12, bsz);
	tnd_put_be64(hdr + 20, tsz);
	h->n = 0;
	h_put(h, hdr, sizeof(hdr));
}

static void h_header(struct hand *h, uint64_t bsz, uint64_t tsz)
{
	h_header_v(h, bsz, tsz, TND_DELTA_VERSION);
}

/* One stored control frame holding ctrl[0..n). */
static void h_ctrl(struct hand *h, const struct hand *ctrl)
{
	uint8_t tag = 1 + TND_DELTA_S_CTRL;

	h_put(h, &tag, 1);
	h_varint(h, ctrl->n);
	h_varint(h, ctrl->n);
	h_put(h, ctrl->b, ctrl->n);
}

static int run_hand(int base_fd, const struct hand *h, uint64_t bsz, uint64_t tsz)
{
	struct sink s = {0};
	int r = decode(base_fd, bsz, tsz, h->b, h->n, 3, &s);

	free(s.buf);
	return r;
}

static void test_hostile(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX];
	uint8_t base[1000];
	struct hand h, c;
	uint8_t end = TND_DELTA_TAG_END;
	int fd;

	memset(base, 7, sizeof(base));
	snprintf(path, sizeof(path), "%s/base", dir);
	tu_write_file(path, base, sizeof(base));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);

	/* valid: COPY 100 from base offset 10, FILL 50 */
	c.n = 0;
	h_put(&c, "\x01", 1);
	h_varint(&c, 100);
	h_varint(&c, tnd_delta_zigzag(10));
	h_put(&c, "\x04", 1);
	h_varint(&c, 50);
	h_put(&c, "\x09", 1);
	h_header(&h, 1000, 150);
	h_ctrl(&h, &c);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 150), 0);
	/* the same ops for a 149-byte target: output longer than target */
	h_header(&h, 1000, 149);
	h_ctrl(&h, &c);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 149), TND_E_FORMAT);
	/* ...and for 151: the end comes early */
	h_header(&h, 1000, 151);
	h_ctrl(&h, &c);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 151), TND_E_FORMAT);

	/* COPY beyond the base end, before its start, and a huge delta */
	{
		static const int64_t deltas[] = {901, -1, INT64_MAX, INT64_MIN};
		size_t i;

		for (i = 0; i < TND_ARRAY_SIZE(deltas); i++) {
			c.n = 0;
			h_put(&c, "\x02", 1);
			h_varint(&c, 100);
			h_varint(&c, tnd_delta_zigzag(deltas[i]));
			h_header(&h, 1000, 100);
			h_ctrl(&h, &c);
			h_put(&h, &end, 1);
			assert_int_equal(run_hand(fd, &h, 1000, 100), TND_E_FORMAT);
		}
	}
	/* zero-length op, unknown op, over-long varint */
	{
		static const char *const bad[] = {"\x03\x00", "\x09\x01",
						  "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"};
		static const size_t blen[] = {2, 2, 11};
		size_t i;

		for (i = 0; i < TND_ARRAY_SIZE(bad); i++) {
			c.n = 0;
			h_put(&c, bad[i], blen[i]);
			h_header(&h, 1000, 100);
			h_ctrl(&h, &c);
			h_put(&h, &end, 1);
			assert_int_equal(run_hand(fd, &h, 1000, 100), TND_E_FORMAT);
		}
	}
	/* frame lengths: zero, above the frame size, stored with raw != comp */
	{
		static const uint32_t raw[] = {0, TND_DELTA_FRAME_MAX + 1, 5};
		static const uint32_t comp[] = {0, TND_DELTA_FRAME_MAX + 1, 6};
		size_t i;

		for (i = 0; i < TND_ARRAY_SIZE(raw); i++) {
			h_header(&h, 1000, 100);
			h_put(&h, "\x02", 1);
			h_varint(&h, raw[i]);
			h_varint(&h, comp[i]);
			h_put(&h, "\0\0\0\0\0\0\0\0", 8);
			assert_int_equal(run_hand(fd, &h, 1000, 100), TND_E_FORMAT);
		}
	}
	/* unknown frame tag, bad magic, unknown codec, trailing data */
	h_header(&h, 1000, 0);
	h_put(&h, "\x07", 1);
	assert_int_equal(run_hand(fd, &h, 1000, 0), TND_E_FORMAT);
	h_header(&h, 1000, 0);
	h.b[0] = 'X';
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 0), TND_E_FORMAT);
	h_header(&h, 1000, 0);
	h.b[7] = 9;
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 0), TND_E_UNSUPPORTED);
	h_header(&h, 1000, 0);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 0), 0);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 0), TND_E_FORMAT);

	/* an EXTRA op whose bytes never come: unused ctrl, early end */
	c.n = 0;
	h_put(&c, "\x03", 1);
	h_varint(&c, 10);
	h_header(&h, 1000, 10);
	h_ctrl(&h, &c);
	h_put(&h, &end, 1);
	assert_int_equal(run_hand(fd, &h, 1000, 10), TND_E_FORMAT);

	close(fd);
}

/* A frame may not arrive while its stream buffer is still full. */
/* Format 3: a CHECK record with the CRC-32 of every 64 KiB of target
 * (and of the last, shorter span), needed before the span is handed out. */
static void h_check(struct hand *c, const uint8_t *span, size_t n)
{
	uint8_t rec[TND_DELTA_CHECK_LEN] = {TND_DELTA_OP_CHECK};

	tnd_put_be32(rec + 1, tnd_crc32(span, n));
	h_put(c, rec, sizeof(rec));
}

/* Formats 5 and 6: a CHECK record with the SHA-256 of every 256 KiB. */
static void h_check_sha(struct hand *c, const uint8_t *span, size_t n)
{
	uint8_t rec[TND_DELTA_CHECK_SHA_LEN] = {TND_DELTA_OP_CHECK};

	tnd_sha256(span, n, rec + 1);
	h_put(c, rec, sizeof(rec));
}

/* The CHECK record of format version v. */
static void h_check_v(struct hand *c, unsigned v, const uint8_t *span, size_t n)
{
	if (tnd_delta_version_authenticated(v))
		h_check_sha(c, span, n);
	else
		h_check(c, span, n);
}

static int run_hand_as(int base_fd, const struct hand *h, uint64_t bsz, uint64_t tsz,
		       uint8_t require, struct sink *s, bool inl)
{
	struct tnd_delta_dec *d;
	int r;

	assert_int_equal(tnd_delta_dec_new(&d, base_fd, bsz, tsz), 0);
	if (require)
		tnd_delta_dec_require(d, require);
	if (inl)
		tnd_delta_dec_inline(d);
	r = tnd_delta_dec_feed(d, h->b, h->n, sink_emit, s);
	if (!r)
		r = tnd_delta_dec_finish(d);
	tnd_delta_dec_free(d);
	sink_check(s);
	return r;
}

static int run_hand_v(int base_fd, const struct hand *h, uint64_t bsz, uint64_t tsz,
		      uint8_t require, struct sink *s)
{
	return run_hand_as(base_fd, h, bsz, tsz, require, s, false);
}

/*
 * One span made by COPY 100 bytes from base offset 10 and FILL 50 bytes of
 * 9, in format version v (with the helper thread or inline), and its
 * CHECK record right, wrong (refused, and not a byte handed out),
 * missing, early (where no span is complete), or in a stream of another
 * version than the manifest's.
 */
static void one_span_checks(int fd, struct hand *h, const uint8_t *base, size_t blen, unsigned v,
			    bool inl)
{
	uint8_t want[150], end = TND_DELTA_TAG_END;
	struct hand c;

	memcpy(want, base + 10, 100);
	memset(want + 100, 9, 50);
	for (int variant = 0; variant < 5; variant++) {
		struct sink s = {0};
		int r;

		c.n = 0;
		h_put(&c, "\x01", 1);
		h_varint(&c, 100);
		h_varint(&c, tnd_delta_zigzag(10));
		if (variant == 3)
			h_check_v(&c, v, want, 100); /* before the span is complete */
		h_put(&c, "\x04", 1);
		h_varint(&c, 50);
		h_put(&c, "\x09", 1);
		if (variant == 0 || variant == 4)
			h_check_v(&c, v, want, sizeof(want));
		if (variant == 1) {
			uint8_t other[150];

			memcpy(other, want, sizeof(other));
			other[120] ^= 1;
			h_check_v(&c, v, other, sizeof(other));
		}
		h_header_v(h, blen, sizeof(want), (uint8_t)v);
		h_ctrl(h, &c);
		h_put(h, &end, 1);
		r = run_hand_as(fd, h, blen, sizeof(want),
				variant != 4			 ? 0
				: v == TND_DELTA_VERSION_CHECKED ? TND_DELTA_VERSION
								 : TND_DELTA_VERSION_CHECKED,
				&s, inl);
		switch (variant) {
		case 0:
			assert_int_equal(r, 0);
			assert_int_equal(s.len, sizeof(want));
			assert_memory_equal(s.buf, want, sizeof(want));
			break;
		case 1:
			assert_int_equal(r, TND_E_INCOMPATIBLE);
			assert_int_equal(s.len, 0);
			break;
		case 2:
		case 3:
			assert_int_equal(r, TND_E_FORMAT);
			assert_int_equal(s.len, 0);
			break;
		default:
			assert_int_equal(r, TND_E_FORMAT);
			break;
		}
		free(s.buf);
	}
}

/* The 1000-byte base of the hand-made check streams, opened. */
static int checks_base(const char *dir, uint8_t base[1000])
{
	char path[PATH_MAX];
	int fd;

	for (size_t i = 0; i < 1000; i++)
		base[i] = (uint8_t)(i * 7);
	snprintf(path, sizeof(path), "%s/base", dir);
	tu_write_file(path, base, 1000);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	return fd;
}

static void test_checks(void **state)
{
	uint8_t base[1000], *big;
	struct hand *h = malloc(sizeof(*h)), c;
	uint8_t end = TND_DELTA_TAG_END;
	int fd = checks_base(*state, base);

	assert_non_null(h);
	/* COPY, FILL, CHECK, with its CRC right, wrong, missing, early */
	one_span_checks(fd, h, base, sizeof(base), TND_DELTA_VERSION_CHECKED, false);

	/* Two spans, the first CHECK in the middle of one FILL (the decoder
	 * needs it when the span completes), then the end's. */
	big = malloc(70000);
	assert_non_null(big);
	memset(big, 0x5a, 70000);
	for (int variant = 0; variant < 2; variant++) {
		struct sink s = {0};

		c.n = 0;
		h_put(&c, "\x04", 1);
		h_varint(&c, 70000);
		h_put(&c, "\x5a", 1);
		if (variant == 0)
			h_check(&c, big, TND_DELTA_CHECK_SPAN);
		h_check(&c, big, 70000 - TND_DELTA_CHECK_SPAN);
		h_header_v(h, sizeof(base), 70000, TND_DELTA_VERSION_CHECKED);
		h_ctrl(h, &c);
		h_put(h, &end, 1);
		assert_int_equal(run_hand_v(fd, h, sizeof(base), 70000, 0, &s),
				 variant == 0 ? 0 : TND_E_INCOMPATIBLE);
		assert_int_equal(s.len, variant == 0 ? 70000 : 0);
		free(s.buf);
	}
	free(big);
	free(h);
	close(fd);
}

/* An encoded delta against a base changed in one byte: the span made from
 * it fails its check, and everything handed out before is the target's. */
static void test_check_catches_changed_base(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX];
	struct pair p;
	uint8_t *t, *b;
	size_t tlen, blen, at = 100000;
	struct sink s = {0};
	int fd;

	mixed_pair(&p, dir, &t, &tlen);
	b = tu_read_file(p.base, &blen);
	b[at] ^= 0x40; /* outside the target's new data: read by COPY or ADD */
	snprintf(path, sizeof(path), "%s/changed-base", dir);
	tu_write_file(path, b, blen);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(decode(fd, blen, tlen, p.op, p.op_len, 65536, &s), TND_E_INCOMPATIBLE);
	assert_true(s.len % TND_DELTA_CHECK_SPAN == 0);
	assert_true(s.len <= at);
	assert_memory_equal(s.buf, t, s.len);
	close(fd);
	free(s.buf);
	free(b);
	free(t);
	free_pair(&p);
}

/* The version 5 twin of test_checks, in both decoder modes: the SHA-256
 * right, wrong (nothing of the span handed out), missing, early; then
 * two spans, with a wrong second or first CHECK, in spans of zeros (whose
 * hash the decoder knows) and of other bytes. */
static void test_checks_sha(void **state)
{
	uint8_t base[1000], *big;
	struct hand *h = malloc(sizeof(*h)), c;
	uint8_t end = TND_DELTA_TAG_END;
	const size_t n = TND_DELTA_SHA_SPAN + 5000;
	int fd = checks_base(*state, base);

	assert_non_null(h);
	big = malloc(n);
	assert_non_null(big);

	for (int inl = 0; inl < 2; inl++) {
		one_span_checks(fd, h, base, sizeof(base), TND_DELTA_VERSION_SHA, inl);

		/* One FILL over two spans, the first CHECK due in its middle;
		 * fill byte 0 (a zero span) and 0x5a. Variant 1: the second
		 * CHECK is wrong, and the first span alone is handed out;
		 * variant 2: the first is wrong, and nothing is. */
		for (int fill = 0; fill < 0x100; fill += 0x5a) {
			memset(big, fill, n);
			for (int variant = 0; variant < 3; variant++) {
				struct sink s = {0};
				uint8_t other[16] = {1};
				int r;

				c.n = 0;
				h_put(&c, "\x04", 1);
				h_varint(&c, n);
				h_put(&c, (uint8_t[]){(uint8_t)fill}, 1);
				if (variant == 2)
					h_check_sha(&c, other, sizeof(other));
				else
					h_check_sha(&c, big, TND_DELTA_SHA_SPAN);
				if (variant == 1)
					h_check_sha(&c, other, sizeof(other));
				else
					h_check_sha(&c, big, n - TND_DELTA_SHA_SPAN);
				h_header_v(h, sizeof(base), n, TND_DELTA_VERSION_SHA);
				h_ctrl(h, &c);
				h_put(h, &end, 1);
				r = run_hand_as(fd, h, sizeof(base), n, 0, &s, inl);
				assert_int_equal(r, variant == 0 ? 0 : TND_E_INCOMPATIBLE);
				assert_int_equal(s.len, variant == 0   ? n
							: variant == 1 ? TND_DELTA_SHA_SPAN
								       : 0);
				if (s.len)
					assert_memory_equal(s.buf, big, s.len);
				free(s.buf);
			}
		}

		/* A span that fails its check, then in the same feed() an op
		 * that is malformed: the mismatch comes first in the target,
		 * and is the error, with the helper thread as without. */
		{
			struct sink s = {0};
			uint8_t other[16] = {1};

			memset(big, 0x5a, n);
			c.n = 0;
			h_put(&c, "\x04", 1);
			h_varint(&c, TND_DELTA_SHA_SPAN);
			h_put(&c, "\x5a", 1);
			h_check_sha(&c, other, sizeof(other));
			h_put(&c, "\x09\x01", 2);
			h_header_v(h, sizeof(base), n, TND_DELTA_VERSION_SHA);
			h_ctrl(h, &c);
			h_put(h, &end, 1);
			assert_int_equal(run_hand_as(fd, h, sizeof(base), n, 0, &s, inl),
					 TND_E_INCOMPATIBLE);
			assert_int_equal(s.len, 0);
			free(s.buf);
		}
	}
	free(big);
	free(h);
	close(fd);
}

/*
 * Solves the CRC-32 forging problem: changes buf[at..at+4) so that the
 * CRC-32 of buf[0..n) is crc again. A CRC is affine in its input: for a
 * fixed length, crc(x ^ e) = crc(x) ^ L(e) with L linear over GF(2), and
 * L maps the 32 bits of any 4 consecutive bytes one to one onto the 32
 * bits of the CRC. So the 4 bytes are the solution of a 32x32 system,
 * whose columns are the changes single bit flips make.
 */
static void crc_forge(uint8_t *buf, size_t n, size_t at, uint32_t crc)
{
	uint32_t col[32], rhs = tnd_crc32(buf, n) ^ crc, now = tnd_crc32(buf, n);
	uint64_t row[32]; /* augmented rows: 32 coefficient bits, then rhs */
	uint32_t x = 0;

	for (int j = 0; j < 32; j++) {
		buf[at + j / 8] ^= (uint8_t)(1u << (j % 8));
		col[j] = tnd_crc32(buf, n) ^ now;
		buf[at + j / 8] ^= (uint8_t)(1u << (j % 8));
	}
	for (int i = 0; i < 32; i++) {
		row[i] = (uint64_t)((rhs >> i) & 1) << 32;
		for (int j = 0; j < 32; j++)
			row[i] |= (uint64_t)((col[j] >> i) & 1) << j;
	}
	for (int j = 0; j < 32; j++) { /* Gauss-Jordan over GF(2) */
		int p = j;

		while (p < 32 && !((row[p] >> j) & 1))
			p++;
		assert_true(p < 32); /* one to one: always a pivot */
		uint64_t t = row[p];
		row[p] = row[j];
		row[j] = t;
		for (int i = 0; i < 32; i++)
			if (i != j && ((row[i] >> j) & 1))
				row[i] ^= row[j];
	}
	for (int j = 0; j < 32; j++)
		x |= (uint32_t)((row[j] >> 32) & 1) << j;
	for (int j = 0; j < 32; j++)
		if ((x >> j) & 1)
			buf[at + j / 8] ^= (uint8_t)(1u << (j % 8));
	assert_int_equal(tnd_crc32(buf, n), crc);
}

/*
 * Why versions 5 and 6: a booted slot changed inside a span a delta
 * copies, with 4 more bytes changed so that the span's CRC-32 is the same.
 * Version 3 accepts it and hands out a target that is not the signed one;
 * version 5 refuses it before it hands out a byte of that span.
 */
static void test_sha_catches_forged_crc(void **state)
{
	const char *dir = *state;
	const size_t n = 1u << 20, span = TND_DELTA_CHECK_SPAN, at = 5 * span;
	uint8_t *b = rnd_buf(n), *t = malloc(n), *forged;
	char path[PATH_MAX];
	struct pair p3, p5;
	size_t blen;
	int fd;

	assert_non_null(t);
	memcpy(t, b, n);
	for (size_t i = 7 * span; i < 7 * span + 3000; i += 7)
		t[i] = (uint8_t)(t[i] + 1); /* a real edit, elsewhere */
	encode_pair_as(&p3, dir, b, n, t, n, TND_DELTA_VERSION_CHECKED);
	assert_int_equal(p3.st.version, TND_DELTA_VERSION_CHECKED);
	close(p3.base_fd);
	encode_pair_as(&p5, dir, b, n, t, n, TND_DELTA_VERSION_SHA);
	assert_int_equal(p5.st.version, TND_DELTA_VERSION_SHA);

	/* The attack on slot A: 16 bytes of the attacker's in the span at
	 * `at`, which the delta copies as it is; 4 bytes after them
	 * restore its CRC-32. */
	forged = tu_read_file(p5.base, &blen);
	memcpy(forged + at + 1000, "attacker's bytes", 16);
	crc_forge(forged + at, span, 2000, tnd_crc32(b + at, span));
	assert_memory_not_equal(forged + at, b + at, span);
	snprintf(path, sizeof(path), "%s/forged", dir);
	tu_write_file(path, forged, blen);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);

	{ /* version 3: every CRC matches, and the output is not the target */
		struct sink s = {0};

		assert_int_equal(decode(fd, blen, n, p3.op, p3.op_len, 65536, &s), 0);
		assert_int_equal(s.len, n);
		assert_memory_not_equal(s.buf, t, n);
		assert_memory_equal(s.buf + at, forged + at, span);
		free(s.buf);
	}
	for (int inl = 0; inl < 2; inl++) { /* version 5: refused */
		struct sink s = {0};

		assert_int_equal(decode_as(fd, blen, n, p5.op, p5.op_len, 65536, &s, inl),
				 TND_E_INCOMPATIBLE);
		assert_int_equal(s.len, at - at % TND_DELTA_SHA_SPAN);
		assert_memory_equal(s.buf, t, s.len);
		free(s.buf);
	}
	close(fd);
	free(forged);
	free_pair(&p5);
	free(p3.op);
	free(t);
	free(b);
}

/* Every format version the encoder writes, 1 to 6, round trips with and
 * without the helper thread; without xz streams to rebuild, an even
 * format writes the odd version below it. */
static void test_formats(void **state)
{
	for (unsigned f = 1; f <= TND_DELTA_VERSION_MAX; f++) {
		unsigned v = tnd_delta_version_xz(f) ? f - 1 : f;
		uint32_t span = tnd_delta_check_span(v);
		struct pair p;
		uint8_t *t;
		size_t tlen;

		mixed_pair_as(&p, *state, &t, &tlen, f);
		assert_int_equal(p.st.version, v);
		assert_int_equal(p.op[4], v);
		assert_int_equal(p.st.checks, span ? (tlen + span - 1) / span : 0);
		for (int inl = 0; inl < 2; inl++) {
			struct sink s = {0};

			assert_int_equal(
			    decode_as(p.base_fd, tlen, tlen, p.op, p.op_len, 4096, &s, inl), 0);
			assert_int_equal(s.len, tlen);
			assert_memory_equal(s.buf, t, tlen);
			free(s.buf);
		}
		free_pair(&p);
		free(t);
	}
}

/*
 * Short chance matches far away are not worth a jump: a region of new
 * code holding 16-byte pieces of a distant, random part of the base. Each
 * piece is an exact match that bsdiff's rule (8 bytes better than the
 * current alignment) takes, making the device read a page of that far
 * part for 16 bytes; a far jump must be 24 bytes better. Proved from the
 * outside: the delta still applies to a base whose far part is changed,
 * so it never reads it.
 */
static void test_far_chance_matches(void **state)
{
	const char *dir = *state;
	size_t half = 1u << 20, r0 = 256u << 10, r1 = 512u << 10, i, blen;
	uint8_t *b = code_buf(2 * half), *far = rnd_buf(half), *fresh = code_buf(r1 - r0), *t;
	char path[PATH_MAX];
	struct sink s = {0};
	struct pair p;
	int fd;

	memcpy(b + half, far, half);
	t = malloc(half);
	assert_non_null(t);
	memcpy(t, b, half);
	memcpy(t + r0, fresh, r1 - r0);
	for (i = r0; i + 16 <= r1; i += 100)
		memcpy(t + i, far + (i * 7919) % (half - 16), 16);
	encode_pair(&p, dir, b, 2 * half, t, half);
	for (i = half; i < 2 * half; i++)
		b[i] ^= 0xff;
	snprintf(path, sizeof(path), "%s/far-changed", dir);
	tu_write_file(path, b, 2 * half);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	blen = 2 * half;
	assert_int_equal(decode(fd, blen, half, p.op, p.op_len, 65536, &s), 0);
	assert_int_equal(s.len, half);
	assert_memory_equal(s.buf, t, half);
	close(fd);
	free(s.buf);
	free_pair(&p);
	free(t);
	free(fresh);
	free(far);
	free(b);
}

/*
 * In incompressible data (a squashfs image's xz blocks) an ADD goes on
 * through a stretch where only one byte in four still matches: each of
 * the other three costs a byte as diff or as EXTRA alike, the fourth
 * less as a zero diff byte. bsdiff's rule (more than half must match)
 * would make the stretch EXTRA (see ext_ratio).
 */
static void test_sparse_matches_in_incompressible_data(void **state)
{
	const char *dir = *state;
	size_t n = 1u << 20, r0 = 256u << 10, r1 = r0 + (32u << 10), i;
	uint8_t *b = rnd_buf(n), *t = malloc(n);
	struct pair p;
	struct sink s = {0};

	assert_non_null(t);
	memcpy(t, b, n);
	for (i = r0; i < r1; i++)
		if (i % 4)
			t[i] = b[i] ^ (uint8_t)(1 + rnd8() % 255); /* never equal */
	encode_pair(&p, dir, b, n, t, n);
	print_message("add %llu extra %llu bytes, op stream %zu\n",
		      (unsigned long long)p.st.add_bytes, (unsigned long long)p.st.extra_bytes,
		      p.op_len);
	assert_true(p.st.add_bytes >= r1 - r0 - 64);
	assert_true(p.st.extra_bytes < 64);
	/* a quarter of the stretch travels as zero diff bytes, and less */
	assert_true(p.op_len < (r1 - r0) * 7 / 8 + 4096);
	assert_int_equal(decode(p.base_fd, n, n, p.op, p.op_len, 65536, &s), 0);
	assert_int_equal(s.len, n);
	assert_memory_equal(s.buf, t, n);
	free(s.buf);
	free_pair(&p);
	free(t);
	free(b);
}

#ifdef CONFIG_DELTA_XZ
/*
 * liblzma's memory kept from one stream to the next (struct tnd_dxz_mem)
 * must not change what it makes: a stream compressed in memory that
 * another stream left dirty is byte for byte the one compressed in fresh
 * memory (rebuilding relies on that), and the memory is reused.
 */
static void test_xz_memory_reuse(void **state)
{
	/* squashfs's: preset 6, 128 KiB dictionary (property 10), no check */
	const struct tnd_dxz_settings set = {.check = 0, .preset = 6, .dict = 10, .bcj = 0};
	size_t n = 100000, cap = tnd_dxz_bound(n), fresh_len, reused_len, other_len;
	uint8_t *a = code_buf(n), *b = rnd_buf(n), *fresh = malloc(cap), *reused = malloc(cap);
	struct tnd_dxz_mem mem = {0};

	(void)state;
	assert_non_null(fresh);
	assert_non_null(reused);
	assert_int_equal(tnd_dxz_encode(NULL, &set, a, n, fresh, cap, &fresh_len), 0);
	assert_int_equal(tnd_dxz_encode(&mem, &set, b, n, reused, cap, &other_len), 0);
	assert_true(mem.n > 0);
	assert_int_equal(tnd_dxz_encode(&mem, &set, a, n, reused, cap, &reused_len), 0);
	assert_int_equal(reused_len, fresh_len);
	assert_memory_equal(reused, fresh, fresh_len);
	tnd_dxz_mem_free(&mem);
	assert_int_equal(mem.n, 0);
	free(reused);
	free(fresh);
	free(b);
	free(a);
}
#endif

#ifdef CONFIG_DELTA_XZ
/* An image holding one xz stream of content (made as squashfs makes its
 * blocks) between two runs of other bytes; *len its length. */
static uint8_t *xz_image(const uint8_t *content, size_t n, const uint8_t *around, size_t *len)
{
	const struct tnd_dxz_settings set = {.check = 0, .preset = 6, .dict = 10, .bcj = 0};
	size_t cap = tnd_dxz_bound(n), clen;
	uint8_t *img = malloc(40000 + cap);

	assert_non_null(img);
	memcpy(img, around, 20000);
	assert_int_equal(tnd_dxz_encode(NULL, &set, content, n, img + 20000, cap, &clen), 0);
	memcpy(img + 20000 + clen, around + 20000, 20000);
	*len = 40000 + clen;
	return img;
}

/* The even formats rebuild the changed xz stream on the device (its
 * content diffed, not its bytes), and round trip with and without the
 * helper thread: 6 with SHA-256 checks, 4 with CRC-32 ones, 2 without. */
static void test_formats_xz(void **state)
{
	size_t n = 100000, blen, tlen;
	uint8_t *a = code_buf(n), *around = rnd_buf(40000), *b, *t;

	b = xz_image(a, n, around, &blen);
	for (size_t i = 0; i < n; i += 997)
		a[i] = (uint8_t)(a[i] + 1);
	t = xz_image(a, n, around, &tlen);
	for (unsigned f = TND_DELTA_VERSION_XZ; f <= TND_DELTA_VERSION_MAX; f += 2) {
		struct pair p;

		encode_pair_as(&p, *state, b, blen, t, tlen, f);
		assert_int_equal(p.st.version, f);
		assert_int_equal(p.st.xz_streams, 1);
		for (int inl = 0; inl < 2; inl++) {
			struct sink s = {0};

			assert_int_equal(
			    decode_as(p.base_fd, blen, tlen, p.op, p.op_len, 4096, &s, inl), 0);
			assert_int_equal(s.len, tlen);
			assert_memory_equal(s.buf, t, tlen);
			free(s.buf);
		}
		free_pair(&p);
	}
	free(t);
	free(b);
	free(around);
	free(a);
}
#endif

/* Resuming: with skip_to, the decoder emits the target from the 64 KiB
 * piece that holds it on, exactly: in version 3 a check span, in version
 * 5 a quarter of one (the span is made and checked whole), with and
 * without the helper thread. */
static void test_skip_to(void **state)
{
	static const unsigned formats[] = {TND_DELTA_VERSION_CHECKED, TND_DELTA_VERSION_SHA};
	struct pair p;
	uint8_t *t;
	size_t tlen;

	for (size_t f = 0; f < TND_ARRAY_SIZE(formats); f++) {
		mixed_pair_as(&p, *state, &t, &tlen, formats[f]);
		for (uint64_t skip = 0; skip <= 4 * TND_DELTA_OUT_MAX + 1;
		     skip += TND_DELTA_OUT_MAX / 2 + 1) {
			for (int inl = 0; inl < 2; inl++) {
				uint64_t from = skip - skip % TND_DELTA_OUT_MAX;
				struct tnd_delta_dec *d;
				struct sink s = {0};

				assert_int_equal(tnd_delta_dec_new(&d, p.base_fd, tlen, tlen), 0);
				tnd_delta_dec_skip_to(d, skip);
				if (inl)
					tnd_delta_dec_inline(d);
				assert_int_equal(
				    tnd_delta_dec_feed(d, p.op, p.op_len, sink_emit, &s), 0);
				assert_int_equal(tnd_delta_dec_finish(d), 0);
				tnd_delta_dec_free(d);
				sink_check(&s);
				assert_int_equal(s.len, tlen - from);
				assert_memory_equal(s.buf, t + from, s.len);
				free(s.buf);
			}
		}
		free_pair(&p);
		free(t);
	}
}

/*
 * The helper thread of versions 5 and 6, at its edges: emit() fails in
 * the middle (no call after it, the error comes back as it is, and the
 * decoder refuses everything after); a decoder freed after its header,
 * in the middle of the stream with spans being hashed, after an error,
 * without finish (ASan and LeakSanitizer see the rest); a changed base
 * found mid-stream, when the stream arrives a byte at a time.
 */
static void test_helper_edges(void **state)
{
	const char *dir = *state;
	size_t n = 3 * TND_DELTA_SHA_SPAN + 12345, blen;
	uint8_t *b = code_buf(n), *t = malloc(n), *changed;
	char path[PATH_MAX];
	struct pair p;
	int fd;

	assert_non_null(t);
	memcpy(t, b, n);
	for (size_t i = 0; i < n; i += 1001)
		t[i] = (uint8_t)(t[i] + 1);
	encode_pair(&p, dir, b, n, t, n);
	assert_int_equal(p.st.version, TND_DELTA_VERSION_SHA);

	for (int fail_at = 1; fail_at <= 9; fail_at += 4) {
		struct tnd_delta_dec *d;
		struct sink s = {.fail_at = fail_at};

		assert_int_equal(tnd_delta_dec_new(&d, p.base_fd, n, n), 0);
		assert_int_equal(tnd_delta_dec_feed(d, p.op, p.op_len, sink_emit, &s),
				 TND_E_SLOT_IO);
		assert_string_equal(tnd_err_msg(), "test: emit refused");
		assert_int_equal(s.calls, fail_at);
		assert_int_equal(s.len, (size_t)(fail_at - 1) * TND_DELTA_OUT_MAX);
		assert_memory_equal(s.buf, t, s.len);
		assert_true(tnd_delta_dec_feed(d, p.op, 1, sink_emit, &s) < 0);
		assert_true(tnd_delta_dec_finish(d) < 0);
		assert_int_equal(s.calls, fail_at);
		tnd_delta_dec_free(d);
		sink_check(&s);
		free(s.buf);
	}
	for (size_t cut = TND_DELTA_HDR_LEN; cut < p.op_len; cut += p.op_len / 7) {
		struct tnd_delta_dec *d;
		struct sink s = {0};

		assert_int_equal(tnd_delta_dec_new(&d, p.base_fd, n, n), 0);
		assert_int_equal(tnd_delta_dec_feed(d, p.op, cut, sink_emit, &s), 0);
		sink_check(&s);
		assert_memory_equal(s.buf, t, s.len);
		tnd_delta_dec_free(d); /* no finish */
		free(s.buf);
	}

	changed = tu_read_file(p.base, &blen);
	changed[2 * TND_DELTA_SHA_SPAN + 99] ^= 0x10;
	snprintf(path, sizeof(path), "%s/changed-base", dir);
	tu_write_file(path, changed, blen);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	for (int inl = 0; inl < 2; inl++) {
		struct sink s = {0};

		assert_int_equal(decode_as(fd, n, n, p.op, p.op_len, 1, &s, inl),
				 TND_E_INCOMPATIBLE);
		assert_int_equal(s.len, 2 * TND_DELTA_SHA_SPAN);
		assert_memory_equal(s.buf, t, s.len);
		free(s.buf);
	}
	close(fd);
	free(changed);
	free_pair(&p);
	free(t);
	free(b);
}

static void test_frame_flood(void **state)
{
	const char *dir = *state;
	char path[PATH_MAX];
	static uint8_t big[2 * (TND_DELTA_FRAME_MAX + 8)];
	uint8_t hdr[TND_DELTA_HDR_LEN] = {0}, tmp[10];
	struct tnd_delta_dec *d;
	struct sink s = {0};
	size_t n = 0, k;
	int fd, i, r = 0;

	snprintf(path, sizeof(path), "%s/base", dir);
	tu_write_file(path, "x", 1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	memcpy(hdr, TND_DELTA_MAGIC, 4);
	hdr[4] = TND_DELTA_VERSION;
	hdr[5] = TND_DELTA_FRAME_LOG2;
	tnd_put_be64(hdr + 12, 1);
	tnd_put_be64(hdr + 20, 1000000);
	/* two full stored extra frames with no op to drain the first */
	for (i = 0; i < 2; i++) {
		big[n++] = 1 + TND_DELTA_S_EXTRA;
		k = tnd_delta_put_varint(tmp, TND_DELTA_FRAME_MAX);
		memcpy(big + n, tmp, k);
		n += k;
		memcpy(big + n, tmp, k);
		n += k;
		n += TND_DELTA_FRAME_MAX;
	}
	assert_int_equal(tnd_delta_dec_new(&d, fd, 1, 1000000), 0);
	assert_int_equal(tnd_delta_dec_feed(d, hdr, sizeof(hdr), sink_emit, &s), 0);
	r = tnd_delta_dec_feed(d, big, n, sink_emit, &s);
	assert_int_equal(r, TND_E_FORMAT);
	tnd_delta_dec_free(d);
	tnd_delta_dec_free(NULL);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_identical, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_different, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_tiny, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_shifted_inserted, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_blocks_moved, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sparse_image, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_stored_frames, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sizes_differ, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_byte_at_a_time, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_truncated, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_corrupted, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_hostile, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_frame_flood, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_checks, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_checks_sha, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sha_catches_forged_crc, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_formats, setup_dir, teardown_dir),
#ifdef CONFIG_DELTA_XZ
	    cmocka_unit_test_setup_teardown(test_formats_xz, setup_dir, teardown_dir),
#endif
	    cmocka_unit_test_setup_teardown(test_skip_to, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_helper_edges, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_far_chance_matches, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_sparse_matches_in_incompressible_data, setup_dir,
					    teardown_dir),
#ifdef CONFIG_DELTA_XZ
	    cmocka_unit_test(test_xz_memory_reuse),
#endif
	    cmocka_unit_test_setup_teardown(test_check_catches_changed_base, setup_dir,
					    teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
