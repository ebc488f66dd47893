// SPDX-License-Identifier: MIT
/*
 * Delta op-stream decoder (device side). A push parser: bytes arrive in any
 * split; complete frames are inflated into their sub-stream's buffer, and
 * after each frame the ops run as far as the buffered data allows. The
 * encoder orders frames so that a frame of stream S only arrives when the
 * decoder has (nearly) drained S, which bounds every buffer by one frame.
 */
#include "delta.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "chunk.h"
#include "crypto.h"
#include "log.h"
#include "util.h"
#ifdef CONFIG_DELTA_XZ
#include "delta_xz.h"
#endif

/* The output buffer is one check span (d->span): it is handed out only
 * when the span's CHECK record matched it. */
#define CACHE_CAP  65536u
#define CACHE_WIN  4096u
#define CACHE_WINS (CACHE_CAP / CACHE_WIN)
/* Base read-ahead: RA_AHEAD in front of the ops, asked for RA_STEP at a
 * time (the kernel reads at most its read-ahead size per request). */
#define RA_STEP (2u << 20)
#ifdef CONFIG_DELTA_READAHEAD_MIB
#define RA_AHEAD ((uint64_t)CONFIG_DELTA_READAHEAD_MIB << 20)
#else
#define RA_AHEAD ((uint64_t)128 << 20) /* host tools */
#endif
/* A stream buffer holds a frame plus the partial record before it: the
 * longest record is a version 5/6 CHECK (33 bytes). */
#define REC_MAX	 TND_DELTA_CHECK_SHA_LEN
#define SBUF_CAP (TND_DELTA_FRAME_MAX + REC_MAX)
_Static_assert(REC_MAX >= TND_DELTA_OP_MAX_XZ, "stream buffers too small for an op record");
#ifdef CONFIG_DELTA_XZ
/* Internal op: emits a rebuilt xz stream (never in a stream). */
#define OP_EMIT_XZ 0x80
#define XZ_SLOTS   TND_DELTA_XZ_SLOTS
#endif
#ifdef CONFIG_DELTA_XZ
#define HAVE_XZ 1
#else
#define HAVE_XZ 0
#endif

enum dec_state {
	ST_HEADER,     /* collecting the fixed header */
	ST_FRAME_HDR,  /* collecting tag and two varints */
	ST_FRAME_DATA, /* feeding a frame's payload to its codec */
	ST_DONE,       /* end tag seen and checked */
	ST_FAILED,     /* an error was returned: refuse everything */
};

struct dec_stream {
	uint8_t codec;
	bool zready;
	z_stream zs;
	uint8_t *buf; /* SBUF_CAP bytes; unread data is buf[rd..wr) */
	uint32_t rd, wr;
};

#ifdef CONFIG_DELTA_XZ
/* One decoded xz stream of the base: buf[0..len) is the content of the
 * stream at base offset off. */
struct xz_slot {
	uint8_t *buf;
	uint32_t len;
	bool valid;
	uint64_t off, used;
};

/* Version 2 state (docs/delta-format.md, "xz streams"). */
struct xz_state {
	uint32_t cap; /* largest stream content, 2^header[9] */
	/* XZ op in progress: ops write its content to in[0..in_len) */
	bool open;
	uint8_t *in;
	uint32_t in_len, in_want;
	uint64_t clen, toff; /* declared stream length, its target offset */
	uint32_t crc;
	struct tnd_dxz_settings set;
	uint8_t *out; /* the rebuilt stream, emitted by OP_EMIT_XZ */
	size_t out_cap;
	struct xz_slot slot[XZ_SLOTS];
	uint64_t clock;
	int op_slot;		/* slot an XCOPY/XADD reads */
	uint64_t src, cur;	/* base stream of the last XCOPY/XADD, offset after it */
	uint64_t read_pos;	/* base_input(): next base offset */
	struct tnd_dxz_mem mem; /* liblzma's, kept from one stream to the next */
	struct tnd_delta_dec *dec;
};
#endif

/*
 * Versions 5 and 6: the caller's thread makes spans into TND_DELTA_SPANS
 * buffers and gives each to the helper thread when its CHECK record has
 * come. A given span must be hashed (with the CRC-32 of each piece for
 * emit()), compared with its record and handed out, in target order.
 * The helper does that work, and asks the kernel for the base's
 * read-ahead (which would otherwise hold the caller's thread up in the
 * kernel); when the caller's thread has no free buffer, it does the same
 * work rather than wait. So neither thread idles while the other has
 * work, whether making spans (reading the base) or hashing and writing
 * them is the slower part, which changes along the image. Hashing and
 * handing out are one thread's at a time per span, and handing out is
 * one thread's at a time (emitting), oldest span first.
 */
enum span_state {
	SPAN_FREE,    /* the caller's thread's: being made, or unused */
	SPAN_GIVEN,   /* complete, to be hashed by whichever thread takes it */
	SPAN_HASHING, /* taken */
	SPAN_HASHED,  /* got, zero and crc are set: to be handed out */
};

#define SPAN_PIECES (TND_DELTA_SHA_SPAN / TND_DELTA_OUT_MAX)

struct span {
	/* set by the caller's thread before it gives the span */
	uint8_t *buf;
	uint32_t len;
	uint64_t start; /* target offset of buf[0] */
	uint8_t want[TND_SHA256_LEN];
	bool zeros; /* made of zero FILLs alone: buf was never written */
	tnd_delta_emit_fn emit;
	void *ctx;
	enum span_state state; /* changes under the lock only */
	/* set by whichever thread hashes it */
	uint8_t got[TND_SHA256_LEN];
	bool zero;
	uint32_t crc[SPAN_PIECES];
};

struct helper {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work; /* the helper waits: a span given, hashed or out, read-ahead, stop */
	pthread_cond_t done; /* the caller's thread waits: a span hashed or out, an error */
	bool stop;
	struct span s[TND_DELTA_SPANS];
	/* given spans run from tail on, in target order (under the lock);
	 * the caller's thread makes s[cur] (its own) */
	unsigned tail, given, cur;
	bool emitting; /* a thread is handing s[tail] out */
	/* the first mismatch or emit() error: nothing more is handed out */
	int err;
	char msg[TND_ERR_MSG_MAX];
	/* base read-ahead to ask the kernel for (base_read) */
	uint64_t ra_lo, ra_hi;
	const struct tnd_delta_dec *dec; /* read only: base_fd, the zero-span hash */
};

struct tnd_delta_dec {
	int base_fd;
	uint64_t base_size, target_size;
	enum dec_state st;
	uint8_t version, required; /* required: 0, or the version the header must name */
	bool checked, has_xz;	   /* what the version has */
	bool sha;		   /* versions 5 and 6: checks are SHA-256 */
	bool no_helper;		   /* tnd_delta_dec_inline() */
	uint32_t op_max;	   /* longest op record of this version */
	uint32_t span;		   /* check span, or output piece when unchecked */
	uint32_t check_len;	   /* CHECK record length */

	/* header and frame-header assembly */
	uint8_t hdr[TND_DELTA_HDR_LEN];
	uint32_t hdr_len;
	uint8_t ftag;	     /* stream index + 1 of the current frame */
	bool fstored;	     /* current frame is stored (tag bit 0x80) */
	uint32_t fvar_idx;   /* 0: raw_len, 1: comp_len */
	uint32_t fvar_shift; /* bits of the varint being read so far */
	uint64_t fvar_val;
	uint32_t f_raw, f_comp; /* current frame: declared lengths */
	uint32_t f_got;		/* compressed bytes consumed so far */
	uint32_t f_made;	/* raw bytes produced so far */

	struct dec_stream s[TND_DELTA_NSTREAMS];

	/* op being executed */
	uint8_t op;	 /* 0: none */
	uint64_t op_rem; /* target bytes still to produce */
	uint64_t op_bpos;
	uint8_t op_fill;
	uint64_t base_cursor; /* base position aligned with the target position */

	/* output: out[0..out_len) not yet emitted; out_pos counts them too.
	 * out is one of bufs[] (all of them are the helper's spans). */
	uint8_t *out;
	uint32_t out_len;
	uint64_t out_pos;
	uint8_t *bufs[TND_DELTA_SPANS];
	struct helper *helper; /* versions 5 and 6, unless no_helper */
	/* versions 5 and 6: out[0..out_len) is zeros made by FILLs alone,
	 * not written (run_ops); what emit() gets for them instead (one
	 * piece of zeros), and their hash and CRC-32 */
	bool out_zero;
	uint8_t *zeros;
	uint8_t zero_sha[TND_SHA256_LEN]; /* of a whole span */
	uint32_t zero_crc;		  /* of TND_DELTA_OUT_MAX bytes */

	/* base read cache: CACHE_WINS aligned windows of CACHE_WIN bytes in
	 * cache[], least recently used goes; xz stream decoding borrows all
	 * of cache[] as one sequential buffer (and empties the windows) */
	uint8_t *cache;
	struct {
		uint64_t off, used;
		uint32_t len; /* 0: empty */
	} win[CACHE_WINS];
	uint64_t clock;
	uint64_t ra_end;  /* the base is being read ahead up to here */
	uint64_t resume;  /* a resume: emit() gets the target from here on */
	uint64_t skip_to; /* resume down to its span: bytes below need not be made */
#ifdef CONFIG_DELTA_XZ
	struct xz_state xz;
#endif
};

typedef tnd_delta_emit_fn emit_fn;

/*
 * Hands buf[0..len), the target from offset start on, to emit() in pieces
 * of TND_DELTA_OUT_MAX that start at multiples of it (as spans do),
 * leaving out what lies below a resume point. crc: the CRC-32 of each
 * piece, when known; zero (versions 5 and 6): the span is all zeros,
 * whose CRC-32 is known, and emit() gets d->zeros instead of buf.
 */
static int hand_out(const struct tnd_delta_dec *d, emit_fn emit, void *ctx, const uint8_t *buf,
		    uint32_t len, uint64_t start, const uint32_t *crc, bool zero)
{
	uint32_t off = 0;

	if (start + len <= d->resume)
		return 0;
	if (start < d->resume)
		off = (uint32_t)(d->resume - start);
	while (off < len) {
		uint32_t n = len - off < TND_DELTA_OUT_MAX ? len - off : TND_DELTA_OUT_MAX, c;
		int r;

		if (zero)
			c = n == TND_DELTA_OUT_MAX ? d->zero_crc : tnd_crc32_zeros(n);
		else if (crc)
			c = crc[off / TND_DELTA_OUT_MAX];
		else
			c = tnd_crc32(buf + off, n);
		r = emit(ctx, zero ? d->zeros : buf + off, n, c);
		if (r)
			return r;
		off += n;
	}
	return 0;
}

/* ---- versions 5 and 6: the helper thread (see struct span) */

/* Hashes a span, zero spans by their known hash, and the CRC-32 of each
 * piece emit() will get. */
static void span_hash(const struct tnd_delta_dec *d, struct span *s)
{
	s->zero = s->zeros || (s->len == d->span && tnd_is_zero(s->buf, s->len));
	if (s->zero) {
		memcpy(s->got, d->zero_sha, TND_SHA256_LEN);
		return;
	}
	tnd_sha256(s->buf, s->len, s->got);
	for (uint32_t off = 0; off < s->len; off += TND_DELTA_OUT_MAX) {
		uint32_t n = s->len - off < TND_DELTA_OUT_MAX ? s->len - off : TND_DELTA_OUT_MAX;

		s->crc[off / TND_DELTA_OUT_MAX] = tnd_crc32(s->buf + off, n);
	}
}

/* The oldest given span no thread has taken, or NULL. With the lock. */
static struct span *span_to_hash(struct helper *h)
{
	for (unsigned i = 0; i < h->given; i++) {
		struct span *s = &h->s[(h->tail + i) % TND_DELTA_SPANS];

		if (s->state == SPAN_GIVEN)
			return s;
	}
	return NULL;
}

/* Hashes s, taken with the lock held; returns with it held. */
static void span_hash_unlocked(struct helper *h, struct span *s)
{
	s->state = SPAN_HASHING;
	pthread_mutex_unlock(&h->mu);
	span_hash(h->dec, s);
	pthread_mutex_lock(&h->mu);
	s->state = SPAN_HASHED;
}

static int check_hash(const struct span *s)
{
	char got_hex[TND_SHA256_HEX_LEN], want_hex[TND_SHA256_HEX_LEN];

	if (tnd_memeq_ct(s->got, s->want, TND_SHA256_LEN))
		return 0;
	tnd_hex_encode(got_hex, s->got, TND_SHA256_LEN);
	tnd_hex_encode(want_hex, s->want, TND_SHA256_LEN);
	/* The op stream is authenticated: what differs is the base. */
	return tnd_err_set(TND_E_INCOMPATIBLE,
			   "delta: target bytes %llu to %llu come out with SHA-256 %s, the signed "
			   "delta says %s: the base is not the image the delta was made from",
			   (unsigned long long)s->start, (unsigned long long)(s->start + s->len),
			   got_hex, want_hex);
}

/*
 * Hands the oldest given span out if it is hashed and no other thread is
 * at it (either thread may: whichever is free), with the lock held;
 * false if not. emit() is called without the lock, one call at a time.
 */
static bool span_out(struct helper *h)
{
	struct span *s = &h->s[h->tail];
	int r;

	if (!h->given || h->emitting || s->state != SPAN_HASHED)
		return false;
	h->emitting = true;
	pthread_mutex_unlock(&h->mu);
	r = check_hash(s);
	if (!r)
		r = hand_out(h->dec, s->emit, s->ctx, s->buf, s->len, s->start, s->crc, s->zero);
	pthread_mutex_lock(&h->mu);
	if (r && !h->err) {
		h->err = r;
		snprintf(h->msg, sizeof(h->msg), "%s", tnd_err_msg());
	}
	s->state = SPAN_FREE;
	h->tail = (h->tail + 1) % TND_DELTA_SPANS;
	h->given--;
	h->emitting = false;
	/* the other thread may wait for a buffer, or for this span */
	pthread_cond_signal(&h->done);
	pthread_cond_signal(&h->work);
	return true;
}

/* The helper's one step with the lock held: read-ahead first (the
 * caller's thread will wait for those pages), then the oldest span out if
 * it is hashed (it frees a buffer), then a hash. false: nothing to do. */
static bool helper_step(struct helper *h)
{
	struct span *s = &h->s[h->tail];

	if (h->ra_lo < h->ra_hi) {
		uint64_t off = h->ra_lo;

		h->ra_lo += RA_STEP;
		pthread_mutex_unlock(&h->mu);
		posix_fadvise(h->dec->base_fd, (off_t)off, (off_t)RA_STEP, POSIX_FADV_WILLNEED);
		pthread_mutex_lock(&h->mu);
		return true;
	}
	if (h->err)
		return false; /* the caller's thread returns it, and stops */
	if (span_out(h))
		return true;
	s = span_to_hash(h);
	if (!s)
		return false;
	span_hash_unlocked(h, s);
	return true;
}

static void *helper_main(void *arg)
{
	struct helper *h = arg;

	pthread_mutex_lock(&h->mu);
	while (!h->stop)
		if (!helper_step(h))
			pthread_cond_wait(&h->work, &h->mu);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static void helper_free(struct helper *h)
{
	pthread_cond_destroy(&h->done);
	pthread_cond_destroy(&h->work);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* Starts the helper on d->bufs[] (all TND_DELTA_SPANS of them). */
static int helper_start(struct tnd_delta_dec *d)
{
	struct helper *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return ENOMEM;
	h->dec = d;
	for (unsigned i = 0; i < TND_DELTA_SPANS; i++)
		h->s[i].buf = d->bufs[i];
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->work, NULL);
	pthread_cond_init(&h->done, NULL);
	r = pthread_create(&h->thread, NULL, helper_main, h);
	if (r) {
		helper_free(h);
		return r;
	}
	d->helper = h;
	return 0;
}

/* Between feed() calls the helper hands nothing out (feed() waited for
 * it), so stopping it never cuts an emit() short; it may be asking for
 * read-ahead, which it finishes. */
static void helper_stop(struct tnd_delta_dec *d)
{
	struct helper *h = d->helper;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_signal(&h->work);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	helper_free(h);
	d->helper = NULL;
}

/* Until all but `keep` of the given spans are handed out, with the lock
 * held: does the helper's work rather than wait for it (hands the oldest
 * span out, or hashes one the helper has not taken); returns the first
 * error as this thread's, or 0. */
static int helper_wait(struct helper *h, unsigned keep)
{
	while (!h->err && h->given > keep) {
		struct span *s;

		if (span_out(h))
			continue;
		s = span_to_hash(h);
		if (s) {
			span_hash_unlocked(h, s);
			pthread_cond_signal(&h->work); /* it may be the one to hand out */
		} else {
			pthread_cond_wait(&h->done, &h->mu);
		}
	}
	return h->err ? tnd_err_set(h->err, "%s", h->msg) : 0;
}

/* The output buffer is a complete span whose CHECK record names want: the
 * helper takes it, and the output moves on to the next free buffer. */
static int helper_give(struct tnd_delta_dec *d, const uint8_t *want, emit_fn emit, void *ctx)
{
	struct helper *h = d->helper;
	struct span *s = &h->s[h->cur];
	int r;

	s->len = d->out_len;
	s->start = d->out_pos - d->out_len;
	s->zeros = d->out_zero;
	memcpy(s->want, want, TND_SHA256_LEN);
	s->emit = emit;
	s->ctx = ctx;
	pthread_mutex_lock(&h->mu);
	s->state = SPAN_GIVEN;
	h->given++;
	pthread_cond_signal(&h->work);
	r = helper_wait(h, TND_DELTA_SPANS - 1);
	pthread_mutex_unlock(&h->mu);
	h->cur = (h->cur + 1) % TND_DELTA_SPANS;
	d->out = h->s[h->cur].buf;
	d->out_len = 0;
	return r;
}

/* Every span given has been handed out, or the helper's error. */
static int helper_drain(struct tnd_delta_dec *d)
{
	struct helper *h = d->helper;
	int r;

	pthread_mutex_lock(&h->mu);
	r = helper_wait(h, 0);
	pthread_mutex_unlock(&h->mu);
	return r;
}

/* Asks the helper for the base's read-ahead from lo to hi; a request
 * that does not continue the last one replaces what is left of it (the
 * ops jumped). */
static void helper_read_ahead(struct tnd_delta_dec *d, uint64_t lo, uint64_t hi)
{
	struct helper *h = d->helper;

	pthread_mutex_lock(&h->mu);
	if (h->ra_lo >= h->ra_hi || h->ra_hi != lo)
		h->ra_lo = lo;
	h->ra_hi = hi;
	pthread_cond_signal(&h->work);
	pthread_mutex_unlock(&h->mu);
}

int tnd_delta_dec_new(struct tnd_delta_dec **out, int base_fd, uint64_t base_size,
		      uint64_t target_size)
{
	struct tnd_delta_dec *d;
	int i;

	*out = NULL;
	if (base_size > INT64_MAX || target_size > INT64_MAX)
		return tnd_err_set(TND_E_FORMAT, "delta: image size out of range");
	d = calloc(1, sizeof(*d));
	if (!d)
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	d->base_fd = base_fd;
	d->base_size = base_size;
	d->target_size = target_size;
	d->cache = malloc(CACHE_CAP);
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		d->s[i].buf = malloc(SBUF_CAP);
	if (!d->cache || !d->s[0].buf || !d->s[1].buf || !d->s[2].buf) {
		tnd_delta_dec_free(d);
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	}
	*out = d;
	return 0;
}

void tnd_delta_dec_free(struct tnd_delta_dec *d)
{
	int i;

	if (!d)
		return;
	helper_stop(d);
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		if (d->s[i].zready)
			inflateEnd(&d->s[i].zs);
		free(d->s[i].buf);
	}
	for (i = 0; i < TND_DELTA_SPANS; i++)
		free(d->bufs[i]);
	free(d->zeros);
	free(d->cache);
#ifdef CONFIG_DELTA_XZ
	tnd_dxz_mem_free(&d->xz.mem);
	free(d->xz.in);
	free(d->xz.out);
	for (i = 0; i < XZ_SLOTS; i++)
		free(d->xz.slot[i].buf);
#endif
	free(d);
}

void tnd_delta_dec_require(struct tnd_delta_dec *d, uint8_t version)
{
	d->required = version;
}

void tnd_delta_dec_skip_to(struct tnd_delta_dec *d, uint64_t off)
{
	/* skip_to goes down to the version's span once the header named it */
	d->resume = d->skip_to = off - off % TND_DELTA_OUT_MAX;
}

void tnd_delta_dec_inline(struct tnd_delta_dec *d)
{
	d->no_helper = true;
}

/* Does the span that ends at the current output position lie below
 * skip_to: made by skipped ops, neither checked nor handed out? */
static bool span_skipped(const struct tnd_delta_dec *d)
{
	return d->out_pos <= d->skip_to;
}

static int fail(struct tnd_delta_dec *d, int code)
{
	d->st = ST_FAILED;
	return code;
}

static int get_varint(const uint8_t *p, uint32_t len, uint64_t *v);

#ifdef CONFIG_DELTA_XZ
/* Version 2 buffers, allocated once the header names their size. */
static int xz_setup(struct tnd_delta_dec *d, unsigned log2)
{
	struct xz_state *x = &d->xz;
	int i;

	x->cap = (uint32_t)1 << log2;
	x->out_cap = tnd_dxz_bound(x->cap);
	x->in = malloc(x->cap);
	x->out = malloc(x->out_cap);
	if (!x->in || !x->out)
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	for (i = 0; i < XZ_SLOTS; i++)
		if (!(x->slot[i].buf = malloc(x->cap)))
			return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	x->dec = d;
	return 0;
}

/* tnd_dxz_decode input: the base from read_pos on, through the read
 * cache (which then holds those bytes for COPY and ADD too). */
static int base_input(void *ctx, const uint8_t **p, size_t *n)
{
	struct tnd_delta_dec *d = ((struct xz_state *)ctx)->dec;
	uint64_t pos = d->xz.read_pos, left = d->base_size - pos;
	uint32_t want = left < CACHE_CAP ? (uint32_t)left : CACHE_CAP;
	int r;

	*p = d->cache;
	*n = 0;
	for (unsigned i = 0; i < CACHE_WINS; i++)
		d->win[i].len = 0;
	if (!want)
		return 0;
	r = tnd_pread_full(d->base_fd, d->cache, want, (off_t)pos);
	if (r)
		return tnd_err_errno(TND_E_IO, -r, "delta: cannot read base at offset %llu",
				     (unsigned long long)pos);
	d->xz.read_pos += want;
	*n = want;
	return 0;
}

/* Makes the content of the base's xz stream at off available in a slot;
 * returns the slot index or an error. The least recently used slot goes. */
static int xz_load(struct tnd_delta_dec *d, uint64_t off)
{
	struct xz_state *x = &d->xz;
	struct xz_slot *s;
	int i, v = 0, r;

	for (i = 0; i < XZ_SLOTS; i++) {
		if (x->slot[i].valid && x->slot[i].off == off) {
			x->slot[i].used = ++x->clock;
			return i;
		}
		if (!x->slot[i].valid || x->slot[i].used < x->slot[v].used)
			v = i;
		if (!x->slot[v].valid)
			break;
	}
	s = &x->slot[v];
	s->valid = false;
	x->read_pos = off;
	r = tnd_dxz_decode(&x->mem, base_input, x, s->buf, x->cap, &s->len, NULL);
	if (r)
		return tnd_err_prefix(r, "at base offset %llu", (unsigned long long)off);
	s->off = off;
	s->valid = true;
	s->used = ++x->clock;
	return v;
}

/* Zigzag-coded step from `from`, as an offset that must stay below lim.
 * Returns false when it leaves [0, lim). */
static bool zz_step(uint64_t from, uint64_t zz, uint64_t lim, uint64_t *to)
{
	uint64_t mag = (zz >> 1) + (zz & 1);

	if (zz & 1) {
		if (mag > from)
			return false;
		*to = from - mag;
	} else {
		if (from > lim || mag > lim - from)
			return false;
		*to = from + mag;
	}
	return *to < lim;
}

/* XZ record after its clen: ulen, crc32, four settings bytes. Returns the
 * record length, 0 when incomplete, or an error. */
static int parse_xz(struct tnd_delta_dec *d, const uint8_t *p, uint32_t avail, uint32_t used,
		    uint64_t clen)
{
	struct xz_state *x = &d->xz;
	struct tnd_dxz_settings set;
	uint64_t ulen;
	int n, r;

	n = get_varint(p + used, avail - used, &ulen);
	if (n <= 0)
		return n == 0 ? 0
			      : tnd_err_set(TND_E_FORMAT,
					    "delta: malformed varint in op at target offset %llu",
					    (unsigned long long)d->out_pos);
	used += (uint32_t)n;
	if (avail - used < 8)
		return 0;
	set.check = p[used + 4];
	set.preset = p[used + 5];
	set.dict = p[used + 6];
	set.bcj = p[used + 7];
	if (x->open)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: xz op inside an xz stream at target "
				   "offset %llu",
				   (unsigned long long)d->out_pos);
	if (clen > x->out_cap || ulen == 0 || ulen > x->cap)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: xz stream of %llu bytes from %llu out of bounds at "
				   "target offset %llu",
				   (unsigned long long)clen, (unsigned long long)ulen,
				   (unsigned long long)d->out_pos);
	r = tnd_dxz_check(&set);
	if (r)
		return tnd_err_prefix(r, "at target offset %llu", (unsigned long long)d->out_pos);
	x->crc = tnd_get_be32(p + used);
	x->set = set;
	x->clen = clen;
	x->toff = d->out_pos;
	x->in_len = 0;
	x->in_want = (uint32_t)ulen;
	x->open = true;
	return (int)used + 8;
}

/* XCOPY/XADD record after its len: the base stream's offset and the
 * offset in its content, both as zigzag steps. Returns the record length,
 * 0 when incomplete, or an error. */
static int parse_xop(struct tnd_delta_dec *d, const uint8_t *p, uint32_t avail, uint32_t used,
		     uint64_t len)
{
	struct xz_state *x = &d->xz;
	uint64_t zs, zq, src, q, qbase;
	int n, m = 0, slot;

	n = get_varint(p + used, avail - used, &zs);
	if (n > 0)
		m = get_varint(p + used + n, avail - used - (uint32_t)n, &zq);
	if (n < 0 || (n > 0 && m < 0))
		return tnd_err_set(TND_E_FORMAT,
				   "delta: malformed varint in op at target offset %llu",
				   (unsigned long long)d->out_pos);
	if (n == 0 || m == 0)
		return 0;
	if (!zz_step(x->src, zs, d->base_size, &src))
		return tnd_err_set(TND_E_FORMAT,
				   "delta: op at target offset %llu names an xz stream outside "
				   "the %llu-byte base",
				   (unsigned long long)d->out_pos,
				   (unsigned long long)d->base_size);
	/* in the same stream the offset continues from the last op */
	qbase = src == x->src ? x->cur : 0;
	if (!zz_step(qbase, zq, (uint64_t)x->cap + 1, &q))
		goto outside;
	/* An op whose output a resume skips needs no decoded stream. */
	if ((x->open ? x->toff + x->clen : d->out_pos + len) <= d->skip_to) {
		x->op_slot = -1;
		goto take;
	}
	slot = xz_load(d, src);
	if (slot < 0)
		return slot;
	if (q > x->slot[slot].len || len > x->slot[slot].len - q)
		goto outside;
	x->op_slot = slot;
take:
	x->src = src;
	x->cur = q + len;
	d->op_bpos = q;
	return (int)used + n + m;
outside:
	return tnd_err_set(TND_E_FORMAT,
			   "delta: op at target offset %llu reads outside the content of the "
			   "xz stream at base offset %llu",
			   (unsigned long long)d->out_pos, (unsigned long long)src);
}

/* The XZ op's content is complete: compress it, check it is the stream the
 * encoder saw, and emit it next. */
static int xz_close(struct tnd_delta_dec *d)
{
	struct xz_state *x = &d->xz;
	size_t got;
	int r;

	x->open = false;
	if (x->toff + x->clen <= d->skip_to)
		goto emit; /* made before the resume point: not needed */
	r = tnd_dxz_encode(&x->mem, &x->set, x->in, x->in_want, x->out, x->out_cap, &got);
	if (r)
		return tnd_err_prefix(r, "xz stream at target offset %llu",
				      (unsigned long long)x->toff);
	if (got != x->clen || (uint32_t)crc32(0, x->out, (uInt)got) != x->crc)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: xz stream at target offset %llu recompressed to "
				   "%zu bytes that differ from the original %llu (a corrupt "
				   "delta, or a liblzma that compresses differently from the "
				   "encoder's)",
				   (unsigned long long)x->toff, got, (unsigned long long)x->clen);
emit:
	d->op = OP_EMIT_XZ;
	d->op_rem = x->clen;
	d->op_bpos = 0;
	return 0;
}
#endif

/* The output buffer, once the header named the span; for versions 5 and
 * 6 the spans the helper thread takes and the thread itself. If it
 * cannot start, the spans are checked and handed out inline. */
static int out_setup(struct tnd_delta_dec *d)
{
	unsigned i;
	int r;

	/* zeroed: the hash of a span of zeros comes from it */
	if (!(d->bufs[0] = calloc(1, d->span)))
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	d->out = d->bufs[0];
	if (!d->sha)
		return 0;
	if (!(d->zeros = calloc(1, TND_DELTA_OUT_MAX)))
		return tnd_err_set(TND_E_NOMEM, "delta: out of memory");
	tnd_sha256(d->bufs[0], d->span, d->zero_sha);
	d->zero_crc = tnd_crc32_zeros(TND_DELTA_OUT_MAX);
	if (d->no_helper)
		return 0;
	for (i = 1; i < TND_DELTA_SPANS; i++)
		if (!(d->bufs[i] = malloc(d->span)))
			break;
	r = i < TND_DELTA_SPANS ? ENOMEM : helper_start(d);
	if (r) {
		tnd_debug("delta: no helper thread (%s): spans are checked inline", strerror(r));
		for (i = 1; i < TND_DELTA_SPANS; i++) {
			free(d->bufs[i]);
			d->bufs[i] = NULL;
		}
	}
	return 0;
}

static int parse_header(struct tnd_delta_dec *d)
{
	const uint8_t *h = d->hdr;
	uint64_t bsz, tsz;
	int i;
#ifdef CONFIG_DELTA_XZ
	int r;
#endif

	if (memcmp(h, TND_DELTA_MAGIC, 4) != 0)
		return tnd_err_set(TND_E_FORMAT, "delta: bad magic (not a Tandem delta)");
	if (!tnd_delta_version_supported(h[4])) {
		if (!HAVE_XZ && tnd_delta_version_xz(h[4]))
			return tnd_err_set(TND_E_UNSUPPORTED,
					   "delta: format version %u (rebuilt xz streams) needs a "
					   "build with CONFIG_DELTA_XZ",
					   h[4]);
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "delta: format version %u, this build reads %u to %u", h[4],
				   TND_DELTA_VERSION, TND_DELTA_VERSION_MAX);
	}
	if (d->required && h[4] != d->required)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: the op stream is format version %u, the signed manifest "
				   "says %u",
				   h[4], d->required);
	d->version = h[4];
	d->has_xz = tnd_delta_version_xz(d->version);
	d->checked = tnd_delta_version_checked(d->version);
	d->sha = tnd_delta_version_authenticated(d->version);
	/* the longest record: a stream buffer holds a frame and a part of one */
	if (d->sha)
		d->op_max = TND_DELTA_CHECK_SHA_LEN;
	else
		d->op_max = d->has_xz ? TND_DELTA_OP_MAX_XZ : TND_DELTA_OP_MAX;
	d->check_len = d->sha ? TND_DELTA_CHECK_SHA_LEN : TND_DELTA_CHECK_LEN;
	d->span = d->checked ? tnd_delta_check_span(d->version) : TND_DELTA_OUT_MAX;
	d->skip_to = d->resume - d->resume % d->span;
	if (h[5] != TND_DELTA_FRAME_LOG2)
		return tnd_err_set(TND_E_FORMAT, "delta: frame size 2^%u, expected 2^%u", h[5],
				   TND_DELTA_FRAME_LOG2);
	if ((!d->has_xz && h[9]) || h[10] || h[11])
		return tnd_err_set(TND_E_FORMAT, "delta: reserved header bytes are not zero");
	if (d->has_xz && (h[9] < TND_DELTA_XZ_LOG2_MIN || h[9] > TND_DELTA_XZ_LOG2_MAX))
		return tnd_err_set(TND_E_FORMAT, "delta: xz stream size 2^%u out of bounds", h[9]);
	bsz = tnd_get_be64(h + 12);
	tsz = tnd_get_be64(h + 20);
	if (bsz != d->base_size || tsz != d->target_size)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: made for base %llu / target %llu bytes, "
				   "given base %llu / target %llu",
				   (unsigned long long)bsz, (unsigned long long)tsz,
				   (unsigned long long)d->base_size,
				   (unsigned long long)d->target_size);
	for (i = 0; i < TND_DELTA_NSTREAMS; i++) {
		struct dec_stream *s = &d->s[i];

		s->codec = h[6 + i];
		if (s->codec == TND_DELTA_CODEC_DEFLATE) {
			if (inflateInit2(&s->zs, -15) != Z_OK)
				return tnd_err_set(TND_E_NOMEM, "delta: cannot set up zlib");
			s->zready = true;
		} else if (s->codec != TND_DELTA_CODEC_NONE) {
			return tnd_err_set(TND_E_UNSUPPORTED,
					   "delta: unknown codec %u for stream %d", s->codec, i);
		}
	}
#ifdef CONFIG_DELTA_XZ
	if (d->has_xz && (r = xz_setup(d, h[9])))
		return r;
#endif
	return out_setup(d);
}

/* Hands the output buffer out (unless a resume skips it); crc: its CRC-32
 * when already known. */
static int flush_out(struct tnd_delta_dec *d, emit_fn emit, void *ctx, const uint32_t *crc)
{
	uint32_t len = d->out_len;

	d->out_len = 0;
	if (!len || span_skipped(d))
		return 0;
	return hand_out(d, emit, ctx, d->out, len, d->out_pos - len, crc, false);
}

/* Versions 3 to 6: is the output buffer a span that waits for its CHECK
 * (full, or the target's last bytes)? */
static bool check_due(const struct tnd_delta_dec *d)
{
	return d->checked && d->out_len &&
	       (d->out_len == d->span || (d->out_pos == d->target_size && !d->op));
}

/* Versions 3 and 4: the span's CRC-32 must be want. */
static int check_crc(struct tnd_delta_dec *d, uint32_t want, emit_fn emit, void *ctx)
{
	uint64_t start = d->out_pos - d->out_len;
	uint32_t got = span_skipped(d) ? want : tnd_crc32(d->out, d->out_len);

	/* The op stream is authenticated: what differs is the base. */
	if (got != want)
		return tnd_err_set(TND_E_INCOMPATIBLE,
				   "delta: target bytes %llu to %llu come out with CRC-32 %08x, "
				   "the signed delta says %08x: the base is not the image the "
				   "delta was made from",
				   (unsigned long long)start, (unsigned long long)d->out_pos, got,
				   want);
	return flush_out(d, emit, ctx, &got);
}

/* Versions 5 and 6: the span's SHA-256 must be want. The helper thread
 * hashes it, if there is one, while this one goes on. */
static int check_sha(struct tnd_delta_dec *d, const uint8_t *want, emit_fn emit, void *ctx)
{
	struct span s = {.buf = d->out, .len = d->out_len, .start = d->out_pos - d->out_len};
	int r;

	if (span_skipped(d)) {
		d->out_len = 0;
		return 0;
	}
	/* Only a whole span of zeros has a known hash: a short last one is
	 * written and hashed. */
	if (d->out_zero && d->out_len < d->span) {
		memset(d->out, 0, d->out_len);
		d->out_zero = false;
	}
	s.zeros = d->out_zero;
	if (d->helper)
		return helper_give(d, want, emit, ctx);
	d->out_len = 0;
	memcpy(s.want, want, TND_SHA256_LEN);
	span_hash(d, &s);
	r = check_hash(&s);
	return r ? r : hand_out(d, emit, ctx, s.buf, s.len, s.start, s.crc, s.zero);
}

/* The next control record must be the due span's CHECK: compares it with
 * the span, then hands the span out. 1: done, 0: the record has not
 * arrived yet, or an error. */
static int run_check(struct tnd_delta_dec *d, emit_fn emit, void *ctx)
{
	struct dec_stream *c = &d->s[TND_DELTA_S_CTRL];
	const uint8_t *p = c->buf + c->rd;
	int r;

	if (c->wr - c->rd < 1 || (p[0] == TND_DELTA_OP_CHECK && c->wr - c->rd < d->check_len))
		return 0;
	if (p[0] != TND_DELTA_OP_CHECK)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: op %u where the check of target bytes %llu to %llu is "
				   "due",
				   p[0], (unsigned long long)(d->out_pos - d->out_len),
				   (unsigned long long)d->out_pos);
	r = d->sha ? check_sha(d, p + 1, emit, ctx) : check_crc(d, tnd_get_be32(p + 1), emit, ctx);
	if (r)
		return r;
	c->rd += d->check_len;
	return 1;
}

/* Copies base[pos..pos+n) to dst; the caller checked the range against
 * base_size. Reads of a page or more go straight to dst (the kernel's
 * page cache is the cache); small ones, which ADD ops in changed regions
 * make by the thousand, through small aligned windows, several at once:
 * the ops often alternate between two or three places of the base, and
 * one window refilled at every switch read the ext4 bench pair's base
 * thirteen times over. */
static int base_read(struct tnd_delta_dec *d, uint64_t pos, uint8_t *dst, uint32_t n)
{
	int r;

	/* The ops walk the base mostly forwards, but jump about too much for
	 * the kernel's read-ahead, which then falls back to small synchronous
	 * reads (on a virtual disk, one exit per read: most of a delta install
	 * went there). So the decoder asks for the base ahead of itself, far
	 * enough ahead to keep the device's queue full: on the 256 MiB ext4
	 * bench pair, 8 MiB ahead took 0.7 s, 64 MiB 0.5 s, 128 MiB 0.33 s
	 * (with the base cached, 0.21 s). The pages are the kernel's to
	 * reclaim, not the decoder's memory. */
	if (pos > d->ra_end)
		d->ra_end = pos; /* a jump: read ahead from here on */
	/* With a helper thread (versions 5 and 6), the helper asks: the
	 * kernel sets the pages and reads up in the asking thread, about a
	 * tenth of the decoding thread's time on that pair. */
	if (d->helper && d->ra_end < pos + RA_AHEAD && d->ra_end < d->base_size) {
		uint64_t lo = d->ra_end;

		while (d->ra_end < pos + RA_AHEAD && d->ra_end < d->base_size)
			d->ra_end += RA_STEP;
		helper_read_ahead(d, lo, d->ra_end);
	}
	while (d->ra_end < pos + RA_AHEAD && d->ra_end < d->base_size) {
		posix_fadvise(d->base_fd, (off_t)d->ra_end, (off_t)RA_STEP, POSIX_FADV_WILLNEED);
		d->ra_end += RA_STEP;
	}
	while (n) {
		unsigned i, v = 0;
		uint32_t take;

		for (i = 0; i < CACHE_WINS; i++) {
			if (d->win[i].len && pos >= d->win[i].off &&
			    pos < d->win[i].off + d->win[i].len)
				break;
			if (d->win[i].used < d->win[v].used)
				v = i;
		}
		if (i == CACHE_WINS) {
			uint64_t off = pos & ~(uint64_t)(CACHE_WIN - 1), left = d->base_size - off;

			if (n >= CACHE_WIN) {
				r = tnd_pread_full(d->base_fd, dst, n, (off_t)pos);
				goto out;
			}
			i = v;
			d->win[i].len = 0;
			d->win[i].off = off;
			r = tnd_pread_full(d->base_fd, d->cache + i * CACHE_WIN,
					   left < CACHE_WIN ? (size_t)left : CACHE_WIN, (off_t)off);
			if (r)
				goto out;
			d->win[i].len = left < CACHE_WIN ? (uint32_t)left : CACHE_WIN;
		}
		d->win[i].used = ++d->clock;
		take = (uint32_t)(d->win[i].off + d->win[i].len - pos);
		if (take > n)
			take = n;
		memcpy(dst, d->cache + i * CACHE_WIN + (pos - d->win[i].off), take);
		dst += take;
		pos += take;
		n -= take;
	}
	return 0;
out:
	if (r)
		return tnd_err_errno(TND_E_IO, -r, "delta: cannot read base at offset %llu",
				     (unsigned long long)pos);
	return 0;
}

/* Reads one LEB128 varint from p[0..len). Returns bytes used, 0 when
 * incomplete, -1 when malformed (over 10 bytes or beyond 64 bits). */
static int get_varint(const uint8_t *p, uint32_t len, uint64_t *v)
{
	uint64_t x = 0;
	uint32_t i;

	for (i = 0; i < len && i < 10; i++) {
		if (i == 9 && p[i] > 1)
			return -1;
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return (int)i + 1;
		}
	}
	return i == 10 ? -1 : 0;
}

/* Parses the next op from the control buffer. Returns 1 when an op is
 * ready, 0 when the record is incomplete, or an error. */
static int next_op(struct tnd_delta_dec *d)
{
	struct dec_stream *c = &d->s[TND_DELTA_S_CTRL];
	const uint8_t *p = c->buf + c->rd;
	uint32_t avail = c->wr - c->rd, used = 1;
	uint64_t len, zz, mag, left = d->target_size - d->out_pos;
	uint8_t last = d->has_xz ? TND_DELTA_OP_XADD : TND_DELTA_OP_FILL;
	int n;

	if (!avail)
		return 0;
	if (d->checked && p[0] == TND_DELTA_OP_CHECK)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: check record at target offset %llu, where no span is "
				   "complete",
				   (unsigned long long)d->out_pos);
	if (p[0] < TND_DELTA_OP_COPY || p[0] > last)
		return tnd_err_set(TND_E_FORMAT, "delta: unknown op %u at target offset %llu", p[0],
				   (unsigned long long)d->out_pos);
	n = get_varint(p + used, avail - used, &len);
	if (n <= 0)
		goto short_or_bad;
	used += (uint32_t)n;
#ifdef CONFIG_DELTA_XZ
	/* inside an XZ op, ops make the stream's content, not target bytes */
	if (d->xz.open)
		left = d->xz.in_want - d->xz.in_len;
#endif
	if (len == 0 || len > left)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: op of %llu bytes at target offset %llu overruns the "
				   "%llu-byte target",
				   (unsigned long long)len, (unsigned long long)d->out_pos,
				   (unsigned long long)d->target_size);
	d->op_fill = 0;
#ifdef CONFIG_DELTA_XZ
	if (p[0] >= TND_DELTA_OP_XZ) {
		n = p[0] == TND_DELTA_OP_XZ ? parse_xz(d, p, avail, used, len)
					    : parse_xop(d, p, avail, used, len);
		if (n <= 0)
			return n;
		c->rd += (uint32_t)n;
		if (p[0] == TND_DELTA_OP_XZ)
			return 1; /* no op to run: the next ops make its content */
		d->op = p[0];
		d->op_rem = len;
		return 1;
	}
#endif
	if (p[0] == TND_DELTA_OP_COPY || p[0] == TND_DELTA_OP_ADD) {
		uint64_t bpos;

		n = get_varint(p + used, avail - used, &zz);
		if (n <= 0)
			goto short_or_bad;
		used += (uint32_t)n;
		/* zigzag: odd values are negative, magnitude (zz >> 1) + 1,
		 * computed without ever forming a signed overflow */
		mag = (zz >> 1) + (zz & 1);
		if (zz & 1) {
			if (mag > d->base_cursor)
				goto bad_base;
			bpos = d->base_cursor - mag;
		} else {
			if (d->base_cursor > d->base_size || mag > d->base_size - d->base_cursor)
				goto bad_base;
			bpos = d->base_cursor + mag;
		}
		if (bpos > d->base_size || len > d->base_size - bpos)
			goto bad_base;
		d->op_bpos = bpos;
		d->base_cursor = bpos + len;
	} else if (p[0] == TND_DELTA_OP_FILL) {
		if (avail - used < 1)
			return 0;
		d->op_fill = p[used++];
	}
	/* EXTRA and FILL move the cursor too, so an unchanged alignment
	 * (target and base advancing together) costs a zero delta. It stays
	 * below base_size + target_size: no overflow. */
	if (p[0] == TND_DELTA_OP_EXTRA || p[0] == TND_DELTA_OP_FILL) {
		d->base_cursor += len;
#ifdef CONFIG_DELTA_XZ
		d->xz.cur += len; /* the same for the xz stream offset */
#endif
	}
	d->op = p[0];
	d->op_rem = len;
	c->rd += used;
	return 1;

short_or_bad:
	if (n == 0)
		return 0;
	return tnd_err_set(TND_E_FORMAT, "delta: malformed varint in op at target offset %llu",
			   (unsigned long long)d->out_pos);
bad_base:
	return tnd_err_set(TND_E_FORMAT,
			   "delta: op at target offset %llu reads outside the %llu-byte base",
			   (unsigned long long)d->out_pos, (unsigned long long)d->base_size);
}

/* Runs ops until the target is complete or a sub-stream runs dry. */
static int run_ops(struct tnd_delta_dec *d, emit_fn emit, void *ctx)
{
	int r;

	for (;;) {
		struct dec_stream *src;
		uint32_t n, room, i;
		uint8_t *o;

		bool to_xz = false;

		if (check_due(d)) {
			r = run_check(d, emit, ctx);
			if (r <= 0)
				return r;
			continue;
		}
		if (!d->op) {
			if (d->out_pos == d->target_size)
				return 0;
			r = next_op(d);
			if (r <= 0)
				return r;
			if (!d->op)
				continue; /* an XZ record */
		}
#ifdef CONFIG_DELTA_XZ
		to_xz = d->xz.open;
#endif
		if (to_xz) {
#ifdef CONFIG_DELTA_XZ
			room = d->xz.in_want - d->xz.in_len;
			o = d->xz.in + d->xz.in_len;
#endif
		} else {
			/* (with checks, check_due() has handed a full buffer out) */
			if (d->out_len == d->span) {
				r = flush_out(d, emit, ctx, NULL);
				if (r)
					return r;
			}
			room = d->span - d->out_len;
			o = d->out + d->out_len;
		}
		n = d->op_rem < room ? (uint32_t)d->op_rem : room;
		src = NULL;
		if (d->op == TND_DELTA_OP_ADD || d->op == TND_DELTA_OP_XADD)
			src = &d->s[TND_DELTA_S_DIFF];
		else if (d->op == TND_DELTA_OP_EXTRA)
			src = &d->s[TND_DELTA_S_EXTRA];
		if (src) {
			if (src->rd == src->wr)
				return 0; /* blocked: the next frame feeds src */
			if (n > src->wr - src->rd)
				n = src->wr - src->rd;
		}
		/* A resume needs nothing of an op whose output (for content,
		 * the output of the stream it makes) lies below skip_to: its
		 * sub-stream bytes are consumed, nothing is read or made. */
#ifdef CONFIG_DELTA_XZ
		if ((to_xz ? d->xz.toff + d->xz.clen : d->out_pos + d->op_rem) <= d->skip_to)
#else
		if (d->out_pos + d->op_rem <= d->skip_to)
#endif
			goto made;
		/* Versions 5 and 6: a span made of zero FILLs alone (free space
		 * in a filesystem image, 42% of the ext4 bench pair) is not
		 * written: its hash is known, and emit() gets zeros from
		 * elsewhere. The zeros go into the buffer only when another op
		 * writes into the span. */
		if (d->sha && !to_xz) {
			if (!d->out_len)
				d->out_zero = true;
			if (d->out_zero) {
				if (d->op == TND_DELTA_OP_FILL && !d->op_fill)
					goto made;
				memset(d->out, 0, d->out_len);
				d->out_zero = false;
			}
		}
		switch (d->op) {
		case TND_DELTA_OP_COPY:
			r = base_read(d, d->op_bpos, o, n);
			if (r)
				return r;
			break;
		case TND_DELTA_OP_ADD:
			r = base_read(d, d->op_bpos, o, n);
			if (r)
				return r;
			for (i = 0; i < n; i++)
				o[i] = (uint8_t)(o[i] + src->buf[src->rd + i]);
			break;
		case TND_DELTA_OP_EXTRA:
			memcpy(o, src->buf + src->rd, n);
			break;
#ifdef CONFIG_DELTA_XZ
		case TND_DELTA_OP_XCOPY:
		case TND_DELTA_OP_XADD:
			memcpy(o, d->xz.slot[d->xz.op_slot].buf + d->op_bpos, n);
			if (src)
				for (i = 0; i < n; i++)
					o[i] = (uint8_t)(o[i] + src->buf[src->rd + i]);
			break;
		case OP_EMIT_XZ:
			memcpy(o, d->xz.out + d->op_bpos, n);
			break;
#endif
		default:
			memset(o, d->op_fill, n);
			break;
		}
	made:
		if (src)
			src->rd += n;
		d->op_bpos += n;
		d->op_rem -= n;
		if (to_xz) {
#ifdef CONFIG_DELTA_XZ
			d->xz.in_len += n;
#endif
		} else {
			d->out_len += n;
			d->out_pos += n;
		}
		if (!d->op_rem) {
			d->op = 0;
#ifdef CONFIG_DELTA_XZ
			if (to_xz && d->xz.in_len == d->xz.in_want) {
				r = xz_close(d);
				if (r)
					return r;
			}
#endif
		}
	}
}

/* Frame header complete: check it and make room in the stream buffer. */
static int start_frame(struct tnd_delta_dec *d)
{
	struct dec_stream *s = &d->s[d->ftag - 1];
	uint32_t left = s->wr - s->rd;

	if (d->f_raw == 0 || d->f_raw > TND_DELTA_FRAME_MAX || d->f_comp == 0 ||
	    d->f_comp > TND_DELTA_FRAME_CMAX ||
	    ((s->codec == TND_DELTA_CODEC_NONE || d->fstored) && d->f_comp != d->f_raw))
		return tnd_err_set(TND_E_FORMAT, "delta: frame lengths %u/%u out of bounds",
				   d->f_raw, d->f_comp);
	/* Unread bytes move to the front; the encoder only sends a frame when
	 * at most one partial op record is left, so this always fits. */
	if (left + d->f_raw > TND_DELTA_FRAME_MAX + d->op_max)
		return tnd_err_set(TND_E_FORMAT,
				   "delta: frame for stream %d arrived while %u bytes are still "
				   "unread",
				   d->ftag - 1, left);
	memmove(s->buf, s->buf + s->rd, left);
	s->rd = 0;
	s->wr = left;
	d->f_got = 0;
	d->f_made = 0;
	return 0;
}

/* Feeds n payload bytes of the current frame to its codec. */
static int frame_data(struct tnd_delta_dec *d, const uint8_t *p, uint32_t n)
{
	struct dec_stream *s = &d->s[d->ftag - 1];
	int zr;

	if (s->codec == TND_DELTA_CODEC_NONE || d->fstored) {
		memcpy(s->buf + s->wr + d->f_made, p, n);
		d->f_made += n;
		d->f_got += n;
		return 0;
	}
	s->zs.next_in = (Bytef *)p;
	s->zs.avail_in = n;
	s->zs.next_out = s->buf + s->wr + d->f_made;
	s->zs.avail_out = d->f_raw - d->f_made;
	zr = inflate(&s->zs, Z_NO_FLUSH);
	d->f_made = d->f_raw - s->zs.avail_out;
	d->f_got += n - s->zs.avail_in;
	/* Input left over means the frame inflates to more than declared; a
	 * final block means a stream the encoder never writes. Both bound the
	 * output of a hostile frame to its declared raw length. */
	if ((zr != Z_OK && zr != Z_BUF_ERROR) || s->zs.avail_in)
		return tnd_err_set(
		    TND_E_FORMAT, "delta: frame of stream %d does not inflate to its %u bytes (%s)",
		    d->ftag - 1, d->f_raw, s->zs.msg ? s->zs.msg : "too long or stream end");
	return 0;
}

static int end_stream(struct tnd_delta_dec *d, emit_fn emit, void *ctx)
{
	int i, r;

	if (d->op || d->out_pos != d->target_size)
		return tnd_err_set(
		    TND_E_FORMAT, "delta: stream ended after %llu of %llu target bytes",
		    (unsigned long long)d->out_pos, (unsigned long long)d->target_size);
	if (check_due(d))
		return tnd_err_set(
		    TND_E_FORMAT,
		    "delta: stream ended before the check of its last %u target bytes", d->out_len);
	for (i = 0; i < TND_DELTA_NSTREAMS; i++)
		if (d->s[i].rd != d->s[i].wr)
			return tnd_err_set(TND_E_FORMAT,
					   "delta: %u unused bytes in stream %d at the end",
					   d->s[i].wr - d->s[i].rd, i);
	r = flush_out(d, emit, ctx, NULL);
	if (r)
		return r;
	d->st = ST_DONE;
	return 0;
}

/* Frame-header byte: tag, then the raw and compressed length varints. */
static int frame_hdr_byte(struct tnd_delta_dec *d, uint8_t b, emit_fn emit, void *ctx)
{
	if (d->fvar_idx == 0 && d->fvar_shift == 0 && d->ftag == 0xff) {
		if (b == TND_DELTA_TAG_END)
			return end_stream(d, emit, ctx);
		if ((b & 0x7f) == 0 || (b & 0x7f) > TND_DELTA_NSTREAMS)
			return tnd_err_set(TND_E_FORMAT, "delta: unknown frame tag %u", b);
		d->ftag = b & 0x7f;
		d->fstored = (b & TND_DELTA_TAG_STORED) != 0;
		d->fvar_val = 0;
		return 0;
	}
	/* Frame lengths are small: more than 3 varint bytes is malformed. */
	if (d->fvar_shift >= 21)
		return tnd_err_set(TND_E_FORMAT, "delta: frame length varint too long");
	d->fvar_val |= (uint64_t)(b & 0x7f) << d->fvar_shift;
	d->fvar_shift += 7;
	if (b & 0x80)
		return 0;
	if (d->fvar_val > TND_DELTA_FRAME_CMAX)
		return tnd_err_set(TND_E_FORMAT, "delta: frame length %llu out of bounds",
				   (unsigned long long)d->fvar_val);
	if (d->fvar_idx == 0) {
		d->f_raw = (uint32_t)d->fvar_val;
		d->fvar_idx = 1;
		d->fvar_shift = 0;
		d->fvar_val = 0;
		return 0;
	}
	d->f_comp = (uint32_t)d->fvar_val;
	d->st = ST_FRAME_DATA;
	return start_frame(d);
}

static void reset_frame_hdr(struct tnd_delta_dec *d)
{
	d->ftag = 0xff;
	d->fvar_idx = 0;
	d->fvar_shift = 0;
	d->fvar_val = 0;
}

static int feed(struct tnd_delta_dec *d, const uint8_t *data, size_t len, emit_fn emit, void *ctx)
{
	int r = 0;

	while (len) {
		switch (d->st) {
		case ST_HEADER: {
			size_t n = TND_DELTA_HDR_LEN - d->hdr_len;

			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_len, data, n);
			d->hdr_len += (uint32_t)n;
			data += n;
			len -= n;
			if (d->hdr_len == TND_DELTA_HDR_LEN) {
				r = parse_header(d);
				if (r)
					return fail(d, r);
				reset_frame_hdr(d);
				d->st = ST_FRAME_HDR;
			}
			break;
		}
		case ST_FRAME_HDR:
			r = frame_hdr_byte(d, *data, emit, ctx);
			data++;
			len--;
			if (r)
				return fail(d, r);
			break;
		case ST_FRAME_DATA: {
			size_t n = d->f_comp - d->f_got;

			if (n > len)
				n = len;
			r = frame_data(d, data, (uint32_t)n);
			if (r)
				return fail(d, r);
			data += n;
			len -= n;
			if (d->f_got < d->f_comp)
				break;
			if (d->f_made != d->f_raw)
				return fail(d,
					    tnd_err_set(TND_E_FORMAT,
							"delta: frame of stream %d inflates to %u "
							"bytes, %u declared",
							d->ftag - 1, d->f_made, d->f_raw));
			/* A stored frame of a deflate stream still belongs to
			 * its window: later frames may refer back into it. */
			if (d->fstored && d->s[d->ftag - 1].zready &&
			    inflateSetDictionary(&d->s[d->ftag - 1].zs,
						 d->s[d->ftag - 1].buf + d->s[d->ftag - 1].wr,
						 d->f_raw) != Z_OK)
				return fail(d, tnd_err_set(TND_E_FORMAT,
							   "delta: stored frame out of place"));
			d->s[d->ftag - 1].wr += d->f_raw;
			reset_frame_hdr(d);
			d->st = ST_FRAME_HDR;
			r = run_ops(d, emit, ctx);
			if (r)
				return fail(d, r);
			break;
		}
		case ST_DONE:
			return fail(
			    d, tnd_err_set(TND_E_FORMAT,
					   "delta: %zu bytes of trailing data after the end", len));
		default:
			return tnd_err_set(TND_E_INTERNAL, "delta: decoder used after an error");
		}
	}
	return 0;
}

int tnd_delta_dec_feed(struct tnd_delta_dec *d, const uint8_t *data, size_t len, emit_fn emit,
		       void *ctx)
{
	int r, hr;

	if (d->st == ST_FAILED)
		return tnd_err_set(TND_E_INTERNAL, "delta: decoder used after an error");
	r = feed(d, data, len, emit, ctx);
	/* emit() is called only while the caller is in here (delta.h): wait
	 * for the helper to hand out every span given, which all come before
	 * what this thread was making, so its error is the one to report. */
	if (d->helper && (hr = helper_drain(d)))
		r = fail(d, hr);
	return r;
}

int tnd_delta_dec_finish(struct tnd_delta_dec *d)
{
	/* (every feed() handed out all it made: nothing waits here) */
	if (d->st == ST_DONE)
		return 0;
	if (d->st == ST_FAILED)
		return tnd_err_set(TND_E_INTERNAL, "delta: decoder used after an error");
	return fail(d, tnd_err_set(TND_E_FORMAT,
				   "delta: stream truncated after %llu of %llu "
				   "target bytes",
				   (unsigned long long)d->out_pos,
				   (unsigned long long)d->target_size));
}
