/* SPDX-License-Identifier: MIT */
/*
 * The channel index (docs/channel-format.md): one signed JSON file that a
 * fleet polls, served as a static file next to the bundles it lists. The
 * device parses it (tnd_channel_parse), the host tool writes it
 * (tandem-image publish); both use this one parser, so what publish reads
 * back is exactly what a device will accept.
 *
 * File layout (all JSON):
 *   {"format": 1,
 *    "signed": "<the signed document, as a JSON string>",
 *    "signatures": [{"keyid": "<hex SHA-256 of SPKI DER>",
 *                    "sig": "<base64 DER ECDSA signature>"}, ...]}
 * Each signature covers SHA-256(TND_CHANNEL_SIG_CONTEXT || signed bytes),
 * so no canonical JSON is needed and a manifest signature can never pass
 * for an index signature (different context). The signed document:
 *   {"sequence": N, "created": T, "expires": T,
 *    "releases": [{"compatible", "version", "security_version",
 *                  "image_size", "image_sha256", "rollout_percent",
 *                  "full": {"url", "size", "sha256"},
 *                  "deltas": [{"base_sha256", "base_size", "base_version",
 *                              "url", "size", "sha256",
 *                              "xz_rebuild" (format 2, optional)}, ...]}, ...]}
 * Times (created, expires) are RFC 3339 UTC strings "YYYY-MM-DDTHH:MM:SSZ"
 * as in manifests; rollout_percent and deltas are optional; unknown and
 * repeated keys are errors; docs/channel-format.md has every bound.
 * URLs are relative to the index's own URL (or absolute). "size" and
 * "sha256" describe the bundle file; the device still authenticates the
 * bundle by its own signed manifest, and uses them to refuse a bundle
 * file that differs from the one the index promised.
 */
#ifndef TANDEM_CHANNEL_H
#define TANDEM_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "crypto.h"
#include "error.h"
#include "manifest.h"

/* The newest format this build reads (it reads every older one). Format 2
 * adds "xz_rebuild" to deltas and so a second delta per base. */
#define TND_CHANNEL_FORMAT	 2
#define TND_CHANNEL_SIG_CONTEXT	 "TANDEM-CHANNEL-1\n"
#define TND_CHANNEL_MAX		 (1024u * 1024) /* largest index file accepted */
#define TND_CHANNEL_MAX_RELEASES 256
#define TND_CHANNEL_MAX_DELTAS	 32
#define TND_CHANNEL_URL_MAX	 1024
#define TND_CHANNEL_MAX_SIGS	 16

struct tnd_channel_file {
	char url[TND_CHANNEL_URL_MAX]; /* as written: relative or absolute */
	uint64_t size;		       /* bytes of the bundle file */
	uint8_t sha256[TND_SHA256_LEN];
};

struct tnd_channel_delta {
	uint8_t base_sha256[TND_SHA256_LEN]; /* image it applies to */
	uint64_t base_size;
	char base_version[TND_NAME_MAX];
	struct tnd_channel_file file;
	/* Format 2: bytes of xz stream content the device compresses again to
	 * apply it (a delta of format version 4); 0: none, or not recorded
	 * (format 1). */
	uint64_t xz_rebuild;
};

struct tnd_channel_release {
	char compatible[TND_NAME_MAX];
	char version[TND_NAME_MAX];
	uint64_t security_version;
	uint64_t image_size;
	uint8_t image_sha256[TND_SHA256_LEN];
	unsigned rollout_percent; /* 0..100; 100 when absent */
	struct tnd_channel_file full;
	size_t ndeltas;
	struct tnd_channel_delta deltas[TND_CHANNEL_MAX_DELTAS];
};

struct tnd_channel {
	unsigned format; /* of the envelope parsed: 1 or 2 */
	bool verified;	 /* signatures met the threshold (parse with a keyring) */
	unsigned valid_sigs;
	uint64_t sequence; /* grows with every publish; devices refuse to go back */
	int64_t created;
	int64_t expires; /* required: a device refuses a stale index */
	size_t nreleases;
	struct tnd_channel_release *releases; /* malloc'd array */
};

/*
 * Parses an index file of len bytes (need not be NUL-terminated; at most
 * TND_CHANNEL_MAX). With opts->keyring set, the signatures are checked
 * first (threshold as for bundles) and only then the signed document is
 * parsed; c->verified is set. With opts NULL or no keyring, it is parsed
 * unverified (publish reading its own output, inspect). Every field is
 * bounds-checked; unknown keys are errors. Expiry is NOT checked here: that
 * is the device's policy (it knows the time). On error c holds nothing to
 * free.
 */
int tnd_channel_parse(struct tnd_channel *c, const char *data, size_t len,
		      const struct tnd_verify_opts *opts) TND_MUST_CHECK;
void tnd_channel_free(struct tnd_channel *c);

/* The release for a board, or NULL. */
const struct tnd_channel_release *tnd_channel_find(const struct tnd_channel *c,
						   const char *compatible);
/*
 * The delta of rel a device whose active image has this hash should
 * download, or NULL (then the full bundle): the smallest one from that
 * base, leaving out those that rebuild xz streams unless xz_rebuild (a
 * build without CONFIG_DELTA_XZ, or a device configured to spare its CPU).
 */
const struct tnd_channel_delta *tnd_channel_pick_delta(const struct tnd_channel_release *rel,
						       const uint8_t base_sha256[TND_SHA256_LEN],
						       bool xz_rebuild);
/* The format tnd_channel_encode writes for c: 2 when a delta records
 * "xz_rebuild", else 1. */
unsigned tnd_channel_format_needed(const struct tnd_channel *c);

/*
 * Staged rollout: whether device_id takes part in rel. A stable hash of the
 * device ID and the release (compatible and version) gives each device a
 * position in [0, 10000); it takes part when position < percent * 100, so
 * raising the percentage only ever adds devices, and each release draws a
 * fresh sample of the fleet.
 */
bool tnd_rollout_selected(const char *device_id, const struct tnd_channel_release *rel);
/* The position itself, for tests and `tandem status`. */
unsigned tnd_rollout_position(const char *device_id, const struct tnd_channel_release *rel);

/*
 * Checks one URL as the parser does: 1..TND_CHANNEL_URL_MAX-1 bytes of
 * printable ASCII without space or backslash, no "..", and either
 * http(s):// or a relative path (no leading '/', no scheme).
 */
int tnd_channel_check_url(const char *url) TND_MUST_CHECK;
/*
 * Resolves a release's url against the URL the index was fetched from:
 * absolute URLs stay as they are; relative ones replace everything after
 * the last '/' of index_url (query and fragment dropped first).
 */
int tnd_channel_resolve_url(const char *index_url, const char *url, char *out,
			    size_t size) TND_MUST_CHECK;

/* The hash each index signature covers: SHA-256(context || signed). */
void tnd_channel_digest(const char *signed_doc, size_t len, uint8_t out[TND_SHA256_LEN]);

struct tnd_signer;
/*
 * Host side (publish, tests): serialises c (sequence, created, expires,
 * releases; rollout_percent 100 is omitted) as the signed document, in
 * the oldest format that holds it (tnd_channel_format_needed), signs
 * it with each signer and returns the whole index file in *out (malloc'd,
 * NUL-terminated, *out_len bytes). The result is parsed back before it is
 * returned, so it is never something a device would refuse.
 */
int tnd_channel_encode(const struct tnd_channel *c, struct tnd_signer *const *signers,
		       size_t nsigners, char **out, size_t *out_len) TND_MUST_CHECK;

#endif
