// SPDX-License-Identifier: MIT
#include "bundle.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

void tnd_header_encode(uint8_t out[TND_HEADER_SIZE], const struct tnd_header *h)
{
	memset(out, 0, TND_HEADER_SIZE);
	memcpy(out, TND_BUNDLE_MAGIC, 8);
	tnd_put_be32(out + 8, h->format);
	tnd_put_be32(out + 12, TND_HEADER_SIZE);
	tnd_put_be32(out + 16, h->manifest_len);
	tnd_put_be32(out + 20, h->sigblock_len);
}

int tnd_header_decode(struct tnd_header *h, const uint8_t in[TND_HEADER_SIZE])
{
	if (memcmp(in, TND_BUNDLE_MAGIC, 8) != 0)
		return tnd_err_set(TND_E_FORMAT, "not a Tandem bundle (bad magic)");
	h->format = tnd_get_be32(in + 8);
	if (h->format != TND_BUNDLE_FORMAT)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "bundle format %u is not supported (this build reads %d)",
				   h->format, TND_BUNDLE_FORMAT);
	if (tnd_get_be32(in + 12) != TND_HEADER_SIZE || !tnd_is_zero(in + 24, 8))
		return tnd_err_set(TND_E_FORMAT, "bundle header is malformed");
	h->manifest_len = tnd_get_be32(in + 16);
	h->sigblock_len = tnd_get_be32(in + 20);
	if (h->manifest_len == 0 || h->manifest_len > TND_MANIFEST_MAX)
		return tnd_err_set(TND_E_FORMAT, "manifest length %u is out of range (1..%u)",
				   h->manifest_len, TND_MANIFEST_MAX);
	if (h->sigblock_len < 2 || h->sigblock_len > TND_SIGBLOCK_MAX)
		return tnd_err_set(TND_E_FORMAT, "signature block length %u is out of range",
				   h->sigblock_len);
	return 0;
}

void tnd_record_encode(uint8_t out[TND_RECORD_HDR_SIZE], const struct tnd_record *r)
{
	memset(out, 0, TND_RECORD_HDR_SIZE);
	memcpy(out, TND_RECORD_MAGIC, 4);
	tnd_put_be32(out + 4, r->index);
	out[8] = r->type;
	tnd_put_be32(out + 12, r->stored_len);
	tnd_put_be64(out + 16, r->out_offset);
	tnd_put_be32(out + 24, r->out_len);
	tnd_put_be32(out + 28, r->out_crc32);
	memcpy(out + 32, r->next, TND_SHA256_LEN);
}

int tnd_record_decode(struct tnd_record *r, const uint8_t in[TND_RECORD_HDR_SIZE])
{
	if (memcmp(in, TND_RECORD_MAGIC, 4) != 0 || !tnd_is_zero(in + 9, 3))
		return tnd_err_set(TND_E_INTEGRITY, "chunk header is corrupt");
	r->index = tnd_get_be32(in + 4);
	r->type = in[8];
	r->stored_len = tnd_get_be32(in + 12);
	r->out_offset = tnd_get_be64(in + 16);
	r->out_len = tnd_get_be32(in + 24);
	r->out_crc32 = tnd_get_be32(in + 28);
	memcpy(r->next, in + 32, TND_SHA256_LEN);
	return 0;
}

int tnd_sigblock_encode(uint8_t *out, size_t cap, const struct tnd_signature *sigs, size_t n)
{
	size_t pos = 2;

	if (n == 0 || n > TND_MAX_SIGS || cap < 2)
		return tnd_err_set(TND_E_INTERNAL, "bad signature count %zu", n);
	out[0] = 1;
	out[1] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		if (pos + 1 + TND_KEYID_LEN + 2 + sigs[i].len > cap)
			return tnd_err_set(TND_E_INTERNAL, "signature block too large");
		out[pos++] = sigs[i].alg;
		memcpy(out + pos, sigs[i].keyid, TND_KEYID_LEN);
		pos += TND_KEYID_LEN;
		tnd_put_be16(out + pos, sigs[i].len);
		pos += 2;
		memcpy(out + pos, sigs[i].sig, sigs[i].len);
		pos += sigs[i].len;
	}
	return (int)pos;
}

int tnd_sigblock_decode(struct tnd_signature *sigs, size_t *n, const uint8_t *in, size_t len)
{
	size_t pos = 2, count;

	if (len < 2 || in[0] != 1)
		return tnd_err_set(TND_E_FORMAT, "signature block: unknown version");
	count = in[1];
	if (count == 0 || count > TND_MAX_SIGS)
		return tnd_err_set(TND_E_FORMAT, "signature block: %zu signatures (1..%d allowed)",
				   count, TND_MAX_SIGS);
	for (size_t i = 0; i < count; i++) {
		if (len - pos < 1 + TND_KEYID_LEN + 2)
			return tnd_err_set(TND_E_FORMAT, "signature block is truncated");
		sigs[i].alg = in[pos++];
		memcpy(sigs[i].keyid, in + pos, TND_KEYID_LEN);
		pos += TND_KEYID_LEN;
		sigs[i].len = tnd_get_be16(in + pos);
		pos += 2;
		if (sigs[i].len == 0 || sigs[i].len > TND_SIG_MAX || len - pos < sigs[i].len)
			return tnd_err_set(TND_E_FORMAT, "signature block: bad signature length");
		memcpy(sigs[i].sig, in + pos, sigs[i].len);
		pos += sigs[i].len;
	}
	if (pos != len)
		return tnd_err_set(TND_E_FORMAT, "signature block has %zu stray bytes", len - pos);
	*n = count;
	return 0;
}

void tnd_manifest_digest(const char *manifest, size_t len, uint8_t out[TND_SHA256_LEN])
{
	struct tnd_sha256 h;

	tnd_sha256_init(&h);
	tnd_sha256_update(&h, TND_MANIFEST_SIG_CONTEXT, sizeof(TND_MANIFEST_SIG_CONTEXT) - 1);
	tnd_sha256_update(&h, manifest, len);
	tnd_sha256_final(&h, out);
}

/* Counts valid signatures from distinct trusted keys. Distinctness is by
 * key ID, and the keyring holds each key once, so one key cannot meet a
 * threshold of two by signing twice. */
static int check_signatures(struct tnd_bundle_reader *r, const uint8_t digest[TND_SHA256_LEN],
			    const struct tnd_verify_opts *o)
{
	unsigned threshold = o->threshold ? o->threshold : 1;
	const uint8_t *counted[TND_MAX_SIGS];
	unsigned known = 0, bad = 0;
	char hex[TND_SHA256_HEX_LEN];

	r->valid_sigs = 0;
	for (size_t i = 0; i < r->nsigs; i++) {
		const struct tnd_pubkey *k = tnd_keyring_find(o->keyring, r->sigs[i].keyid);
		bool dup = false;

		if (!k)
			continue;
		known++;
		if (tnd_pubkey_verify(k, r->sigs[i].alg, digest, r->sigs[i].sig, r->sigs[i].len)) {
			bad++;
			continue;
		}
		for (unsigned j = 0; j < r->valid_sigs; j++)
			dup |= memcmp(counted[j], r->sigs[i].keyid, TND_KEYID_LEN) == 0;
		if (!dup)
			counted[r->valid_sigs++] = r->sigs[i].keyid;
	}
	if (r->valid_sigs >= threshold)
		return 0;
	if (known == 0) {
		tnd_hex_encode(hex, r->sigs[0].keyid, 8);
		return tnd_err_set(TND_E_UNKNOWN_KEY,
				   "bundle is signed by no key in the keyring (first key ID %s...)",
				   hex);
	}
	if (bad)
		return tnd_err_set(TND_E_SIGNATURE,
				   "bad signature: the manifest was altered or signed wrongly");
	return tnd_err_set(TND_E_SIGNATURE, "%u valid signature(s) from trusted keys, %u required",
			   r->valid_sigs, threshold);
}

int tnd_bundle_open(struct tnd_bundle_reader *r, struct tnd_source *src,
		    const struct tnd_verify_opts *opts)
{
	uint8_t hdr[TND_HEADER_SIZE], sigblock[TND_SIGBLOCK_MAX];
	char manifest[TND_MANIFEST_MAX];
	uint8_t digest[TND_SHA256_LEN];
	struct tnd_header h;
	int ret;

	memset(r, 0, sizeof(*r));
	r->src = src;
	if ((ret = tnd_source_read_exact(src, hdr, sizeof(hdr), "the header")) ||
	    (ret = tnd_header_decode(&h, hdr)) ||
	    (ret = tnd_source_read_exact(src, manifest, h.manifest_len, "the manifest")) ||
	    (ret = tnd_source_read_exact(src, sigblock, h.sigblock_len, "the signatures")) ||
	    (ret = tnd_sigblock_decode(r->sigs, &r->nsigs, sigblock, h.sigblock_len)))
		return ret;
	/* Signatures first: the manifest parser sees only signed bytes. */
	tnd_manifest_digest(manifest, h.manifest_len, digest);
	memcpy(r->manifest_digest, digest, TND_SHA256_LEN);
	if (opts && opts->keyring && (ret = check_signatures(r, digest, opts)))
		return ret;
	ret = tnd_manifest_parse(&r->manifest, manifest, h.manifest_len);
	if (ret)
		return ret;
	r->manifest.verified = opts && opts->keyring;
	r->payload_offset = src->pos;
	memcpy(r->expect, r->manifest.first_chunk, TND_SHA256_LEN);
	r->done = r->manifest.chunks == 0;
	/* A file whose size disagrees with the manifest is refused before
	 * any payload byte is read: truncated or padded bundles never start. */
	if (src->size && src->size != r->payload_offset + r->manifest.payload_size)
		return tnd_err_set(
		    src->size < r->payload_offset + r->manifest.payload_size ? TND_E_TRUNCATED
									     : TND_E_TRAILING,
		    "bundle is %s: it is %llu bytes, its manifest declares %llu",
		    src->size < r->payload_offset + r->manifest.payload_size
			? "truncated"
			: "longer than declared (data after its last chunk)",
		    (unsigned long long)src->size,
		    (unsigned long long)(r->payload_offset + r->manifest.payload_size));
	return 0;
}

static int check_eof(struct tnd_bundle_reader *r)
{
	uint8_t extra;
	ssize_t n = r->src->read(r->src, &extra, 1);

	if (n < 0)
		return (int)n;
	if (n > 0)
		return tnd_err_set(TND_E_TRAILING, "bundle has data after its last chunk");
	return 0;
}

/* Semantic checks on an authenticated record. A failure here means the
 * signer produced a bad bundle, so it is a format error, not tampering. */
static int check_record(const struct tnd_bundle_reader *r, const struct tnd_record *rec)
{
	const struct tnd_manifest *m = &r->manifest;
	bool last = r->next_index + 1 == m->chunks;
	uint64_t end = rec->out_offset + rec->out_len;

	if (rec->index != r->next_index || rec->out_offset != r->next_out)
		return tnd_err_set(TND_E_FORMAT, "chunk %u is out of order", rec->index);
	if (rec->out_len == 0 || end > m->stream_size || end < rec->out_offset)
		return tnd_err_set(TND_E_FORMAT, "chunk %u lies outside the image", rec->index);
	switch (rec->type) {
	case TND_REC_STORED:
		if (rec->stored_len != rec->out_len || rec->out_len > m->chunk_size)
			return tnd_err_set(TND_E_FORMAT, "stored chunk %u has bad lengths",
					   rec->index);
		break;
	case TND_REC_DEFLATE:
		if (rec->stored_len == 0 || rec->out_len > m->chunk_size)
			return tnd_err_set(TND_E_FORMAT, "compressed chunk %u has bad lengths",
					   rec->index);
		break;
	case TND_REC_ZERO:
		if (rec->stored_len != 0)
			return tnd_err_set(TND_E_FORMAT, "zero chunk %u carries data", rec->index);
		break;
	default:
		return tnd_err_set(TND_E_UNSUPPORTED, "chunk %u has unknown type %u", rec->index,
				   rec->type);
	}
	if (last != tnd_is_zero(rec->next, TND_SHA256_LEN) || (last && end != m->stream_size))
		return tnd_err_set(TND_E_FORMAT, "the chunk chain ends at the wrong place");
	return 0;
}

int tnd_bundle_read(struct tnd_bundle_reader *r, struct tnd_raw_record *raw, uint8_t *buf,
		    size_t cap)
{
	const struct tnd_manifest *m = &r->manifest;
	char what[64];
	int ret;

	if (r->read_index == m->chunks) {
		/* After the last record the source must end: a longer stream is
		 * refused even when its size was not known up front (stdin). */
		if (!r->eof_checked) {
			if ((ret = check_eof(r)))
				return ret;
			r->eof_checked = true;
		}
		return 0;
	}
	snprintf(what, sizeof(what), "chunk %llu of %llu", (unsigned long long)r->read_index + 1,
		 (unsigned long long)m->chunks);
	if ((ret = tnd_source_read_exact(r->src, raw->hdr, sizeof(raw->hdr), what)) ||
	    (ret = tnd_record_decode(&raw->rec, raw->hdr)))
		return tnd_err_prefix(ret, "%s", what);
	/* stored_len is not authenticated yet: bound it before it sizes a read. */
	if (raw->rec.stored_len > m->chunk_size || raw->rec.stored_len > cap)
		return tnd_err_set(TND_E_INTEGRITY, "%s: declared length %u exceeds the chunk size",
				   what, raw->rec.stored_len);
	if (r->read_bytes + sizeof(raw->hdr) + raw->rec.stored_len > m->payload_size)
		return tnd_err_set(TND_E_INTEGRITY, "%s: payload longer than the manifest declares",
				   what);
	if ((ret = tnd_source_read_exact(r->src, buf, raw->rec.stored_len, what)))
		return ret;
	r->read_bytes += sizeof(raw->hdr) + raw->rec.stored_len;
	raw->seq = r->read_index++;
	return 1;
}

void tnd_raw_record_hash(struct tnd_raw_record *raw, const uint8_t *data)
{
	struct tnd_sha256 h;

	tnd_sha256_init(&h);
	tnd_sha256_update(&h, raw->hdr, sizeof(raw->hdr));
	tnd_sha256_update(&h, data, raw->rec.stored_len);
	tnd_sha256_final(&h, raw->hash);
}

int tnd_bundle_authenticate(struct tnd_bundle_reader *r, const struct tnd_raw_record *raw)
{
	const struct tnd_manifest *m = &r->manifest;
	const struct tnd_record *rec = &raw->rec;
	int ret;

	if (raw->seq != r->next_index)
		return tnd_err_set(TND_E_INTERNAL, "records authenticated out of order");
	if (!tnd_memeq_ct(raw->hash, r->expect, TND_SHA256_LEN))
		return tnd_err_set(TND_E_INTEGRITY,
				   "chunk %llu of %llu does not match the signed manifest "
				   "(corrupt or tampered)",
				   (unsigned long long)raw->seq + 1, (unsigned long long)m->chunks);
	if ((ret = check_record(r, rec)))
		return ret;
	r->payload_read += TND_RECORD_HDR_SIZE + rec->stored_len;
	r->next_index++;
	r->next_out += rec->out_len;
	memcpy(r->expect, rec->next, TND_SHA256_LEN);
	if (r->next_index == m->chunks) {
		if (r->payload_read != m->payload_size)
			return tnd_err_set(TND_E_FORMAT,
					   "payload size disagrees with the manifest");
		r->done = true;
	}
	return 0;
}

int tnd_bundle_next(struct tnd_bundle_reader *r, struct tnd_record *rec, uint8_t *buf, size_t cap)
{
	struct tnd_raw_record raw;
	int ret = tnd_bundle_read(r, &raw, buf, cap);

	if (ret <= 0)
		return ret;
	tnd_raw_record_hash(&raw, buf);
	if ((ret = tnd_bundle_authenticate(r, &raw)))
		return ret;
	*rec = raw.rec;
	return 1;
}

int tnd_bundle_resume(struct tnd_bundle_reader *r, uint64_t index, uint64_t payload_read,
		      uint64_t next_out, const uint8_t expect[TND_SHA256_LEN])
{
	const struct tnd_manifest *m = &r->manifest;

	if (r->read_index || r->next_index)
		return tnd_err_set(TND_E_INTERNAL, "resume after records were read");
	/* Bounds first: later reads are sized from these. Each record before
	 * `index` took at least a header, and one more must still fit. */
	if (index == 0 || index >= m->chunks || payload_read > m->payload_size ||
	    m->payload_size - payload_read < TND_RECORD_HDR_SIZE ||
	    payload_read / TND_RECORD_HDR_SIZE < index || next_out >= m->stream_size)
		return tnd_err_set(TND_E_FORMAT,
				   "resume point (chunk %llu at payload offset %llu) lies outside "
				   "the bundle",
				   (unsigned long long)index, (unsigned long long)payload_read);
	r->read_index = r->next_index = index;
	r->read_bytes = r->payload_read = payload_read;
	r->next_out = next_out;
	memcpy(r->expect, expect, TND_SHA256_LEN);
	return tnd_source_skip_to(r->src, r->payload_offset + payload_read);
}
