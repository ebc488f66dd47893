/* SPDX-License-Identifier: MIT */
/*
 * The signed manifest: what a bundle installs and how its payload is
 * framed (docs/bundle-format.md). Parsed with cJSON, and only from bytes
 * whose signature already checked out: tnd_bundle_reader_open() is the
 * one producer of a manifest with `verified` set, and every consumer on
 * the device refuses one without it.
 */
#ifndef TANDEM_MANIFEST_H
#define TANDEM_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"

#define TND_MANIFEST_FORMAT 1
#define TND_NAME_MAX	    64 /* compatible and version strings, with NUL */
#define TND_CHUNK_SIZE_MIN  (4u * 1024)
#define TND_CHUNK_SIZE_MAX  (16u * 1024 * 1024)
/* Signed resume points a manifest may name (docs/bundle-format.md). */
#define TND_RESUME_MAX 256

enum tnd_payload_type { TND_PAYLOAD_FULL = 1, TND_PAYLOAD_DELTA = 2 };
enum tnd_compression { TND_COMP_ZLIB = 1 };

struct tnd_manifest {
	bool verified; /* set only by the bundle reader after signature checks */
	int format;
	char compatible[TND_NAME_MAX];
	char version[TND_NAME_MAX];
	char description[256];
	uint64_t security_version;
	int64_t created;
	int64_t expires; /* 0: none */

	uint64_t image_size;
	uint8_t image_sha256[TND_SHA256_LEN];

	enum tnd_payload_type payload_type;
	enum tnd_compression compression;
	uint32_t chunk_size; /* largest out_len of a data chunk */
	uint64_t chunks;     /* number of records */
	/* Bytes the records decode to: the image for a full payload, the
	 * delta op stream (docs/delta-format.md) for a delta. */
	uint64_t stream_size;
	uint64_t payload_size;		     /* bytes of all records */
	uint8_t first_chunk[TND_SHA256_LEN]; /* hash of record 0 (chain head) */
	/* Full payloads: signed resume points (payload.resume; docs/
	 * bundle-format.md, "Resume points"): resume_sha256[i] is the hash of
	 * record resume_every * (i + 1), so that an interrupted install can
	 * continue there with nothing but the signed manifest to trust. 0:
	 * none (bundles built before they existed start over). */
	uint32_t resume_every;
	uint32_t nresume;
	uint8_t resume_sha256[TND_RESUME_MAX][TND_SHA256_LEN];

	/* delta: op stream format version (payload.delta_format, absent: 1),
	 * so that a device without its decoder refuses before anything */
	uint8_t delta_format;
	bool has_base; /* delta: the image it applies to */
	uint64_t base_size;
	uint8_t base_sha256[TND_SHA256_LEN];
};

/* The signed hash of record `index` when it is a resume point; NULL
 * otherwise (record 0 is the chain's head, not a resume point). */
const uint8_t *tnd_manifest_resume_point(const struct tnd_manifest *m, uint64_t index);

/* Parses and validates manifest JSON (len bytes, need not be NUL-terminated).
 * Leaves m->verified false: that is the reader's to set. */
int tnd_manifest_parse(struct tnd_manifest *m, const char *json, size_t len) TND_MUST_CHECK;
/* Serialises m as compact JSON with a fixed key order; caller frees *out. */
int tnd_manifest_to_json(const struct tnd_manifest *m, char **out) TND_MUST_CHECK;

#endif
