// SPDX-License-Identifier: MIT
/*
 * Resume checkpoints (updater/install/resume.c): what a checkpoint file
 * may make an install do. Nothing in state_dir is trusted: a full payload
 * continues only at a record the signed manifest names as a resume point,
 * a file from before that rule (format 1, which carried the chain's hash)
 * is not followed, and every other mismatch (bundle, slot, device, slot
 * state, the slot's prefix) discards the checkpoint.
 */
#include "testutil.h"

#include "chunk.h"
#include "resume.h"
#include "util.h"

#define SLOT_SIZE (4u << 20)
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

struct fixture {
	char *dir, *slot, *ck;
	uint8_t digest[TND_SHA256_LEN];
	struct tnd_manifest m;
	struct tnd_state st;
	uint32_t crc_1m; /* of the slot's first MiB */
};

static void setup_fixture(struct fixture *f)
{
	uint8_t *img = malloc(SLOT_SIZE);

	memset(f, 0, sizeof(*f));
	f->dir = tu_mkdtemp();
	f->slot = tu_path(f->dir, "slotB.img");
	f->ck = tu_path(f->dir, "resume.json");
	tu_fill_random(img, SLOT_SIZE, 9);
	tu_write_file(f->slot, img, SLOT_SIZE);
	f->crc_1m = tnd_crc32(img, 1u << 20);
	free(img);
	memset(f->digest, 0x42, sizeof(f->digest));
	f->m.payload_type = TND_PAYLOAD_FULL;
	f->m.chunks = 64;
	f->m.chunk_size = 65536;
	f->m.image_size = SLOT_SIZE;
	f->m.stream_size = SLOT_SIZE;
	f->m.resume_every = 16;
	f->m.nresume = 3;
	f->st.pending_slot = f->st.interrupted_slot = -1;
	f->st.slot[1].state = TND_SLOT_INSTALLING;
}

/* Saves the point "record 16, 1 MiB of image" for slot B of f. */
static void save_point(struct fixture *f)
{
	struct tnd_resume rs;

	tnd_resume_init(&rs, f->dir, 1, f->slot, f->digest);
	assert_int_equal(
	    tnd_resume_save(&rs, &(struct tnd_resume_point){.index = 16,
							    .payload_read = 1048576 + 16 * 64,
							    .out = 1u << 20,
							    .prefix_crc = f->crc_1m}),
	    0);
}

static bool load(struct fixture *f, int slot, const char *refuse)
{
	struct tnd_resume rs;

	tnd_resume_init(&rs, f->dir, slot, f->slot, f->digest);
	tnd_resume_load(&rs, &f->st, &f->m, refuse);
	return rs.active;
}

/* Rewrites one key of the saved checkpoint (value: JSON text). */
static void edit(struct fixture *f, const char *key, const char *value)
{
	char cmd[3 * PATH_MAX];

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); "
		 "c[sys.argv[2]]=json.loads(sys.argv[3]); json.dump(c, open(p, \"w\"))' '%s' '%s' "
		 "'%s'",
		 f->ck, key, value);
	assert_int_equal(system(cmd), 0);
}

static void teardown_fixture(struct fixture *f)
{
	free(f->slot);
	free(f->ck);
	tu_rmdir(f->dir);
}

static void good_checkpoint_followed(void **state)
{
	struct fixture f;

	(void)state;
	setup_fixture(&f);
	save_point(&f);
	assert_true(load(&f, 1, NULL));
	/* the file is kept for the install to continue */
	assert_int_equal(access(f.ck, F_OK), 0);
	teardown_fixture(&f);
}

static void checkpoint_not_followed(void **state)
{
	static const struct {
		const char *key, *value;
	} edits[] = {
	    {"format", "1"},			  /* the format that trusted the chain's hash */
	    {"chunk", "17"},			  /* not a resume point */
	    {"chunk", "64"},			  /* beyond the last one */
	    {"prefix_crc", "1"},		  /* the slot no longer holds it */
	    {"image_offset", "2097152"},	  /* ... nor that */
	    {"slot", "\"A\""},			  /* another slot */
	    {"device", "\"/dev/other\""},	  /* another device */
	    {"manifest", "\"" ZERO_HASH "\""},	  /* another bundle */
	    {"payload_read", "-1"},		  /* not a count */
	    {"payload_read", "9007199254740992"}, /* 2^53: not exact */
	};
	struct fixture f;

	(void)state;
	setup_fixture(&f);
	for (size_t i = 0; i < TND_ARRAY_SIZE(edits); i++) {
		save_point(&f);
		edit(&f, edits[i].key, edits[i].value);
		if (load(&f, 1, NULL))
			fail_msg("followed a checkpoint with %s=%s", edits[i].key, edits[i].value);
		/* and it is gone: the next install starts over */
		assert_int_not_equal(access(f.ck, F_OK), 0);
	}
	/* a bundle that names no resume points (built before they existed) */
	save_point(&f);
	f.m.resume_every = f.m.nresume = 0;
	assert_false(load(&f, 1, NULL));
	f.m.resume_every = 16;
	f.m.nresume = 3;
	/* a slot no longer being installed, and --no-resume */
	save_point(&f);
	f.st.slot[1].state = TND_SLOT_INSTALLED;
	assert_false(load(&f, 1, NULL));
	f.st.slot[1].state = TND_SLOT_INSTALLING;
	save_point(&f);
	assert_false(load(&f, 1, "--no-resume"));
	/* garbage */
	tu_write_file(f.ck, "{\"format\":", 10);
	assert_false(load(&f, 1, NULL));
	teardown_fixture(&f);
}

/* A delta continues at an image offset, reading its op stream again from
 * the start: a point with a record or payload offset is not one of its. */
static void delta_points(void **state)
{
	struct fixture f;
	struct tnd_resume rs;

	(void)state;
	setup_fixture(&f);
	f.m.payload_type = TND_PAYLOAD_DELTA;
	f.m.resume_every = f.m.nresume = 0;
	tnd_resume_init(&rs, f.dir, 1, f.slot, f.digest);
	assert_int_equal(tnd_resume_save(&rs, &(struct tnd_resume_point){.out = 1u << 20,
									 .prefix_crc = f.crc_1m}),
			 0);
	assert_true(load(&f, 1, NULL));
	save_point(&f); /* a full payload's point */
	assert_false(load(&f, 1, NULL));
	teardown_fixture(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_checkpoint_followed),
	    cmocka_unit_test(checkpoint_not_followed),
	    cmocka_unit_test(delta_points),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
