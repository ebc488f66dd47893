// SPDX-License-Identifier: MIT
/*
 * The channel index (docs/channel-format.md): parser, signature checks,
 * encoder and the staged-rollout hash. The device parses what a server
 * sends, so every field is checked against a bound before it is used and
 * nothing the format does not define is accepted (unknown or repeated
 * keys, numbers that are not exact integers, hex of the wrong length,
 * URLs that could climb out of the channel).
 */
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mbedtls/base64.h>

#include "json.h"
#include "timeutil.h"
#include "util.h"

/* Base64 of TND_SIG_MAX bytes, with NUL. */
#define SIG_B64_MAX (4 * ((TND_SIG_MAX + 2) / 3) + 1)

/* ---------------------------------------------------------------- parsing */

/* Every key of obj must be one of allowed (a NULL-terminated list), once. */
static int check_keys(const cJSON *obj, const char *what, const char *const *allowed)
{
	for (const cJSON *it = obj->child; it; it = it->next) {
		size_t i;

		for (i = 0; allowed[i]; i++)
			if (it->string && strcmp(it->string, allowed[i]) == 0)
				break;
		if (!allowed[i])
			return tnd_err_set(TND_E_FORMAT, "channel index: %s: unknown key \"%.64s\"",
					   what, it->string ? it->string : "");
		for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
			if (strcmp(prev->string, it->string) == 0)
				return tnd_err_set(TND_E_FORMAT,
						   "channel index: %s: key \"%s\" appears twice",
						   what, it->string);
	}
	return 0;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static int get_uint(const cJSON *obj, const char *what, const char *key, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	const cJSON *v = get(obj, key);

	if (!v)
		return tnd_err_set(TND_E_FORMAT, "channel index: %s: missing \"%s\"", what, key);
	if (!tnd_json_uint(v, max, out) || *out < min)
		return tnd_err_set(
		    TND_E_FORMAT, "channel index: %s: \"%s\" must be an integer from %llu to %llu",
		    what, key, (unsigned long long)min,
		    (unsigned long long)(max < TND_JSON_INT_MAX ? max : TND_JSON_INT_MAX));
	return 0;
}

static const char *get_string(const cJSON *obj, const char *what, const char *key, size_t size)
{
	const cJSON *v = get(obj, key);
	const char *str;

	if (!v) {
		tnd_err_set(TND_E_FORMAT, "channel index: %s: missing \"%s\"", what, key);
		return NULL;
	}
	if (!(str = tnd_json_string(v, size)))
		tnd_err_set(TND_E_FORMAT,
			    "channel index: %s: \"%s\" must be a string of at most %zu bytes", what,
			    key, size - 1);
	return str;
}

/* compatible, version: as in manifests, printable ASCII without spaces. */
static int get_name(const cJSON *obj, const char *what, const char *key, char out[TND_NAME_MAX])
{
	const char *s = get_string(obj, what, key, TND_NAME_MAX);

	if (!s)
		return TND_E_FORMAT;
	if (!s[0])
		return tnd_err_set(TND_E_FORMAT, "channel index: %s: \"%s\" is empty", what, key);
	for (const char *p = s; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return tnd_err_set(TND_E_FORMAT,
					   "channel index: %s: \"%s\" may hold only printable "
					   "ASCII without spaces",
					   what, key);
	strcpy(out, s);
	return 0;
}

/* Exactly 64 lower-case hex digits: one spelling per hash. */
static int get_sha256(const cJSON *obj, const char *what, const char *key,
		      uint8_t out[TND_SHA256_LEN])
{
	if (!get_string(obj, what, key, TND_SHA256_HEX_LEN))
		return TND_E_FORMAT;
	if (!tnd_json_sha256(get(obj, key), true, out))
		return tnd_err_set(TND_E_FORMAT,
				   "channel index: %s: \"%s\" must be 64 lower-case hex digits",
				   what, key);
	return 0;
}

static int get_time(const cJSON *obj, const char *what, const char *key, int64_t *out)
{
	const char *s = get_string(obj, what, key, TND_TIME_STR_LEN);

	if (!s)
		return TND_E_FORMAT;
	if (tnd_time_parse(s, out))
		return tnd_err_prefix(TND_E_FORMAT, "channel index: %s: \"%s\"", what, key);
	return 0;
}

int tnd_channel_check_url(const char *url)
{
	size_t len = strlen(url);

	if (len == 0 || len >= TND_CHANNEL_URL_MAX)
		return tnd_err_set(TND_E_FORMAT, "URL must be 1 to %u bytes",
				   TND_CHANNEL_URL_MAX - 1);
	/* Printable ASCII only: no NUL, no control characters, no spaces
	 * (those are percent-encoded), no backslash (some clients read it
	 * as a slash). */
	for (size_t i = 0; i < len; i++)
		if (url[i] < 0x21 || url[i] > 0x7e || url[i] == '\\')
			return tnd_err_set(TND_E_FORMAT,
					   "URL holds a control character, space or backslash");
	/* A relative URL names a file inside the channel: never a parent
	 * directory, wherever the ".." stands. */
	if (strstr(url, ".."))
		return tnd_err_set(TND_E_FORMAT, "URL must not contain \"..\"");
	if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0)
		return 0;
	/* Relative: a path below the index's directory. No scheme (a colon
	 * before the first slash), no absolute path, no query-only or
	 * network-path forms. */
	if (url[0] == '/' || url[0] == '?' || url[0] == '#')
		return tnd_err_set(TND_E_FORMAT,
				   "relative URL must be a path below the index's directory");
	for (const char *p = url; *p && *p != '/'; p++)
		if (*p == ':')
			return tnd_err_set(TND_E_FORMAT,
					   "URL must be http://, https:// or relative");
	return 0;
}

static int get_file(const cJSON *obj, const char *what, struct tnd_channel_file *f)
{
	const char *url = get_string(obj, what, "url", TND_CHANNEL_URL_MAX);

	if (!url)
		return TND_E_FORMAT;
	if (tnd_channel_check_url(url))
		return tnd_err_prefix(TND_E_FORMAT, "channel index: %s: \"url\"", what);
	strcpy(f->url, url);
	/* A bundle is at least its 32-byte header. */
	if (get_uint(obj, what, "size", TND_HEADER_SIZE, TND_JSON_INT_MAX, &f->size) ||
	    get_sha256(obj, what, "sha256", f->sha256))
		return TND_E_FORMAT;
	return 0;
}

static int parse_delta(struct tnd_channel_delta *d, const cJSON *obj, const char *what,
		       unsigned format)
{
	/* format 2 adds the one optional key at the end */
	static const char *const keys[] = {"base_sha256", "base_size", "base_version", "url",
					   "size",	  "sha256",    "xz_rebuild",   NULL};
	static const char *const keys1[] = {
	    "base_sha256", "base_size", "base_version", "url", "size", "sha256", NULL};

	if (!cJSON_IsObject(obj))
		return tnd_err_set(TND_E_FORMAT, "channel index: %s is not an object", what);
	if (check_keys(obj, what, format >= 2 ? keys : keys1) ||
	    get_sha256(obj, what, "base_sha256", d->base_sha256) ||
	    get_uint(obj, what, "base_size", 0, TND_JSON_INT_MAX, &d->base_size) ||
	    get_name(obj, what, "base_version", d->base_version) || get_file(obj, what, &d->file))
		return TND_E_FORMAT;
	d->xz_rebuild = 0;
	if (get(obj, "xz_rebuild") &&
	    get_uint(obj, what, "xz_rebuild", 1, TND_JSON_INT_MAX, &d->xz_rebuild))
		return TND_E_FORMAT;
	return 0;
}

static int parse_deltas(struct tnd_channel_release *rel, const cJSON *arr, const char *what,
			unsigned format)
{
	char dwhat[TND_NAME_MAX + 48];
	const cJSON *it;
	size_t n = 0;

	if (!arr)
		return 0; /* optional: no deltas */
	if (!cJSON_IsArray(arr))
		return tnd_err_set(TND_E_FORMAT, "channel index: %s: \"deltas\" must be an array",
				   what);
	cJSON_ArrayForEach(it, arr)
	{
		if (n == TND_CHANNEL_MAX_DELTAS)
			return tnd_err_set(TND_E_FORMAT, "channel index: %s: more than %u deltas",
					   what, TND_CHANNEL_MAX_DELTAS);
		snprintf(dwhat, sizeof(dwhat), "%s delta %zu", what, n);
		if (parse_delta(&rel->deltas[n], it, dwhat, format))
			return TND_E_FORMAT;
		/* One delta of each kind per base: the device's choice is
		 * between kinds (tnd_channel_pick_delta), never between two
		 * files of one kind. */
		for (size_t j = 0; j < n; j++)
			if (memcmp(rel->deltas[j].base_sha256, rel->deltas[n].base_sha256,
				   TND_SHA256_LEN) == 0 &&
			    !rel->deltas[j].xz_rebuild == !rel->deltas[n].xz_rebuild)
				return tnd_err_set(TND_E_FORMAT,
						   "channel index: %s: two deltas of one kind from "
						   "one base",
						   what);
		n++;
	}
	rel->ndeltas = n;
	return 0;
}

static int parse_release(struct tnd_channel_release *rel, const cJSON *obj, size_t idx,
			 unsigned format)
{
	static const char *const keys[] = {"compatible", "version",	 "security_version",
					   "image_size", "image_sha256", "rollout_percent",
					   "full",	 "deltas",	 NULL};
	char what[TND_NAME_MAX + 32];
	const cJSON *full;
	uint64_t v;

	snprintf(what, sizeof(what), "release %zu", idx);
	if (!cJSON_IsObject(obj))
		return tnd_err_set(TND_E_FORMAT, "channel index: %s is not an object", what);
	if (check_keys(obj, what, keys) || get_name(obj, what, "compatible", rel->compatible))
		return TND_E_FORMAT;
	snprintf(what, sizeof(what), "release %s", rel->compatible);
	if (get_name(obj, what, "version", rel->version) ||
	    get_uint(obj, what, "security_version", 0, UINT32_MAX, &rel->security_version) ||
	    get_uint(obj, what, "image_size", 0, TND_JSON_INT_MAX, &rel->image_size) ||
	    get_sha256(obj, what, "image_sha256", rel->image_sha256))
		return TND_E_FORMAT;
	rel->rollout_percent = 100;
	if (get(obj, "rollout_percent")) {
		if (get_uint(obj, what, "rollout_percent", 0, 100, &v))
			return TND_E_FORMAT;
		rel->rollout_percent = (unsigned)v;
	}
	full = get(obj, "full");
	if (!full || !cJSON_IsObject(full))
		return tnd_err_set(TND_E_FORMAT, "channel index: %s: \"full\" must be an object",
				   what);
	{
		static const char *const fkeys[] = {"url", "size", "sha256", NULL};
		char fwhat[TND_NAME_MAX + 40];

		snprintf(fwhat, sizeof(fwhat), "%s full", what);
		if (check_keys(full, fwhat, fkeys) || get_file(full, fwhat, &rel->full))
			return TND_E_FORMAT;
	}
	return parse_deltas(rel, get(obj, "deltas"), what, format);
}

static int parse_signed(struct tnd_channel *c, const cJSON *root)
{
	static const char *const keys[] = {"sequence", "created", "expires", "releases", NULL};
	const cJSON *arr, *it;
	size_t n, i = 0;

	if (!cJSON_IsObject(root))
		return tnd_err_set(TND_E_FORMAT, "channel index: signed document is not an object");
	if (check_keys(root, "signed", keys) ||
	    get_uint(root, "signed", "sequence", 1, TND_JSON_INT_MAX, &c->sequence) ||
	    get_time(root, "signed", "created", &c->created) ||
	    get_time(root, "signed", "expires", &c->expires))
		return TND_E_FORMAT;
	if (c->expires <= c->created)
		return tnd_err_set(TND_E_FORMAT, "channel index: expires before it was created");
	arr = get(root, "releases");
	if (!arr || !cJSON_IsArray(arr))
		return tnd_err_set(TND_E_FORMAT, "channel index: \"releases\" must be an array");
	n = 0;
	cJSON_ArrayForEach(it, arr)
	{
		if (++n > TND_CHANNEL_MAX_RELEASES)
			return tnd_err_set(TND_E_FORMAT, "channel index: more than %u releases",
					   TND_CHANNEL_MAX_RELEASES);
	}
	if (n) {
		c->releases = calloc(n, sizeof(*c->releases));
		if (!c->releases)
			return tnd_err_set(TND_E_NOMEM, "out of memory");
	}
	cJSON_ArrayForEach(it, arr)
	{
		if (parse_release(&c->releases[i], it, i, c->format))
			return TND_E_FORMAT;
		/* One release per board: find() must not depend on order. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->releases[j].compatible, c->releases[i].compatible) == 0)
				return tnd_err_set(TND_E_FORMAT,
						   "channel index: two releases for \"%s\"",
						   c->releases[i].compatible);
		c->nreleases = ++i;
	}
	return 0;
}

/*
 * cJSON decodes "\u0000" into a C string that ends there, so the parsed
 * value would silently differ from the text (a URL "a\u0000/../x" would
 * read as "a"). No field may hold a NUL: refuse the escape, and raw NUL
 * bytes, outright.
 * Outside strings a backslash is a JSON syntax error anyway.
 */
static bool has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0')
			return true; /* a raw NUL truncates the same way */
		if (s[i] != '\\' || i + 1 == len)
			continue;
		if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
			return true;
		i++; /* skip the escaped character: "\\u0000" is a backslash and text */
	}
	return false;
}

void tnd_channel_digest(const char *signed_doc, size_t len, uint8_t out[TND_SHA256_LEN])
{
	struct tnd_sha256 h;

	tnd_sha256_init(&h);
	tnd_sha256_update(&h, TND_CHANNEL_SIG_CONTEXT, sizeof(TND_CHANNEL_SIG_CONTEXT) - 1);
	tnd_sha256_update(&h, signed_doc, len);
	tnd_sha256_final(&h, out);
}

/* Decodes canonical base64 only: re-encoding must give the same text, so
 * one signature has one spelling. */
static int decode_sig(const char *b64, uint8_t *sig, size_t *len)
{
	unsigned char again[SIG_B64_MAX];
	size_t n = 0, m = 0, blen = strlen(b64);

	if (blen == 0 || blen >= SIG_B64_MAX ||
	    mbedtls_base64_decode(sig, TND_SIG_MAX, &n, (const unsigned char *)b64, blen) ||
	    n == 0 || mbedtls_base64_encode(again, sizeof(again), &m, sig, n) || m != blen ||
	    memcmp(again, b64, blen) != 0)
		return tnd_err_set(TND_E_FORMAT,
				   "channel index: \"sig\" must be canonical base64 of at most %u "
				   "bytes",
				   TND_SIG_MAX);
	*len = n;
	return 0;
}

struct sig {
	uint8_t keyid[TND_KEYID_LEN];
	uint8_t sig[TND_SIG_MAX];
	size_t len;
};

static int parse_sigs(struct sig *sigs, size_t *nsigs, const cJSON *arr)
{
	static const char *const keys[] = {"keyid", "sig", NULL};
	const cJSON *it;
	size_t n = 0;

	if (!arr || !cJSON_IsArray(arr))
		return tnd_err_set(TND_E_FORMAT, "channel index: \"signatures\" must be an array");
	cJSON_ArrayForEach(it, arr)
	{
		const char *b64;

		if (n == TND_CHANNEL_MAX_SIGS)
			return tnd_err_set(TND_E_FORMAT, "channel index: more than %u signatures",
					   TND_CHANNEL_MAX_SIGS);
		if (!cJSON_IsObject(it))
			return tnd_err_set(TND_E_FORMAT,
					   "channel index: a signature is not an object");
		if (check_keys(it, "signature", keys) ||
		    get_sha256(it, "signature", "keyid", sigs[n].keyid))
			return TND_E_FORMAT;
		b64 = get_string(it, "signature", "sig", SIG_B64_MAX);
		if (!b64 || decode_sig(b64, sigs[n].sig, &sigs[n].len))
			return TND_E_FORMAT;
		n++;
	}
	if (n == 0)
		return tnd_err_set(TND_E_FORMAT, "channel index: no signatures");
	*nsigs = n;
	return 0;
}

/* Valid signatures from distinct trusted keys, as for bundles. */
static int check_sigs(struct tnd_channel *c, const struct sig *sigs, size_t nsigs,
		      const uint8_t digest[TND_SHA256_LEN], const struct tnd_verify_opts *o)
{
	unsigned threshold = o->threshold ? o->threshold : 1;
	const uint8_t *counted[TND_CHANNEL_MAX_SIGS];
	unsigned known = 0, bad = 0;
	char hex[TND_SHA256_HEX_LEN];

	c->valid_sigs = 0;
	for (size_t i = 0; i < nsigs; i++) {
		const struct tnd_pubkey *k = tnd_keyring_find(o->keyring, sigs[i].keyid);
		bool dup = false;

		if (!k)
			continue;
		known++;
		if (tnd_pubkey_verify(k, TND_SIG_ECDSA_P256_SHA256, digest, sigs[i].sig,
				      sigs[i].len)) {
			bad++;
			continue;
		}
		for (unsigned j = 0; j < c->valid_sigs; j++)
			dup |= memcmp(counted[j], sigs[i].keyid, TND_KEYID_LEN) == 0;
		if (!dup)
			counted[c->valid_sigs++] = sigs[i].keyid;
	}
	if (c->valid_sigs >= threshold)
		return 0;
	if (known == 0) {
		tnd_hex_encode(hex, sigs[0].keyid, 8);
		return tnd_err_set(TND_E_UNKNOWN_KEY,
				   "channel index is signed by no key in the keyring (first key "
				   "ID %s...)",
				   hex);
	}
	if (bad)
		return tnd_err_set(
		    TND_E_SIGNATURE,
		    "bad signature: the channel index was altered or signed wrongly");
	return tnd_err_set(TND_E_SIGNATURE,
			   "channel index: %u valid signature(s) from trusted keys, %u required",
			   c->valid_sigs, threshold);
}

static int parse_envelope(struct tnd_channel *c, const cJSON *root,
			  const struct tnd_verify_opts *opts)
{
	static const char *const keys[] = {"format", "signed", "signatures", NULL};
	struct sig sigs[TND_CHANNEL_MAX_SIGS];
	uint8_t digest[TND_SHA256_LEN];
	const char *doc, *end = NULL;
	size_t nsigs = 0, len;
	cJSON *inner;
	uint64_t v;
	int r;

	if (!cJSON_IsObject(root))
		return tnd_err_set(TND_E_FORMAT, "channel index is not a JSON object");
	if (check_keys(root, "index", keys) || get_uint(root, "index", "format", 0, 1000, &v))
		return TND_E_FORMAT;
	if (v < 1 || v > TND_CHANNEL_FORMAT)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "channel index format %llu is not supported (this build reads "
				   "1 to %d)",
				   (unsigned long long)v, TND_CHANNEL_FORMAT);
	c->format = (unsigned)v;
	doc = get_string(root, "index", "signed", TND_CHANNEL_MAX);
	if (!doc || parse_sigs(sigs, &nsigs, get(root, "signatures")))
		return TND_E_FORMAT;
	len = strlen(doc);
	/* Signatures first: the document parser sees only signed bytes. */
	tnd_channel_digest(doc, len, digest);
	if (opts && opts->keyring && (r = check_sigs(c, sigs, nsigs, digest, opts)))
		return r;
	if (has_nul_escape(doc, len))
		return tnd_err_set(TND_E_FORMAT, "channel index holds a NUL character");
	inner = cJSON_ParseWithLengthOpts(doc, len, &end, 0);
	if (!inner || end != doc + len) {
		cJSON_Delete(inner);
		return tnd_err_set(TND_E_FORMAT,
				   "channel index: signed document is not valid JSON");
	}
	r = parse_signed(c, inner);
	cJSON_Delete(inner);
	if (r)
		return r;
	c->verified = opts && opts->keyring;
	return 0;
}

int tnd_channel_parse(struct tnd_channel *c, const char *data, size_t len,
		      const struct tnd_verify_opts *opts)
{
	const char *end = NULL;
	cJSON *root;
	int r;

	memset(c, 0, sizeof(*c));
	if (len > TND_CHANNEL_MAX)
		return tnd_err_set(TND_E_FORMAT, "channel index is larger than %u bytes",
				   TND_CHANNEL_MAX);
	if (has_nul_escape(data, len))
		return tnd_err_set(TND_E_FORMAT, "channel index holds a NUL character");
	root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
	/* Only whitespace may follow the object (a file ends with a newline). */
	while (end && end < data + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (!root || end != data + len) {
		cJSON_Delete(root);
		return tnd_err_set(TND_E_FORMAT, "channel index is not valid JSON");
	}
	r = parse_envelope(c, root, opts);
	cJSON_Delete(root);
	if (r)
		tnd_channel_free(c);
	return r;
}

void tnd_channel_free(struct tnd_channel *c)
{
	if (!c)
		return;
	free(c->releases);
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------- lookups */

const struct tnd_channel_release *tnd_channel_find(const struct tnd_channel *c,
						   const char *compatible)
{
	for (size_t i = 0; i < c->nreleases; i++)
		if (strcmp(c->releases[i].compatible, compatible) == 0)
			return &c->releases[i];
	return NULL;
}

const struct tnd_channel_delta *tnd_channel_pick_delta(const struct tnd_channel_release *rel,
						       const uint8_t base_sha256[TND_SHA256_LEN],
						       bool xz_rebuild)
{
	const struct tnd_channel_delta *best = NULL;

	for (size_t i = 0; i < rel->ndeltas; i++) {
		const struct tnd_channel_delta *d = &rel->deltas[i];

		if (memcmp(d->base_sha256, base_sha256, TND_SHA256_LEN) ||
		    (d->xz_rebuild && !xz_rebuild))
			continue;
		if (!best || d->file.size < best->file.size)
			best = d;
	}
	return best;
}

unsigned tnd_channel_format_needed(const struct tnd_channel *c)
{
	for (size_t i = 0; i < c->nreleases; i++)
		for (size_t j = 0; j < c->releases[i].ndeltas; j++)
			if (c->releases[i].deltas[j].xz_rebuild)
				return 2;
	return 1;
}

unsigned tnd_rollout_position(const char *device_id, const struct tnd_channel_release *rel)
{
	uint8_t h[TND_SHA256_LEN];
	struct tnd_sha256 s;

	/* Newlines separate the fields: none of them may hold one (names are
	 * printable ASCII), so no two inputs hash the same bytes. */
	tnd_sha256_init(&s);
	tnd_sha256_update(&s, device_id, strlen(device_id));
	tnd_sha256_update(&s, "\n", 1);
	tnd_sha256_update(&s, rel->compatible, strlen(rel->compatible));
	tnd_sha256_update(&s, "\n", 1);
	tnd_sha256_update(&s, rel->version, strlen(rel->version));
	tnd_sha256_final(&s, h);
	return (unsigned)(tnd_get_be64(h) % 10000);
}

bool tnd_rollout_selected(const char *device_id, const struct tnd_channel_release *rel)
{
	return tnd_rollout_position(device_id, rel) < rel->rollout_percent * 100;
}

int tnd_channel_resolve_url(const char *index_url, const char *url, char *out, size_t size)
{
	size_t dir;

	if (tnd_channel_check_url(url))
		return tnd_err_prefix(TND_E_FORMAT, "channel index");
	if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
		if ((size_t)snprintf(out, size, "%s", url) >= size)
			return tnd_err_set(TND_E_FORMAT, "URL too long");
		return 0;
	}
	/* The index's directory: up to its last '/', before any query or
	 * fragment. */
	dir = strcspn(index_url, "?#");
	while (dir > 0 && index_url[dir - 1] != '/')
		dir--;
	if (dir == 0)
		return tnd_err_set(TND_E_CONFIG, "index URL %s has no directory", index_url);
	if ((size_t)snprintf(out, size, "%.*s%s", (int)dir, index_url, url) >= size)
		return tnd_err_set(TND_E_FORMAT, "resolved URL too long");
	return 0;
}

/* ---------------------------------------------------------------- encoding */

static int add_file(cJSON *obj, const struct tnd_channel_file *f)
{
	if (!cJSON_AddStringToObject(obj, "url", f->url))
		return 1;
	return tnd_json_add_uint(obj, "size", f->size) |
	       tnd_json_add_sha256(obj, "sha256", f->sha256);
}

static int add_release(cJSON *arr, const struct tnd_channel_release *rel)
{
	cJSON *o = cJSON_CreateObject(), *full, *deltas;
	int bad;

	if (!o || !cJSON_AddItemToArray(arr, o))
		return 1;
	bad = !cJSON_AddStringToObject(o, "compatible", rel->compatible);
	bad |= !cJSON_AddStringToObject(o, "version", rel->version);
	bad |= tnd_json_add_uint(o, "security_version", rel->security_version);
	bad |= tnd_json_add_uint(o, "image_size", rel->image_size);
	bad |= tnd_json_add_sha256(o, "image_sha256", rel->image_sha256);
	if (rel->rollout_percent != 100)
		bad |= tnd_json_add_uint(o, "rollout_percent", rel->rollout_percent);
	full = cJSON_AddObjectToObject(o, "full");
	deltas = cJSON_AddArrayToObject(o, "deltas");
	if (bad || !full || !deltas || add_file(full, &rel->full))
		return 1;
	for (size_t i = 0; i < rel->ndeltas; i++) {
		const struct tnd_channel_delta *d = &rel->deltas[i];
		cJSON *od = cJSON_CreateObject();

		if (!od || !cJSON_AddItemToArray(deltas, od))
			return 1;
		bad = tnd_json_add_sha256(od, "base_sha256", d->base_sha256);
		bad |= tnd_json_add_uint(od, "base_size", d->base_size);
		bad |= !cJSON_AddStringToObject(od, "base_version", d->base_version);
		if (bad || add_file(od, &d->file))
			return 1;
		if (d->xz_rebuild && tnd_json_add_uint(od, "xz_rebuild", d->xz_rebuild))
			return 1;
	}
	return 0;
}

static char *signed_json(const struct tnd_channel *c)
{
	cJSON *root = cJSON_CreateObject(), *rels;
	char *out = NULL;
	int bad = !root;

	if (!bad) {
		bad |= tnd_json_add_uint(root, "sequence", c->sequence);
		bad |= tnd_json_add_time(root, "created", c->created);
		bad |= tnd_json_add_time(root, "expires", c->expires);
		rels = cJSON_AddArrayToObject(root, "releases");
		bad |= !rels;
		for (size_t i = 0; !bad && i < c->nreleases; i++)
			bad |= add_release(rels, &c->releases[i]);
	}
	if (!bad)
		out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return out;
}

static int add_signature(cJSON *sigs, struct tnd_signer *s, const uint8_t digest[TND_SHA256_LEN])
{
	uint8_t sig[TND_SIG_MAX];
	unsigned char b64[SIG_B64_MAX];
	size_t len, n = 0;
	cJSON *o;
	int r;

	r = tnd_signer_sign(s, digest, sig, &len);
	if (r)
		return r;
	if (mbedtls_base64_encode(b64, sizeof(b64), &n, sig, len))
		return tnd_err_set(TND_E_INTERNAL, "cannot encode signature");
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(sigs, o) ||
	    tnd_json_add_sha256(o, "keyid", tnd_signer_id(s)) ||
	    !cJSON_AddStringToObject(o, "sig", (const char *)b64))
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	return 0;
}

int tnd_channel_encode(const struct tnd_channel *c, struct tnd_signer *const *signers,
		       size_t nsigners, char **out, size_t *out_len)
{
	uint8_t digest[TND_SHA256_LEN];
	cJSON *root = NULL, *sigs = NULL;
	char *doc, *text = NULL;
	struct tnd_channel check;
	int r;

	if (nsigners == 0 || nsigners > TND_CHANNEL_MAX_SIGS)
		return tnd_err_set(TND_E_USAGE, "a channel index needs 1 to %u signing keys",
				   TND_CHANNEL_MAX_SIGS);
	doc = signed_json(c);
	if (!doc)
		return tnd_err_set(TND_E_NOMEM, "cannot serialise the channel index");
	tnd_channel_digest(doc, strlen(doc), digest);
	root = cJSON_CreateObject();
	/* The oldest format that holds it, so that devices which read only
	 * format 1 keep reading every channel that does not need more. */
	r = !root || tnd_json_add_uint(root, "format", tnd_channel_format_needed(c)) ||
		    !cJSON_AddStringToObject(root, "signed", doc) ||
		    !(sigs = cJSON_AddArrayToObject(root, "signatures"))
		? tnd_err_set(TND_E_NOMEM, "out of memory")
		: 0;
	for (size_t i = 0; !r && i < nsigners; i++)
		r = add_signature(sigs, signers[i], digest);
	if (!r && !(text = cJSON_PrintUnformatted(root)))
		r = tnd_err_set(TND_E_NOMEM, "out of memory");
	cJSON_Delete(root);
	free(doc);
	/* What we write, our own parser must accept: the device runs it. */
	if (!r && (r = tnd_channel_parse(&check, text, strlen(text), NULL)) != 0)
		r = tnd_err_prefix(r, "publish would write an index devices refuse");
	if (r) {
		free(text);
		return r;
	}
	tnd_channel_free(&check);
	*out = text;
	*out_len = strlen(text);
	return 0;
}
