// SPDX-License-Identifier: MIT
/* Manifest parsing: every field's type and bounds (lib/manifest.c). */
#include "testutil.h"

#include "manifest.h"
#include "timeutil.h"
#include "util.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define GOOD                                                                                       \
	"{\"format\":1,\"compatible\":\"sim\",\"version\":\"1.0\",\"security_version\":3,"         \
	"\"created\":\"2026-01-01T00:00:00Z\",\"expires\":\"2027-01-01T00:00:00Z\","               \
	"\"image\":{\"size\":1048576,\"sha256\":\"" H64 "\"},"                                     \
	"\"payload\":{\"type\":\"full\",\"compression\":\"zlib\",\"chunk_size\":262144,"           \
	"\"chunks\":4,\"size\":5000,\"first_chunk_sha256\":\"" H64 "\"}}"

static void parses_good(void **state)
{
	struct tnd_manifest m;
	int64_t t;

	(void)state;
	assert_int_equal(tnd_manifest_parse(&m, GOOD, strlen(GOOD)), 0);
	assert_false(m.verified);
	assert_string_equal(m.compatible, "sim");
	assert_string_equal(m.version, "1.0");
	assert_int_equal(m.security_version, 3);
	assert_int_equal(m.image_size, 1048576);
	assert_int_equal(m.chunk_size, 262144);
	assert_int_equal(m.chunks, 4);
	assert_int_equal(m.payload_type, TND_PAYLOAD_FULL);
	assert_int_equal(tnd_time_parse("2027-01-01T00:00:00Z", &t), 0);
	assert_true(m.expires == t);
	assert_int_equal(m.image_sha256[0], 0x01);
}

static void round_trips(void **state)
{
	struct tnd_manifest m, g;
	char *json;

	(void)state;
	assert_int_equal(tnd_manifest_parse(&m, GOOD, strlen(GOOD)), 0);
	assert_int_equal(tnd_manifest_to_json(&m, &json), 0);
	assert_int_equal(tnd_manifest_parse(&g, json, strlen(json)), 0);
	assert_memory_equal(&m, &g, sizeof(m));
	free(json);
}

/* One substitution in GOOD, and the error it must give. */
static const struct {
	const char *from, *to;
	int code;
} bad[] = {
    {"\"format\":1", "\"format\":2", TND_E_UNSUPPORTED},
    {"\"format\":1", "\"format\":\"1\"", TND_E_FORMAT},
    {"\"format\":1,", "", TND_E_FORMAT},
    {"\"compatible\":\"sim\"", "\"compatible\":\"\"", TND_E_FORMAT},
    {"\"compatible\":\"sim\"", "\"compatible\":\"s m\"", TND_E_FORMAT},
    {"\"compatible\":\"sim\"", "\"compatible\":7", TND_E_FORMAT},
    {"\"version\":\"1.0\"", "\"version\":null", TND_E_FORMAT},
    {"\"security_version\":3", "\"security_version\":-1", TND_E_FORMAT},
    {"\"security_version\":3", "\"security_version\":1.5", TND_E_FORMAT},
    {"\"security_version\":3", "\"security_version\":1e300", TND_E_FORMAT},
    {"2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", TND_E_FORMAT},
    {"2026-01-01T00:00:00Z", "yesterday", TND_E_FORMAT},
    {"2027-01-01T00:00:00Z", "2025-01-01T00:00:00Z", TND_E_FORMAT},
    {"\"size\":1048576", "\"size\":\"big\"", TND_E_FORMAT},
    {"\"size\":1048576", "\"size\":18446744073709551616", TND_E_FORMAT},
    {"\"sha256\":\"0123", "\"sha256\":\"x123", TND_E_FORMAT},
    {"\"sha256\":\"0123", "\"sha256\":\"123", TND_E_FORMAT},
    {"\"type\":\"full\"", "\"type\":\"partial\"", TND_E_UNSUPPORTED},
    {"\"type\":\"full\"", "\"type\":\"delta\"", TND_E_FORMAT},
    {"\"compression\":\"zlib\"", "\"compression\":\"lzma\"", TND_E_UNSUPPORTED},
    {"\"chunk_size\":262144", "\"chunk_size\":262145", TND_E_FORMAT},
    {"\"chunk_size\":262144", "\"chunk_size\":1024", TND_E_FORMAT},
    {"\"chunk_size\":262144", "\"chunk_size\":1073741824", TND_E_FORMAT},
    {"\"chunks\":4", "\"chunks\":0", TND_E_FORMAT},
    {"\"image\":{", "\"image\":[{", TND_E_FORMAT},
    {"{\"format\"", "[{\"format\"", TND_E_FORMAT},
    {"}}", "}} ", TND_E_FORMAT},
    {"}}", "}}x", TND_E_FORMAT},
    {"}}", "}", TND_E_FORMAT},
};

static char *substitute(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	assert_non_null(p);
	out = malloc(strlen(s) + strlen(to) + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(p - s));
	strcpy(out + (p - s), to);
	strcat(out, p + strlen(from));
	return out;
}

static void refuses_bad_fields(void **state)
{
	struct tnd_manifest m;

	(void)state;
	for (size_t i = 0; i < TND_ARRAY_SIZE(bad); i++) {
		char *json = substitute(GOOD, bad[i].from, bad[i].to);
		int r = tnd_manifest_parse(&m, json, strlen(json));

		if (r != bad[i].code)
			fail_msg("case %zu (%s -> %s): got %d, want %d", i, bad[i].from, bad[i].to,
				 r, bad[i].code);
		assert_string_not_equal(tnd_err_msg(), "");
		free(json);
	}
}

/* The value of the nth (0-based) "key": in s replaced by to. */
static char *replace_value(const char *s, const char *key, int nth, const char *to)
{
	char pat[64];
	const char *p = s, *v, *e;
	char *out;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	for (int i = 0; i <= nth; i++) {
		p = strstr(i ? p + 1 : p, pat);
		assert_non_null(p);
	}
	v = p + strlen(pat);
	if (*v == '"') {
		e = strchr(v + 1, '"') + 1;
	} else if (*v == '{') {
		int depth = 0;

		for (e = v;; e++) {
			depth += *e == '{';
			depth -= *e == '}';
			if (!depth)
				break;
		}
		e++;
	} else {
		e = v + strspn(v, "0123456789");
	}
	out = malloc(strlen(s) + strlen(to) + 1);
	assert_non_null(out);
	memcpy(out, s, (size_t)(v - s));
	strcpy(out + (v - s), to);
	strcat(out, e);
	return out;
}

/* Every field, every JSON type it must not have: refused, never parsed
 * into something (the bad-input suite of issue 6). */
static void every_field_every_wrong_type(void **state)
{
	static const struct {
		const char *key;
		int nth;
		char type; /* n number, s string, o object */
	} fields[] = {
	    {"format", 0, 'n'},	    {"compatible", 0, 's'},
	    {"version", 0, 's'},    {"security_version", 0, 'n'},
	    {"created", 0, 's'},    {"expires", 0, 's'},
	    {"image", 0, 'o'},	    {"size", 0, 'n'},
	    {"sha256", 0, 's'},	    {"payload", 0, 'o'},
	    {"type", 0, 's'},	    {"compression", 0, 's'},
	    {"chunk_size", 0, 'n'}, {"chunks", 0, 'n'},
	    {"size", 1, 'n'},	    {"first_chunk_sha256", 0, 's'},
	};
	static const char *const not_number[] = {"\"1\"", "null", "true",  "[]",  "{}",
						 "-1",	  "1.5",  "1e300", "-0.5"};
	static const char *const not_string[] = {"7", "null", "false", "[]", "{}", "\"\""};
	static const char *const not_object[] = {"7", "null", "true", "[]", "\"x\"", "{}"};
	struct tnd_manifest m;
	unsigned cases = 0;

	(void)state;
	for (size_t i = 0; i < TND_ARRAY_SIZE(fields); i++) {
		const char *const *vals = fields[i].type == 'n'	  ? not_number
					  : fields[i].type == 's' ? not_string
								  : not_object;
		size_t n = fields[i].type == 'n'   ? TND_ARRAY_SIZE(not_number)
			   : fields[i].type == 's' ? TND_ARRAY_SIZE(not_string)
						   : TND_ARRAY_SIZE(not_object);

		for (size_t j = 0; j < n; j++) {
			char *json = replace_value(GOOD, fields[i].key, fields[i].nth, vals[j]);
			int r = tnd_manifest_parse(&m, json, strlen(json));

			if (r == 0)
				fail_msg("\"%s\" (#%d) = %s was accepted", fields[i].key,
					 fields[i].nth, vals[j]);
			assert_string_not_equal(tnd_err_msg(), "");
			free(json);
			cases++;
		}
	}
	/* and the unchanged document still parses: the cases tested the values */
	assert_int_equal(tnd_manifest_parse(&m, GOOD, strlen(GOOD)), 0);
	assert_true(cases > 100);
}

static void delta_needs_base(void **state)
{
	struct tnd_manifest m;
	char *a = substitute(GOOD, "\"type\":\"full\"", "\"type\":\"delta\"");
	char *b =
	    substitute(a, "\"image\":", "\"base\":{\"size\":5,\"sha256\":\"" H64 "\"},\"image\":");
	char *c = substitute(b, "\"chunks\":4", "\"chunks\":4,\"stream_size\":777");

	(void)state;
	/* a delta needs the size of its op stream */
	assert_int_equal(tnd_manifest_parse(&m, b, strlen(b)), TND_E_FORMAT);
	assert_int_equal(tnd_manifest_parse(&m, c, strlen(c)), 0);
	assert_true(m.has_base);
	assert_int_equal(m.base_size, 5);
	assert_int_equal(m.stream_size, 777);
	free(a);
	free(b);
	free(c);
}

/* Large sizes must be written exactly, or the signed manifest would name
 * another number than the one the builder meant (fuzz finding). */
static void large_sizes_round_trip_exactly(void **state)
{
	static const uint64_t sizes[] = {4503599627370497ull, 9007199254740991ull};
	struct tnd_manifest m, g;
	char *json;

	(void)state;
	assert_int_equal(tnd_manifest_parse(&m, GOOD, strlen(GOOD)), 0);
	for (size_t i = 0; i < TND_ARRAY_SIZE(sizes); i++) {
		m.image_size = sizes[i];
		assert_int_equal(tnd_manifest_to_json(&m, &json), 0);
		assert_non_null(strstr(json, "\"size\":9007199254740991") ||
				strstr(json, "\"size\":4503599627370497"));
		assert_int_equal(tnd_manifest_parse(&g, json, strlen(json)), 0);
		assert_true(g.image_size == sizes[i]);
		free(json);
	}
	/* 2^53 and above: refused, it would not be one number to every reader */
	char *big = substitute(GOOD, "\"size\":1048576", "\"size\":9007199254740992");

	assert_int_equal(tnd_manifest_parse(&g, big, strlen(big)), TND_E_FORMAT);
	free(big);
}

static void times(void **state)
{
	char s[TND_TIME_STR_LEN];
	int64_t t;

	(void)state;
	assert_int_equal(tnd_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_true(t == 0);
	assert_int_equal(tnd_time_parse("2024-02-29T12:34:56Z", &t), 0);
	tnd_time_format(s, t);
	assert_string_equal(s, "2024-02-29T12:34:56Z");
	assert_int_not_equal(tnd_time_parse("2023-02-29T00:00:00Z", &t), 0);
	assert_int_equal(tnd_time_parse("2000-02-29T00:00:00Z", &t), 0);
	assert_int_not_equal(tnd_time_parse("2100-02-29T00:00:00Z", &t), 0);
	assert_int_not_equal(tnd_time_parse("2024-02-30T00:00:00Z", &t), 0);
	assert_int_not_equal(tnd_time_parse("2024-01-01 00:00:00Z", &t), 0);
	assert_int_not_equal(tnd_time_parse("2024-01-01T00:00:00+01:00", &t), 0);
	assert_int_not_equal(tnd_time_parse("2024-01-01T00:00:0xZ", &t), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_good),
	    cmocka_unit_test(round_trips),
	    cmocka_unit_test(refuses_bad_fields),
	    cmocka_unit_test(every_field_every_wrong_type),
	    cmocka_unit_test(delta_needs_base),
	    cmocka_unit_test(large_sizes_round_trip_exactly),
	    cmocka_unit_test(times),
	};
	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
