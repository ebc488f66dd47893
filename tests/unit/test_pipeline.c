// SPDX-License-Identifier: MIT
/*
 * The install pipeline (updater/install/pipeline.c) and the record
 * decoder it shares with the host (lib/record.c): every record of a full
 * or delta payload lands in the slot for any number of threads; the
 * checkpoints it hands out are durable points a resume may trust (a full
 * payload's only at signed resume points); a resumed run writes only the
 * rest; a cancel stops it with what was written proven.
 */
#include "tu_device.h"

#include <signal.h>

#include "bundle.h"
#include "pipeline.h"
#include "record.h"
#include "sign.h"
#include "slot.h"
#include "util.h"

#define IMG (6u << 20) /* several resume points (one per MiB) and windows */

struct seen {
	unsigned points, progress;
	uint64_t last_out, last_written;
	const struct tnd_manifest *m;
	bool bad_point;
};

static int on_checkpoint(void *ctx, const struct tnd_resume_point *pt)
{
	struct seen *s = ctx;

	/* a full payload continues only at a record the manifest signs */
	if (s->m->payload_type == TND_PAYLOAD_FULL && !tnd_manifest_resume_point(s->m, pt->index))
		s->bad_point = true;
	if (pt->out <= s->last_out)
		s->bad_point = true;
	s->last_out = pt->out;
	s->points++;
	return 0;
}

static void on_progress(void *ctx, const struct tnd_pipeline_stats *st)
{
	struct seen *s = ctx;

	assert_true(st->written >= s->last_written);
	assert_true(st->written <= st->image_size);
	s->last_written = st->written;
	s->progress++;
}

struct run {
	struct tnd_keyring kr;
	struct tnd_source *src;
	struct tnd_bundle_reader r;
	struct tnd_slot_writer w;
};

static void run_open(struct run *x, struct tu_dev *d, const char *bundle)
{
	struct tnd_verify_opts vo = {.keyring = &x->kr};

	memset(x, 0, sizeof(*x));
	assert_int_equal(tnd_keyring_load_dir(&x->kr, d->cfg.keyring), 0);
	assert_int_equal(tnd_source_open_file(&x->src, bundle), 0);
	assert_int_equal(tnd_bundle_open(&x->r, x->src, &vo), 0);
	assert_int_equal(tnd_slot_open(&x->w, d->cfg.slot_dev[1], x->r.manifest.image_size,
				       x->r.manifest.chunk_size, 1u << 20),
			 0);
}

static void run_close(struct run *x)
{
	tnd_slot_close(&x->w);
	tnd_source_close(x->src);
	tnd_keyring_free(&x->kr);
}

static void full_payload_any_threads(void **state)
{
	struct tu_dev d;

	(void)state;
	tu_dev_new(&d, IMG, false);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 3);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 0);
	for (unsigned threads = 1; threads <= 4; threads++) {
		struct seen s = {0};
		struct run x;

		run_open(&x, &d, d.path[2]);
		assert_true(x.r.manifest.resume_every > 0 && x.r.manifest.nresume >= 4);
		s.m = &x.r.manifest;
		assert_int_equal(
		    tnd_pipeline_run(&x.r, &x.w,
				     &(struct tnd_pipeline_opts){.threads = threads,
								 .base_fd = -1,
								 .progress = on_progress,
								 .progress_ctx = &s,
								 .checkpoint = on_checkpoint,
								 .checkpoint_ctx = &s}),
		    0);
		run_close(&x);
		assert_true(tu_same_prefix(d.path[1], d.cfg.slot_dev[1], IMG));
		assert_false(s.bad_point);
		assert_true(s.points >= 3); /* one per durable 1 MiB window */
		assert_int_equal(s.last_written, IMG);
		assert_int_equal(truncate(d.cfg.slot_dev[1], 0), 0);
		assert_int_equal(truncate(d.cfg.slot_dev[1], IMG), 0);
	}
	tu_dev_free(&d);
}

/* A delta payload goes through the same pipeline, the decoder being the
 * ordered stage: the slot ends up holding the target. */
static void delta_payload(void **state)
{
	struct seen s = {0};
	struct tu_dev d;
	struct run x;
	uint8_t *img;
	size_t n;
	int base;

	(void)state;
	tu_dev_new(&d, IMG, false);
	tu_image(tu_dev_file(&d, 1, "base.img"), IMG, 3);
	img = tu_read_file(d.path[1], &n);
	for (size_t i = 0; i < n; i += 65536)
		memcpy(img + i + 100, "RELEASE2", 8);
	tu_write_file(tu_dev_file(&d, 2, "target.img"), img, n);
	free(img);
	tu_bundle(&d, tu_dev_file(&d, 3, "d.tnd"), d.path[2], d.path[1], "2.0", 0);
	base = open(d.path[1], O_RDONLY);
	assert_true(base >= 0);
	run_open(&x, &d, d.path[3]);
	s.m = &x.r.manifest;
	assert_int_equal(x.r.manifest.payload_type, TND_PAYLOAD_DELTA);
	assert_int_equal(tnd_pipeline_run(&x.r, &x.w,
					  &(struct tnd_pipeline_opts){.threads = 2,
								      .base_fd = base,
								      .checkpoint = on_checkpoint,
								      .checkpoint_ctx = &s}),
			 0);
	run_close(&x);
	close(base);
	assert_true(tu_same_prefix(d.path[2], d.cfg.slot_dev[1], IMG));
	assert_false(s.bad_point);
	tu_dev_free(&d);
}

/* Resumed at a signed point: only the rest is read and written. */
static void resumed_run_writes_only_the_rest(void **state)
{
	struct tu_dev d;
	struct run x;
	uint64_t every, out, index, payload = 0;
	uint8_t hdr[TND_RECORD_HDR_SIZE];
	struct tnd_record rec;
	uint32_t crc;
	int fd;

	(void)state;
	tu_dev_new(&d, IMG, false);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 3);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 0);
	run_open(&x, &d, d.path[2]);
	every = x.r.manifest.resume_every;
	index = 2 * every;
	/* where record `index` starts: walk the headers */
	fd = open(d.path[2], O_RDONLY);
	for (uint64_t i = 0; i < index; i++) {
		assert_int_equal(
		    tnd_pread_full(fd, hdr, sizeof(hdr), (off_t)(x.r.payload_offset + payload)), 0);
		assert_int_equal(tnd_record_decode(&rec, hdr), 0);
		payload += sizeof(hdr) + rec.stored_len;
	}
	close(fd);
	out = index * x.r.manifest.chunk_size;
	{
		uint8_t *mark = malloc((size_t)out);

		/* what the slot holds before `out` is not written again: a
		 * marker there stays */
		memset(mark, 0xaa, (size_t)out);
		fd = open(d.cfg.slot_dev[1], O_WRONLY);
		assert_int_equal(tnd_pwrite_full(fd, mark, (size_t)out, 0), 0);
		close(fd);
		crc = tnd_crc32(mark, (size_t)out);
		free(mark);
	}
	assert_int_equal(tnd_bundle_resume(&x.r, index, payload, out,
					   tnd_manifest_resume_point(&x.r.manifest, index)),
			 0);
	tnd_slot_start_at(&x.w, out);
	assert_int_equal(
	    tnd_pipeline_run(&x.r, &x.w,
			     &(struct tnd_pipeline_opts){
				 .threads = 2, .base_fd = -1, .start_out = out, .start_crc = crc}),
	    0);
	run_close(&x);
	{
		size_t n, m;
		uint8_t *img = tu_read_file(d.path[1], &n),
			*slot = tu_read_file(d.cfg.slot_dev[1], &m);

		for (uint64_t i = 0; i < out; i++)
			assert_int_equal(slot[i], 0xaa);
		assert_memory_equal(slot + out, img + out, n - out);
		free(img);
		free(slot);
	}
	/* a wrong resume hash is refused before anything is written */
	run_open(&x, &d, d.path[2]);
	{
		uint8_t wrong[TND_SHA256_LEN] = {1};

		assert_int_equal(tnd_bundle_resume(&x.r, index, payload, out, wrong), 0);
		assert_int_equal(
		    tnd_pipeline_run(
			&x.r, &x.w,
			&(struct tnd_pipeline_opts){.threads = 2, .base_fd = -1, .start_out = out}),
		    TND_E_INTEGRITY);
	}
	run_close(&x);
	tu_dev_free(&d);
}

static void cancelled_run(void **state)
{
	volatile sig_atomic_t cancel = 1;
	struct tu_dev d;
	struct run x;

	(void)state;
	tu_dev_new(&d, IMG, false);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 3);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 0);
	run_open(&x, &d, d.path[2]);
	assert_int_equal(tnd_pipeline_run(&x.r, &x.w,
					  &(struct tnd_pipeline_opts){
					      .threads = 2, .base_fd = -1, .cancel = &cancel}),
			 TND_E_CANCELLED);
	run_close(&x);
	tu_dev_free(&d);
}

/* The host's side of the same decoder: expand() with its CRC check. */
static void record_expand_checks_crc(void **state)
{
	struct tnd_record rec = {.type = TND_REC_STORED, .stored_len = 4, .out_len = 4};
	struct tnd_inflater inf;
	const uint8_t *out;
	uint8_t buf[4];

	(void)state;
	assert_int_equal(tnd_inflater_init(&inf), 0);
	rec.out_crc32 = tnd_crc32((const uint8_t *)"data", 4);
	assert_int_equal(tnd_record_expand(&inf, &rec, (const uint8_t *)"data", buf, true, &out),
			 0);
	assert_memory_equal(out, "data", 4);
	assert_int_equal(tnd_record_expand(&inf, &rec, (const uint8_t *)"dato", buf, true, &out),
			 TND_E_FORMAT);
	/* the device reads back instead: no CRC here */
	assert_int_equal(tnd_record_expand(&inf, &rec, (const uint8_t *)"dato", buf, false, &out),
			 0);
	rec.type = TND_REC_ZERO;
	assert_int_equal(tnd_record_expand(&inf, &rec, NULL, buf, true, &out), 0);
	assert_null(out);
	tnd_inflater_free(&inf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_payload_any_threads),		cmocka_unit_test(delta_payload),
	    cmocka_unit_test(resumed_run_writes_only_the_rest), cmocka_unit_test(cancelled_run),
	    cmocka_unit_test(record_expand_checks_crc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
