// SPDX-License-Identifier: MIT
#include "pipeline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "log.h"
#include "record.h"
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
	bool resumable;		       /* after.index is a signed resume point */
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
	struct tnd_image_stage *stage;
	bool delta;
	struct checkpoints *ck; /* NULL: none asked for */
	size_t chunk;
};

/*
 * Checkpoints: after each write the worker whose turn it is records the
 * point after it (one per CK_STEP of image is enough: the slot writer
 * makes whole read-back windows durable). For a full payload that is the
 * record after, when the manifest names it a signed resume point (nothing
 * in the checkpoint file is trusted: the signed manifest says what that
 * record must hash to, docs/install.md "Resume"); for a delta, whose decoder state
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
	int (*fn)(void *ctx, const struct tnd_resume_point *pt);
	void *ctx;
};

/* The image grew by len bytes with CRC-32 crc, and pt is the point after
 * them (none when `none`: the end, or not a point to continue from). */
static void checkpoint_push(struct checkpoints *ck, const struct tnd_resume_point *pt, uint32_t crc,
			    uint64_t len, bool none)
{
	ck->crc = tnd_crc32_combine(ck->crc, crc, len);
	if (none || pt->out - ck->pushed < CK_STEP)
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

/* Full payloads: after a record's write; only a signed resume point is a
 * point to continue from, but every record extends the prefix's CRC. */
static void checkpoint_after(struct checkpoints *ck, const struct job *j)
{
	const struct tnd_record *rec = &j->raw.rec;

	checkpoint_push(ck, &j->after,
			rec->type == TND_REC_ZERO ? tnd_crc32_zeros(rec->out_len) : rec->out_crc32,
			rec->out_len, !j->resumable);
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

/* Where the stage's image bytes go: the slot, and for a delta (whose
 * checkpoints name an image offset only) the checkpoint ring. */
struct slot_sink {
	struct tnd_slot_writer *w;
	struct checkpoints *ck; /* delta payloads only; NULL: none */
	uint64_t size;
};

static void delta_point(struct slot_sink *s, uint64_t end, uint32_t crc, uint64_t len)
{
	struct tnd_resume_point pt = {.out = end};

	if (!s->ck)
		return;
	checkpoint_push(s->ck, &pt, crc, len, end >= s->size);
}

static int sink_write(void *ctx, uint64_t off, const uint8_t *data, size_t len, uint32_t crc)
{
	struct slot_sink *s = ctx;
	int ret = tnd_slot_write(s->w, off, data, len, crc);

	if (!ret)
		delta_point(s, off + len, crc, len);
	return ret;
}

static int sink_zero(void *ctx, uint64_t off, uint64_t len)
{
	struct slot_sink *s = ctx;
	int ret = tnd_slot_zero(s->w, off, len);

	if (!ret)
		delta_point(s, off + len, tnd_crc32_zeros(len), len);
	return ret;
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
		j->resumable = tnd_manifest_resume_point(&p->r->manifest, j->after.index) != NULL;
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
 * the image stage (the slot, or the delta decoder); then the checkpoint. */
static int put_record(struct pipe *p, const struct job *j, const uint8_t *data)
{
	int ret = tnd_image_stage_put(p->stage, &j->raw.rec, data);

	if (!ret && p->ck && !p->delta)
		checkpoint_after(p->ck, j);
	return ret;
}

/* Expands a claimed job (outside the lock), waits for its turn, writes
 * it. Called and returns with the lock held. */
static int run_job(struct pipe *p, struct job *j, struct tnd_inflater *inf, uint8_t *out)
{
	const uint8_t *data;
	int ret;

	pthread_mutex_unlock(&p->mu);
	ret = tnd_record_expand(inf, &j->raw.rec, j->in, out, false, &data);
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
	p->written = tnd_image_stage_written(p->stage);
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
	struct slot_sink ss = {.w = w, .size = r->manifest.image_size};
	struct tnd_image_sink sink = {.write = sink_write, .zero = sink_zero, .ctx = &ss};
	struct checkpoints *ck = NULL;
	unsigned started = 0;
	struct pipe p;
	int ret = 0;

	memset(&p, 0, sizeof(p));
	p.r = r;
	p.written = o->start_out;
	p.delta = r->manifest.payload_type == TND_PAYLOAD_DELTA;
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
		ck->fn = o->checkpoint;
		ck->ctx = o->checkpoint_ctx;
		p.ck = ck;
		ss.ck = p.delta ? ck : NULL;
		w->durable = checkpoint_durable;
		w->durable_ctx = ck;
	}
	if ((ret = tnd_image_stage_new(&p.stage, &r->manifest, o->base_fd, o->start_out, &sink)))
		goto out;
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
	if ((ret = tnd_image_stage_finish(p.stage)))
		goto out;
	p.written = tnd_image_stage_written(p.stage);
	{
		double t0 = tnd_now_mono();

		ret = tnd_slot_finish(w);
		tnd_debug("final flush and read-back took %.3f s", tnd_now_mono() - t0);
	}
	if (!ret)
		report(&p, r, o);
out:
	tnd_image_stage_free(p.stage);
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
