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
 * A job holds one record as read from the source. Its life: FREE -> READ
 * (by the reader, unauthenticated) -> HASHING -> HASHED (by any worker,
 * any order) -> authenticated strictly in record order by whichever
 * worker holds the lock -> READY -> CLAIMED by one worker, which inflates
 * it into its own output buffer, waits for its turn (every record before
 * it written) and writes it -> FREE. Nothing reaches inflate or the slot
 * before it was authenticated.
 *
 * Only the workers' turns are ordered; inflating is not. A worker holds
 * one claimed job at a time and claims the lowest READY one, and records
 * are authenticated in order, so every record before a claimed one is
 * claimed or written: the lowest claimed one always has its turn, and a
 * waiting worker never blocks the one it waits for.
 */
enum job_state { JOB_FREE, JOB_READ, JOB_HASHING, JOB_HASHED, JOB_READY, JOB_CLAIMED };

struct job {
	enum job_state state;
	struct tnd_raw_record raw;     /* raw.rec is trusted only from READY on */
	struct tnd_resume_point after; /* the chain right after this record */
	uint8_t *in;
};

struct pipe {
	pthread_mutex_t mu;
	pthread_cond_t work;  /* a job to hash or inflate, or the end */
	pthread_cond_t freed; /* a job became FREE (the reader waits) */
	pthread_cond_t turn;  /* wseq moved (workers wait for their turn) */
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
	size_t chunk;
};

/*
 * Checkpoints: after each write the worker whose turn it is records the
 * point after it (one per CK_STEP of image is enough: the slot writer
 * makes whole read-back windows durable). For a full payload that is the
 * record after, with the chain's state; for a delta, whose decoder state
 * cannot be saved, the image offset alone: a resumed delta reads its op
 * stream from the start and the decoder skips to the offset (lib/delta.h,
 * tnd_delta_dec_skip_to), without reading the base or writing the slot
 * for what is already there. Each time the slot writer's verifier finds
 * a window durable it saves the newest point inside it, in its own
 * thread: a save costs two fsyncs (file and directory), which on the
 * workers' path cost a 512 MiB install 0.2 s. A full ring skips points:
 * only the newest durable one matters.
 */
#define CK_RING 256
#define CK_STEP (1u << 20)

struct checkpoints {
	pthread_mutex_t mu; /* ring: the turn's worker adds, the verifier takes */
	struct tnd_resume_point ring[CK_RING];
	unsigned head, n;
	uint32_t crc; /* of the image written so far (turns only) */
	uint64_t pushed, saved;
	uint8_t first[TND_SHA256_LEN]; /* the chain's start, for delta points */
	int (*fn)(void *ctx, const struct tnd_resume_point *pt);
	void *ctx;
};

/* The image grew by len bytes with CRC-32 crc, and pt is the point after
 * them (none when last: there is nothing to resume after the end). */
static void checkpoint_push(struct checkpoints *ck, const struct tnd_resume_point *pt, uint32_t crc,
			    uint64_t len, bool last)
{
	ck->crc = tnd_crc32_combine(ck->crc, crc, len);
	if (last || pt->out - ck->pushed < CK_STEP)
		return;
	pthread_mutex_lock(&ck->mu);
	if (ck->n < CK_RING) {
		struct tnd_resume_point *q = &ck->ring[(ck->head + ck->n) % CK_RING];

		*q = *pt;
		q->prefix_crc = ck->crc;
		ck->n++;
		ck->pushed = pt->out;
	}
	pthread_mutex_unlock(&ck->mu);
}

static void checkpoint_after(struct checkpoints *ck, const struct job *j, uint64_t chunks)
{
	const struct tnd_record *rec = &j->raw.rec;

	checkpoint_push(ck, &j->after,
			rec->type == TND_REC_ZERO ? tnd_crc32_zeros(rec->out_len) : rec->out_crc32,
			rec->out_len, j->after.index >= chunks);
}

/* The slot writer's durable callback (its verifier thread). */
static int checkpoint_durable(void *ctx, uint64_t end)
{
	struct checkpoints *ck = ctx;
	struct tnd_resume_point best;
	bool found = false;

	pthread_mutex_lock(&ck->mu);
	while (ck->n && ck->ring[ck->head].out <= end) {
		best = ck->ring[ck->head];
		found = true;
		ck->head = (ck->head + 1) % CK_RING;
		ck->n--;
	}
	pthread_mutex_unlock(&ck->mu);
	if (!found || best.out <= ck->saved)
		return 0;
	ck->saved = best.out;
	return ck->fn(ck->ctx, &best);
}

/* Delta payloads: each record's turn feeds the op stream to the decoder and
 * collects what it emits into whole chunks for the slot writer, hashing the
 * image on the way. */
struct tnd_delta_out {
	struct tnd_delta_dec *dec;
	struct tnd_slot_writer *w;
	uint64_t off;		/* image offset of the next byte emitted */
	uint64_t start, size;	/* a resumed install writes from start on */
	struct checkpoints *ck; /* NULL: none asked for */
};

/* The decoder hands out its output in pieces of at most 64 KiB (each
 * checked against its signed CRC-32 first, from format 3 on): written as
 * they come, zero runs (common in filesystem images) without writes. */
static int delta_emit(void *ctx, const uint8_t *data, size_t len, uint32_t crc)
{
	struct tnd_delta_out *d = ctx;
	int ret;

	/* a resume: the slot holds the image up to start */
	if (d->off + len <= d->start) {
		d->off += len;
		return 0;
	}
	if (d->off < d->start) {
		data += d->start - d->off;
		len -= (size_t)(d->start - d->off);
		d->off = d->start;
		crc = tnd_crc32(data, len); /* of the part written */
	}
	if (tnd_is_zero(data, len))
		ret = tnd_slot_zero(d->w, d->off, len);
	else
		ret = tnd_slot_write(d->w, d->off, data, len, crc);
	d->off += len;
	if (!ret && d->ck) {
		struct tnd_resume_point pt = {.out = d->off};

		memcpy(pt.expect, d->ck->first, TND_SHA256_LEN);
		checkpoint_push(d->ck, &pt, crc, len, d->off >= d->size);
	}
	return ret;
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

static int delta_end(struct tnd_delta_out *d)
{
	return tnd_delta_dec_finish(d->dec);
}

/* After tnd_slot_finish(): a delta's image, as the device holds it, must
 * hash to the manifest's image SHA-256. */
static int delta_check(struct tnd_slot_writer *w, const struct tnd_manifest *m)
{
	uint8_t got[TND_SHA256_LEN];
	char want_hex[TND_SHA256_HEX_LEN], got_hex[TND_SHA256_HEX_LEN];

	tnd_slot_readback_sha256(w, got);
	if (tnd_memeq_ct(got, m->image_sha256, TND_SHA256_LEN))
		return 0;
	tnd_hex_encode(want_hex, m->image_sha256, TND_SHA256_LEN);
	tnd_hex_encode(got_hex, got, TND_SHA256_LEN);
	return tnd_err_set(TND_E_INTEGRITY,
			   "delta produced an image with SHA-256 %s, the manifest says %s", got_hex,
			   want_hex);
}

/* Records the first failure (with this thread's message) and wakes all. */
static void pipe_fail(struct pipe *p, int code)
{
	if (!p->err) {
		p->err = code;
		snprintf(p->errmsg, sizeof(p->errmsg), "%s", tnd_err_msg());
	}
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->freed);
	pthread_cond_broadcast(&p->turn);
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
		j->state = JOB_READY;
		p->aseq++;
		pthread_cond_signal(&p->work);
	}
}

/* The lowest-numbered job with work for a worker: keeps the slot fed. */
static struct job *next_work(struct pipe *p, bool *more)
{
	struct job *best = NULL;

	*more = false;
	for (unsigned i = 0; i < p->njobs; i++) {
		struct job *j = &p->jobs[i];

		if (j->state == JOB_READ || j->state == JOB_READY) {
			if (!best || j->raw.seq < best->raw.seq)
				best = j;
		} else if (j->state == JOB_HASHING || j->state == JOB_HASHED) {
			*more = true;
		}
	}
	return best;
}

/* The ordered part of a record, run by the worker whose turn it is: into
 * the delta decoder, or into the slot; then the checkpoint. */
static int put_record(struct pipe *p, const struct job *j, const uint8_t *data)
{
	const struct tnd_record *rec = &j->raw.rec;
	int ret;

	if (p->delta)
		ret = delta_feed(p->delta, rec, data);
	else if (rec->type == TND_REC_ZERO)
		ret = tnd_slot_zero(p->w, rec->out_offset, rec->out_len);
	else
		ret = tnd_slot_write(p->w, rec->out_offset, data, rec->out_len, rec->out_crc32);
	if (!ret && p->ck && !p->delta)
		checkpoint_after(p->ck, j, p->r->manifest.chunks);
	return ret;
}

/* Inflates a claimed job (outside the lock), waits for its turn, writes
 * it. Called and returns with the lock held. */
static int run_job(struct pipe *p, struct job *j, struct tnd_inflater *inf, uint8_t *out)
{
	const struct tnd_record *rec = &j->raw.rec;
	const uint8_t *data = j->in;
	int ret = 0;

	pthread_mutex_unlock(&p->mu);
	if (rec->type == TND_REC_DEFLATE) {
		ret = tnd_inflate_chunk(inf, j->in, rec->stored_len, out, rec->out_len);
		if (ret)
			tnd_err_prefix(ret, "chunk %u", rec->index);
		data = out;
	}
	pthread_mutex_lock(&p->mu);
	if (ret)
		return ret;
	while (!p->err && p->wseq != j->raw.seq)
		pthread_cond_wait(&p->turn, &p->mu);
	if (p->err)
		return 0; /* pipe_fail already holds the first error */
	pthread_mutex_unlock(&p->mu);
	ret = put_record(p, j, data);
	pthread_mutex_lock(&p->mu);
	if (ret)
		return ret;
	p->written = p->delta ? p->delta->off : p->written + rec->out_len;
	p->wseq++;
	j->state = JOB_FREE;
	pthread_cond_broadcast(&p->turn);
	pthread_cond_signal(&p->freed);
	return 0;
}

static void *worker_main(void *arg)
{
	struct pipe *p = arg;
	struct tnd_inflater inf;
	uint8_t *out = NULL;
	bool more;
	int ret;

	/* Page-aligned: the slot writer may hand it to O_DIRECT. */
	if (posix_memalign((void **)&out, 4096, p->chunk))
		out = NULL;
	if (!out || (ret = tnd_inflater_init(&inf))) {
		ret = out ? ret : tnd_err_set(TND_E_NOMEM, "out of memory");
		free(out);
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
			if (p->eof && !more && p->aseq == p->rseq)
				break;
			pthread_cond_wait(&p->work, &p->mu);
			continue;
		}
		if (j->state == JOB_READ) {
			j->state = JOB_HASHING;
			pthread_mutex_unlock(&p->mu);
			tnd_raw_record_hash(&j->raw, j->in);
			pthread_mutex_lock(&p->mu);
			j->state = JOB_HASHED;
			continue; /* authenticate_ready() comes next */
		}
		j->state = JOB_CLAIMED;
		if ((ret = run_job(p, j, &inf, out))) {
			pipe_fail(p, ret);
			break;
		}
	}
	/* The last one out wakes the others, which may wait for work. */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	tnd_inflater_free(&inf);
	free(out);
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
 * the workers hash, authenticate, inflate and write them. */
static void read_loop(struct pipe *p, struct tnd_bundle_reader *r,
		      const struct tnd_pipeline_opts *o)
{
	size_t cap = r->manifest.chunk_size;
	int ret;

	for (;;) {
		struct job *j = &p->jobs[p->rseq % p->njobs];

		pthread_mutex_lock(&p->mu);
		while (!p->err && j->state != JOB_FREE)
			pthread_cond_wait(&p->freed, &p->mu);
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
			pthread_cond_broadcast(&p->work);
		} else {
			p->rseq++;
			j->state = JOB_READ;
			pthread_cond_signal(&p->work);
		}
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
	pthread_t workers[MAX_THREADS];
	unsigned started = 0;
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
	p.chunk = chunk;
	/* One job per worker being inflated or written, two more that the
	 * reader fills meanwhile. */
	p.njobs = threads + 2;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.work, NULL);
	pthread_cond_init(&p.freed, NULL);
	pthread_cond_init(&p.turn, NULL);
	if (o->checkpoint) {
		if (!(ck = calloc(1, sizeof(*ck)))) {
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
			goto out;
		}
		pthread_mutex_init(&ck->mu, NULL);
		ck->crc = o->start_crc;
		ck->pushed = ck->saved = o->start_out;
		memcpy(ck->first, r->expect, TND_SHA256_LEN);
		ck->fn = o->checkpoint;
		ck->ctx = o->checkpoint_ctx;
		p.ck = ck;
		w->durable = checkpoint_durable;
		w->durable_ctx = ck;
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
		/* The decoder emits from the check span that holds start_out on;
		 * delta_emit drops what lies before start_out. */
		delta.start = o->start_out;
		delta.off = o->start_out - o->start_out % TND_DELTA_CHECK_SPAN;
		delta.size = r->manifest.image_size;
		delta.ck = ck;
		tnd_delta_dec_skip_to(delta.dec, o->start_out);
		/* The manifest said which format the stream is: it must be. */
		tnd_delta_dec_require(delta.dec, r->manifest.delta_format);
		/* Formats 1 and 2 carry no signed CRC-32 of their output: the
		 * verifier hashes what it reads back, and it must be the signed
		 * image. Later formats check every 64 KiB before it is written
		 * (lib/delta.c), and their read-back is a full image's. A
		 * resumed install reads back only what it writes: there the
		 * caller hashes the whole slot afterwards instead. */
		if (!tnd_delta_version_checked(r->manifest.delta_format) && !o->start_out)
			tnd_slot_hash_readback(w);
		p.delta = &delta;
	}
	p.jobs = calloc(p.njobs, sizeof(*p.jobs));
	for (unsigned i = 0; p.jobs && i < p.njobs; i++) {
		/* Page-aligned: a stored record is written from here. */
		if (posix_memalign((void **)&p.jobs[i].in, 4096, chunk))
			p.jobs[i].in = NULL;
		if (!p.jobs[i].in) {
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
	if (ret) {
		pthread_mutex_lock(&p.mu);
		pipe_fail(&p, ret);
		pthread_mutex_unlock(&p.mu);
	} else {
		read_loop(&p, r, o);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i], NULL);
	if (p.err) {
		/* Whatever was written is good: prove it, so that a checkpoint
		 * covers it and the next try continues there (a dropped
		 * download, a cancelled install). Its own error is not ours. */
		if (p.ck && p.err != TND_E_SLOT_IO && p.err != TND_E_VERIFY && tnd_slot_flush(w))
			tnd_debug("no checkpoint after the failure: %s", tnd_err_msg());
		ret = tnd_err_set(p.err, "%s", p.errmsg);
		goto out;
	}
	if (p.delta) {
		if ((ret = delta_end(p.delta)))
			goto out;
		p.written = p.delta->off;
	}
	{
		double t0 = tnd_now_mono();

		ret = tnd_slot_finish(w);
		tnd_debug("final flush and read-back took %.3f s", tnd_now_mono() - t0);
	}
	if (!ret && p.delta && w->hashing)
		ret = delta_check(w, &r->manifest);
	if (!ret)
		report(&p, r, o);
out:
	tnd_delta_dec_free(delta.dec);
	for (unsigned i = 0; p.jobs && i < p.njobs; i++)
		free(p.jobs[i].in);
	free(p.jobs);
	/* The writer outlives this call: it must not call into freed memory. */
	if (ck) {
		w->durable = NULL;
		pthread_mutex_destroy(&ck->mu);
		free(ck);
	}
	pthread_cond_destroy(&p.work);
	pthread_cond_destroy(&p.freed);
	pthread_cond_destroy(&p.turn);
	pthread_mutex_destroy(&p.mu);
	return ret;
}
