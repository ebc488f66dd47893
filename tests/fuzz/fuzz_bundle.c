// SPDX-License-Identifier: MIT
/*
 * The bundle reader: header, signature block, manifest, and the record
 * chain, through a memory source. The first input byte selects a mode
 * (byte & 3) and flags (byte >> 2):
 *
 * 0 raw: the rest is a bundle as it arrives from the network. It is
 *   opened with the test keyring (signatures never check out: the keys are
 *   made fresh for each process) and without one (the parse-only path of
 *   `tandem-image inspect`, which reaches the manifest parser and the
 *   first record), and every record is read with tnd_bundle_next.
 *   flags: 1 read in 1-byte pieces, 2 size known up front (a file).
 *
 * 1 and 3 chained: the fuzzer cannot forge SHA-256 or ECDSA, so this mode
 *   does it for it, to reach everything behind them. Input after the mode
 *   byte: be16 manifest length, manifest, then records (64-byte header +
 *   data, the data length taken from the header's stored_len, cut short at
 *   the end of the input). The harness writes each record's `next` field
 *   as the hash of the record after it (the last one keeps the fuzzer's
 *   bytes), replaces the 64 characters after "first_chunk_sha256":" in
 *   the manifest with the hash of record 0, and signs the manifest with
 *   the test keys; the reader then sees a bundle a legitimate (if buggy
 *   or malicious) signer could have made.
 *   flags: 1 13-byte pieces, 2 size known, 4 verify with the keyring
 *   (else the parse-only path: ECDSA is the slow part), 8|16 which
 *   signatures: key 0, key 1 (threshold 1), key 0 twice, keys 0 and 1
 *   (threshold 2: the first must fail, the second pass), 32 use
 *   tnd_bundle_read/_hash/_authenticate instead of tnd_bundle_next.
 *
 * 2 direct: the decoders on their own. flags % 3: 0 a record header
 *   (tnd_record_decode), 1 a bundle header, 2 a signature block; each
 *   must re-encode to the bytes it was decoded from.
 *
 * Properties checked on every authenticated record: index and output
 * offset continue the chain, the lengths respect chunk_size and type, a
 * deflate record inflates to exactly out_len, and a completed chain has
 * exactly `chunks` records.
 */
#include "bundle.h"
#include "chunk.h"
#include "fuzz_common.h"
#include "util.h"

#define BUF_CAP	  (1u << 20) /* the largest record data the harness reads */
#define MAX_RECS  4096
#define FIRST_KEY "\"first_chunk_sha256\":\""

static struct tnd_keyring keyring;
static struct tnd_signer *signer[2];
static struct tnd_inflater inflater;
static uint8_t *buf, *outbuf;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch_dir();
	char priv[700], pub[700];

	(void)argc;
	(void)argv;
	/* Fresh keys per process: nothing secret lives in the repository,
	 * and no committed input can depend on a particular key. */
	for (int i = 0; i < 2; i++) {
		snprintf(priv, sizeof(priv), "%s/k%d.key", dir, i);
		snprintf(pub, sizeof(pub), "%s/k%d.pem", dir, i);
		if (tnd_keygen(priv, pub) || tnd_keyring_add_file(&keyring, pub) ||
		    tnd_signer_load(&signer[i], priv)) {
			fprintf(stderr, "fuzz_bundle: test keys: %s\n", tnd_err_msg());
			abort();
		}
	}
	if (tnd_inflater_init(&inflater))
		abort();
	buf = malloc(BUF_CAP);
	outbuf = malloc(BUF_CAP);
	if (!buf || !outbuf)
		abort();
	return 0;
}

/* Reads every record and checks what the reader promises about it. */
static void read_all(struct tnd_bundle_reader *r, int split)
{
	const struct tnd_manifest *m = &r->manifest;
	uint64_t n = 0, out = 0;
	int ret;

	for (;;) {
		struct tnd_record rec;

		if (split) {
			struct tnd_raw_record raw;

			ret = tnd_bundle_read(r, &raw, buf, BUF_CAP);
			if (ret <= 0)
				break;
			FUZZ_ASSERT(raw.rec.stored_len <= m->chunk_size);
			tnd_raw_record_hash(&raw, buf);
			ret = tnd_bundle_authenticate(r, &raw);
			if (ret)
				break;
			rec = raw.rec;
		} else {
			ret = tnd_bundle_next(r, &rec, buf, BUF_CAP);
			if (ret <= 0)
				break;
		}
		FUZZ_ASSERT(rec.index == n);
		FUZZ_ASSERT(rec.out_offset == out);
		FUZZ_ASSERT(rec.out_len > 0 && rec.stored_len <= m->chunk_size);
		FUZZ_ASSERT(rec.type <= TND_REC_ZERO);
		if (rec.type == TND_REC_STORED)
			FUZZ_ASSERT(rec.stored_len == rec.out_len);
		if (rec.type == TND_REC_ZERO)
			FUZZ_ASSERT(rec.stored_len == 0);
		if (rec.type == TND_REC_DEFLATE) {
			FUZZ_ASSERT(rec.out_len <= m->chunk_size);
			/* What the install pipeline does next with the data. */
			if (rec.out_len <= BUF_CAP)
				(void)!tnd_inflate_chunk(&inflater, buf, rec.stored_len, outbuf,
							 rec.out_len);
		}
		out += rec.out_len;
		n++;
		FUZZ_ASSERT(n <= m->chunks);
	}
	FUZZ_ASSERT(ret <= 0);
	if (ret == 0) {
		FUZZ_ASSERT(n == m->chunks);
		FUZZ_ASSERT(r->done);
		/* And it stays at the end. */
		FUZZ_ASSERT(tnd_bundle_next(r, &(struct tnd_record){0}, buf, BUF_CAP) == 0);
	}
}

static void open_and_read(const uint8_t *b, size_t len, size_t step, int size_known,
			  const struct tnd_verify_opts *o, int split)
{
	struct fuzz_memsrc src;
	struct tnd_bundle_reader r;

	fuzz_memsrc_init(&src, b, len, step, size_known);
	if (tnd_bundle_open(&r, &src.base, o))
		return;
	FUZZ_ASSERT(r.manifest.verified == (o && o->keyring));
	if (o && o->keyring)
		FUZZ_ASSERT(r.valid_sigs >= (o->threshold ? o->threshold : 1));
	FUZZ_ASSERT(r.payload_offset == src.base.pos);
	read_all(&r, split);
}

static void mode_raw(const uint8_t *data, size_t size, unsigned flags)
{
	struct tnd_verify_opts o = {.keyring = &keyring, .threshold = 1};
	size_t step = flags & 1 ? 1 : 0;

	open_and_read(data, size, step, flags & 2, &o, 0);
	open_and_read(data, size, step, flags & 2, NULL, 0);
}

/* Signatures of the last manifest digest, per signature set: signing is
 * the slow part of this mode and most mutations leave the manifest be. */
static struct {
	uint8_t digest[TND_SHA256_LEN];
	struct tnd_signature sig[2];
	int valid[2];
} cache;

static const struct tnd_signature *sign_with(int k, const uint8_t digest[TND_SHA256_LEN])
{
	struct tnd_signature *s = &cache.sig[k];
	size_t len;

	if (memcmp(cache.digest, digest, TND_SHA256_LEN)) {
		memcpy(cache.digest, digest, TND_SHA256_LEN);
		cache.valid[0] = cache.valid[1] = 0;
	}
	if (!cache.valid[k]) {
		if (tnd_signer_sign(signer[k], digest, s->sig, &len))
			abort();
		s->len = (uint16_t)len;
		s->alg = TND_SIG_ECDSA_P256_SHA256;
		memcpy(s->keyid, tnd_signer_id(signer[k]), TND_KEYID_LEN);
		cache.valid[k] = 1;
	}
	return s;
}

static void mode_chained(const uint8_t *data, size_t size, unsigned flags)
{
	static const int sets[4][2] = {{0, -1}, {1, -1}, {0, 0}, {0, 1}};
	unsigned which = (flags >> 3) & 3;
	struct tnd_verify_opts o = {.keyring = &keyring, .threshold = which >= 2 ? 2 : 1};
	struct tnd_signature sigs[2];
	size_t mlen, nsig = 0, rec_off[MAX_RECS + 1], nrec = 0, pos, total, off;
	uint8_t digest[TND_SHA256_LEN], hash[TND_SHA256_LEN], *b, *region;
	const int *set = sets[which];
	struct tnd_header h;
	char *man, *p;
	int sb;

	if (size < 2)
		return;
	mlen = tnd_get_be16(data);
	data += 2;
	size -= 2;
	if (mlen > size)
		mlen = size;
	if (mlen == 0)
		return;
	total = TND_HEADER_SIZE + mlen + TND_SIGBLOCK_MAX + (size - mlen);
	b = malloc(total);
	if (!b)
		abort();
	man = (char *)b + TND_HEADER_SIZE;
	memcpy(man, data, mlen);
	/* Without the keyring nothing checks the signatures: skip signing. */
	if (!(flags & 4))
		set = sets[0];
	/* Records first (they are placed after the signature block once its
	 * length is known), so the manifest can carry record 0's hash. */
	region = malloc(size - mlen + 1);
	if (!region)
		abort();
	memcpy(region, data + mlen, size - mlen);
	for (pos = 0; nrec < MAX_RECS && size - mlen - pos >= TND_RECORD_HDR_SIZE;) {
		size_t room = size - mlen - pos - TND_RECORD_HDR_SIZE;
		size_t dlen = tnd_get_be32(region + pos + 12);

		rec_off[nrec++] = pos;
		pos += TND_RECORD_HDR_SIZE + (dlen < room ? dlen : room);
	}
	rec_off[nrec] = pos;
	for (size_t i = nrec; i-- > 0;) {
		if (i + 1 < nrec)
			memcpy(region + rec_off[i] + 32, hash, TND_SHA256_LEN);
		tnd_sha256(region + rec_off[i], rec_off[i + 1] - rec_off[i], hash);
	}
	p = nrec ? memmem(man, mlen, FIRST_KEY, sizeof(FIRST_KEY) - 1) : NULL;
	if (p && (size_t)(man + mlen - p) >= sizeof(FIRST_KEY) - 1 + 64) {
		char hex[TND_SHA256_HEX_LEN];

		tnd_hex_encode(hex, hash, TND_SHA256_LEN);
		memcpy(p + sizeof(FIRST_KEY) - 1, hex, 64);
	}
	tnd_manifest_digest(man, mlen, digest);
	for (int i = 0; i < 2 && set[i] >= 0; i++) {
		if (flags & 4) {
			sigs[nsig++] = *sign_with(set[i], digest);
		} else {
			memset(&sigs[nsig], 0, sizeof(sigs[nsig]));
			sigs[nsig].alg = TND_SIG_ECDSA_P256_SHA256;
			sigs[nsig++].len = 72;
		}
	}
	sb = tnd_sigblock_encode(b + TND_HEADER_SIZE + mlen, TND_SIGBLOCK_MAX, sigs, nsig);
	FUZZ_ASSERT(sb > 0);
	h.format = TND_BUNDLE_FORMAT;
	h.manifest_len = (uint32_t)mlen;
	h.sigblock_len = (uint32_t)sb;
	tnd_header_encode(b, &h);
	off = TND_HEADER_SIZE + mlen + (size_t)sb;
	memcpy(b + off, region, size - mlen);
	off += size - mlen;
	open_and_read(b, off, flags & 1 ? 13 : 0, flags & 2, flags & 4 ? &o : NULL, flags & 32);
	free(region);
	free(b);
}

static void mode_direct(const uint8_t *data, size_t size, unsigned flags)
{
	switch (flags % 3) {
	case 0: {
		struct tnd_record rec;
		uint8_t again[TND_RECORD_HDR_SIZE];

		if (size < TND_RECORD_HDR_SIZE || tnd_record_decode(&rec, data))
			return;
		tnd_record_encode(again, &rec);
		FUZZ_ASSERT(!memcmp(again, data, TND_RECORD_HDR_SIZE));
		break;
	}
	case 1: {
		struct tnd_header h;
		uint8_t again[TND_HEADER_SIZE];

		if (size < TND_HEADER_SIZE || tnd_header_decode(&h, data))
			return;
		FUZZ_ASSERT(h.manifest_len >= 1 && h.manifest_len <= TND_MANIFEST_MAX);
		FUZZ_ASSERT(h.sigblock_len >= 2 && h.sigblock_len <= TND_SIGBLOCK_MAX);
		tnd_header_encode(again, &h);
		FUZZ_ASSERT(!memcmp(again, data, TND_HEADER_SIZE));
		break;
	}
	default: {
		struct tnd_signature sigs[TND_MAX_SIGS];
		uint8_t again[TND_SIGBLOCK_MAX];
		size_t n = 0;
		int len;

		if (size > TND_SIGBLOCK_MAX || tnd_sigblock_decode(sigs, &n, data, size))
			return;
		FUZZ_ASSERT(n >= 1 && n <= TND_MAX_SIGS);
		len = tnd_sigblock_encode(again, sizeof(again), sigs, n);
		FUZZ_ASSERT(len > 0 && (size_t)len == size && !memcmp(again, data, size));
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned mode, flags;

	if (!buf)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size < 1)
		return 0;
	mode = data[0] & 3;
	flags = data[0] >> 2;
	if (mode == 0)
		mode_raw(data + 1, size - 1, flags);
	else if (mode == 2)
		mode_direct(data + 1, size - 1, flags);
	else
		mode_chained(data + 1, size - 1, flags);
	return 0;
}
