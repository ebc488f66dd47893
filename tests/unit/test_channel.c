// SPDX-License-Identifier: MIT
/* The channel index (lib/channel.c): signatures, strict parsing, lookups,
 * URL resolution and the staged-rollout hash. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>

#include "bundle.h"
#include "channel.h"
#include "sign.h"
#include "util.h"

#define NKEYS 3

struct fx {
	char *dir;
	struct tnd_signer *signer[NKEYS];
	struct tnd_keyring kr01; /* keys 0 and 1; key 2 is a stranger */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char name[32];

	f->dir = tu_mkdtemp();
	for (int i = 0; i < NKEYS; i++) {
		snprintf(name, sizeof(name), "k%d.key", i);
		char *priv = tu_path(f->dir, name);
		snprintf(name, sizeof(name), "k%d.pem", i);
		char *pub = tu_path(f->dir, name);

		assert_int_equal(tnd_keygen(priv, pub), 0);
		assert_int_equal(tnd_signer_load(&f->signer[i], priv), 0);
		if (i < 2)
			assert_int_equal(tnd_keyring_add_file(&f->kr01, pub), 0);
		free(priv);
		free(pub);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < NKEYS; i++)
		tnd_signer_free(f->signer[i]);
	tnd_keyring_free(&f->kr01);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static void fill_hash(uint8_t h[TND_SHA256_LEN], uint8_t v)
{
	memset(h, v, TND_SHA256_LEN);
}

/* A channel of two boards, the first with two deltas. */
static void sample(struct tnd_channel *c)
{
	struct tnd_channel_release *r;

	memset(c, 0, sizeof(*c));
	c->sequence = 7;
	c->created = 1800000000;
	c->expires = 1800000000 + 7 * 86400;
	c->nreleases = 2;
	c->releases = calloc(2, sizeof(*c->releases));
	assert_non_null(c->releases);
	r = &c->releases[0];
	strcpy(r->compatible, "acme,board-a");
	strcpy(r->version, "1.2.0");
	r->security_version = 3;
	r->image_size = 1 << 20;
	fill_hash(r->image_sha256, 0xa1);
	r->rollout_percent = 30;
	strcpy(r->full.url, "acme,board-a/1.2.0.tnd");
	r->full.size = 123456;
	fill_hash(r->full.sha256, 0xb1);
	r->ndeltas = 2;
	for (int i = 0; i < 2; i++) {
		struct tnd_channel_delta *d = &r->deltas[i];

		fill_hash(d->base_sha256, (uint8_t)(0xc0 + i));
		d->base_size = 1000 + (uint64_t)i;
		snprintf(d->base_version, sizeof(d->base_version), "1.%d.0", i);
		snprintf(d->file.url, sizeof(d->file.url), "acme,board-a/1.2.0-from-1.%d.0.tnd", i);
		d->file.size = 4000 + (uint64_t)i;
		fill_hash(d->file.sha256, (uint8_t)(0xd0 + i));
	}
	r = &c->releases[1];
	strcpy(r->compatible, "acme,board-b");
	strcpy(r->version, "9007199254740991");
	r->security_version = UINT32_MAX;
	r->image_size = 9007199254740991ull;
	fill_hash(r->image_sha256, 0x01);
	r->rollout_percent = 100;
	strcpy(r->full.url, "https://cdn.example.org/b/9.tnd");
	r->full.size = 9007199254740991ull;
	fill_hash(r->full.sha256, 0x02);
}

static char *encode(struct fx *f, const struct tnd_channel *c, const int *keys, size_t nkeys)
{
	struct tnd_signer *s[NKEYS];
	size_t len;
	char *out = NULL;

	for (size_t i = 0; i < nkeys; i++)
		s[i] = f->signer[keys[i]];
	assert_int_equal(tnd_channel_encode(c, s, nkeys, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	/* A copy: gcc's -Wdangling-pointer mistakes the returned heap
	 * pointer for the address of the local `out`. */
	char *copy = strdup(out);

	assert_non_null(copy);
	free(out);
	return copy;
}

static void round_trip(void **state)
{
	struct fx *f = *state;
	struct tnd_verify_opts o = {.keyring = &f->kr01};
	struct tnd_channel c, p;
	const int k0[] = {0};
	char *text;

	sample(&c);
	text = encode(f, &c, k0, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), 0);
	assert_true(p.verified);
	assert_int_equal(p.valid_sigs, 1);
	assert_int_equal(p.sequence, 7);
	assert_int_equal(p.created, c.created);
	assert_int_equal(p.expires, c.expires);
	assert_int_equal(p.nreleases, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct tnd_channel_release *a = &c.releases[i], *b = &p.releases[i];

		assert_string_equal(a->compatible, b->compatible);
		assert_string_equal(a->version, b->version);
		assert_int_equal(a->security_version, b->security_version);
		assert_int_equal(a->image_size, b->image_size);
		assert_memory_equal(a->image_sha256, b->image_sha256, TND_SHA256_LEN);
		assert_int_equal(a->rollout_percent, b->rollout_percent);
		assert_string_equal(a->full.url, b->full.url);
		assert_int_equal(a->full.size, b->full.size);
		assert_memory_equal(a->full.sha256, b->full.sha256, TND_SHA256_LEN);
		assert_int_equal(a->ndeltas, b->ndeltas);
		for (size_t j = 0; j < a->ndeltas; j++)
			assert_memory_equal(&a->deltas[j], &b->deltas[j], sizeof(a->deltas[j]));
	}
	tnd_channel_free(&p);
	/* Without a keyring: parsed, not verified. */
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), NULL), 0);
	assert_false(p.verified);
	assert_int_equal(p.nreleases, 2);
	tnd_channel_free(&p);
	/* A trailing newline is whitespace; anything else is refused. */
	size_t n = strlen(text);
	text = realloc(text, n + 3);
	memcpy(text + n, "\n", 2);
	assert_int_equal(tnd_channel_parse(&p, text, n + 1, &o), 0);
	tnd_channel_free(&p);
	memcpy(text + n, "\nx", 3);
	assert_int_equal(tnd_channel_parse(&p, text, n + 2, &o), TND_E_FORMAT);
	assert_null(p.releases);
	free(text);
	tnd_channel_free(&c);
}

static void threshold_counts_distinct_keys(void **state)
{
	struct fx *f = *state;
	struct tnd_verify_opts o = {.keyring = &f->kr01, .threshold = 2};
	struct tnd_channel c, p;
	const int k0[] = {0}, k00[] = {0, 0}, k01[] = {0, 1}, k20[] = {2, 0}, k2[] = {2};
	char *text;

	sample(&c);
	text = encode(f, &c, k0, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), TND_E_SIGNATURE);
	free(text);
	/* One key signing twice is still one key. */
	text = encode(f, &c, k00, 2);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), TND_E_SIGNATURE);
	free(text);
	text = encode(f, &c, k01, 2);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), 0);
	assert_int_equal(p.valid_sigs, 2);
	tnd_channel_free(&p);
	free(text);
	/* A stranger's signature is ignored, not fatal. */
	o.threshold = 1;
	text = encode(f, &c, k20, 2);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), 0);
	assert_int_equal(p.valid_sigs, 1);
	tnd_channel_free(&p);
	free(text);
	text = encode(f, &c, k2, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), TND_E_UNKNOWN_KEY);
	assert_null(p.releases);
	/* A keyring made from the signing key itself (publish checks
	 * bundles this way) trusts it, once however often it is added. */
	struct tnd_keyring own = {0};

	assert_int_equal(tnd_keyring_add_signer(&own, f->signer[2]), 0);
	assert_int_equal(tnd_keyring_add_signer(&own, f->signer[2]), 0);
	assert_int_equal(own.n, 1);
	o.keyring = &own;
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), &o), 0);
	assert_true(p.verified);
	tnd_channel_free(&p);
	tnd_keyring_free(&own);
	free(text);
	tnd_channel_free(&c);
}

/* An envelope around any document, signed with any context: fixtures the
 * encoder would never make. */
static char *envelope_v(struct fx *f, const char *doc, const char *context, int key, int format)
{
	uint8_t digest[TND_SHA256_LEN], sig[TND_SIG_MAX];
	unsigned char b64[256];
	char keyid[TND_SHA256_HEX_LEN], *out;
	struct tnd_sha256 h;
	size_t len, n;
	cJSON *root, *sigs, *s;

	tnd_sha256_init(&h);
	tnd_sha256_update(&h, context, strlen(context));
	tnd_sha256_update(&h, doc, strlen(doc));
	tnd_sha256_final(&h, digest);
	assert_int_equal(tnd_signer_sign(f->signer[key], digest, sig, &len), 0);
	assert_int_equal(mbedtls_base64_encode(b64, sizeof(b64), &n, sig, len), 0);
	tnd_hex_encode(keyid, tnd_signer_id(f->signer[key]), TND_KEYID_LEN);
	root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "format", format);
	cJSON_AddStringToObject(root, "signed", doc);
	sigs = cJSON_AddArrayToObject(root, "signatures");
	s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "keyid", keyid);
	cJSON_AddStringToObject(s, "sig", (const char *)b64);
	cJSON_AddItemToArray(sigs, s);
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	assert_non_null(out);
	return out;
}

static char *envelope(struct fx *f, const char *doc, const char *context, int key)
{
	return envelope_v(f, doc, context, key, 1);
}

static int parse_text(struct fx *f, const char *text)
{
	struct tnd_verify_opts o = {.keyring = &f->kr01};
	struct tnd_channel p;
	int r = tnd_channel_parse(&p, text, strlen(text), &o);

	if (r == 0)
		tnd_channel_free(&p);
	else
		assert_null(p.releases);
	return r;
}

static int parse_doc(struct fx *f, const char *doc)
{
	char *text = envelope(f, doc, TND_CHANNEL_SIG_CONTEXT, 0);
	int r = parse_text(f, text);

	free(text);
	return r;
}

static void tampered_and_wrong_context(void **state)
{
	struct fx *f = *state;
	struct tnd_channel c;
	const int k0[] = {0};
	char *text, *p;

	sample(&c);
	text = encode(f, &c, k0, 1);
	assert_int_equal(parse_text(f, text), 0);
	/* One signed byte changed: "sequence":7 becomes 8. */
	p = strstr(text, "\\\"sequence\\\":7");
	assert_non_null(p);
	p[strlen("\\\"sequence\\\":")] = '8';
	assert_int_equal(parse_text(f, text), TND_E_SIGNATURE);
	free(text);
	tnd_channel_free(&c);

	/* The same document signed as a manifest is not an index. */
	const char *doc = "{\"sequence\":1,\"created\":\"2027-01-01T00:00:00Z\","
			  "\"expires\":\"2027-01-08T00:00:00Z\",\"releases\":[]}";
	text = envelope(f, doc, TND_MANIFEST_SIG_CONTEXT, 0);
	assert_int_equal(parse_text(f, text), TND_E_SIGNATURE);
	free(text);
	text = envelope(f, doc, TND_CHANNEL_SIG_CONTEXT, 0);
	assert_int_equal(parse_text(f, text), 0);
	free(text);
}

#define H64(c)                                                                                     \
	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
	    c c c c c c c c c c c c c c c c c c c
static const char good_doc[] =
    "{\"sequence\":5,\"created\":\"2027-01-01T00:00:00Z\",\"expires\":\"2027-01-08T00:00:00Z\","
    "\"releases\":[{\"compatible\":\"acme,a\",\"version\":\"2.0\",\"security_version\":1,"
    "\"image_size\":4096,\"image_sha256\":\"" H64(
	"a") "\",\"rollout_percent\":50,"
	     "\"full\":{\"url\":\"acme,a/2.0.tnd\",\"size\":5000,\"sha256\":\"" H64(
		 "b") "\"},"
		      "\"deltas\":[{\"base_sha256\":\"" H64(
			  "c") "\",\"base_size\":4096,\"base_version\":\"1.0\","
			       "\"url\":\"acme,a/2.0-from-1.0.tnd\",\"size\":300,\"sha256\":\"" H64(
				   "d") "\"}]}]}";

/* good_doc with the first `from` replaced by `to`. */
static char *edit(const char *from, const char *to)
{
	const char *at = strstr(good_doc, from);
	char *out;

	assert_non_null(at);
	out = malloc(sizeof(good_doc) + strlen(to));
	assert_non_null(out);
	sprintf(out, "%.*s%s%s", (int)(at - good_doc), good_doc, to, at + strlen(from));
	return out;
}

static void strict_fields(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *from, *to;
		int want;
	} cases[] = {
	    /* unknown and repeated keys, at every level */
	    {"{\"sequence\":5,", "{\"sequence\":5,\"x\":1,", TND_E_FORMAT},
	    {"{\"sequence\":5,", "{\"sequence\":5,\"sequence\":5,", TND_E_FORMAT},
	    {"\"security_version\":1,", "\"security_version\":1,\"extra\":true,", TND_E_FORMAT},
	    {"\"size\":5000,", "\"size\":5000,\"mirror\":\"x\",", TND_E_FORMAT},
	    {"\"base_size\":4096,", "\"base_size\":4096,\"bogus\":0,", TND_E_FORMAT},
	    /* numbers: huge, not integers, negative, wrong type, out of range */
	    {"\"sequence\":5", "\"sequence\":9007199254740992", TND_E_FORMAT},
	    {"\"sequence\":5", "\"sequence\":1e300", TND_E_FORMAT},
	    {"\"sequence\":5", "\"sequence\":5.5", TND_E_FORMAT},
	    {"\"sequence\":5", "\"sequence\":0", TND_E_FORMAT},
	    {"\"sequence\":5", "\"sequence\":\"5\"", TND_E_FORMAT},
	    {"\"image_size\":4096", "\"image_size\":-1", TND_E_FORMAT},
	    {"\"security_version\":1", "\"security_version\":4294967296", TND_E_FORMAT},
	    {"\"rollout_percent\":50", "\"rollout_percent\":101", TND_E_FORMAT},
	    {"\"size\":5000", "\"size\":31", TND_E_FORMAT},
	    /* strings: length, characters, hex spelling */
	    {"\"version\":\"2.0\"", "\"version\":\"" H64("1") "\"", TND_E_FORMAT},
	    {"\"version\":\"2.0\"", "\"version\":\"2 0\"", TND_E_FORMAT},
	    {"\"version\":\"2.0\"", "\"version\":\"\"", TND_E_FORMAT},
	    {"\"image_sha256\":\"a", "\"image_sha256\":\"", TND_E_FORMAT},
	    {"\"image_sha256\":\"a", "\"image_sha256\":\"aa", TND_E_FORMAT},
	    {"\"image_sha256\":\"a", "\"image_sha256\":\"A", TND_E_FORMAT},
	    {"\"image_sha256\":\"a", "\"image_sha256\":\"g", TND_E_FORMAT},
	    {"2027-01-08T00:00:00Z", "2026-12-31T00:00:00Z", TND_E_FORMAT},
	    {"2027-01-08T00:00:00Z", "2027-01-08 00:00:00", TND_E_FORMAT},
	    /* URLs */
	    {"acme,a/2.0.tnd", "../2.0.tnd", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "acme,a/../../etc/passwd", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "/srv/2.0.tnd", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "file:///etc/passwd", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "//evil.example/x", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "a\\u0001b", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "a\\u0000b", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "a b", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "a\\\\b", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "", TND_E_FORMAT},
	    /* structure */
	    {"\"releases\":[", "\"releases\":{}, \"r\":[", TND_E_FORMAT},
	    {"\"full\":{", "\"full\":[{", TND_E_FORMAT},
	    {"\"deltas\":[", "\"deltas\":{\"x\":", TND_E_FORMAT},
	    /* allowed variations, to prove the table tests what it says */
	    {"\"rollout_percent\":50,", "", 0},
	    {",\"deltas\":[{", ",\"d\":[{", TND_E_FORMAT},
	    {"acme,a/2.0.tnd", "https://cdn.example.org/a%20b/2.0.tnd?x=1", 0},
	    {"\"sequence\":5", "\"sequence\":9007199254740991", 0},
	    {"\"sequence\":5", "\"sequence\":5.0", 0},
	};

	assert_int_equal(parse_doc(f, good_doc), 0);
	for (size_t i = 0; i < TND_ARRAY_SIZE(cases); i++) {
		char *doc = edit(cases[i].from, cases[i].to);
		int r = parse_doc(f, doc);

		if (r != cases[i].want)
			fail_msg("case %zu (%s -> %s): got %d, want %d (%s)", i, cases[i].from,
				 cases[i].to, r, cases[i].want, tnd_err_msg());
		free(doc);
	}
}

static void long_url_and_sig_encoding(void **state)
{
	struct fx *f = *state;
	char url[TND_CHANNEL_URL_MAX + 1], *doc, *text, *p;

	memset(url, 'u', sizeof(url));
	url[TND_CHANNEL_URL_MAX - 1] = '\0'; /* 1023: the longest accepted */
	doc = edit("acme,a/2.0.tnd", url);
	assert_int_equal(parse_doc(f, doc), 0);
	free(doc);
	url[TND_CHANNEL_URL_MAX - 1] = 'u';
	url[TND_CHANNEL_URL_MAX] = '\0';
	doc = edit("acme,a/2.0.tnd", url);
	assert_int_equal(parse_doc(f, doc), TND_E_FORMAT);
	free(doc);

	/* Envelope: format, unknown key, base64 spelling. */
	text = envelope(f, good_doc, TND_CHANNEL_SIG_CONTEXT, 0);
	p = strstr(text, "\"format\":1");
	assert_non_null(p);
	p[strlen("\"format\":")] = '3';
	assert_int_equal(parse_text(f, text), TND_E_UNSUPPORTED);
	p[strlen("\"format\":")] = '0';
	assert_int_equal(parse_text(f, text), TND_E_UNSUPPORTED);
	p[strlen("\"format\":")] = '2'; /* format 2 reads every format-1 document */
	assert_int_equal(parse_text(f, text), 0);
	p[strlen("\"format\":")] = '1';
	p = strstr(text, "\"sig\":\"");
	assert_non_null(p);
	p += strlen("\"sig\":\"");
	/* Whitespace inside the base64 is not canonical. */
	size_t n = strlen(text);
	char *spaced = malloc(n + 3);
	sprintf(spaced, "%.*s\\n%s", (int)(p + 4 - text), text, p + 4);
	assert_int_equal(parse_text(f, spaced), TND_E_FORMAT);
	free(spaced);
	p[0] = '*';
	assert_int_equal(parse_text(f, text), TND_E_FORMAT);
	free(text);

	assert_int_equal(parse_text(f, "{\"format\":1,\"signed\":\"{}\",\"signatures\":[]}"),
			 TND_E_FORMAT);
	assert_int_equal(
	    parse_text(f, "{\"format\":1,\"signed\":\"{}\",\"signatures\":[],\"x\":0}"),
	    TND_E_FORMAT);
	assert_int_equal(parse_text(f, "[]"), TND_E_FORMAT);
	assert_int_equal(parse_text(f, ""), TND_E_FORMAT);

	/* Larger than TND_CHANNEL_MAX is refused before parsing. */
	size_t big = TND_CHANNEL_MAX + 1;
	char *huge = malloc(big);
	struct tnd_channel c;

	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	assert_int_equal(tnd_channel_parse(&c, huge, big, NULL), TND_E_FORMAT);
	free(huge);
}

static void too_many_releases_and_deltas(void **state)
{
	struct fx *f = *state;
	struct tnd_channel c;
	char *text;
	const int k0[] = {0};

	sample(&c);
	/* The encoder refuses to write what the parser would refuse. */
	c.releases[0].ndeltas = TND_CHANNEL_MAX_DELTAS;
	for (size_t i = 0; i < TND_CHANNEL_MAX_DELTAS; i++) {
		c.releases[0].deltas[i] = c.releases[0].deltas[0];
		c.releases[0].deltas[i].base_sha256[0] = (uint8_t)i;
	}
	text = encode(f, &c, k0, 1);
	assert_int_equal(parse_text(f, text), 0);
	free(text);

	/* 33 deltas and 257 releases, written by hand. */
	size_t cap = 2u * 1024 * 1024, len;
	char *doc = malloc(cap);

	len = (size_t)sprintf(doc, "%s",
			      "{\"sequence\":5,\"created\":\"2027-01-01T00:00:00Z\","
			      "\"expires\":\"2027-01-08T00:00:00Z\",\"releases\":[{"
			      "\"compatible\":\"a\",\"version\":\"2\","
			      "\"security_version\":1,\"image_size\":1,\"image_sha256\":"
			      "\"" H64("a") "\",\"full\":{\"url\":\"f\",\"size\":100,"
					    "\"sha256\":\"" H64("b") "\"},\"deltas\":[");
	for (unsigned i = 0; i <= TND_CHANNEL_MAX_DELTAS; i++)
		len += (size_t)sprintf(doc + len,
				       "%s{\"base_sha256\":\"%064x\",\"base_size\":1,"
				       "\"base_version\":\"1\",\"url\":\"d\",\"size\":100,"
				       "\"sha256\":\"" H64("d") "\"}",
				       i ? "," : "", i);
	sprintf(doc + len, "]}]}");
	assert_int_equal(parse_doc(f, doc), TND_E_FORMAT);
	assert_non_null(strstr(tnd_err_msg(), "more than 32 deltas"));

	len = (size_t)sprintf(doc, "{\"sequence\":5,\"created\":\"2027-01-01T00:00:00Z\","
				   "\"expires\":\"2027-01-08T00:00:00Z\",\"releases\":[");
	for (unsigned i = 0; i <= TND_CHANNEL_MAX_RELEASES; i++)
		len += (size_t)sprintf(doc + len,
				       "%s{\"compatible\":\"b%u\",\"version\":\"2\","
				       "\"security_version\":1,\"image_size\":1,\"image_sha256\":"
				       "\"" H64("a") "\",\"full\":{\"url\":\"f\",\"size\":100,"
						     "\"sha256\":\"" H64("b") "\"}}",
				       i ? "," : "", i);
	sprintf(doc + len, "]}");
	assert_int_equal(parse_doc(f, doc), TND_E_FORMAT);
	assert_non_null(strstr(tnd_err_msg(), "more than 256 releases"));
	free(doc);

	/* Two releases for one board, two deltas from one base. */
	strcpy(c.releases[1].compatible, c.releases[0].compatible);
	assert_int_equal(tnd_channel_encode(&c, &f->signer[0], 1, &text, &len), TND_E_FORMAT);
	strcpy(c.releases[1].compatible, "other");
	c.releases[0].deltas[1] = c.releases[0].deltas[0];
	assert_int_equal(tnd_channel_encode(&c, &f->signer[0], 1, &text, &len), TND_E_FORMAT);
	tnd_channel_free(&c);
}

static void find_and_pick_delta(void **state)
{
	struct fx *f = *state;
	struct tnd_channel c, p;
	const struct tnd_channel_release *r;
	const struct tnd_channel_delta *d;
	uint8_t h[TND_SHA256_LEN];
	const int k0[] = {0};
	char *text;

	sample(&c);
	text = encode(f, &c, k0, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), NULL), 0);
	free(text);
	tnd_channel_free(&c);
	r = tnd_channel_find(&p, "acme,board-b");
	assert_non_null(r);
	assert_string_equal(r->full.url, "https://cdn.example.org/b/9.tnd");
	assert_int_equal(r->rollout_percent, 100);
	assert_int_equal(r->ndeltas, 0);
	assert_null(tnd_channel_find(&p, "acme,board"));
	assert_null(tnd_channel_find(&p, "acme,board-c"));
	r = tnd_channel_find(&p, "acme,board-a");
	assert_non_null(r);
	fill_hash(h, 0xc1);
	d = tnd_channel_pick_delta(r, h, true);
	assert_non_null(d);
	assert_string_equal(d->base_version, "1.1.0");
	assert_string_equal(d->file.url, "acme,board-a/1.2.0-from-1.1.0.tnd");
	/* format 1 records no kind: every delta counts as one without rebuilding */
	assert_int_equal(p.format, 1);
	assert_int_equal(d->xz_rebuild, 0);
	assert_ptr_equal(tnd_channel_pick_delta(r, h, false), d);
	h[31] ^= 1;
	assert_null(tnd_channel_pick_delta(r, h, true));
	tnd_channel_free(&p);
}

/* Format 2: a delta that rebuilds xz streams beside one that does not, from
 * one base; the device picks by size and by what it may rebuild. */
static void delta_kinds(void **state)
{
	struct fx *f = *state;
	struct tnd_channel c, p;
	struct tnd_channel_release *r;
	const struct tnd_channel_release *pr;
	const struct tnd_channel_delta *d;
	struct tnd_channel_delta *x;
	uint8_t h[TND_SHA256_LEN];
	const int k0[] = {0};
	char *text, *doc;
	size_t len;

	sample(&c);
	assert_int_equal(tnd_channel_format_needed(&c), 1);
	r = &c.releases[0];
	x = &r->deltas[r->ndeltas++];
	*x = r->deltas[1]; /* base 0xc1, 4001 bytes, no rebuild */
	strcpy(x->file.url, "acme,board-a/xz/1.2.0-from-1.1.0.tnd");
	x->file.size = 900;
	x->xz_rebuild = 9007199254740991ull;
	assert_int_equal(tnd_channel_format_needed(&c), 2);
	text = encode(f, &c, k0, 1);
	assert_non_null(strstr(text, "{\"format\":2,"));
	assert_non_null(strstr(text, "\\\"xz_rebuild\\\":9007199254740991"));
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), NULL), 0);
	free(text);
	assert_int_equal(p.format, 2);
	pr = tnd_channel_find(&p, "acme,board-a");
	assert_non_null(pr);
	assert_int_equal(pr->ndeltas, 3);
	fill_hash(h, 0xc1);
	d = tnd_channel_pick_delta(pr, h, true);
	assert_non_null(d);
	assert_int_equal(d->xz_rebuild, 9007199254740991ull);
	assert_int_equal(d->file.size, 900);
	d = tnd_channel_pick_delta(pr, h, false);
	assert_non_null(d);
	assert_int_equal(d->xz_rebuild, 0);
	assert_int_equal(d->file.size, 4001);
	fill_hash(h, 0xc0); /* only a delta without rebuilding from this base */
	d = tnd_channel_pick_delta(pr, h, true);
	assert_non_null(d);
	assert_int_equal(d->file.size, 4000);
	tnd_channel_free(&p);

	/* the smaller one wins, whatever its kind */
	x->file.size = 5000;
	text = encode(f, &c, k0, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), NULL), 0);
	free(text);
	fill_hash(h, 0xc1);
	d = tnd_channel_pick_delta(tnd_channel_find(&p, "acme,board-a"), h, true);
	assert_non_null(d);
	assert_int_equal(d->xz_rebuild, 0);
	tnd_channel_free(&p);

	/* only a rebuilding delta: a device that may not rebuild takes the full bundle */
	r->deltas[1] = *x;
	r->ndeltas = 2;
	text = encode(f, &c, k0, 1);
	assert_int_equal(tnd_channel_parse(&p, text, strlen(text), NULL), 0);
	free(text);
	assert_null(tnd_channel_pick_delta(tnd_channel_find(&p, "acme,board-a"), h, false));
	assert_non_null(tnd_channel_pick_delta(tnd_channel_find(&p, "acme,board-a"), h, true));
	tnd_channel_free(&p);

	/* two of one kind from one base are refused, of either kind */
	r->deltas[r->ndeltas++] = *x;
	assert_int_equal(tnd_channel_encode(&c, &f->signer[0], 1, &text, &len), TND_E_FORMAT);
	assert_non_null(strstr(tnd_err_msg(), "two deltas of one kind from one base"));
	tnd_channel_free(&c);

	/* "xz_rebuild" is a format-2 key, and never 0 (absent means none) */
	doc = edit("\"size\":300,", "\"size\":300,\"xz_rebuild\":7,");
	assert_int_equal(parse_doc(f, doc), TND_E_FORMAT);
	assert_non_null(strstr(tnd_err_msg(), "unknown key \"xz_rebuild\""));
	text = envelope_v(f, doc, TND_CHANNEL_SIG_CONTEXT, 0, 2);
	assert_int_equal(parse_text(f, text), 0);
	free(text);
	free(doc);
	doc = edit("\"size\":300,", "\"size\":300,\"xz_rebuild\":0,");
	text = envelope_v(f, doc, TND_CHANNEL_SIG_CONTEXT, 0, 2);
	assert_int_equal(parse_text(f, text), TND_E_FORMAT);
	free(text);
	free(doc);
}

static void resolve_urls(void **state)
{
	char out[TND_CHANNEL_URL_MAX * 2];

	(void)state;
	assert_int_equal(tnd_channel_resolve_url("https://u.example/fleet/index.json", "acme/1.tnd",
						 out, sizeof(out)),
			 0);
	assert_string_equal(out, "https://u.example/fleet/acme/1.tnd");
	assert_int_equal(tnd_channel_resolve_url("http://127.0.0.1:8080/c/index.json?t=1#x/y",
						 "b.tnd", out, sizeof(out)),
			 0);
	assert_string_equal(out, "http://127.0.0.1:8080/c/b.tnd");
	assert_int_equal(tnd_channel_resolve_url("https://u.example/i.json",
						 "https://cdn.example/x.tnd", out, sizeof(out)),
			 0);
	assert_string_equal(out, "https://cdn.example/x.tnd");
	assert_int_equal(
	    tnd_channel_resolve_url("https://u.example/i.json", "../x", out, sizeof(out)),
	    TND_E_FORMAT);
	assert_int_equal(tnd_channel_resolve_url("https://u.example/i.json", "a.tnd", out, 10),
			 TND_E_FORMAT);
}

static void rollout_is_stable_and_monotone(void **state)
{
	struct tnd_channel_release rel;
	bool at30[1000];
	unsigned n30 = 0, n50 = 0, moved = 0;
	char id[32];

	(void)state;
	memset(&rel, 0, sizeof(rel));
	strcpy(rel.compatible, "acme,board-a");
	strcpy(rel.version, "1.2.0");
	rel.rollout_percent = 30;
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "device-%06d", i);
		at30[i] = tnd_rollout_selected(id, &rel);
		n30 += at30[i];
		assert_true(tnd_rollout_position(id, &rel) < 10000);
		/* the same answer every time */
		assert_int_equal(tnd_rollout_selected(id, &rel), at30[i]);
	}
	print_message("rollout 30%%: %u of 1000 devices\n", n30);
	assert_in_range(n30, 250, 350);
	rel.rollout_percent = 50;
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "device-%06d", i);
		bool sel = tnd_rollout_selected(id, &rel);

		n50 += sel;
		if (at30[i])
			assert_true(sel); /* raising only adds devices */
	}
	assert_in_range(n50, 450, 550);
	rel.rollout_percent = 0;
	assert_false(tnd_rollout_selected("device-000000", &rel));
	rel.rollout_percent = 100;
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "device-%06d", i);
		assert_true(tnd_rollout_selected(id, &rel));
	}
	/* Another release draws another sample. */
	rel.rollout_percent = 30;
	strcpy(rel.version, "1.3.0");
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "device-%06d", i);
		moved += tnd_rollout_selected(id, &rel) != at30[i];
	}
	assert_true(moved > 100);
	/* The documented hash: SHA-256("d\nc\nv"), first 8 bytes big-endian, mod 10000. */
	uint8_t h[TND_SHA256_LEN];

	strcpy(rel.compatible, "c");
	strcpy(rel.version, "v");
	tnd_sha256("d\nc\nv", 5, h);
	assert_int_equal(tnd_rollout_position("d", &rel), tnd_get_be64(h) % 10000);
	/* The worked example of docs/channel-format.md. */
	assert_int_equal(tnd_rollout_position("d", &rel), 6376);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(threshold_counts_distinct_keys),
	    cmocka_unit_test(tampered_and_wrong_context),
	    cmocka_unit_test(strict_fields),
	    cmocka_unit_test(long_url_and_sig_encoding),
	    cmocka_unit_test(too_many_releases_and_deltas),
	    cmocka_unit_test(find_and_pick_delta),
	    cmocka_unit_test(delta_kinds),
	    cmocka_unit_test(resolve_urls),
	    cmocka_unit_test(rollout_is_stable_and_monotone),
	};
	return cmocka_run_group_tests_name("channel", tests, setup, teardown);
}
