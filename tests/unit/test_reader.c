// SPDX-License-Identifier: MIT
/* Bundles built by tnd_build_bundle and read back by the authenticating
 * reader: round trips, signatures, thresholds, and tampering anywhere. */
#include "testutil.h"

#include "bundle.h"
#include "chunk.h"
#include "image_tools.h"
#include "util.h"

struct fx {
	char *dir, *key[2], *pub[2], *img, *out;
	struct tnd_keyring kr;
};

/* A source over memory that does not know its size, like standard input,
 * so the streaming checks (not the up-front size check) are exercised. */
struct memsrc {
	struct tnd_source base;
	const uint8_t *data;
	size_t len, off, step;
};

static ssize_t mem_read(struct tnd_source *s, void *buf, size_t len)
{
	struct memsrc *m = (struct memsrc *)s;
	size_t n = m->len - m->off;

	if (n > len)
		n = len;
	if (m->step && n > m->step)
		n = m->step;
	memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static void memsrc_init(struct memsrc *m, const uint8_t *data, size_t len, size_t step)
{
	memset(m, 0, sizeof(*m));
	m->base.read = mem_read;
	m->data = data;
	m->len = len;
	m->step = step;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = tu_mkdtemp();
	f->key[0] = tu_path(f->dir, "k0.key");
	f->key[1] = tu_path(f->dir, "k1.key");
	f->pub[0] = tu_path(f->dir, "k0.pem");
	f->pub[1] = tu_path(f->dir, "k1.pem");
	f->img = tu_path(f->dir, "img");
	f->out = tu_path(f->dir, "b.tnd");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(tnd_keygen(f->key[i], f->pub[i]), 0);
		assert_int_equal(tnd_keyring_add_file(&f->kr, f->pub[i]), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tnd_keyring_free(&f->kr);
	for (int i = 0; i < 2; i++) {
		free(f->key[i]);
		free(f->pub[i]);
	}
	free(f->img);
	free(f->out);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

/* Image: random, zeros, text-like, random tail; size chosen by caller. */
static uint8_t *make_image(size_t len, uint64_t seed)
{
	uint8_t *img = malloc(len ? len : 1);

	tu_fill_random(img, len, seed);
	for (size_t i = len / 4; i < len / 2; i++)
		img[i] = 0;
	for (size_t i = len / 2; i < 3 * len / 4; i++)
		img[i] = (uint8_t) "hello, tandem "[i % 14];
	return img;
}

static uint8_t *make_compressible_image(size_t len)
{
	uint8_t *img = malloc(len);

	for (size_t i = 0; i < len; i++)
		img[i] = (uint8_t)("tandem "[i % 7] + (i >> 9));
	return img;
}

static void build(struct fx *f, const uint8_t *img, size_t len, uint32_t chunk, unsigned nkeys,
		  const char *k2)
{
	struct tnd_build_opts o = {.image_path = f->img,
				   .out_path = f->out,
				   .compatible = "sim",
				   .version = "1.0",
				   .chunk_size = chunk,
				   .level = 6,
				   .nkeys = nkeys};

	tu_write_file(f->img, img, len);
	o.key_paths[0] = f->key[0];
	o.key_paths[1] = k2 ? k2 : f->key[1];
	assert_int_equal(tnd_build_bundle(&o), 0);
}

/* Reads a whole bundle, reassembling the image; returns the first error. */
static int read_all(struct fx *f, const uint8_t *b, size_t blen, size_t step, unsigned threshold,
		    uint8_t **img_out, size_t *img_len)
{
	struct tnd_verify_opts vo = {.keyring = &f->kr, .threshold = threshold};
	struct tnd_bundle_reader r;
	struct tnd_inflater inf;
	struct tnd_record rec;
	struct memsrc m;
	uint8_t *in, *img = NULL;
	int ret;

	memsrc_init(&m, b, blen, step);
	ret = tnd_bundle_open(&r, &m.base, &vo);
	if (ret)
		return ret;
	assert_true(r.manifest.verified);
	in = malloc(r.manifest.chunk_size);
	img = calloc(1, r.manifest.image_size + 1);
	assert_int_equal(tnd_inflater_init(&inf), 0);
	while ((ret = tnd_bundle_next(&r, &rec, in, r.manifest.chunk_size)) == 1) {
		if (rec.type == TND_REC_DEFLATE)
			assert_int_equal(tnd_inflate_chunk(&inf, in, rec.stored_len,
							   img + rec.out_offset, rec.out_len),
					 0);
		else if (rec.type == TND_REC_STORED)
			memcpy(img + rec.out_offset, in, rec.out_len);
		if (rec.type != TND_REC_ZERO)
			assert_int_equal(tnd_crc32(img + rec.out_offset, rec.out_len),
					 rec.out_crc32);
	}
	tnd_inflater_free(&inf);
	free(in);
	if (!ret && img_out) {
		uint8_t h[32];

		tnd_sha256(img, r.manifest.image_size, h);
		assert_memory_equal(h, r.manifest.image_sha256, 32);
		*img_out = img;
		*img_len = r.manifest.image_size;
	} else {
		free(img);
	}
	return ret;
}

static void round_trips(void **state)
{
	static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 3 * 65536 + 17, 1 << 20};
	static const uint32_t chunks[] = {4096, 65536};
	struct fx *f = *state;

	for (size_t c = 0; c < TND_ARRAY_SIZE(chunks); c++) {
		for (size_t i = 0; i < TND_ARRAY_SIZE(sizes); i++) {
			uint8_t *img = make_image(sizes[i], i), *b, *got;
			size_t blen, glen;

			build(f, img, sizes[i], chunks[c], 1, NULL);
			b = tu_read_file(f->out, &blen);
			/* whole reads and byte-at-a-time reads both work */
			assert_int_equal(read_all(f, b, blen, 0, 1, &got, &glen), 0);
			assert_int_equal(glen, sizes[i]);
			assert_memory_equal(got, img, sizes[i]);
			free(got);
			if (sizes[i] < 5000) {
				assert_int_equal(read_all(f, b, blen, 1, 1, &got, &glen), 0);
				free(got);
			}
			free(b);
			free(img);
		}
	}
}

static void zero_runs_are_one_record(void **state)
{
	struct fx *f = *state;
	size_t len = 64 * 4096;
	uint8_t *img = calloc(1, len), *b;
	struct tnd_bundle_reader r;
	struct memsrc m;
	size_t blen;

	img[0] = 1; /* one data chunk, then 63 zero chunks */
	build(f, img, len, 4096, 1, NULL);
	b = tu_read_file(f->out, &blen);
	memsrc_init(&m, b, blen, 0);
	assert_int_equal(tnd_bundle_open(&r, &m.base, &(struct tnd_verify_opts){&f->kr, 1}), 0);
	assert_int_equal(r.manifest.chunks, 2);
	free(b);
	free(img);
}

static void thresholds(void **state)
{
	struct fx *f = *state;
	uint8_t *img = make_image(10000, 1), *b;
	size_t blen;

	build(f, img, 10000, 4096, 2, NULL);
	b = tu_read_file(f->out, &blen);
	assert_int_equal(read_all(f, b, blen, 0, 2, NULL, NULL), 0);
	assert_int_equal(read_all(f, b, blen, 0, 3, NULL, NULL), TND_E_SIGNATURE);
	free(b);
	/* the same key twice counts once */
	build(f, img, 10000, 4096, 2, f->key[0]);
	b = tu_read_file(f->out, &blen);
	assert_int_equal(read_all(f, b, blen, 0, 1, NULL, NULL), 0);
	assert_int_equal(read_all(f, b, blen, 0, 2, NULL, NULL), TND_E_SIGNATURE);
	free(b);
	free(img);
}

static void unknown_key(void **state)
{
	struct fx *f = *state;
	struct tnd_keyring only1 = {0};
	struct tnd_bundle_reader r;
	uint8_t *img = make_image(5000, 2), *b;
	struct memsrc m;
	size_t blen;

	build(f, img, 5000, 4096, 1, NULL);
	b = tu_read_file(f->out, &blen);
	assert_int_equal(tnd_keyring_add_file(&only1, f->pub[1]), 0);
	memsrc_init(&m, b, blen, 0);
	assert_int_equal(tnd_bundle_open(&r, &m.base, &(struct tnd_verify_opts){&only1, 1}),
			 TND_E_UNKNOWN_KEY);
	tnd_keyring_free(&only1);
	free(b);
	free(img);
}

/* Any changed byte is refused, at open (header, manifest, signatures) or
 * at the record it falls in: never a silent success. Sampled: every byte
 * of the first 400 and every 11th after. */
static void flipped_bytes(void **state)
{
	struct fx *f = *state;
	uint8_t *img = make_compressible_image(3 * 4096 + 100), *b;
	size_t blen;

	/* Compressible: four records in a bundle of about a kilobyte, so that
	 * flipping every byte stays a matter of seconds. */
	build(f, img, 3 * 4096 + 100, 4096, 1, NULL);
	b = tu_read_file(f->out, &blen);
	/* Every byte: header, manifest, signatures, each record's header,
	 * payload and hash (the bad-input suite of issue 6). */
	for (size_t i = 0; i < blen; i++) {
		int r;

		b[i] ^= 0x20;
		r = read_all(f, b, blen, 0, 1, NULL, NULL);
		if (r >= 0)
			fail_msg("flipping byte %zu of %zu went unnoticed", i, blen);
		b[i] ^= 0x20;
	}
	assert_int_equal(read_all(f, b, blen, 0, 1, NULL, NULL), 0);
	free(b);
	free(img);
}

static void truncated_and_trailing(void **state)
{
	struct fx *f = *state;
	uint8_t *img = make_compressible_image(5 * 4096), *b, *longer;
	size_t blen;

	build(f, img, 5 * 4096, 4096, 1, NULL);
	b = tu_read_file(f->out, &blen);
	/* Every length, so every record boundary and every cut inside one. */
	for (size_t cut = 0; cut < blen; cut++) {
		int r = read_all(f, b, cut, 0, 1, NULL, NULL);

		assert_true(r == TND_E_TRUNCATED || r == TND_E_FORMAT);
	}
	assert_int_equal(read_all(f, b, blen - 1, 0, 1, NULL, NULL), TND_E_TRUNCATED);
	longer = malloc(blen + 100);
	memcpy(longer, b, blen);
	memset(longer + blen, 0, 100);
	assert_int_equal(read_all(f, longer, blen + 1, 0, 1, NULL, NULL), TND_E_TRAILING);
	assert_int_equal(read_all(f, longer, blen + 100, 0, 1, NULL, NULL), TND_E_TRAILING);
	free(longer);
	free(b);
	free(img);
}

static void unverified_open_is_marked(void **state)
{
	struct fx *f = *state;
	struct tnd_bundle_reader r;
	uint8_t *img = make_image(100, 5), *b;
	struct memsrc m;
	size_t blen;

	build(f, img, 100, 4096, 1, NULL);
	b = tu_read_file(f->out, &blen);
	memsrc_init(&m, b, blen, 0);
	assert_int_equal(tnd_bundle_open(&r, &m.base, NULL), 0);
	assert_false(r.manifest.verified);
	free(b);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trips),
	    cmocka_unit_test(zero_runs_are_one_record),
	    cmocka_unit_test(thresholds),
	    cmocka_unit_test(unknown_key),
	    cmocka_unit_test(flipped_bytes),
	    cmocka_unit_test(truncated_and_trailing),
	    cmocka_unit_test(unverified_open_is_marked),
	};
	return cmocka_run_group_tests_name("reader", tests, setup, teardown);
}
