// SPDX-License-Identifier: MIT
#include "pipeline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "delta.h"
#include "log.h"
#include "util.h"

#define MAX_THREADS 8

/*
 * A job's life: FREE -> READ (by the reader, unauthenticated) -> HASHING
 * -> HASHED (by any worker, any order) -> authenticated strictly in record
 * order by whichever worker holds the lock -> READY (to inflate) or DONE
 * (stored and zero records) -> INFLATING -> DONE -> written -> FREE.
 * Nothing reaches inflate or the slot before it was authenticated.
 */
enum job_state { JOB_FREE, JOB_READ, JOB_HASHING, JOB_HASHED, JOB_READY, JOB_INFLATING, JOB_DONE };

struct job {
	enum job_state state;
	struct tnd_raw_record raw;     /* raw.rec is trusted only from READY on */
	struct tnd_resume_point after; /* the chain right after this record */
	uint8_t *in;
	uint8_t *out;
	const uint8_t *data; /* what the writer writes: in or out */
};

struct pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* every state change is broadcast: few threads, simple */
	struct job *jobs;
	unsigned njobs;
	struct tnd_bundle_reader *r;
	uint64_t rseq, aseq, wseq; /* next record to read / authenticate / write */
	bool eof;
	int err;
	char errmsg[TND_ERR_MSG_MAX];
	uint64_t written;
	struct tnd_slot_writer *w;
	struct tnd_delta_out *delta; /* NULL for full images */
	struct checkpoints *ck;	     /* NULL: none asked for */
};

/*
 * Checkpoints (full payloads): after each write the writer records the
 * point after that record; a point is handed out once the slot writer has
 * read back everything before it. A full ring skips points: only the
 * newest durable one matters.
 */
#define CK_RING 256

struct checkpoints {
	struct tnd_resume_point ring[CK_RING];
	unsigned head, n;
	uint32_t crc; /* of the image written so far */
	uint64_t start, saved, chunks;
	int (*fn)(void *ctx, const struct tnd_resume_point *pt);
	void *ctx;
};

static int checkpoint_after(struct checkpoints *ck, struct tnd_slot_writer *w, const struct job *j)
{
	const struct tnd_record *rec = &j->raw.rec;
	struct tnd_resume_point *best = NULL;
	uint64_t durable;

	ck->crc = tnd_crc32_combine(
	    ck->crc, rec->type == TND_REC_ZERO ? tnd_crc32_zeros(rec->out_len) : rec->out_crc32,
	    rec->out_len);
	/* After the last record there is nothing to resume. */
	if (j->after.index < ck->chunks && ck->n < CK_RING) {
		struct tnd_resume_point *pt = &ck->ring[(ck->head + ck->n) % CK_RING];

		*pt = j->after;
		pt->prefix_crc = ck->crc;
		ck->n++;
	}
	pthread_mutex_lock(&w->mu);
	durable = ck->start + w->verified;
	pthread_mutex_unlock(&w->mu);
	while (ck->n && ck->ring[ck->head].out <= durable) {
		best = &ck->ring[ck->head];
		ck->head = (ck->head + 1) % CK_RING;
		ck->n--;
	}
	if (!best || best->out <= ck->saved)
		return 0;
	ck->saved = best->out;
	return ck->fn(ck->ctx, best);
}

/* Delta payloads: the writer thread feeds the op stream to the decoder and
 * collects what it emits into whole chunks for the slot writer, hashing the
 * image on the way. */
struct tnd_delta_out {
	struct tnd_delta_dec *dec;
	struct tnd_slot_writer *w;
	uint8_t *buf;
	size_t len, cap;
	uint64_t off;
	struct tnd_sha256 hash;
	bool hashing; /* hash initialised and not yet finalised */
};

static int delta_flush(struct tnd_delta_out *d)
{
	int ret;

	if (!d->len)
		return 0;
	/* Zero runs are common in filesystem images: they cost no writes. */
	if (tnd_is_zero(d->buf, d->len))
		ret = tnd_slot_zero(d->w, d->off, d->len);
	else
		ret = tnd_slot_write(d->w, d->off, d->buf, d->len, tnd_crc32(d->buf, d->len));
	d->off += d->len;
	d->len = 0;
	return ret;
}

static int delta_emit(void *ctx, const uint8_t *data, size_t len)
{
	struct tnd_delta_out *d = ctx;
	int ret;

	tnd_sha256_update(&d->hash, data, len);
	while (len) {
		size_t n = d->cap - d->len < len ? d->cap - d->len : len;

		memcpy(d->buf + d->len, data, n);
		d->len += n;
		data += n;
		len -= n;
		if (d->len == d->cap && (ret = delta_flush(d)))
			return ret;
	}
	return 0;
}

static int delta_feed(struct tnd_delta_out *d, const struct tnd_record *rec, const uint8_t *data)
{
	static const uint8_t zeros[4096];

	if (rec->type != TND_REC_ZERO)
		return tnd_delta_dec_feed(d->dec, data, rec->out_len, delta_emit, d);
	for (uint64_t left = rec->out_len; left;) {
		size_t n = left > sizeof(zeros) ? sizeof(zeros) : (size_t)left;
		int ret = tnd_delta_dec_feed(d->dec, zeros, n, delta_emit, d);

		if (ret)
			return ret;
		left -= n;
	}
	return 0;
}

static int delta_end(struct tnd_delta_out *d, const struct tnd_manifest *m)
{
	uint8_t got[TND_SHA256_LEN];
	char want_hex[TND_SHA256_HEX_LEN], got_hex[TND_SHA256_HEX_LEN];
	int ret;

	if ((ret = tnd_delta_dec_finish(d->dec)) || (ret = delta_flush(d)))
		return ret;
	tnd_sha256_final(&d->hash, got);
	d->hashing = false;
	if (!tnd_memeq_ct(got, m->image_sha256, TND_SHA256_LEN)) {
		tnd_hex_encode(want_hex, m->image_sha256, TND_SHA256_LEN);
		tnd_hex_encode(got_hex, got, TND_SHA256_LEN);
		return tnd_err_set(TND_E_INTEGRITY,
				   "delta produced an image with SHA-256 %s, the manifest says %s",
				   got_hex, want_hex);
	}
	return 0;
}

/* Records the first failure (with this thread's message) and wakes all. */
static void pipe_fail(struct pipe *p, int code)
{
	if (!p->err) {
		p->err = code;
		snprintf(p->errmsg, sizeof(p->errmsg), "%s", tnd_err_msg());
	}
	pthread_cond_broadcast(&p->cv);
}

/* Authenticates, in order, every record whose hash is ready. Called with
 * the lock held: the chain state in the reader is only touched here. */
static int authenticate_ready(struct pipe *p)
{
	for (;;) {
		struct job *j = &p->jobs[p->aseq % p->njobs];
		int ret;

		if (j->state != JOB_HASHED || j->raw.seq != p->aseq)
			return 0;
		if ((ret = tnd_bundle_authenticate(p->r, &j->raw)))
			return ret;
		j->after.index = p->r->next_index;
		j->after.payload_read = p->r->payload_read;
		j->after.out = p->r->next_out;
		memcpy(j->after.expect, p->r->expect, TND_SHA256_LEN);
		j->state = j->raw.rec.type == TND_REC_DEFLATE ? JOB_READY : JOB_DONE;
		p->aseq++;
		pthread_cond_broadcast(&p->cv);
	}
}

/* The lowest-numbered job with work for a worker: keeps the writer fed. */
static struct job *next_work(struct pipe *p, bool *more)
{
	struct job *best = NULL;

	*more = false;
	for (unsigned i = 0; i < p->njobs; i++) {
		struct job *j = &p->jobs[i];

		if (j->state == JOB_READ || j->state == JOB_READY) {
			if (!best || j->raw.seq < best->raw.seq)
				best = j;
		} else if (j->state == JOB_HASHING || j->state == JOB_HASHED ||
			   j->state == JOB_INFLATING) {
			*more = true;
		}
	}
	return best;
}

static void *worker_main(void *arg)
{
	struct pipe *p = arg;
	struct tnd_inflater inf;
	bool more;
	int ret;

	if ((ret = tnd_inflater_init(&inf))) {
		pthread_mutex_lock(&p->mu);
		pipe_fail(p, ret);
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	pthread_mutex_lock(&p->mu);
	while (!p->err) {
		struct job *j;

		if ((ret = authenticate_ready(p))) {
			pipe_fail(p, ret);
			break;
		}
		j = next_work(p, &more);
		if (!j) {
			if (p->eof && !more)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		if (j->state == JOB_READ) {
			j->state = JOB_HASHING;
			pthread_mutex_unlock(&p->mu);
			tnd_raw_record_hash(&j->raw, j->in);
			pthread_mutex_lock(&p->mu);
			j->state = JOB_HASHED;
		} else {
			j->state = JOB_INFLATING;
			pthread_mutex_unlock(&p->mu);
			ret = tnd_inflate_chunk(&inf, j->in, j->raw.rec.stored_len, j->out,
						j->raw.rec.out_len);
			if (ret)
				tnd_err_prefix(ret, "chunk %u", j->raw.rec.index);
			pthread_mutex_lock(&p->mu);
			if (ret) {
				pipe_fail(p, ret);
				break;
			}
			j->data = j->out;
			j->state = JOB_DONE;
		}
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	tnd_inflater_free(&inf);
	return NULL;
}

static void *writer_main(void *arg)
{
	struct pipe *p = arg;
	int ret;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct job *j = &p->jobs[p->wseq % p->njobs];

		while (!p->err && !(j->state == JOB_DONE && j->raw.seq == p->wseq) &&
		       !(p->eof && p->wseq == p->rseq))
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->err || (p->eof && p->wseq == p->rseq))
			break;
		pthread_mutex_unlock(&p->mu);
		if (p->delta)
			ret = delta_feed(p->delta, &j->raw.rec, j->data);
		else if (j->raw.rec.type == TND_REC_ZERO)
			ret = tnd_slot_zero(p->w, j->raw.rec.out_offset, j->raw.rec.out_len);
		else
			ret = tnd_slot_write(p->w, j->raw.rec.out_offset, j->data,
					     j->raw.rec.out_len, j->raw.rec.out_crc32);
		if (!ret && p->ck)
			ret = checkpoint_after(p->ck, p->w, j);
		pthread_mutex_lock(&p->mu);
		if (ret) {
			pipe_fail(p, ret);
			break;
		}
		j->state = JOB_FREE;
		p->wseq++;
		p->written = p->delta ? p->delta->off : p->written + j->raw.rec.out_len;
		pthread_cond_broadcast(&p->cv);
	}
	if (p->delta && !p->err) {
		pthread_mutex_unlock(&p->mu);
		ret = delta_end(p->delta, &p->r->manifest);
		pthread_mutex_lock(&p->mu);
		if (ret)
			pipe_fail(p, ret);
		else
			p->written = p->delta->off;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void report(struct pipe *p, struct tnd_bundle_reader *r, const struct tnd_pipeline_opts *o)
{
	struct tnd_pipeline_stats st = {
	    .received = r->src->pos,
	    .verified = r->payload_read,
	    .chunk = r->next_index,
	    .chunks = r->manifest.chunks,
	    .image_size = r->manifest.image_size,
	};

	if (!o->progress)
		return;
	pthread_mutex_lock(&p->mu);
	st.written = p->written;
	pthread_mutex_unlock(&p->mu);
	o->progress(o->progress_ctx, &st);
}

/* The calling thread is the reader: it only reads records into free jobs;
 * the workers hash and authenticate them. */
static void read_loop(struct pipe *p, struct tnd_bundle_reader *r,
		      const struct tnd_pipeline_opts *o)
{
	size_t cap = r->manifest.chunk_size;
	int ret;

	for (;;) {
		struct job *j = &p->jobs[p->rseq % p->njobs];

		pthread_mutex_lock(&p->mu);
		while (!p->err && j->state != JOB_FREE)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->err) {
			pthread_mutex_unlock(&p->mu);
			return;
		}
		pthread_mutex_unlock(&p->mu);

		if (o->cancel && *o->cancel)
			ret = tnd_err_set(TND_E_CANCELLED, "interrupted");
		else
			ret = tnd_bundle_read(r, &j->raw, j->in, cap);

		pthread_mutex_lock(&p->mu);
		if (ret < 0) {
			pipe_fail(p, ret);
		} else if (ret == 0) {
			p->eof = true;
		} else {
			p->rseq++;
			j->data = j->in;
			j->state = JOB_READ;
		}
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		if (ret <= 0)
			return;
		report(p, r, o);
	}
}

int tnd_pipeline_run(struct tnd_bundle_reader *r, struct tnd_slot_writer *w,
		     const struct tnd_pipeline_opts *o)
{
	unsigned threads = o->threads < 1 ? 1 : o->threads > MAX_THREADS ? MAX_THREADS : o->threads;
	size_t chunk = r->manifest.chunk_size;
	pthread_t workers[MAX_THREADS], writer;
	unsigned started = 0;
	bool writer_started = false;
	struct pipe p;
	int ret = 0;

	struct tnd_delta_out delta = {0};
	struct checkpoints *ck = NULL;

	memset(&p, 0, sizeof(p));
	p.w = w;
	p.r = r;
	p.written = o->start_out;
	/* A resumed reader starts at a later record (tnd_bundle_resume). */
	p.rseq = p.aseq = p.wseq = r->next_index;
	p.njobs = 2 * threads + 2;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	if (o->checkpoint && r->manifest.payload_type == TND_PAYLOAD_FULL) {
		if (!(ck = calloc(1, sizeof(*ck)))) {
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
			goto out;
		}
		ck->crc = o->start_crc;
		ck->start = ck->saved = o->start_out;
		ck->chunks = r->manifest.chunks;
		ck->fn = o->checkpoint;
		ck->ctx = o->checkpoint_ctx;
		p.ck = ck;
	}
	if (r->manifest.payload_type == TND_PAYLOAD_DELTA) {
		if (o->base_fd < 0) {
			ret = tnd_err_set(TND_E_INTERNAL, "delta without a base");
			goto out;
		}
		ret = tnd_delta_dec_new(&delta.dec, o->base_fd, r->manifest.base_size,
					r->manifest.image_size);
		if (ret)
			goto out;
		delta.w = w;
		delta.cap = chunk;
		delta.buf = malloc(chunk);
		if (!delta.buf) {
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
			goto out;
		}
		tnd_sha256_init(&delta.hash);
		delta.hashing = true;
		p.delta = &delta;
	}
	p.jobs = calloc(p.njobs, sizeof(*p.jobs));
	for (unsigned i = 0; p.jobs && i < p.njobs; i++) {
		p.jobs[i].in = malloc(chunk);
		p.jobs[i].out = malloc(chunk);
		if (!p.jobs[i].in || !p.jobs[i].out) {
			ret =
			    tnd_err_set(TND_E_NOMEM, "out of memory for %u chunk buffers", p.njobs);
			goto out;
		}
	}
	if (!p.jobs) {
		ret = tnd_err_set(TND_E_NOMEM, "out of memory");
		goto out;
	}
	for (; started < threads; started++)
		if (pthread_create(&workers[started], NULL, worker_main, &p)) {
			ret = tnd_err_set(TND_E_NOMEM, "cannot start a worker thread");
			break;
		}
	if (!ret) {
		if (pthread_create(&writer, NULL, writer_main, &p))
			ret = tnd_err_set(TND_E_NOMEM, "cannot start the writer thread");
		else
			writer_started = true;
	}
	if (ret) {
		pthread_mutex_lock(&p.mu);
		pipe_fail(&p, ret);
		pthread_mutex_unlock(&p.mu);
	} else {
		read_loop(&p, r, o);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	if (writer_started)
		pthread_join(writer, NULL);
	if (p.err) {
		ret = tnd_err_set(p.err, "%s", p.errmsg);
		goto out;
	}
	{
		double t0 = tnd_now_mono();

		ret = tnd_slot_finish(w);
		tnd_debug("final flush and read-back took %.3f s", tnd_now_mono() - t0);
	}
	if (!ret)
		report(&p, r, o);
out:
	if (delta.hashing) {
		uint8_t unused[TND_SHA256_LEN];

		tnd_sha256_final(&delta.hash, unused);
	}
	tnd_delta_dec_free(delta.dec);
	free(delta.buf);
	for (unsigned i = 0; p.jobs && i < p.njobs; i++) {
		free(p.jobs[i].in);
		free(p.jobs[i].out);
	}
	free(p.jobs);
	free(ck);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	return ret;
}
