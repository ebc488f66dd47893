/* SPDX-License-Identifier: MIT */
/*
 * The bundle format (docs/bundle-format.md):
 *
 *   header (32 bytes) | manifest JSON | signature block | record 0 .. record N-1
 *
 * Each record is a 64-byte header and up to chunk_size bytes of data. The
 * manifest, covered by the signatures, holds the SHA-256 of record 0; each
 * record holds the SHA-256 of the next one. A reader therefore
 * authenticates every record, in order and in constant memory, before it
 * hands out a single byte of it, and can resume at any record from the
 * 32-byte hash it expects there.
 */
#ifndef TANDEM_BUNDLE_H
#define TANDEM_BUNDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "manifest.h"
#include "sign.h"
#include "source.h"

#define TND_BUNDLE_MAGIC    "TNDMBNDL"
#define TND_BUNDLE_FORMAT   1
#define TND_HEADER_SIZE	    32
#define TND_MANIFEST_MAX    (64u * 1024)
#define TND_SIGBLOCK_MAX    (8u * 1024)
#define TND_MAX_SIGS	    16
#define TND_RECORD_MAGIC    "TNCK"
#define TND_RECORD_HDR_SIZE 64
/* Domain separation: a manifest signature can never pass for another
 * signed object (such as a channel index). */
#define TND_MANIFEST_SIG_CONTEXT "TANDEM-MANIFEST-1\n"

enum tnd_record_type {
	TND_REC_STORED = 0,  /* data is the output as is */
	TND_REC_DEFLATE = 1, /* data is a raw deflate stream of the output */
	TND_REC_ZERO = 2,    /* no data: out_len zero bytes */
};

struct tnd_record {
	uint32_t index;
	uint8_t type;
	uint32_t stored_len;
	uint64_t out_offset;
	uint32_t out_len;
	uint32_t out_crc32; /* of the output; 0 for zero records */
	uint8_t next[TND_SHA256_LEN];
};

struct tnd_header {
	uint32_t format;
	uint32_t manifest_len;
	uint32_t sigblock_len;
};

struct tnd_signature {
	uint8_t alg;
	uint8_t keyid[TND_KEYID_LEN];
	uint16_t len;
	uint8_t sig[TND_SIG_MAX];
};

void tnd_header_encode(uint8_t out[TND_HEADER_SIZE], const struct tnd_header *h);
int tnd_header_decode(struct tnd_header *h, const uint8_t in[TND_HEADER_SIZE]) TND_MUST_CHECK;
void tnd_record_encode(uint8_t out[TND_RECORD_HDR_SIZE], const struct tnd_record *r);
/* Checks magic and reserved bytes only: the rest is checked after authentication. */
int tnd_record_decode(struct tnd_record *r, const uint8_t in[TND_RECORD_HDR_SIZE]) TND_MUST_CHECK;
/* Signature block: returns bytes written, or a negative code. */
int tnd_sigblock_encode(uint8_t *out, size_t cap, const struct tnd_signature *sigs,
			size_t n) TND_MUST_CHECK;
int tnd_sigblock_decode(struct tnd_signature *sigs, size_t *n, const uint8_t *in,
			size_t len) TND_MUST_CHECK;
/* The hash every signature signs: SHA-256(context || manifest). */
void tnd_manifest_digest(const char *manifest, size_t len, uint8_t out[TND_SHA256_LEN]);

struct tnd_verify_opts {
	const struct tnd_keyring *keyring; /* NULL: read without checking (inspect only) */
	unsigned threshold;		   /* valid signatures from distinct keys; 0 means 1 */
};

struct tnd_bundle_reader {
	struct tnd_source *src; /* borrowed */
	struct tnd_manifest manifest;
	size_t nsigs;
	struct tnd_signature sigs[TND_MAX_SIGS];
	unsigned valid_sigs; /* distinct trusted keys whose signature verified */
	/* SHA-256(context || manifest): what the signatures sign; names this
	 * very bundle (the install checkpoint of updater/resume.c). */
	uint8_t manifest_digest[TND_SHA256_LEN];
	uint64_t payload_offset; /* source position of record 0 */
	/* Reading side (may run ahead of authentication). */
	uint64_t read_index;
	uint64_t read_bytes;
	/* Position in the authenticated chain: the resume checkpoint. */
	uint64_t next_index;
	uint64_t next_out;
	uint64_t payload_read;
	uint8_t expect[TND_SHA256_LEN];
	bool done;
	bool eof_checked;
};

/*
 * Reads the header, manifest and signatures from src and checks the
 * signatures against opts->keyring. On success r->manifest is parsed and,
 * with a keyring, has `verified` set. No payload byte has been read.
 */
int tnd_bundle_open(struct tnd_bundle_reader *r, struct tnd_source *src,
		    const struct tnd_verify_opts *opts) TND_MUST_CHECK;

/* A record read but not yet authenticated: nothing in it may be used
 * except to hash it. */
struct tnd_raw_record {
	uint8_t hdr[TND_RECORD_HDR_SIZE];
	struct tnd_record rec; /* decoded, unauthenticated */
	uint64_t seq;
	uint8_t hash[TND_SHA256_LEN];
};

/*
 * The three steps of tnd_bundle_next, for callers that hash records in
 * parallel (the install pipeline):
 *   tnd_bundle_read:         reads the next record's header and data (its
 *                            length bounded by chunk_size and cap); checks
 *                            the stream ends after the last one; 1, 0 or <0;
 *   tnd_raw_record_hash:     any thread, any order;
 *   tnd_bundle_authenticate: strictly in record order; only after it
 *                            returned 0 may the record be used.
 */
int tnd_bundle_read(struct tnd_bundle_reader *r, struct tnd_raw_record *raw, uint8_t *buf,
		    size_t cap) TND_MUST_CHECK;
void tnd_raw_record_hash(struct tnd_raw_record *raw, const uint8_t *data);
int tnd_bundle_authenticate(struct tnd_bundle_reader *r,
			    const struct tnd_raw_record *raw) TND_MUST_CHECK;

/*
 * Reads the next record into rec and its data into buf (cap bytes, at
 * least the manifest's chunk_size) and authenticates it against the chain.
 * Returns 1 with an authenticated record, 0 after the last record once the
 * source is confirmed to end there, or a negative code. Nothing is handed
 * out from a record that failed authentication.
 */
int tnd_bundle_next(struct tnd_bundle_reader *r, struct tnd_record *rec, uint8_t *buf,
		    size_t cap) TND_MUST_CHECK;

/*
 * Resume: moves a freshly opened reader (no record read yet) to record
 * `index`, which starts `payload_read` bytes into the payload and at
 * image offset next_out, and must hash to `expect` (values a checkpoint
 * captured right after the record before it was authenticated). The
 * source skips there (tnd_source_skip_to). Nothing here is trusted: a
 * record that does not hash to expect is refused as tampered, so a wrong
 * checkpoint can make the install fail, never write unauthenticated bytes.
 */
int tnd_bundle_resume(struct tnd_bundle_reader *r, uint64_t index, uint64_t payload_read,
		      uint64_t next_out, const uint8_t expect[TND_SHA256_LEN]) TND_MUST_CHECK;

#endif
