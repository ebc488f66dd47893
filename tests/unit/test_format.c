// SPDX-License-Identifier: MIT
/* Byte layout of headers, records and signature blocks (lib/bundle.c). */
#include "testutil.h"

#include "bundle.h"
#include "chunk.h"
#include "util.h"

static void header_round_trip(void **state)
{
	struct tnd_header h = {.format = 1, .manifest_len = 1234, .sigblock_len = 77}, g;
	uint8_t buf[TND_HEADER_SIZE];

	(void)state;
	tnd_header_encode(buf, &h);
	assert_memory_equal(buf, "TNDMBNDL", 8);
	assert_int_equal(tnd_header_decode(&g, buf), 0);
	assert_int_equal(g.manifest_len, 1234);
	assert_int_equal(g.sigblock_len, 77);
}

static void header_refusals(void **state)
{
	struct tnd_header h = {.format = 1, .manifest_len = 10, .sigblock_len = 10}, g;
	uint8_t buf[TND_HEADER_SIZE], bad[TND_HEADER_SIZE];
	static const struct {
		size_t off;
		uint8_t val;
		int code;
	} cases[] = {
	    {0, 'X', TND_E_FORMAT},	/* magic */
	    {11, 2, TND_E_UNSUPPORTED}, /* format version 2 */
	    {15, 31, TND_E_FORMAT},	/* header size */
	    {16, 0xff, TND_E_FORMAT},	/* manifest length > 64 KiB */
	    {20, 0xff, TND_E_FORMAT},	/* signature block length */
	    {28, 1, TND_E_FORMAT},	/* reserved */
	};

	(void)state;
	tnd_header_encode(buf, &h);
	for (size_t i = 0; i < TND_ARRAY_SIZE(cases); i++) {
		memcpy(bad, buf, sizeof(bad));
		bad[cases[i].off] = cases[i].val;
		assert_int_equal(tnd_header_decode(&g, bad), cases[i].code);
	}
	h.manifest_len = 0;
	tnd_header_encode(buf, &h);
	assert_int_equal(tnd_header_decode(&g, buf), TND_E_FORMAT);
}

static void record_round_trip(void **state)
{
	struct tnd_record r = {.index = 7,
			       .type = TND_REC_DEFLATE,
			       .stored_len = 999,
			       .out_offset = 1ull << 40,
			       .out_len = 262144,
			       .out_crc32 = 0xdeadbeef},
			  g;
	uint8_t buf[TND_RECORD_HDR_SIZE];

	(void)state;
	memset(r.next, 0xab, sizeof(r.next));
	tnd_record_encode(buf, &r);
	assert_int_equal(tnd_record_decode(&g, buf), 0);
	assert_int_equal(g.index, 7);
	assert_int_equal(g.type, TND_REC_DEFLATE);
	assert_int_equal(g.stored_len, 999);
	assert_true(g.out_offset == 1ull << 40);
	assert_int_equal(g.out_len, 262144);
	assert_int_equal(g.out_crc32, 0xdeadbeef);
	assert_memory_equal(g.next, r.next, 32);
	buf[0] = 'X';
	assert_int_equal(tnd_record_decode(&g, buf), TND_E_INTEGRITY);
	tnd_record_encode(buf, &r);
	buf[10] = 1; /* reserved */
	assert_int_equal(tnd_record_decode(&g, buf), TND_E_INTEGRITY);
}

static void sigblock_round_trip(void **state)
{
	struct tnd_signature s[2] = {{.alg = 1, .len = 70}, {.alg = 1, .len = 3}}, g[TND_MAX_SIGS];
	uint8_t buf[1024];
	size_t n;
	int len;

	(void)state;
	memset(s[0].keyid, 1, 32);
	memset(s[0].sig, 2, 70);
	memset(s[1].keyid, 3, 32);
	memset(s[1].sig, 4, 3);
	len = tnd_sigblock_encode(buf, sizeof(buf), s, 2);
	assert_int_equal(len, 2 + 2 * 35 + 73);
	assert_int_equal(tnd_sigblock_decode(g, &n, buf, (size_t)len), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(g[1].keyid, s[1].keyid, 32);
	assert_int_equal(g[0].len, 70);
	/* every truncation and a stray byte are refused */
	for (int cut = 0; cut < len; cut++)
		assert_int_equal(tnd_sigblock_decode(g, &n, buf, (size_t)cut), TND_E_FORMAT);
	buf[len] = 0;
	assert_int_equal(tnd_sigblock_decode(g, &n, buf, (size_t)len + 1), TND_E_FORMAT);
	buf[1] = 0; /* zero signatures */
	assert_int_equal(tnd_sigblock_decode(g, &n, buf, (size_t)len), TND_E_FORMAT);
	buf[1] = TND_MAX_SIGS + 1;
	assert_int_equal(tnd_sigblock_decode(g, &n, buf, (size_t)len), TND_E_FORMAT);
}

static void digest_is_domain_separated(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	tnd_manifest_digest("{}", 2, a);
	tnd_sha256("{}", 2, b);
	assert_memory_not_equal(a, b, 32);
}

/* The prefix CRC of a resume checkpoint: combined record by record, zero
 * runs without touching their bytes. */
static void crc_combine_and_zeros(void **state)
{
	static uint8_t buf[300001];
	static const uint64_t lens[] = {0, 1, 2, 3, 7, 64, 4095, 4096, 65537, 300001};

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		assert_int_equal(tnd_crc32_zeros(lens[i]), tnd_crc32(buf, (size_t)lens[i]));
	tu_fill_random(buf, sizeof(buf), 7);
	for (size_t cut = 0; cut <= sizeof(buf); cut += 37501)
		assert_int_equal(tnd_crc32_combine(tnd_crc32(buf, cut),
						   tnd_crc32(buf + cut, sizeof(buf) - cut),
						   sizeof(buf) - cut),
				 tnd_crc32(buf, sizeof(buf)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(header_round_trip),	  cmocka_unit_test(header_refusals),
	    cmocka_unit_test(record_round_trip),	  cmocka_unit_test(sigblock_round_trip),
	    cmocka_unit_test(digest_is_domain_separated), cmocka_unit_test(crc_combine_and_zeros),
	};
	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
