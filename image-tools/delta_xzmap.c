// SPDX-License-Identifier: MIT
/*
 * Finds the xz streams of an image pair and builds their expanded forms
 * for the delta encoder (delta_xzmap.h).
 *
 * Candidates are the offsets of the xz magic; each is decoded (on all
 * threads) with the device's own rules (tnd_dxz_decode: one whole stream,
 * content of at most 1 MiB, decoder memory within the device's limit),
 * and accepted in image order when it does not overlap the one before.
 * A target stream is expanded only when tnd_dxz_encode rebuilds it bit for
 * bit from its content and settings: the same function the device runs.
 *
 * Memory: contents are never held twice. The scans decode into per-thread
 * scratch buffers and keep only offsets, lengths and hashes; once it is
 * known which streams are expanded, their contents are decoded a second
 * time straight into the expanded images. Base streams the target has
 * byte for byte stay as they are and are not expanded (the target copies
 * their bytes); the others are expanded in place of their bytes, which
 * the target does not have. On the squashfs bench pair this keeps the
 * expanded base at 100 MB instead of the 190 MB of "every stream and its
 * content", and the encoder under bsdiff's peak memory.
 */
#include "delta_xzmap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "delta.h"
#include "util.h"

int tnd_xzmap_plain(const uint8_t *img, uint64_t size, struct xz_map *m)
{
	memset(m, 0, sizeof(*m));
	m->data = img;
	m->size = size;
	if (!size)
		return 0;
	m->p = calloc(1, sizeof(*m->p));
	if (!m->p)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	m->p[0].len = size;
	m->n = 1;
	return 0;
}

size_t tnd_xzmap_find(const struct xz_map *m, uint64_t x)
{
	size_t lo = 0, hi = m->n;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (m->p[mid].x0 <= x)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

void tnd_xzmap_free(struct xz_map *m)
{
	free(m->p);
	free(m->own);
	memset(m, 0, sizeof(*m));
}

#ifdef CONFIG_DELTA_XZ

#define XZ_CAP	 ((uint32_t)1 << TND_DELTA_XZ_LOG2_MAX)
#define XZ_MAGIC "\xfd\x37\x7a\x58\x5a\x00"

/* One xz magic in an image and what decoding it gave. */
struct cand {
	uint64_t off, clen; /* clen 0: not a stream the device could decode */
	uint32_t ulen;
	uint64_t hash;		     /* of the stream's bytes */
	uint64_t x0;		     /* expanded streams: where the content goes */
	int state;		     /* CS_* */
	struct tnd_dxz_settings set; /* target only */
};

enum {
	CS_SAME,	/* byte-identical to a stream of the other image: stays raw */
	CS_TRY,		/* to be tried with preset 6 */
	CS_EXPAND,	/* expanded (target: rebuilt exactly; base: not in the target) */
	CS_RETRY,	/* preset 6 did not rebuild it: other presets */
	CS_UNSUPPORTED, /* filters an XZ op cannot name, or never rebuilt */
	CS_TOO_BIG,	/* needs more encoder memory than a device has */
};

struct mem_in {
	const uint8_t *p;
	size_t n;
	bool done;
};

static int mem_input(void *ctx, const uint8_t **p, size_t *n)
{
	struct mem_in *in = ctx;

	*p = in->p;
	*n = in->done ? 0 : in->n;
	in->done = true;
	return 0;
}

/* A thread's own: scratch (content, then room for its recompression)
 * and liblzma's memory, kept from one stream to the next. */
struct worker {
	uint8_t *scratch;
	struct tnd_dxz_mem mem;
};

#define SCRATCH_SIZE (XZ_CAP + tnd_dxz_bound(XZ_CAP))

/* Decodes the stream at img + c->off into out (cap bytes). */
static int decode_at(struct worker *w, const uint8_t *img, uint64_t size, const struct cand *c,
		     uint8_t *out, uint32_t cap, uint32_t *ulen, uint64_t *clen)
{
	struct mem_in in = {img + c->off, (size_t)(size - c->off), false};

	return tnd_dxz_decode(&w->mem, mem_input, &in, out, cap, ulen, clen);
}

/* Hash of a stream's bytes, to find streams both images have. */
static uint64_t bytes_hash(const uint8_t *p, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n, i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

struct job {
	const uint8_t *img;
	uint64_t size;
	struct cand *c;
	size_t n;
	uint8_t *out; /* expand_cand: the expanded image */
	atomic_size_t next;
	atomic_int err;
	int (*fn)(struct job *j, struct cand *c, struct worker *w);
};

/* Is there a stream at c->off? Its lengths and hash, nothing kept. */
static int scan_cand(struct job *j, struct cand *c, struct worker *w)
{
	uint64_t clen;
	uint32_t ulen;

	if (decode_at(w, j->img, j->size, c, w->scratch, XZ_CAP, &ulen, &clen))
		return 0; /* not a stream for us: stays raw */
	c->ulen = ulen;
	c->clen = clen;
	c->hash = bytes_hash(j->img + c->off, clen);
	return 0;
}

/* Does preset p rebuild the stream, whose content is in w's scratch,
 * exactly? */
static bool rebuilds(const struct job *j, const struct cand *c, struct worker *w,
		     struct tnd_dxz_settings *set, uint8_t preset)
{
	uint8_t *out = w->scratch + XZ_CAP;
	size_t got;

	set->preset = preset;
	return !tnd_dxz_encode(&w->mem, set, w->scratch, c->ulen, out, tnd_dxz_bound(XZ_CAP),
			       &got) &&
	       got == c->clen && memcmp(out, j->img + c->off, got) == 0;
}

/* First try: preset 6, squashfs-tools' and xz's default. */
static int try_cand(struct job *j, struct cand *c, struct worker *w)
{
	uint32_t ulen;

	if (c->state != CS_TRY)
		return 0;
	if (tnd_dxz_probe(j->img + c->off, (size_t)c->clen, &c->set)) {
		c->state = CS_UNSUPPORTED;
		return 0;
	}
	if (tnd_dxz_check(&c->set)) {
		c->state = CS_TOO_BIG;
		return 0;
	}
	if (decode_at(w, j->img, j->size, c, w->scratch, XZ_CAP, &ulen, NULL))
		return TND_E_INTERNAL; /* it decoded before */
	c->state = rebuilds(j, c, w, &c->set, 6) ? CS_EXPAND : CS_RETRY;
	return 0;
}

/* Decodes an expanded stream's content into its place. */
static int expand_cand(struct job *j, struct cand *c, struct worker *w)
{
	uint32_t ulen;

	if (c->state != CS_EXPAND)
		return 0;
	if (decode_at(w, j->img, j->size, c, j->out + c->x0, c->ulen, &ulen, NULL) ||
	    ulen != c->ulen)
		return TND_E_INTERNAL; /* it decoded before */
	return 0;
}

static void *job_thread(void *arg)
{
	struct job *j = arg;
	struct worker w = {.scratch = malloc(SCRATCH_SIZE)};

	if (!w.scratch) {
		atomic_store(&j->err, TND_E_NOMEM);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		int r;

		if (i >= j->n || atomic_load(&j->err))
			break;
		r = j->fn(j, &j->c[i], &w);
		if (r)
			atomic_store(&j->err, r);
	}
	tnd_dxz_mem_free(&w.mem);
	free(w.scratch);
	return NULL;
}

static int run_job(struct job *j, unsigned threads,
		   int (*fn)(struct job *, struct cand *, struct worker *))
{
	pthread_t tid[16];
	unsigned t, started = 0, nt = threads > 16 ? 16 : threads ? threads : 1;

	j->fn = fn;
	atomic_store(&j->next, 0);
	atomic_store(&j->err, 0);
	for (t = 1; t < nt; t++) {
		if (pthread_create(&tid[t], NULL, job_thread, j))
			break;
		started = t;
	}
	job_thread(j);
	for (t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	if (atomic_load(&j->err))
		return tnd_err_set(atomic_load(&j->err),
				   "delta encoder: scanning xz streams failed");
	return 0;
}

/* Every decodable stream, in image order, none overlapping. */
static int find_streams(const uint8_t *img, uint64_t size, unsigned threads, struct job *j)
{
	size_t cap = 0, i, k;
	const uint8_t *p = img, *end = img + size;
	uint64_t next = 0;
	int r;

	memset(j, 0, sizeof(*j));
	j->img = img;
	j->size = size;
	while (size >= 6 && (p = memmem(p, (size_t)(end - p), XZ_MAGIC, 6))) {
		if (j->n == cap) {
			struct cand *nc;

			cap = cap ? cap * 2 : 1024;
			nc = realloc(j->c, cap * sizeof(*nc));
			if (!nc)
				return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
			j->c = nc;
		}
		memset(&j->c[j->n], 0, sizeof(j->c[j->n]));
		j->c[j->n++].off = (uint64_t)(p - img);
		p++;
	}
	r = run_job(j, threads, scan_cand);
	if (r)
		return r;
	/* accept in order: a magic inside an accepted stream is its data */
	for (i = k = 0; i < j->n; i++)
		if (j->c[i].clen && j->c[i].off >= next) {
			next = j->c[i].off + j->c[i].clen;
			j->c[k++] = j->c[i];
		}
	j->n = k;
	return 0;
}

/* Hash set of one image's streams, to find them in the other. */
struct same_tab {
	const struct cand **c;
	const uint8_t *img;
	size_t mask;
};

static int same_tab_build(const struct job *j, struct same_tab *t)
{
	size_t cap = 64, i;

	while (cap < j->n * 2)
		cap *= 2;
	t->mask = cap - 1;
	t->img = j->img;
	t->c = calloc(cap, sizeof(*t->c));
	if (!t->c)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	for (i = 0; i < j->n; i++) {
		size_t k;

		for (k = j->c[i].hash & t->mask; t->c[k]; k = (k + 1) & t->mask)
			;
		t->c[k] = &j->c[i];
	}
	return 0;
}

/* Does the table's image hold the stream c of img byte for byte? */
static bool same_tab_has(const struct same_tab *t, const uint8_t *img, const struct cand *c)
{
	size_t k;

	for (k = c->hash & t->mask; t->c[k]; k = (k + 1) & t->mask)
		if (t->c[k]->hash == c->hash && t->c[k]->clen == c->clen &&
		    memcmp(t->img + t->c[k]->off, img + c->off, c->clen) == 0)
			return true;
	return false;
}

/*
 * Streams preset 6 did not rebuild: other presets, one stream after the
 * other, in image order (so the result does not depend on thread timing).
 * A preset that worked is tried first from then on; a full search of all
 * 20 presets is given to the first 8 streams only, so an image of streams
 * liblzma cannot rebuild (another encoder, another version) costs little.
 */
static int retry_presets(struct job *j)
{
	struct worker w = {.scratch = malloc(SCRATCH_SIZE)};
	uint8_t found[20], nfound = 0;
	unsigned full = 0;
	size_t i;
	int r = 0;

	if (!w.scratch)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	for (i = 0; i < j->n && !r; i++) {
		struct cand *c = &j->c[i];
		uint32_t ulen;
		bool ok = false;
		unsigned k;

		if (c->state != CS_RETRY)
			continue;
		if (decode_at(&w, j->img, j->size, c, w.scratch, XZ_CAP, &ulen, NULL)) {
			r = tnd_err_set(TND_E_INTERNAL, "delta encoder: an xz stream changed");
			break;
		}
		for (k = 0; k < nfound && !ok; k++)
			ok = rebuilds(j, c, &w, &c->set, found[k]);
		if (!ok && full < 8) {
			full++;
			for (k = 0; k < 20 && !ok; k++) {
				uint8_t p = (uint8_t)(k % 10 | (k >= 10 ? TND_DXZ_EXTREME : 0));

				if (p == 6 || memchr(found, p, nfound))
					continue;
				if ((ok = rebuilds(j, c, &w, &c->set, p)))
					found[nfound++] = p;
			}
		}
		c->state = ok ? CS_EXPAND : CS_UNSUPPORTED;
	}
	tnd_dxz_mem_free(&w.mem);
	free(w.scratch);
	return r;
}

static int add_piece(struct xz_map *m, size_t *cap, uint64_t len, uint64_t off, bool content)
{
	struct xz_piece *p;

	if (!len)
		return 0;
	if (m->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;

		p = realloc(m->p, nc * sizeof(*p));
		if (!p)
			return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
		m->p = p;
		*cap = nc;
	}
	p = &m->p[m->n++];
	memset(p, 0, sizeof(*p));
	p->x0 = m->size;
	p->len = len;
	p->off = off;
	p->content = content;
	m->size += len;
	return 0;
}

/*
 * Lays out an expanded image: its bytes, with each CS_EXPAND stream
 * replaced by its content, decoded into place on all threads. A target
 * content piece records what its XZ op needs to rebuild the stream.
 */
static int lay_out(struct job *j, unsigned threads, bool target, struct xz_map *m)
{
	uint64_t at = 0, total = j->size;
	size_t cap = 0, i;
	uint8_t *o;
	int r = 0;

	memset(m, 0, sizeof(*m));
	m->streams = j->n;
	for (i = 0; i < j->n; i++)
		if (j->c[i].state == CS_EXPAND)
			total += j->c[i].ulen - j->c[i].clen;
	o = m->own = malloc(total ? total : 1);
	if (!o)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: no memory for the expanded image");
	for (i = 0; i < j->n && !r; i++) {
		struct cand *s = &j->c[i];
		struct xz_piece *p;

		if (s->state != CS_EXPAND)
			continue;
		if ((r = add_piece(m, &cap, s->off - at, at, false)))
			break;
		memcpy(o + m->size - (s->off - at), j->img + at, (size_t)(s->off - at));
		s->x0 = m->size;
		if ((r = add_piece(m, &cap, s->ulen, s->off, true)))
			break;
		p = &m->p[m->n - 1];
		p->clen = s->clen;
		p->set = s->set;
		if (target)
			p->crc = (uint32_t)crc32(0, j->img + s->off, (uInt)s->clen);
		if (s->ulen > m->max_content)
			m->max_content = s->ulen;
		at = s->off + s->clen;
	}
	if (!r && !(r = add_piece(m, &cap, j->size - at, at, false)))
		memcpy(o + m->size - (j->size - at), j->img + at, (size_t)(j->size - at));
	j->out = o;
	if (!r)
		r = run_job(j, threads, expand_cand);
	m->data = m->own;
	return r;
}

int tnd_xzmap_pair(const uint8_t *base, uint64_t bsize, const uint8_t *tgt, uint64_t tsize,
		   unsigned threads, int verbose, struct xz_map *bm, struct xz_map *tm)
{
	struct same_tab bt = {0}, tt = {0};
	struct job bj, tj;
	bool bany = false, tany = false;
	size_t i;
	int r;

	memset(bm, 0, sizeof(*bm));
	memset(tm, 0, sizeof(*tm));
	memset(&tj, 0, sizeof(tj));
	r = find_streams(base, bsize, threads, &bj);
	if (!r)
		r = find_streams(tgt, tsize, threads, &tj);
	if (!r)
		r = same_tab_build(&bj, &bt);
	if (!r)
		r = same_tab_build(&tj, &tt);
	/* target streams the base has stay raw (COPY finds them); the
	 * others are rebuilt on the device, if liblzma can */
	for (i = 0; i < tj.n && !r; i++)
		tj.c[i].state = same_tab_has(&bt, tgt, &tj.c[i]) ? CS_SAME : CS_TRY;
	/* base streams the target does not have are read for their content */
	for (i = 0; i < bj.n && !r; i++) {
		bj.c[i].state = same_tab_has(&tt, base, &bj.c[i]) ? CS_SAME : CS_EXPAND;
		bany |= bj.c[i].state == CS_EXPAND;
	}
	if (!r)
		r = run_job(&tj, threads, try_cand);
	if (!r)
		r = retry_presets(&tj);
	for (i = 0; i < tj.n && !r; i++)
		tany |= tj.c[i].state == CS_EXPAND;
	/* without a target stream to rebuild, plain maps: version 1 ops */
	if (!r)
		r = tany && bany ? lay_out(&bj, threads, false, bm)
				 : tnd_xzmap_plain(base, bsize, bm);
	if (!r)
		r = tany ? lay_out(&tj, threads, true, tm) : tnd_xzmap_plain(tgt, tsize, tm);
	if (!r) {
		bm->streams = bj.n;
		tm->streams = tj.n;
		for (i = 0; i < tj.n; i++) {
			const struct cand *c = &tj.c[i];

			tm->same += c->state == CS_SAME;
			tm->irreproducible += c->state == CS_UNSUPPORTED;
			tm->too_big += c->state == CS_TOO_BIG;
			if (c->state == CS_EXPAND) {
				tm->expanded++;
				tm->expanded_clen += c->clen;
				tm->expanded_ulen += c->ulen;
			}
		}
		if (verbose)
			fprintf(stderr,
				"delta: target has %llu xz streams: %llu rebuilt from their "
				"contents (%llu -> %llu bytes), %llu as in the base, %llu "
				"not reproducible, %llu over the device's memory limit\n",
				(unsigned long long)tm->streams, (unsigned long long)tm->expanded,
				(unsigned long long)tm->expanded_clen,
				(unsigned long long)tm->expanded_ulen, (unsigned long long)tm->same,
				(unsigned long long)tm->irreproducible,
				(unsigned long long)tm->too_big);
	}
	free(bt.c);
	free(tt.c);
	free(bj.c);
	free(tj.c);
	return r;
}

#endif
