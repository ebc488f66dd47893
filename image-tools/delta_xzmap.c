// SPDX-License-Identifier: MIT
/*
 * Finds the xz streams of an image and builds its expanded form for the
 * delta encoder (delta_xzmap.h).
 *
 * Candidates are the offsets of the xz magic; each is decoded (on all
 * threads) with the device's own rules (tnd_dxz_decode: one whole stream,
 * content of at most 1 MiB, decoder memory within the device's limit),
 * and accepted in image order when it does not overlap the one before.
 * A target stream is expanded only when tnd_dxz_encode rebuilds it bit for
 * bit from its content and settings: the same function the device runs.
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

/* One xz magic in the image and what decoding it gave. */
struct cand {
	uint64_t off, clen;
	uint8_t *content; /* NULL: not a stream the device could decode */
	uint32_t ulen;
	/* target only */
	int state; /* CS_* */
	struct tnd_dxz_settings set;
};

enum {
	CS_SAME,	/* byte-identical to a base stream: stays raw */
	CS_TRY,		/* to be tried with preset 6 */
	CS_EXPAND,	/* rebuilt exactly: expanded */
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

struct job {
	const uint8_t *img;
	uint64_t size;
	struct cand *c;
	size_t n;
	atomic_size_t next;
	atomic_int err;
	int (*fn)(struct job *j, struct cand *c, uint8_t *scratch);
};

static int decode_cand(struct job *j, struct cand *c, uint8_t *scratch)
{
	struct mem_in in = {j->img + c->off, (size_t)(j->size - c->off), false};
	uint64_t clen;
	uint32_t ulen;

	if (tnd_dxz_decode(mem_input, &in, scratch, XZ_CAP, &ulen, &clen))
		return 0; /* not a stream for us: stays raw */
	c->content = malloc(ulen ? ulen : 1);
	if (!c->content)
		return TND_E_NOMEM;
	memcpy(c->content, scratch, ulen);
	c->ulen = ulen;
	c->clen = clen;
	return 0;
}

/* Does preset p rebuild the stream exactly? */
static bool rebuilds(const struct job *j, const struct cand *c, struct tnd_dxz_settings *set,
		     uint8_t preset, uint8_t *scratch)
{
	size_t got;

	set->preset = preset;
	return !tnd_dxz_encode(set, c->content, c->ulen, scratch, tnd_dxz_bound(XZ_CAP), &got) &&
	       got == c->clen && memcmp(scratch, j->img + c->off, got) == 0;
}

/* First try: preset 6, squashfs-tools' and xz's default. */
static int try_cand(struct job *j, struct cand *c, uint8_t *scratch)
{
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
	c->state = rebuilds(j, c, &c->set, 6, scratch) ? CS_EXPAND : CS_RETRY;
	return 0;
}

static void *job_thread(void *arg)
{
	struct job *j = arg;
	uint8_t *scratch = malloc(tnd_dxz_bound(XZ_CAP));

	if (!scratch) {
		atomic_store(&j->err, TND_E_NOMEM);
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		int r;

		if (i >= j->n || atomic_load(&j->err))
			break;
		r = j->fn(j, &j->c[i], scratch);
		if (r)
			atomic_store(&j->err, r);
	}
	free(scratch);
	return NULL;
}

static int run_job(struct job *j, unsigned threads)
{
	pthread_t tid[16];
	unsigned t, started = 0, nt = threads > 16 ? 16 : threads ? threads : 1;

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
static int find_streams(const uint8_t *img, uint64_t size, unsigned threads, struct cand **out,
			size_t *nout)
{
	struct job j = {.img = img, .size = size, .fn = decode_cand};
	size_t cap = 0, i, k;
	const uint8_t *p = img, *end = img + size;
	uint64_t next = 0;
	int r;

	*out = NULL;
	*nout = 0;
	while (size >= 6 && (p = memmem(p, (size_t)(end - p), XZ_MAGIC, 6))) {
		if (j.n == cap) {
			struct cand *nc;

			cap = cap ? cap * 2 : 1024;
			nc = realloc(j.c, cap * sizeof(*nc));
			if (!nc) {
				free(j.c);
				return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
			}
			j.c = nc;
		}
		memset(&j.c[j.n], 0, sizeof(j.c[j.n]));
		j.c[j.n++].off = (uint64_t)(p - img);
		p++;
	}
	r = run_job(&j, threads);
	/* accept in order: a magic inside an accepted stream is its data */
	for (i = k = 0; i < j.n; i++) {
		if (j.c[i].content && j.c[i].off >= next && !r) {
			next = j.c[i].off + j.c[i].clen;
			j.c[k++] = j.c[i];
		} else {
			free(j.c[i].content);
		}
	}
	if (r) {
		for (i = 0; i < k; i++)
			free(j.c[i].content);
		free(j.c);
		return r;
	}
	*out = j.c;
	*nout = k;
	return 0;
}

static void free_cands(struct cand *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(c[i].content);
	free(c);
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
 * Lays out the expanded image: raw image bytes, and for each stream either
 * its bytes followed by its content (keep_raw: the base) or its content
 * alone (the target, where only CS_EXPAND streams are expanded).
 */
static int lay_out(const uint8_t *img, uint64_t size, struct cand *c, size_t n, bool keep_raw,
		   struct xz_map *m)
{
	size_t cap = 0, i;
	uint64_t at = 0, total = size;
	uint8_t *o;
	int r = 0;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++)
		if (keep_raw || c[i].state == CS_EXPAND)
			total += c[i].ulen;
	o = m->own = malloc(total ? total : 1);
	if (!o)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: no memory for the expanded image");
	for (i = 0; i < n && !r; i++) {
		struct cand *s = &c[i];
		bool expand = keep_raw || s->state == CS_EXPAND;
		uint64_t raw_end = keep_raw ? s->off + s->clen : s->off;

		if (!expand)
			continue;
		r = add_piece(m, &cap, raw_end - at, at, false);
		memcpy(o, img + at, (size_t)(raw_end - at));
		o += raw_end - at;
		if (!r)
			r = add_piece(m, &cap, s->ulen, s->off, true);
		if (!r) {
			struct xz_piece *p = &m->p[m->n - 1];

			p->clen = s->clen;
			p->set = s->set;
			if (!keep_raw)
				p->crc = (uint32_t)crc32(0, img + s->off, (uInt)s->clen);
			if (s->ulen > m->max_content)
				m->max_content = s->ulen;
		}
		memcpy(o, s->content, s->ulen);
		o += s->ulen;
		at = s->off + s->clen;
	}
	if (!r)
		r = add_piece(m, &cap, size - at, at, false);
	if (r)
		return r;
	if (size > at)
		memcpy(o, img + at, (size_t)(size - at));
	m->data = m->own;
	return 0;
}

int tnd_xzmap_base(const uint8_t *img, uint64_t size, unsigned threads, struct xz_map *m)
{
	struct cand *c;
	size_t n;
	int r = find_streams(img, size, threads, &c, &n);

	if (r)
		return r;
	r = n ? lay_out(img, size, c, n, true, m) : tnd_xzmap_plain(img, size, m);
	m->streams = n;
	free_cands(c, n);
	return r;
}

/* Hash of a stream's bytes, to find target streams the base already has. */
static uint64_t bytes_hash(const uint8_t *p, uint64_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n, i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

struct same_tab {
	uint64_t *h;
	const struct xz_piece **p;
	size_t mask;
};

static int same_tab_build(const struct xz_map *bm, const uint8_t *base, struct same_tab *t)
{
	size_t cap = 64, i;

	while (cap < bm->n * 2)
		cap *= 2;
	t->mask = cap - 1;
	t->h = calloc(cap, sizeof(*t->h));
	t->p = calloc(cap, sizeof(*t->p));
	if (!t->h || !t->p)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	for (i = 0; i < bm->n; i++) {
		const struct xz_piece *p = &bm->p[i];
		uint64_t h;
		size_t k;

		if (!p->content)
			continue;
		h = bytes_hash(base + p->off, p->clen);
		for (k = h & t->mask; t->p[k]; k = (k + 1) & t->mask)
			;
		t->h[k] = h;
		t->p[k] = p;
	}
	return 0;
}

static bool same_tab_has(const struct same_tab *t, const uint8_t *base, const uint8_t *s,
			 uint64_t n)
{
	uint64_t h = bytes_hash(s, n);
	size_t k;

	for (k = h & t->mask; t->p[k]; k = (k + 1) & t->mask)
		if (t->h[k] == h && t->p[k]->clen == n && memcmp(base + t->p[k]->off, s, n) == 0)
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
	uint8_t found[20], nfound = 0, *scratch = malloc(tnd_dxz_bound(XZ_CAP));
	unsigned full = 0;
	size_t i;

	if (!scratch)
		return tnd_err_set(TND_E_NOMEM, "delta encoder: out of memory");
	for (i = 0; i < j->n; i++) {
		struct cand *c = &j->c[i];
		bool ok = false;
		unsigned k;

		if (c->state != CS_RETRY)
			continue;
		for (k = 0; k < nfound && !ok; k++)
			ok = rebuilds(j, c, &c->set, found[k], scratch);
		if (!ok && full < 8) {
			full++;
			for (k = 0; k < 20 && !ok; k++) {
				uint8_t p = (uint8_t)(k % 10 | (k >= 10 ? TND_DXZ_EXTREME : 0));

				if (p == 6 || memchr(found, p, nfound))
					continue;
				if ((ok = rebuilds(j, c, &c->set, p, scratch)))
					found[nfound++] = p;
			}
		}
		c->state = ok ? CS_EXPAND : CS_UNSUPPORTED;
	}
	free(scratch);
	return 0;
}

int tnd_xzmap_target(const uint8_t *img, uint64_t size, const uint8_t *base,
		     const struct xz_map *bm, unsigned threads, int verbose, struct xz_map *m)
{
	struct same_tab st = {0};
	struct job j = {.img = img, .size = size, .fn = try_cand};
	size_t i;
	int r;

	memset(m, 0, sizeof(*m));
	r = find_streams(img, size, threads, &j.c, &j.n);
	if (!r)
		r = same_tab_build(bm, base, &st);
	for (i = 0; i < j.n && !r; i++)
		j.c[i].state =
		    same_tab_has(&st, base, img + j.c[i].off, j.c[i].clen) ? CS_SAME : CS_TRY;
	if (!r)
		r = run_job(&j, threads);
	if (!r)
		r = retry_presets(&j);
	if (!r) {
		bool any = false;

		for (i = 0; i < j.n; i++)
			any |= j.c[i].state == CS_EXPAND;
		r = any ? lay_out(img, size, j.c, j.n, false, m) : tnd_xzmap_plain(img, size, m);
	}
	if (!r) {
		m->streams = j.n;
		for (i = 0; i < j.n; i++) {
			const struct cand *c = &j.c[i];

			m->same += c->state == CS_SAME;
			m->irreproducible += c->state == CS_UNSUPPORTED;
			m->too_big += c->state == CS_TOO_BIG;
			if (c->state == CS_EXPAND) {
				m->expanded++;
				m->expanded_clen += c->clen;
				m->expanded_ulen += c->ulen;
			}
		}
		if (verbose)
			fprintf(stderr,
				"delta: target has %llu xz streams: %llu rebuilt from their "
				"contents (%llu -> %llu bytes), %llu as in the base, %llu "
				"not reproducible, %llu over the device's memory limit\n",
				(unsigned long long)m->streams, (unsigned long long)m->expanded,
				(unsigned long long)m->expanded_clen,
				(unsigned long long)m->expanded_ulen, (unsigned long long)m->same,
				(unsigned long long)m->irreproducible,
				(unsigned long long)m->too_big);
	}
	free(st.h);
	free(st.p);
	free_cands(j.c, j.n);
	return r;
}

#endif
