// SPDX-License-Identifier: MIT
/*
 * tnd_channel_parse: the one parser a device runs on bytes from the
 * network before anything is authenticated (the envelope), and on signed
 * bytes after (the document). The first input byte selects a mode
 * (byte % 3):
 *
 * 0 raw: the rest is an index file as a server sends it, parsed without
 *   a keyring (inspect's path: envelope, base64, then the document) and
 *   with the test keyring (signatures never check out: the keys are made
 *   fresh per process).
 * 1 wrapped: the rest is the signed document; the harness puts it in an
 *   envelope of format 1 or 2 (the first byte / 3, odd or even)
 *   (JSON-escaped by cJSON, so it is cut at a NUL byte) with one
 *   well-formed but unchecked signature, and parses it without a keyring:
 *   every input reaches the document parser, fast.
 * 2 signed: as 1, signed with the test key and parsed with the keyring
 *   (threshold 1): the path a device takes. ECDSA makes it the slow mode.
 *
 * Properties of every index that parses: counts and lengths within the
 * format's bounds, URLs that pass tnd_channel_check_url, rollout 0..100,
 * expires after created, lookups that find each release and delta, and
 * (modes 1 and 2) encoding it again and parsing the result gives the
 * same channel: publish and the device can never disagree on an index.
 */
#include <cjson/cJSON.h>
#include <mbedtls/base64.h>

#include "channel.h"
#include "fuzz_common.h"
#include "util.h"

static struct tnd_keyring keyring;
static struct tnd_signer *signer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch_dir();
	char priv[700], pub[700];

	(void)argc;
	(void)argv;
	snprintf(priv, sizeof(priv), "%s/channel.key", dir);
	snprintf(pub, sizeof(pub), "%s/channel.pem", dir);
	if (tnd_keygen(priv, pub) || tnd_keyring_add_file(&keyring, pub) ||
	    tnd_signer_load(&signer, priv)) {
		fprintf(stderr, "fuzz_channel: test key: %s\n", tnd_err_msg());
		abort();
	}
	return 0;
}

static bool bounded(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void check(const struct tnd_channel *c)
{
	FUZZ_ASSERT(c->nreleases <= TND_CHANNEL_MAX_RELEASES);
	FUZZ_ASSERT(c->sequence >= 1 && c->sequence <= 9007199254740991ull);
	FUZZ_ASSERT(c->expires > c->created);
	for (size_t i = 0; i < c->nreleases; i++) {
		const struct tnd_channel_release *r = &c->releases[i];

		FUZZ_ASSERT(bounded(r->compatible, sizeof(r->compatible)) && r->compatible[0]);
		FUZZ_ASSERT(bounded(r->version, sizeof(r->version)) && r->version[0]);
		FUZZ_ASSERT(r->rollout_percent <= 100);
		FUZZ_ASSERT(r->ndeltas <= TND_CHANNEL_MAX_DELTAS);
		FUZZ_ASSERT(bounded(r->full.url, sizeof(r->full.url)));
		FUZZ_ASSERT(tnd_channel_check_url(r->full.url) == 0);
		FUZZ_ASSERT(tnd_channel_find(c, r->compatible) == r);
		FUZZ_ASSERT(tnd_rollout_position("fuzz-device", r) < 10000);
		for (size_t j = 0; j < r->ndeltas; j++) {
			const struct tnd_channel_delta *d = &r->deltas[j];

			FUZZ_ASSERT(bounded(d->file.url, sizeof(d->file.url)));
			FUZZ_ASSERT(tnd_channel_check_url(d->file.url) == 0);
			FUZZ_ASSERT(bounded(d->base_version, sizeof(d->base_version)));
			FUZZ_ASSERT(c->format == 2 || !d->xz_rebuild);
			/* the pick is one of this base's, of an allowed kind,
			 * and none smaller of that kind is left out */
			for (int xz = 0; xz < 2; xz++) {
				const struct tnd_channel_delta *pk =
				    tnd_channel_pick_delta(r, d->base_sha256, xz);

				FUZZ_ASSERT(pk || (d->xz_rebuild && !xz));
				if (!pk)
					continue;
				FUZZ_ASSERT(!memcmp(pk->base_sha256, d->base_sha256,
						    TND_SHA256_LEN));
				FUZZ_ASSERT(xz || !pk->xz_rebuild);
				FUZZ_ASSERT(!(xz || !d->xz_rebuild) ||
					    pk->file.size <= d->file.size);
			}
		}
	}
}

/* The document in an envelope; signed with the test key when sign. */
static char *wrap(const uint8_t *data, size_t size, bool sign, int format)
{
	/* Canonical base64 of 70 bytes: well-formed, never a valid signature. */
	static const char fake_sig[] = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKyw"
				       "tLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRg==";
	char *doc = malloc(size + 1), *out = NULL, keyid[TND_SHA256_HEX_LEN], b64[256];
	uint8_t digest[TND_SHA256_LEN], sig[TND_SIG_MAX];
	cJSON *root = cJSON_CreateObject(), *sigs, *s;
	size_t len, n, blen;

	if (!doc || !root)
		abort();
	memcpy(doc, data, size);
	doc[size] = '\0';
	len = strlen(doc); /* what the envelope can carry */
	strcpy(b64, fake_sig);
	memset(keyid, 'a', 64);
	keyid[64] = '\0';
	if (sign) {
		tnd_channel_digest(doc, len, digest);
		if (tnd_signer_sign(signer, digest, sig, &n) ||
		    mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &blen, sig, n))
			abort();
		tnd_hex_encode(keyid, tnd_signer_id(signer), TND_KEYID_LEN);
	}
	cJSON_AddNumberToObject(root, "format", format);
	cJSON_AddStringToObject(root, "signed", doc);
	sigs = cJSON_AddArrayToObject(root, "signatures");
	s = cJSON_CreateObject();
	cJSON_AddItemToArray(sigs, s);
	cJSON_AddStringToObject(s, "keyid", keyid);
	cJSON_AddStringToObject(s, "sig", b64);
	out = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	free(doc);
	if (!out)
		abort();
	return out;
}

/* Encoding what parsed and parsing it again gives the same channel. */
static void round_trip(const struct tnd_channel *c)
{
	struct tnd_channel again;
	char *text;
	size_t len;

	FUZZ_ASSERT(tnd_channel_encode(c, &signer, 1, &text, &len) == 0);
	FUZZ_ASSERT(tnd_channel_parse(&again, text, len,
				      &(struct tnd_verify_opts){.keyring = &keyring}) == 0);
	FUZZ_ASSERT(again.verified && again.valid_sigs == 1);
	FUZZ_ASSERT(again.format == tnd_channel_format_needed(c) && again.format <= c->format);
	FUZZ_ASSERT(again.sequence == c->sequence && again.created == c->created &&
		    again.expires == c->expires && again.nreleases == c->nreleases);
	for (size_t i = 0; i < c->nreleases; i++) {
		const struct tnd_channel_release *a = &c->releases[i], *b = &again.releases[i];

		FUZZ_ASSERT(!strcmp(a->compatible, b->compatible) &&
			    !strcmp(a->version, b->version));
		FUZZ_ASSERT(a->security_version == b->security_version &&
			    a->image_size == b->image_size &&
			    a->rollout_percent == b->rollout_percent);
		FUZZ_ASSERT(!memcmp(a->image_sha256, b->image_sha256, TND_SHA256_LEN));
		FUZZ_ASSERT(!memcmp(&a->full, &b->full, sizeof(a->full)));
		FUZZ_ASSERT(a->ndeltas == b->ndeltas);
		for (size_t j = 0; j < a->ndeltas; j++)
			FUZZ_ASSERT(!memcmp(&a->deltas[j], &b->deltas[j], sizeof(a->deltas[j])));
	}
	tnd_channel_free(&again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tnd_verify_opts vo = {.keyring = &keyring, .threshold = 1};
	struct tnd_channel c;
	unsigned mode;
	char *text;

	if (size < 1 || size > 256 * 1024)
		return 0;
	mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		if (tnd_channel_parse(&c, (const char *)data, size, NULL) == 0) {
			FUZZ_ASSERT(!c.verified);
			check(&c);
			tnd_channel_free(&c);
		}
		/* Random bytes carry no valid signature by a fresh key. */
		FUZZ_ASSERT(tnd_channel_parse(&c, (const char *)data, size, &vo) != 0);
		FUZZ_ASSERT(c.releases == NULL && c.nreleases == 0);
		return 0;
	}
	text = wrap(data, size, mode == 2, 1 + data[-1] / 3 % 2);
	if (tnd_channel_parse(&c, text, strlen(text), mode == 2 ? &vo : NULL) == 0) {
		FUZZ_ASSERT(c.verified == (mode == 2));
		check(&c);
		round_trip(&c);
		tnd_channel_free(&c);
	} else {
		FUZZ_ASSERT(c.releases == NULL);
	}
	free(text);
	return 0;
}
