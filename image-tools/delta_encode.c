// SPDX-License-Identifier: MIT
/*
 * Delta encoder: base + target images -> op stream (docs/delta-format.md).
 *
 * 1. Index: a hash index of the base (every 8th position, keyed by the 8
 *    bytes there) and a hash table of the base's aligned blocks.
 * 2. Whole-block reuse: every aligned target block that equals some base
 *    block becomes a COPY; continuing the previous block's base run is
 *    preferred so runs merge into one op.
 * 3. The regions between are scanned bsdiff-style against the index:
 *    approximate matches become ADD (target - base bytewise, mostly zero
 *    and compressing very well), the rest EXTRA. Regions are split in
 *    pieces and scanned by all threads.
 * 4. The ops are written to three raw sub-streams (control, diff, extra),
 *    each compressed as one deflate stream with a sync flush every frame,
 *    and the frames are interleaved in the order a decoder needs them.
 */
#include "delta_encode.h"
#include "delta_xzmap.h"

#include "chunk.h"
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "util.h"

/* Scan regions longer than this are cut so threads share the work. */
#define PIECE_MAX (1u << 20)
/* Longest match the index search reports; longer ones are simply found
 * again from where the previous one ended. Bounds memcmp work. */
#define MATCH_CAP (1 << 16)
/* ADD spans with at least this many equal bytes become a COPY: saves the
 * zero diff bytes (and decoder work) for a few control bytes. */
#define COPY_SPLIT_MIN 2048
/* EXTRA spans of one repeated byte at least this long become a FILL. */
#define FILL_MIN 64

struct enc_op {
	uint64_t len;
	uint64_t bpos; /* COPY/ADD: base offset; FILL: the byte */
	uint8_t kind;
};

struct opvec {
	struct enc_op *v;
	size_t n, cap;
};

struct bytevec {
	uint8_t *p;
	size_t n, cap;
};

/* A target range handled one way: a run of reused blocks, or a scan. */
struct seg {
	uint64_t t0, t1;
	uint64_t bpos; /* COPY: base start; SCAN: base position to align with */
	bool copy;
	struct opvec ops; /* SCAN result */
	int err;
};

struct enc {
	const uint8_t *base, *tgt;
	int64_t bsz, tsz;
	unsigned bs, threads;
	int level;
	uint32_t *idx; /* IDX_WAYS base positions per bucket: pos / IDX_STEP + 1 */
	uint64_t nbuckets;
	int gain;     /* bytes a new match must beat the current alignment by */
	int gain_far; /* ... when it lies more than FAR_JUMP away from it */
	int ext;      /* ADD extensions go on while more than 1/ext of the bytes match */
	struct seg *segs;
	size_t nsegs;
	atomic_size_t next_seg;
};

static int vec_push(struct opvec *v, uint8_t kind, uint64_t len, uint64_t bpos)
{
	struct enc_op *last = v->n ? &v->v[v->n - 1] : NULL;

	if (!len)
		return 0;
	/* merge with a previous op that continues into this one */
	if (last && last->kind == kind &&
	    ((kind == TND_DELTA_OP_EXTRA) ||
	     ((kind == TND_DELTA_OP_COPY || kind == TND_DELTA_OP_ADD) &&
	      last->bpos + last->len == bpos) ||
	     (kind == TND_DELTA_OP_FILL && last->bpos == bpos))) {
		last->len += len;
		return 0;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		struct enc_op *nv = realloc(v->v, cap * sizeof(*nv));

		if (!nv)
			return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n].kind = kind;
	v->v[v->n].len = len;
	v->v[v->n].bpos = bpos;
	v->n++;
	return 0;
}

static int bv_reserve(struct bytevec *b, size_t more)
{
	if (b->cap - b->n < more) {
		size_t cap = b->cap ? b->cap : 65536;
		uint8_t *np;

		while (cap - b->n < more)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		b->p = np;
		b->cap = cap;
	}
	return 0;
}

static int bv_put(struct bytevec *b, const void *p, size_t n)
{
	int r;

	if (!n)
		return 0; /* b->p may still be NULL: memcpy(NULL, ...) is undefined */
	if ((r = bv_reserve(b, n)))
		return r;
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

/* ------------------------------------------------------------ index */

/*
 * The base's hash index: every IDX_STEP-th position, keyed by the IDX_KEY
 * bytes from there, in buckets that keep the last IDX_WAYS positions of
 * their keys. All-zero blocks are left out: on a filesystem image they
 * are the free space, matched better by the block pass and FILL ops.
 *
 * It replaced a suffix array of the base (libdivsufsort), which finds the
 * longest match of any length but costs 4 bytes per base byte, a copy of
 * the base without its zero blocks and a 16M-entry prefix table: 1.25 GB
 * for the squashfs bench pair with its xz contents expanded, 3.4 times
 * bsdiff's peak, and 40% of the encode time sorting. The index costs half
 * a byte per base byte and a fraction of a second to build. A match it
 * finds starts on an indexed position, up to IDX_STEP - 1 bytes after
 * where it really starts: the scan's backward extension takes those back.
 * Measured on the bench pairs (docs/performance.md): deltas 2 to 6%
 * larger than with the suffix array, encoding several times faster in a
 * fraction of the memory.
 */
#define IDX_KEY	 8
#define IDX_STEP 8
#define IDX_WAYS 8

static inline uint64_t idx_key(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, IDX_KEY);
	w *= 0x9e3779b97f4a7c15ull;
	return w ^ (w >> 29);
}

static inline uint32_t *idx_bucket(const struct enc *e, const uint8_t *p)
{
	/* multiply-shift maps the key onto any number of buckets (under 2^32:
	 * build_index caps the base) */
	return e->idx + (size_t)(((idx_key(p) >> 32) * e->nbuckets) >> 32) * IDX_WAYS;
}

static int build_index(struct enc *e)
{
	uint64_t n = (uint64_t)e->bsz / IDX_STEP + 1, p;
	int64_t blk = -1;
	bool zero = false;

	if (n >= UINT32_MAX)
		return tnd_err_set(TND_E_USAGE,
				   "delta encoder: bases of over %llu GiB are not supported",
				   (unsigned long long)((uint64_t)UINT32_MAX * IDX_STEP >> 30));
	e->nbuckets = (n + IDX_WAYS - 1) / IDX_WAYS;
	e->idx = calloc(e->nbuckets * IDX_WAYS, sizeof(*e->idx));
	if (!e->idx)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: no memory for the index");
	for (p = 0; p + IDX_KEY <= (uint64_t)e->bsz; p += IDX_STEP) {
		uint32_t *b;

		if ((int64_t)(p / e->bs) != blk) {
			int64_t off;

			blk = (int64_t)(p / e->bs);
			off = blk * e->bs;
			zero = tnd_is_zero(e->base + off,
					   (size_t)(e->bsz - off < e->bs ? e->bsz - off : e->bs));
		}
		if (zero)
			continue;
		b = idx_bucket(e, e->base + p);
		memmove(b + 1, b, (IDX_WAYS - 1) * sizeof(*b));
		b[0] = (uint32_t)(p / IDX_STEP + 1);
	}
	return 0;
}

static inline int64_t match_len(const uint8_t *a, int64_t alen, const uint8_t *b, int64_t blen)
{
	int64_t n = alen < blen ? alen : blen, i = 0;

	while (i + 8 <= n) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return i + (__builtin_ctzll(x ^ y) >> 3);
		i += 8;
	}
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/*
 * Longest match of p[0..plen) in the base among the index's candidates
 * and at base offset hint (the current alignment; -1: none); returns its
 * length, *pos its base offset.
 */
static int64_t longest_match(const struct enc *e, const uint8_t *p, int64_t plen, int64_t hint,
			     int64_t *pos)
{
	const uint32_t *b;
	int64_t best = 0;
	unsigned i;

	*pos = 0;
	if (plen > MATCH_CAP)
		plen = MATCH_CAP;
	if (hint >= 0 && hint < e->bsz) {
		best = match_len(e->base + hint, e->bsz - hint, p, plen);
		*pos = hint;
	}
	if (plen < IDX_KEY)
		return best;
	b = idx_bucket(e, p);
	for (i = 0; i < IDX_WAYS && b[i]; i++) {
		int64_t c = (int64_t)(b[i] - 1) * IDX_STEP;
		int64_t n = match_len(e->base + c, e->bsz - c, p, plen);

		if (n > best) {
			best = n;
			*pos = c;
		}
	}
	return best;
}

static uint64_t blk_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull, w;
	size_t i;

	for (i = 0; i < n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	return h;
}

struct blk_table {
	uint64_t *hash;
	int64_t *pos; /* -1: empty */
	size_t mask;
};

static int blk_table_build(const struct enc *e, struct blk_table *t)
{
	int64_t nb = e->bsz / e->bs, i;
	size_t cap = 1024;

	while (cap < (size_t)nb * 2)
		cap *= 2;
	t->mask = cap - 1;
	t->hash = malloc(cap * sizeof(*t->hash));
	t->pos = malloc(cap * sizeof(*t->pos));
	if (!t->hash || !t->pos)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	memset(t->pos, 0xff, cap * sizeof(*t->pos));
	for (i = 0; i < nb; i++) {
		const uint8_t *p = e->base + i * e->bs;
		uint64_t h = blk_hash(p, e->bs);
		size_t k = h & t->mask;

		/* first occurrence wins; identical blocks are not stored twice */
		for (; t->pos[k] >= 0; k = (k + 1) & t->mask)
			if (t->hash[k] == h && memcmp(e->base + t->pos[k], p, e->bs) == 0)
				break;
		if (t->pos[k] < 0) {
			t->hash[k] = h;
			t->pos[k] = i * e->bs;
		}
	}
	return 0;
}

static int64_t blk_lookup(const struct enc *e, const struct blk_table *t, const uint8_t *p)
{
	uint64_t h = blk_hash(p, e->bs);
	size_t k;

	for (k = h & t->mask; t->pos[k] >= 0; k = (k + 1) & t->mask)
		if (t->hash[k] == h && memcmp(e->base + t->pos[k], p, e->bs) == 0)
			return t->pos[k];
	return -1;
}

/* ------------------------------------------------------------ matching */

/*
 * How much longer than the current alignment a new exact match must be
 * (bsdiff uses 8). A new alignment costs control bytes and splits the
 * diff; that pays for short matches only where literal bytes are dear:
 * in an already-compressed image (squashfs) an EXTRA byte costs a full
 * byte, in an ext4 image it costs about a third after deflate. Measured
 * on the test pairs: 4 is best on squashfs, 8 on ext4 (4 makes ext4 8%
 * larger; 3 or less floods squashfs with ops). The target's
 * compressibility is sampled with fast deflate on 1/16 of its 64 KiB
 * pieces.
 *
 * A match more than FAR_JUMP away from the current alignment must beat
 * it by gain_far instead. In compressible data (recompiled code, text)
 * there are 10- to 30-byte matches all over the base that lead nowhere: each became a short ADD
 * that made the device read a page at a random place in its base for a few bytes, which saved less
 * in op-stream size than the jump cost in control bytes. A real new
 * alignment (the old copy of a moved file) soon shows a longer match,
 * and the backward extension then takes back the bytes skipped before
 * it. Measured on the ext4 pair (with a suffix array as the index, which
 * found every such match): gain_far 24 makes 38% fewer ops, a
 * delta 2.3% smaller, and 65% fewer base reads on the device (decoding
 * 0.31 s -> 0.22 s from a cold cache); 48 or 96 read little less and
 * grow the delta. Incompressible data has no chance matches of that
 * length: there every match is real and the gain stays 4.
 */
#define FAR_JUMP (64 * 1024)

static int match_gain(const struct enc *e)
{
	uint64_t in = 0, out = 0;
	int64_t off;
	uint8_t *buf = malloc(65536 + 1024);
	z_stream zs;

	if (!buf)
		return 8;
	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(buf);
		return 8;
	}
	for (off = 0; off + 65536 <= e->tsz; off += 16 * 65536) {
		if (tnd_is_zero(e->tgt + off, 65536))
			continue;
		deflateReset(&zs);
		zs.next_in = (Bytef *)e->tgt + off;
		zs.avail_in = 65536;
		zs.next_out = buf;
		zs.avail_out = 65536 + 1024;
		deflate(&zs, Z_FINISH);
		in += 65536;
		out += zs.total_out;
	}
	deflateEnd(&zs);
	free(buf);
	return in && out * 10 > in * 9 ? 4 : 8;
}

static int far_gain(int gain)
{
	return gain == 4 ? 4 : 3 * gain;
}

/*
 * How sparse the equal bytes of an ADD may get before its extension
 * stops: bsdiff's rule, more than half of them, suits compressible data,
 * where a stretch of unequal diff bytes compresses worse than the same
 * target bytes as EXTRA. In incompressible data (gain 4) every unequal
 * byte costs one byte either way and every equal one less, so an ADD pays
 * as long as bytes match more often than by chance (1 in 256). Measured
 * on the squashfs pair without xz rebuilding: 1/16 makes the delta 45 KB
 * (0.2%) smaller than 1/2, and 1/64 gains 1 KB more; on ext4 (gain 8) 1/3
 * already makes it larger, so there it stays 1/2.
 */
static int ext_ratio(int gain)
{
	return gain == 4 ? 16 : 2;
}

static int seg_add(struct enc *e, size_t *cap, bool copy, uint64_t t0, uint64_t t1, uint64_t bpos)
{
	struct seg *s;

	if (e->nsegs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct seg *ns = realloc(e->segs, ncap * sizeof(*ns));

		if (!ns)
			return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		e->segs = ns;
		*cap = ncap;
	}
	s = &e->segs[e->nsegs++];
	memset(s, 0, sizeof(*s));
	s->copy = copy;
	s->t0 = t0;
	s->t1 = t1;
	s->bpos = bpos;
	return 0;
}

/* Whole-block pass: splits the target into COPY runs and scan pieces. */
static int plan_segments(struct enc *e, const struct blk_table *t, uint64_t *block_bytes)
{
	int64_t nb = e->tsz / e->bs, i, prev = -1; /* base pos after the last match */
	int64_t scan0 = 0, align = 0;		   /* pending scan start, its alignment */
	size_t cap = 0;
	int r;

	*block_bytes = 0;
	for (i = 0; i <= nb; i++) {
		const uint8_t *p = e->tgt + i * e->bs;
		int64_t m = -1;

		if (i < nb) {
			/* continue the previous run, then the same offset, then anywhere */
			if (prev >= 0 && prev + e->bs <= e->bsz &&
			    memcmp(e->base + prev, p, e->bs) == 0)
				m = prev;
			else if ((i + 1) * e->bs <= e->bsz &&
				 memcmp(e->base + i * e->bs, p, e->bs) == 0)
				m = i * e->bs;
			else
				m = blk_lookup(e, t, p);
		}
		if (m >= 0) {
			int64_t t0 = i * e->bs;

			if (scan0 < t0) {
				r = seg_add(e, &cap, false, (uint64_t)scan0, (uint64_t)t0,
					    (uint64_t)align);
				if (r)
					return r;
			}
			if (e->nsegs && e->segs[e->nsegs - 1].copy &&
			    e->segs[e->nsegs - 1].t1 == (uint64_t)t0 && prev == m) {
				e->segs[e->nsegs - 1].t1 += e->bs;
			} else {
				r = seg_add(e, &cap, true, (uint64_t)t0, (uint64_t)(t0 + e->bs),
					    (uint64_t)m);
				if (r)
					return r;
			}
			*block_bytes += e->bs;
			prev = m + e->bs;
			scan0 = t0 + e->bs;
			align = prev;
			continue;
		}
		/* unmatched: extends the pending scan; cut long ones in pieces */
		if (i < nb && (i + 1) * e->bs - scan0 >= PIECE_MAX) {
			r = seg_add(e, &cap, false, (uint64_t)scan0, (uint64_t)((i + 1) * e->bs),
				    (uint64_t)align);
			if (r)
				return r;
			align = align + ((i + 1) * e->bs - scan0);
			if (align > e->bsz)
				align = e->bsz;
			scan0 = (i + 1) * e->bs;
		}
		prev = -1;
	}
	if (scan0 < e->tsz)
		return seg_add(e, &cap, false, (uint64_t)scan0, (uint64_t)e->tsz, (uint64_t)align);
	return 0;
}

/* Emits an ADD, cutting out long stretches of equal bytes as COPY. */
static int push_add(struct opvec *ops, const struct enc *e, int64_t t, int64_t b, int64_t len)
{
	int64_t i = 0, start = 0;
	int r;

	while (i < len) {
		int64_t run;

		if (e->tgt[t + i] != e->base[b + i]) {
			i++;
			continue;
		}
		run = match_len(e->tgt + t + i, len - i, e->base + b + i, len - i);
		if (run >= COPY_SPLIT_MIN) {
			r = vec_push(ops, TND_DELTA_OP_ADD, (uint64_t)(i - start),
				     (uint64_t)(b + start));
			if (!r)
				r = vec_push(ops, TND_DELTA_OP_COPY, (uint64_t)run,
					     (uint64_t)(b + i));
			if (r)
				return r;
			start = i + run;
		}
		i += run;
	}
	return vec_push(ops, TND_DELTA_OP_ADD, (uint64_t)(len - start), (uint64_t)(b + start));
}

/* Emits an EXTRA, cutting out long runs of one byte as FILL. */
static int push_extra(struct opvec *ops, const struct enc *e, int64_t t, int64_t len)
{
	int64_t i = 0, start = 0;
	int r;

	while (i < len) {
		int64_t j = i + 1;

		while (j < len && e->tgt[t + j] == e->tgt[t + i])
			j++;
		if (j - i >= FILL_MIN) {
			r = vec_push(ops, TND_DELTA_OP_EXTRA, (uint64_t)(i - start), 0);
			if (!r)
				r = vec_push(ops, TND_DELTA_OP_FILL, (uint64_t)(j - i),
					     e->tgt[t + i]);
			if (r)
				return r;
			start = j;
		}
		i = j;
	}
	return vec_push(ops, TND_DELTA_OP_EXTRA, (uint64_t)(len - start), 0);
}

/* Is alignment off (base - target) more than FAR_JUMP from lastoff? */
static inline bool far_from(int64_t off, int64_t lastoff)
{
	return off - lastoff > FAR_JUMP || lastoff - off > FAR_JUMP;
}

static inline bool same_at(const struct enc *e, int64_t t, int64_t off)
{
	int64_t b = t + off;

	return b >= 0 && b < e->bsz && e->base[b] == e->tgt[t];
}

/*
 * bsdiff's matching loop over target[t0..t1): walk the target; at each
 * position find the longest exact match anywhere in the base and compare
 * it with how well the current alignment (lastoff) still does. A clearly
 * better match (by e->gain bytes, or e->gain_far when it lies far from the
 * current alignment: see match_gain) starts a new alignment: the stretch
 * since the last one is split into a forward-extended ADD on the old alignment, a
 * backward-extended ADD on the new one, and EXTRA bytes between them. The
 * extensions keep going while more than half the bytes match (in
 * compressible data; see ext_ratio), which is what turns recompiled code
 * (shifted addresses) into mostly-zero diff bytes.
 */
static int scan_seg(const struct enc *e, struct seg *sg)
{
	const uint8_t *o = e->base, *n = e->tgt;
	int64_t t1 = (int64_t)sg->t1, scan = (int64_t)sg->t0, len = 0, pos = 0;
	int64_t lastscan = scan, lastpos = (int64_t)sg->bpos, lastoff = lastpos - scan;
	int r;

	while (scan < t1) {
		int64_t oldscore = 0, scsc, gain;

		for (scsc = scan += len; scan < t1; scan++) {
			len = longest_match(e, n + scan, t1 - scan, scan + lastoff, &pos);
			for (; scsc < scan + len; scsc++)
				if (same_at(e, scsc, lastoff))
					oldscore++;
			gain = far_from(pos - scan, lastoff) ? e->gain_far : e->gain;
			if ((len == oldscore && len != 0) || len > oldscore + gain)
				break;
			if (same_at(e, scan, lastoff))
				oldscore--;
		}
		if (len != oldscore || scan == t1) {
			int64_t s = 0, sf = 0, lenf = 0, lenb = 0, i;

			for (i = 0; lastscan + i < scan && lastpos + i < e->bsz;) {
				if (o[lastpos + i] == n[lastscan + i])
					s++;
				i++;
				if (s * e->ext - i > sf * e->ext - lenf) {
					sf = s;
					lenf = i;
				}
			}
			if (scan < t1) {
				int64_t sb = 0;

				s = 0;
				for (i = 1; scan >= lastscan + i && pos >= i; i++) {
					if (o[pos - i] == n[scan - i])
						s++;
					if (s * e->ext - i > sb * e->ext - lenb) {
						sb = s;
						lenb = i;
					}
				}
			}
			if (lastscan + lenf > scan - lenb) {
				/* the extensions overlap: cut where the split scores best */
				int64_t ov = (lastscan + lenf) - (scan - lenb), ss = 0, lens = 0;

				s = 0;
				for (i = 0; i < ov; i++) {
					if (n[lastscan + lenf - ov + i] ==
					    o[lastpos + lenf - ov + i])
						s++;
					if (n[scan - lenb + i] == o[pos - lenb + i])
						s--;
					if (s > ss) {
						ss = s;
						lens = i + 1;
					}
				}
				lenf += lens - ov;
				lenb -= lens;
			}
			r = push_add(&sg->ops, e, lastscan, lastpos, lenf);
			if (!r)
				r = push_extra(&sg->ops, e, lastscan + lenf,
					       (scan - lenb) - (lastscan + lenf));
			if (r)
				return r;
			lastscan = scan - lenb;
			lastpos = pos - lenb;
			lastoff = pos - scan;
		}
	}
	return 0;
}

static void *scan_thread(void *arg)
{
	struct enc *e = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&e->next_seg, 1);

		if (i >= e->nsegs)
			break;
		if (!e->segs[i].copy)
			e->segs[i].err = scan_seg(e, &e->segs[i]);
	}
	return NULL;
}

/* Scans all pieces on e->threads threads (the caller's included). */
static void run_scan_threads(struct enc *e)
{
	pthread_t tid[16];
	unsigned i, started = 0, nt = e->threads > 16 ? 16 : e->threads;

	for (i = 1; i < nt; i++) {
		if (pthread_create(&tid[i], NULL, scan_thread, e))
			break;
		started = i;
	}
	scan_thread(e);
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
}

/* ------------------------------------------------------------ streams */

struct cstream {
	const struct bytevec *raw;
	int codec;
	struct bytevec comp;
	uint32_t *fcomp;  /* compressed length of each frame */
	uint8_t *fstored; /* 1: frame sent stored */
	size_t nframes;
};

/* A compression work item: frames [f0, f1) of one sub-stream. */
struct cseg {
	struct cstream *c;
	size_t f0, f1;
	struct bytevec out;
	int err;
};

struct cjob {
	struct cseg *segs;
	size_t nsegs;
	atomic_size_t next;
	int level;
};

/* Frames per work item: 1 MiB of raw bytes. */
#define SEG_FRAMES 16

static size_t nframes_of(size_t raw)
{
	return (raw + TND_DELTA_FRAME_MAX - 1) / TND_DELTA_FRAME_MAX;
}

/*
 * Each sub-stream is one deflate stream with Z_SYNC_FLUSH at every frame
 * boundary: a frame then inflates completely on its own while the 32 KiB
 * window still spans frames (unlike the container's independent chunks).
 * To use all cores the stream is cut into 1 MiB pieces deflated on their
 * own, each primed with the 32 KiB before it as a dictionary; as every
 * piece ends byte-aligned on a non-final block, their concatenation is a
 * single valid deflate stream with the same matches as a serial one.
 */
static int compress_seg(struct cseg *g, int level)
{
	const struct bytevec *raw = g->c->raw;
	size_t off = g->f0 * TND_DELTA_FRAME_MAX, i;
	z_stream zs, tz;
	uint8_t *trial = NULL;
	int ret = 0;

	memset(&zs, 0, sizeof(zs));
	memset(&tz, 0, sizeof(tz));
	if (deflateInit2(&zs, level, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return TND_E_NOMEM;
	if (deflateInit2(&tz, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		deflateEnd(&zs);
		return TND_E_NOMEM;
	}
	trial = malloc(TND_DELTA_FRAME_CMAX);
	if (!trial)
		ret = TND_E_NOMEM;
	if (off && !ret) {
		size_t dl = off < 32768 ? off : 32768;

		if (deflateSetDictionary(&zs, raw->p + off - dl, (uInt)dl) != Z_OK)
			ret = TND_E_INTERNAL;
	}
	for (i = g->f0; i < g->f1 && !ret; i++) {
		size_t n = raw->n - off < TND_DELTA_FRAME_MAX ? raw->n - off : TND_DELTA_FRAME_MAX;
		size_t dl = off < 32768 ? off : 32768;

		if (bv_reserve(&g->out, TND_DELTA_FRAME_CMAX)) {
			ret = TND_E_NOMEM;
			break;
		}
		/* A fast trial decides whether deflate gains anything on this
		 * frame; frames of already-compressed data are stored, which
		 * saves deflate's expansion and keeps frames that do compress
		 * (tables, self-repeats) deflated in the same stream. */
		deflateReset(&tz);
		if (dl)
			deflateSetDictionary(&tz, raw->p + off - dl, (uInt)dl);
		tz.next_in = raw->p + off;
		tz.avail_in = (uInt)n;
		tz.next_out = trial;
		tz.avail_out = (uInt)n;
		if (deflate(&tz, Z_FINISH) != Z_STREAM_END) {
			/* stored: still part of the window on both sides */
			if (deflateSetDictionary(&zs, raw->p + off, (uInt)n) != Z_OK)
				ret = TND_E_INTERNAL;
			memcpy(g->out.p + g->out.n, raw->p + off, n);
			g->c->fcomp[i] = (uint32_t)n;
			g->c->fstored[i] = 1;
			g->out.n += n;
			off += n;
			continue;
		}
		zs.next_in = raw->p + off;
		zs.avail_in = (uInt)n;
		zs.next_out = g->out.p + g->out.n;
		zs.avail_out = TND_DELTA_FRAME_CMAX;
		if (deflate(&zs, Z_SYNC_FLUSH) != Z_OK || zs.avail_in || !zs.avail_out)
			ret = TND_E_INTERNAL;
		g->c->fcomp[i] = TND_DELTA_FRAME_CMAX - zs.avail_out;
		g->out.n += g->c->fcomp[i];
		off += n;
	}
	deflateEnd(&zs);
	deflateEnd(&tz);
	free(trial);
	return ret;
}

static void *compress_thread(void *arg)
{
	struct cjob *j = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);

		if (i >= j->nsegs)
			break;
		j->segs[i].err = compress_seg(&j->segs[i], j->level);
	}
	return NULL;
}

/* Compresses the sub-streams; a stream deflate cannot shrink (already
 * compressed file data, as in squashfs images) is sent as is (codec 0). */
static int compress_streams(const struct enc *e, struct cstream cs[TND_DELTA_NSTREAMS])
{
	struct cjob j;
	pthread_t tid[16];
	unsigned t, started = 0, nt = e->threads > 16 ? 16 : e->threads;
	size_t i, k, n = 0;
	int ret = 0;

	memset(&j, 0, sizeof(j));
	j.level = e->level;
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		cs[i].nframes = nframes_of(cs[i].raw->n);
		cs[i].fcomp = calloc(cs[i].nframes + 1, sizeof(*cs[i].fcomp));
		cs[i].fstored = calloc(cs[i].nframes + 1, 1);
		if (!cs[i].fcomp || !cs[i].fstored)
			return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		j.nsegs += (cs[i].nframes + SEG_FRAMES - 1) / SEG_FRAMES;
	}
	j.segs = calloc(j.nsegs + 1, sizeof(*j.segs));
	if (!j.segs)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		for (k = 0; k < cs[i].nframes; k += SEG_FRAMES) {
			j.segs[n].c = &cs[i];
			j.segs[n].f0 = k;
			j.segs[n].f1 =
			    k + SEG_FRAMES < cs[i].nframes ? k + SEG_FRAMES : cs[i].nframes;
			n++;
		}
	for (t = 1; t < nt; t++) {
		if (pthread_create(&tid[t], NULL, compress_thread, &j))
			break;
		started = t;
	}
	compress_thread(&j);
	for (t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	for (n = 0; n < j.nsegs && !ret; n++) {
		ret = j.segs[n].err;
		if (!ret)
			ret = bv_put(&j.segs[n].c->comp, j.segs[n].out.p, j.segs[n].out.n);
	}
	for (n = 0; n < j.nsegs; n++)
		free(j.segs[n].out.p);
	free(j.segs);
	if (ret)
		return tnd_err_set(ret, "delta encoder: compression failed");
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		cs[i].codec = TND_DELTA_CODEC_DEFLATE;
		if (cs[i].comp.n < cs[i].raw->n)
			continue;
		cs[i].codec = TND_DELTA_CODEC_NONE;
		memset(cs[i].fstored, 0, cs[i].nframes);
		cs[i].comp.n = 0;
		ret = bv_put(&cs[i].comp, cs[i].raw->p, cs[i].raw->n);
		if (ret)
			return ret;
		for (k = 0; k < cs[i].nframes; k++)
			cs[i].fcomp[k] = k + 1 < cs[i].nframes
					     ? TND_DELTA_FRAME_MAX
					     : (uint32_t)(cs[i].raw->n - k * TND_DELTA_FRAME_MAX);
	}
	return 0;
}

/*
 * Serialises the ops into the raw control, diff and extra streams. Ops are
 * in expanded coordinates (delta_xzmap.h); each is cut where a piece of
 * the expanded target or base ends and written as the record that reads
 * that piece: COPY/ADD for raw base bytes, XCOPY/XADD for the content of
 * a base xz stream, and an XZ record opens each expanded target stream.
 * With plain maps (one raw piece each) nothing is cut: version 1 records.
 * The cursors follow the decoder's rules exactly (docs/delta-format.md).
 */
struct serial {
	const struct enc *e;
	const struct xz_map *bm, *tm;
	struct bytevec *raw;
	struct tnd_delta_stats *st;
	uint64_t t;	 /* expanded target position */
	size_t tp;	 /* target piece holding t */
	uint64_t cursor; /* base cursor */
	uint64_t xsrc, xcur;
	bool v2; /* a version 2 record was written */
	/* checks (versions 3 to 6): the span (0: none), whether a CHECK holds
	 * a SHA-256 (5 and 6) or a CRC-32, the real target, the real position
	 * the decoder's output has reached, and how much of it is checked */
	uint32_t span;
	bool sha;
	const uint8_t *real;
	uint64_t real_size, rpos, checked;
	/* the decoder's cache of decoded base streams, replayed */
	uint64_t slot_off[TND_DELTA_XZ_SLOTS], slot_used[TND_DELTA_XZ_SLOTS], clock;
	bool slot_valid[TND_DELTA_XZ_SLOTS];
};

/*
 * Reading a base stream's content that the decoder does not hold costs it
 * a whole decode (1 ms for 128 KiB); the matcher, which knows nothing of
 * this, takes short matches anywhere. A read shorter than this that would
 * miss the decoder's cache becomes an EXTRA: on the squashfs test pair
 * that removed 9 of 10 decodes for a slightly larger delta (measured in
 * docs/performance.md).
 */
#define XZ_MISS_MIN 256

/* Replays the decoder's choice (lib/delta.c, xz_load): true if the stream
 * at off is cached; when it is not and load is set, it is loaded into the
 * least recently used slot. */
static bool slot_use(struct serial *z, uint64_t off, bool load)
{
	int i, v = 0;

	for (i = 0; i < TND_DELTA_XZ_SLOTS; i++) {
		if (z->slot_valid[i] && z->slot_off[i] == off) {
			z->slot_used[i] = ++z->clock;
			return true;
		}
		if (!z->slot_valid[i] || z->slot_used[i] < z->slot_used[v])
			v = i;
		if (!z->slot_valid[v])
			break;
	}
	if (load) {
		z->slot_valid[v] = true;
		z->slot_off[v] = off;
		z->slot_used[v] = ++z->clock;
	}
	return false;
}

static int put_rec(struct serial *z, const uint8_t *rec, size_t rl)
{
	z->st->n_ops++;
	return bv_put(&z->raw[TND_DELTA_S_CTRL], rec, rl);
}

static int put_diff(struct serial *z, uint64_t bpos, uint64_t n)
{
	const struct enc *e = z->e;
	uint8_t *d;
	uint64_t i;
	int r = bv_reserve(&z->raw[TND_DELTA_S_DIFF], n);

	if (r)
		return r;
	d = z->raw[TND_DELTA_S_DIFF].p + z->raw[TND_DELTA_S_DIFF].n;
	for (i = 0; i < n; i++)
		d[i] = (uint8_t)(e->tgt[z->t + i] - e->base[bpos + i]);
	z->raw[TND_DELTA_S_DIFF].n += n;
	return 0;
}

#ifdef CONFIG_DELTA_XZ
/* XZ record for the target piece starting at z->t. */
static int put_xz(struct serial *z, const struct xz_piece *p)
{
	uint8_t rec[TND_DELTA_OP_MAX_XZ];
	size_t rl = 0;

	rec[rl++] = TND_DELTA_OP_XZ;
	rl += tnd_delta_put_varint(rec + rl, p->clen);
	rl += tnd_delta_put_varint(rec + rl, p->len);
	tnd_put_be32(rec + rl, p->crc);
	rl += 4;
	rec[rl++] = p->set.check;
	rec[rl++] = p->set.preset;
	rec[rl++] = p->set.dict;
	rec[rl++] = p->set.bcj;
	z->v2 = true;
	z->st->xz_streams++;
	return put_rec(z, rec, rl);
}
#endif

/* A CHECK record for every span the decoder's output has completed (the
 * last one may be short); the decoder needs each right when it completes,
 * before it makes a byte more. */
static int put_checks(struct serial *z)
{
	while (z->span && z->checked < z->rpos &&
	       (z->rpos - z->checked >= z->span || z->rpos == z->real_size)) {
		uint64_t n = z->rpos - z->checked;
		uint8_t rec[TND_DELTA_CHECK_SHA_LEN];
		size_t rl = z->sha ? TND_DELTA_CHECK_SHA_LEN : TND_DELTA_CHECK_LEN;
		int r;

		if (n > z->span)
			n = z->span;
		rec[0] = TND_DELTA_OP_CHECK;
		if (z->sha)
			tnd_sha256(z->real + z->checked, (size_t)n, rec + 1);
		else
			tnd_put_be32(rec + 1, tnd_crc32(z->real + z->checked, (size_t)n));
		if ((r = bv_put(&z->raw[TND_DELTA_S_CTRL], rec, rl)))
			return r;
		z->st->checks++;
		z->checked += n;
	}
	return 0;
}

/* One op, cut at piece boundaries and, in raw target pieces, at check
 * spans, so that each CHECK follows the op that completes its span and
 * the decoder never waits for one in the middle of an op's data (which
 * would break the one-frame bound the interleaving keeps). */
static int put_op(struct serial *z, const struct enc_op *op)
{
	uint64_t len = op->len, bpos = op->bpos;
	int r;

	while (len) {
		const struct xz_piece *tp = &z->tm->p[z->tp], *bp = NULL;
		uint64_t n = tp->x0 + tp->len - z->t, in = 0;
		uint8_t rec[TND_DELTA_OP_MAX_XZ], kind;
		size_t rl = 0;

#ifdef CONFIG_DELTA_XZ
		if (tp->content && z->t == tp->x0 && (r = put_xz(z, tp)))
			return r;
#endif
		if (n > len)
			n = len;
		if (!tp->content && z->span) {
			uint64_t span_left = z->span - z->rpos % z->span;

			if (n > span_left)
				n = span_left;
		}
		kind = op->kind;
		/* Free space copied from free space: a FILL costs the decoder
		 * no base read (a filesystem image is often half zeros). */
		if (kind == TND_DELTA_OP_COPY && !tp->content && tnd_is_zero(z->e->tgt + z->t, n))
			kind = TND_DELTA_OP_FILL;
		if (kind == TND_DELTA_OP_COPY || kind == TND_DELTA_OP_ADD) {
			bp = &z->bm->p[tnd_xzmap_find(z->bm, bpos)];
			in = bpos - bp->x0;
			if (n > bp->len - in)
				n = bp->len - in;
			if (bp->content && !slot_use(z, bp->off, n >= XZ_MISS_MIN)) {
				if (n < XZ_MISS_MIN)
					kind = TND_DELTA_OP_EXTRA;
				else
					z->st->xz_loads++;
			}
		}
		rec[rl++] = kind;
		if (kind == TND_DELTA_OP_COPY || kind == TND_DELTA_OP_ADD) {
			if (!bp->content) {
				uint64_t b = bp->off + in;

				rl += tnd_delta_put_varint(rec + rl, n);
				rl += tnd_delta_put_varint(
				    rec + rl, tnd_delta_zigzag((int64_t)b - (int64_t)z->cursor));
				z->cursor = b + n;
			} else {
				/* the content of the base stream at bp->off, from in */
				uint64_t qbase = bp->off == z->xsrc ? z->xcur : 0;

				rec[0] = kind == TND_DELTA_OP_COPY ? TND_DELTA_OP_XCOPY
								   : TND_DELTA_OP_XADD;
				rl += tnd_delta_put_varint(rec + rl, n);
				rl += tnd_delta_put_varint(
				    rec + rl,
				    tnd_delta_zigzag((int64_t)bp->off - (int64_t)z->xsrc));
				rl += tnd_delta_put_varint(
				    rec + rl, tnd_delta_zigzag((int64_t)in - (int64_t)qbase));
				z->xsrc = bp->off;
				z->xcur = in + n;
				z->v2 = true;
			}
			if (kind == TND_DELTA_OP_COPY) {
				z->st->copy_bytes += n;
			} else {
				z->st->add_bytes += n;
				if ((r = put_diff(z, bpos, n)))
					return r;
			}
		} else {
			rl += tnd_delta_put_varint(rec + rl, n);
			if (kind == TND_DELTA_OP_EXTRA) {
				z->st->extra_bytes += n;
				r = bv_put(&z->raw[TND_DELTA_S_EXTRA], z->e->tgt + z->t, n);
				if (r)
					return r;
			} else {
				z->st->fill_bytes += n;
				/* a FILL op's bpos is its byte; a COPY made FILL fills zeros */
				rec[rl++] = op->kind == TND_DELTA_OP_FILL ? (uint8_t)op->bpos : 0;
			}
			z->cursor += n;
			z->xcur += n;
		}
		if ((r = put_rec(z, rec, rl)))
			return r;
		z->t += n;
		bpos += n;
		len -= n;
		/* the decoder emits a raw piece as it goes, a rebuilt stream
		 * when its content is complete */
		if (!tp->content)
			z->rpos += n;
		else if (z->t == tp->x0 + tp->len)
			z->rpos = tp->off + tp->clen;
		if ((r = put_checks(z)))
			return r;
		if (z->t == tp->x0 + tp->len && z->tp + 1 < z->tm->n)
			z->tp++;
	}
	return 0;
}

/* version: of the op stream without xz ops (1, 3 or 5), which says what
 * the checks are; *v2 is set when xz ops were written (the version is
 * then one more). */
static int build_streams(const struct enc *e, const struct xz_map *bm, const struct xz_map *tm,
			 const uint8_t *real, uint64_t real_size, unsigned version,
			 struct bytevec raw[TND_DELTA_NSTREAMS], struct tnd_delta_stats *st,
			 bool *v2)
{
	struct serial z = {.e = e,
			   .bm = bm,
			   .tm = tm,
			   .raw = raw,
			   .st = st,
			   .span = tnd_delta_check_span(version),
			   .sha = tnd_delta_version_authenticated(version),
			   .real = real,
			   .real_size = real_size};
	size_t si, k;
	int r;

	for (si = 0; si < e->nsegs; si++) {
		const struct seg *sg = &e->segs[si];
		struct enc_op one = {sg->t1 - sg->t0, sg->bpos, TND_DELTA_OP_COPY};
		const struct enc_op *ops = sg->copy ? &one : sg->ops.v;
		size_t nops = sg->copy ? 1 : sg->ops.n;

		for (k = 0; k < nops; k++)
			if ((r = put_op(&z, &ops[k])))
				return r;
	}
	if (z.t != (uint64_t)e->tsz || (z.span && z.checked != real_size))
		return tnd_err_set(
		    TND_E_INTERNAL,
		    "delta encoder: ops cover %llu of %llu bytes, checks %llu of %llu",
		    (unsigned long long)z.t, (unsigned long long)e->tsz,
		    (unsigned long long)z.checked, (unsigned long long)real_size);
	*v2 = z.v2;
	return 0;
}

struct writer {
	int fd;
	uint8_t buf[1 << 16];
	size_t n;
	uint64_t total;
};

static int w_put(struct writer *w, const void *p, size_t n)
{
	const uint8_t *s = p;

	w->total += n;
	while (n) {
		size_t k = sizeof(w->buf) - w->n < n ? sizeof(w->buf) - w->n : n;

		memcpy(w->buf + w->n, s, k);
		w->n += k;
		s += k;
		n -= k;
		if (w->n == sizeof(w->buf)) {
			int r = tnd_write_full(w->fd, w->buf, w->n);

			if (r)
				return tnd_err_errno(TND_E_IO, -r, "delta encoder: cannot write");
			w->n = 0;
		}
	}
	return 0;
}

struct frame_cursor {
	const struct cstream *c;
	size_t next;	   /* next frame index */
	size_t comp_off;   /* its offset in c->comp */
	uint64_t avail;	   /* raw bytes the decoder holds and has not used */
	uint64_t raw_left; /* raw bytes not yet sent */
};

static int send_frame(struct writer *w, struct frame_cursor *fc, int tag)
{
	uint8_t h[1 + 10 + 10];
	size_t hl = 0;
	uint32_t raw, comp;
	int r;

	if (fc->next >= fc->c->nframes)
		return tnd_err_set(TND_E_INTERNAL, "delta encoder: stream %d ran out of frames",
				   tag - 1);
	raw = fc->raw_left < TND_DELTA_FRAME_MAX ? (uint32_t)fc->raw_left : TND_DELTA_FRAME_MAX;
	comp = fc->c->fcomp[fc->next];
	h[hl++] = (uint8_t)(tag | (fc->c->fstored[fc->next] ? TND_DELTA_TAG_STORED : 0));
	hl += tnd_delta_put_varint(h + hl, raw);
	hl += tnd_delta_put_varint(h + hl, comp);
	r = w_put(w, h, hl);
	if (!r)
		r = w_put(w, fc->c->comp.p + fc->comp_off, comp);
	fc->comp_off += comp;
	fc->next++;
	fc->avail += raw;
	fc->raw_left -= raw;
	return r;
}

/* Length of the varint at p. */
static size_t varint_len(const uint8_t *p)
{
	size_t n = 1;

	while (p[n - 1] & 0x80)
		n++;
	return n;
}

/*
 * Replays the control stream as the decoder will and sends each stream's
 * next frame exactly when the decoder runs dry on that stream, so it never
 * holds more than one frame (plus a partial op record) per stream.
 */
static int interleave(struct writer *w, const struct cstream cs[3], const struct bytevec raw[3],
		      size_t check_len)
{
	struct frame_cursor fc[TND_DELTA_NSTREAMS];
	const uint8_t *ctrl = raw[TND_DELTA_S_CTRL].p;
	size_t cpos = 0;
	int i, r;

	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		memset(&fc[i], 0, sizeof(fc[i]));
		fc[i].c = &cs[i];
		fc[i].raw_left = raw[i].n;
	}
	while (cpos < raw[TND_DELTA_S_CTRL].n) {
		uint8_t kind = ctrl[cpos];
		uint64_t len = 0, need;
		size_t rl = 1, vl;
		int src = -1;

		/* re-read the record we wrote: its length and op length (a
		 * CHECK has no op length) */
		if (kind == TND_DELTA_OP_CHECK) {
			rl = check_len;
			goto sized;
		}
		vl = varint_len(ctrl + cpos + rl);
		for (i = (int)vl - 1; i >= 0; i--)
			len = len << 7 | (ctrl[cpos + rl + i] & 0x7f);
		rl += vl;
		switch (kind) {
		case TND_DELTA_OP_COPY:
		case TND_DELTA_OP_ADD:
			rl += varint_len(ctrl + cpos + rl);
			break;
		case TND_DELTA_OP_FILL:
			rl++;
			break;
		case TND_DELTA_OP_XZ:
			rl += varint_len(ctrl + cpos + rl) + 8;
			break;
		case TND_DELTA_OP_XCOPY:
		case TND_DELTA_OP_XADD:
			rl += varint_len(ctrl + cpos + rl);
			rl += varint_len(ctrl + cpos + rl);
			break;
		default:
			break;
		}
	sized:
		while (fc[TND_DELTA_S_CTRL].avail < rl) {
			r = send_frame(w, &fc[TND_DELTA_S_CTRL], 1 + TND_DELTA_S_CTRL);
			if (r)
				return r;
		}
		fc[TND_DELTA_S_CTRL].avail -= rl;
		cpos += rl;
		if (kind == TND_DELTA_OP_ADD || kind == TND_DELTA_OP_XADD)
			src = TND_DELTA_S_DIFF;
		else if (kind == TND_DELTA_OP_EXTRA)
			src = TND_DELTA_S_EXTRA;
		for (need = src < 0 ? 0 : len; need;) {
			uint64_t take;

			if (!fc[src].avail) {
				r = send_frame(w, &fc[src], 1 + src);
				if (r)
					return r;
			}
			take = need < fc[src].avail ? need : fc[src].avail;
			fc[src].avail -= take;
			need -= take;
		}
	}
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		if (fc[i].raw_left || fc[i].avail)
			return tnd_err_set(TND_E_INTERNAL,
					   "delta encoder: stream %d not fully used", i);
	return 0;
}

/* ------------------------------------------------------------ driver */

static int map_file(const char *path, const uint8_t **p, int64_t *size)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *m;

	*p = NULL;
	*size = 0;
	if (fd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot open %s", path);
	if (fstat(fd, &sb) < 0 || sb.st_size < 0) {
		int er = errno;

		close(fd);
		return tnd_err_errno(TND_E_IO, er, "cannot stat %s", path);
	}
	*size = sb.st_size;
	if (sb.st_size == 0) {
		close(fd);
		return 0;
	}
	m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return tnd_err_errno(TND_E_IO, errno, "cannot map %s", path);
	*p = m;
	return 0;
}

int tnd_delta_encode(const char *base_path, const char *target_path, int out_fd,
		     const struct tnd_delta_enc_opts *o, struct tnd_delta_stats *st_out)
{
	struct tnd_delta_stats st;
	struct enc e;
	struct xz_map bm = {0}, tm = {0};
	const uint8_t *base_img = NULL, *tgt_img = NULL;
	int64_t base_len = 0, tgt_len = 0;
	bool v2 = false;
	struct blk_table bt = {0};
	struct bytevec raw[TND_DELTA_NSTREAMS];
	struct cstream cs[TND_DELTA_NSTREAMS];
	struct writer *w = NULL;
	double t0 = tnd_now_mono(), t1;
	uint8_t hdr[TND_DELTA_HDR_LEN];
	unsigned format = o && o->format ? o->format : TND_DELTA_VERSION_MAX, version;
	size_t i;
	int ret = TND_E_INTERNAL, r;

	memset(&st, 0, sizeof(st));
	memset(&e, 0, sizeof(e));
	memset(raw, 0, sizeof(raw));
	memset(cs, 0, sizeof(cs));
	e.bs = o && o->block_size ? o->block_size : 4096;
	e.level = o && o->level ? o->level : 9;
	e.threads = o && o->threads ? o->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (e.threads < 1)
		e.threads = 1;
	if (e.bs % 8 || e.level < 1 || e.level > 9)
		return tnd_err_set(TND_E_USAGE, "delta encoder: bad block size or level");
	if (format < TND_DELTA_VERSION || format > TND_DELTA_VERSION_MAX)
		return tnd_err_set(TND_E_USAGE, "delta encoder: format %u, it writes %u to %u",
				   format, TND_DELTA_VERSION, TND_DELTA_VERSION_MAX);
	/* the version without xz ops: one less for an even format */
	version = tnd_delta_version_xz(format) ? format - 1 : format;

	ret = map_file(base_path, &base_img, &base_len);
	if (ret)
		goto out;
	ret = map_file(target_path, &tgt_img, &tgt_len);
	if (ret)
		goto out;
	st.base_size = (uint64_t)base_len;
	st.target_size = (uint64_t)tgt_len;
	madvise((void *)base_img, (size_t)base_len, MADV_WILLNEED);
	madvise((void *)tgt_img, (size_t)tgt_len, MADV_WILLNEED);

	/* 0. the images as the matcher sees them: xz streams expanded */
#ifdef CONFIG_DELTA_XZ
	if (!(o && o->no_xz) && tnd_delta_version_xz(format)) {
		ret = tnd_xzmap_pair(base_img, (uint64_t)base_len, tgt_img, (uint64_t)tgt_len,
				     e.threads, o && o->verbose, &bm, &tm);
	} else
#endif
	{
		ret = tnd_xzmap_plain(base_img, (uint64_t)base_len, &bm);
		if (!ret)
			ret = tnd_xzmap_plain(tgt_img, (uint64_t)tgt_len, &tm);
	}
	if (ret)
		goto out;
	st.xz_base_streams = bm.streams;
	st.xz_target_streams = tm.streams;
	st.xz_clen = tm.expanded_clen;
	st.xz_ulen = tm.expanded_ulen;
	e.base = bm.data;
	e.bsz = (int64_t)bm.size;
	e.tgt = tm.data;
	e.tsz = (int64_t)tm.size;
	st.t_xz = tnd_now_mono() - t0;
	/* An expanded image is a copy: the mapped one need not stay resident
	 * while the index is built and searched (the target's is read again,
	 * in order, for the checks). */
	if (bm.own)
		madvise((void *)base_img, (size_t)base_len, MADV_DONTNEED);
	if (tm.own)
		madvise((void *)tgt_img, (size_t)tgt_len, MADV_DONTNEED);
	if (o && o->verbose && (bm.streams || tm.streams))
		fprintf(stderr,
			"delta: xz streams scanned in %.1f s; expanded base %lld, target %lld "
			"bytes\n",
			st.t_xz, (long long)e.bsz, (long long)e.tsz);

	/* 1. indexes */
	e.gain = match_gain(&e);
	e.gain_far = far_gain(e.gain);
	e.ext = ext_ratio(e.gain);
	ret = build_index(&e);
	if (!ret)
		ret = blk_table_build(&e, &bt);
	if (!ret)
		ret = plan_segments(&e, &bt, &st.block_bytes);
	if (ret)
		goto out;
	t1 = tnd_now_mono();
	st.t_index = t1 - t0;
	if (o && o->verbose)
		fprintf(stderr, "delta: indexed in %.1f s; %llu of %llu bytes reused as blocks\n",
			st.t_index, (unsigned long long)st.block_bytes, (unsigned long long)e.tsz);

	/* 2. scan the changed regions on all threads */
	atomic_store(&e.next_seg, 0);
	run_scan_threads(&e);
	for (i = 0; i < e.nsegs; i++)
		if (e.segs[i].err) {
			ret = e.segs[i].err;
			goto out;
		}
	st.t_match = tnd_now_mono() - t1;
	t1 = tnd_now_mono();
	free(e.idx);
	e.idx = NULL;

	/* 3. sub-streams, compressed in parallel */
	ret = build_streams(&e, &bm, &tm, tgt_img, (uint64_t)tgt_len, version, raw, &st, &v2);
	if (ret)
		goto out;
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		cs[i].raw = &raw[i];
	ret = compress_streams(&e, cs);
	if (ret)
		goto out;
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		st.raw[i] = raw[i].n;
		st.comp[i] = cs[i].comp.n;
		st.n_frames += cs[i].nframes;
	}

	/* 4. header, interleaved frames, end tag */
	w = malloc(sizeof(*w));
	if (!w) {
		ret = tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		goto out;
	}
	w->fd = out_fd;
	w->n = 0;
	w->total = 0;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, TND_DELTA_MAGIC, 4);
	hdr[4] = (uint8_t)(v2 ? version + 1 : version);
	hdr[5] = TND_DELTA_FRAME_LOG2;
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		hdr[6 + i] = (uint8_t)cs[i].codec;
	if (v2) {
		uint32_t m = bm.max_content > tm.max_content ? bm.max_content : tm.max_content;

		hdr[9] = TND_DELTA_XZ_LOG2_MIN;
		while (((uint32_t)1 << hdr[9]) < m)
			hdr[9]++;
	}
	st.version = hdr[4];
	tnd_put_be64(hdr + 12, (uint64_t)base_len);
	tnd_put_be64(hdr + 20, (uint64_t)tgt_len);
	ret = w_put(w, hdr, sizeof(hdr));
	if (!ret)
		ret = interleave(w, cs, raw,
				 tnd_delta_version_authenticated(version) ? TND_DELTA_CHECK_SHA_LEN
									  : TND_DELTA_CHECK_LEN);
	if (!ret) {
		uint8_t end = TND_DELTA_TAG_END;

		ret = w_put(w, &end, 1);
	}
	if (!ret && w->n) {
		r = tnd_write_full(w->fd, w->buf, w->n);
		if (r)
			ret = tnd_err_errno(TND_E_IO, -r, "delta encoder: cannot write");
	}
	if (ret)
		goto out;
	st.out_size = w->total;
	st.t_compress = tnd_now_mono() - t1;
	st.t_total = tnd_now_mono() - t0;
	if (st_out)
		*st_out = st;
	ret = 0;
out:
	free(w);
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		free(raw[i].p);
		free(cs[i].comp.p);
		free(cs[i].fcomp);
		free(cs[i].fstored);
	}
	for (i = 0; i < e.nsegs; i++)
		free(e.segs[i].ops.v);
	free(e.segs);
	free(bt.hash);
	free(bt.pos);
	free(e.idx);
	tnd_xzmap_free(&bm);
	tnd_xzmap_free(&tm);
	if (base_img)
		munmap((void *)base_img, (size_t)base_len);
	if (tgt_img)
		munmap((void *)tgt_img, (size_t)tgt_len);
	return ret;
}
