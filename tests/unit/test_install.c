// SPDX-License-Identifier: MIT
/*
 * The install transaction (updater/install/transaction.c) and its one
 * policy module (policy.c), on a simulated device made of files with a
 * real U-Boot environment: what each step writes, what a refusal leaves,
 * the release a caller expects, the floor kept in the environment.
 */
#include "tu_device.h"

#include <fcntl.h>

#include "bootctl.h"
#include "bootloader.h"
#include "policy.h"
#include "state.h"
#include "transaction.h"
#include "util.h"

#define IMG (512u * 1024)

static int install(struct tu_dev *d, const char *bundle, const struct tnd_expect *e,
		   struct tnd_install_result *res)
{
	struct tnd_install_opts o = {.source = bundle, .slot = -1, .expect = e};

	return tnd_install(&d->cfg, &o, res);
}

static bool all_zero(const char *path)
{
	size_t n;
	uint8_t *b = tu_read_file(path, &n);
	bool z = tnd_is_zero(b, n);

	free(b);
	return z;
}

static void env_get(struct tu_dev *d, struct tnd_boot_state *bs)
{
	struct tnd_bootloader *bl;

	assert_int_equal(tnd_bl_open(&bl, &d->cfg), 0);
	assert_int_equal(tnd_bl_read(bl, bs), 0);
	tnd_bl_close(bl);
}

static void full_install_records_then_activates(void **state)
{
	struct tnd_install_result res;
	struct tnd_boot_state bs;
	struct tnd_state st;
	struct tu_dev d;

	(void)state;
	tu_dev_new(&d, 2 * IMG, true);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 3);
	assert_int_equal(install(&d, d.path[2], NULL, &res), 0);
	assert_int_equal(res.slot, 1);
	assert_true(res.activated);
	assert_int_equal(res.security_version, 3);
	assert_true(tu_same_prefix(d.path[1], tu_dev_file(&d, 3, "slotB.img"), IMG));
	assert_int_equal(tnd_state_load(&st, d.cfg.state_dir), 0);
	assert_int_equal(st.slot[1].state, TND_SLOT_INSTALLED);
	assert_string_equal(st.slot[1].version, "1.0");
	assert_int_equal(st.slot[1].security_version, 3);
	assert_int_equal(st.pending_slot, 1);
	env_get(&d, &bs);
	assert_int_equal(bs.order[0], 1);
	assert_int_equal(bs.tries[1], 3);
	assert_int_equal(bs.floor, 0); /* rises on confirm, never at install */
	tu_dev_free(&d);
}

/* Hole 7 of issue 19: a writer filled in by hand had descriptor 0 for its
 * O_DIRECT read-back, and every early failure closed standard input. */
static void early_failures_leave_stdin_open(void **state)
{
	struct tnd_install_result res;
	struct tu_dev d;
	int fd;

	(void)state;
	if (fcntl(0, F_GETFD) < 0) {
		fd = open("/dev/null", O_RDONLY);
		assert_int_equal(fd, 0);
	}
	tu_dev_new(&d, 2 * IMG, true);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 0);
	/* a missing bundle, then a corrupt state file */
	assert_int_equal(install(&d, tu_dev_file(&d, 3, "nope.tnd"), NULL, &res), TND_E_NOT_FOUND);
	assert_int_not_equal(fcntl(0, F_GETFD), -1);
	tu_write_file(tu_dev_file(&d, 3, "state/state.json"), "{", 1);
	assert_int_equal(install(&d, d.path[2], NULL, &res), TND_E_STATE);
	assert_int_not_equal(fcntl(0, F_GETFD), -1);
	tu_dev_free(&d);
}

/* Every rule of the one policy check, and the release a caller expects. */
static void policy_rules(void **state)
{
	struct tnd_state st = {.pending_slot = -1, .interrupted_slot = -1};
	struct tnd_manifest m = {
	    .verified = true,
	    .compatible = "sim",
	    .version = "2.0",
	    .security_version = 5,
	    .image_size = 4096,
	    .payload_type = TND_PAYLOAD_FULL,
	    .chunk_size = 65536,
	};
	struct tnd_expect e = {
	    .version = "2.0", .security_version = 5, .image_size = 4096, .file_size = 1000};
	struct tnd_policy p = {.st = &st, .booted = 0};
	struct tnd_config cfg;
	struct tnd_manifest x;

	(void)state;
	assert_int_equal(
	    tnd_config_parse(&cfg, "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"}}",
			     "t"),
	    0);
	p.cfg = &cfg;
	assert_int_equal(tnd_policy_check(&p, &m), 0);
	x = m, x.verified = false;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_INTERNAL);
	x = m, snprintf(x.compatible, sizeof(x.compatible), "other");
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_INCOMPATIBLE);
	x = m, x.created = 1000, x.expires = 2000; /* long past, whatever the clock */
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_EXPIRED);
	p.floor = 6;
	assert_int_equal(tnd_policy_check(&p, &m), TND_E_DOWNGRADE);
	assert_int_equal(tnd_policy_may_boot(&p, 1, 5), TND_E_DOWNGRADE);
	assert_int_equal(tnd_policy_may_boot(&p, 1, 6), 0);
	p.floor = 5;
	snprintf(st.slot[0].version, sizeof(st.slot[0].version), "2.10");
	assert_int_equal(tnd_policy_check(&p, &m), TND_E_DOWNGRADE); /* 2.0 < 2.10 */
	p.allow_downgrade = true;
	assert_int_equal(tnd_policy_check(&p, &m), 0);
	x = m, x.chunk_size = (CONFIG_MAX_CHUNK_SIZE_KIB + 1) * 1024;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_UNSUPPORTED);
	x = m, x.payload_type = TND_PAYLOAD_DELTA, x.delta_format = 200;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_UNSUPPORTED);
	p.mode = TND_POLICY_PROVISION;
	x = m, x.payload_type = TND_PAYLOAD_DELTA, x.delta_format = 1;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_UNSUPPORTED);
	p.mode = TND_POLICY_INSTALL;
	/* the release a channel entry names: each field must agree */
	p.expect = &e;
	assert_int_equal(tnd_policy_check(&p, &m), 0);
	x = m, snprintf(x.version, sizeof(x.version), "1.0");
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	assert_non_null(strstr(tnd_err_msg(), "the server sent release 1.0"));
	x = m, x.image_sha256[7] ^= 1;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	x = m, x.image_size++;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	x = m, x.security_version = 6;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	x = m, x.payload_type = TND_PAYLOAD_DELTA, x.delta_format = 1;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	assert_non_null(strstr(tnd_err_msg(), "a delta where a full bundle was listed"));
	e.delta = true;
	x.base_sha256[0] = 1;
	assert_int_equal(tnd_policy_check(&p, &x), TND_E_WRONG_RELEASE);
	assert_non_null(strstr(tnd_err_msg(), "delta base"));
	x.base_sha256[0] = 0;
	assert_int_equal(tnd_policy_check(&p, &x), 0);
}

/* The expected release, refused in prepare: nothing changes anywhere. */
static void expected_release_refused_before_writing(void **state)
{
	struct tnd_install_result res;
	struct tnd_boot_state bs;
	struct tnd_state st;
	struct tnd_expect e = {.version = "1.3.0", .security_version = 3};
	struct tu_dev d;

	(void)state;
	tu_dev_new(&d, 2 * IMG, true);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 1);
	assert_int_equal(install(&d, d.path[2], &e, &res), TND_E_WRONG_RELEASE);
	assert_true(all_zero(tu_dev_file(&d, 3, "slotB.img")));
	assert_int_equal(tnd_state_load(&st, d.cfg.state_dir), 0);
	assert_int_equal(st.slot[1].state, TND_SLOT_UNKNOWN);
	assert_string_equal(st.last_error_code, "E_WRONG_RELEASE");
	env_get(&d, &bs);
	assert_int_equal(bs.order[0], 0);
	assert_int_equal(bs.tries[1], 3);
	tu_dev_free(&d);
}

/* The same release, another file (its SHA-256 differs): the slot was
 * written with authenticated bytes, but nothing records or boots it. */
static void expected_file_checked_before_recording(void **state)
{
	struct tnd_install_result res;
	struct tnd_manifest m;
	struct tnd_boot_state bs;
	struct tnd_state st;
	struct tnd_expect e = {0};
	struct tnd_txn *t;
	struct tu_dev d;
	size_t n;
	uint8_t *file;

	(void)state;
	tu_dev_new(&d, 2 * IMG, true);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 1);
	/* what the entry would say of this very bundle */
	assert_int_equal(
	    tnd_txn_prepare(&t, &d.cfg,
			    &(struct tnd_install_opts){.source = d.path[2], .slot = -1}),
	    0);
	m = *tnd_txn_manifest(t);
	tnd_txn_free(t);
	snprintf(e.version, sizeof(e.version), "%s", m.version);
	e.security_version = m.security_version;
	e.image_size = m.image_size;
	memcpy(e.image_sha256, m.image_sha256, TND_SHA256_LEN);
	file = tu_read_file(d.path[2], &n);
	e.file_size = n;
	tnd_sha256(file, n, e.file_sha256);
	free(file);
	e.file_sha256[0] ^= 1;
	assert_int_equal(install(&d, d.path[2], &e, &res), TND_E_WRONG_RELEASE);
	assert_int_equal(tnd_state_load(&st, d.cfg.state_dir), 0);
	assert_int_equal(st.slot[1].state, TND_SLOT_INSTALLING);
	assert_false(st.slot[1].has_sha256);
	assert_int_equal(st.pending_slot, -1);
	env_get(&d, &bs);
	assert_int_equal(bs.order[0], 0);
	assert_int_equal(bs.tries[1], 0); /* out of the boot order's reach */
	e.file_sha256[0] ^= 1;
	e.file_size++;
	assert_int_equal(install(&d, d.path[2], &e, &res), TND_E_WRONG_RELEASE);
	e.file_size--;
	assert_int_equal(install(&d, d.path[2], &e, &res), 0);
	tu_dev_free(&d);
}

/* Hole 5: the floor the environment keeps holds when the state has none. */
static void floor_from_environment(void **state)
{
	struct tnd_install_result res;
	struct tu_dev d;
	char cmd[PATH_MAX + 64];

	(void)state;
	tu_dev_new(&d, 2 * IMG, true);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 2);
	snprintf(cmd, sizeof(cmd), "fw_setenv -c %s TANDEM_SECURITY_FLOOR 4", d.cfg.env_config);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(install(&d, d.path[2], NULL, &res), TND_E_DOWNGRADE);
	assert_non_null(strstr(tnd_err_msg(), "floor of 4"));
	assert_true(all_zero(tu_dev_file(&d, 3, "slotB.img")));
	tu_dev_free(&d);
}

/* "none" is a backend: installs write and verify, nothing is activated,
 * and what would switch slots says why it cannot. */
static void no_bootloader(void **state)
{
	struct tnd_install_result res;
	struct tu_dev d;

	(void)state;
	tu_dev_new(&d, 2 * IMG, false);
	tu_image(tu_dev_file(&d, 1, "v1.img"), IMG, 1);
	tu_bundle(&d, tu_dev_file(&d, 2, "u.tnd"), d.path[1], NULL, "1.0", 0);
	assert_int_equal(install(&d, d.path[2], NULL, &res), 0);
	assert_false(res.activated);
	assert_true(tu_same_prefix(d.path[1], tu_dev_file(&d, 3, "slotB.img"), IMG));
	assert_int_equal(tnd_activate(&d.cfg, 1), TND_E_UNSUPPORTED);
	assert_non_null(strstr(tnd_err_msg(), "\"none\""));
	tu_dev_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_install_records_then_activates),
	    cmocka_unit_test(early_failures_leave_stdin_open),
	    cmocka_unit_test(policy_rules),
	    cmocka_unit_test(expected_release_refused_before_writing),
	    cmocka_unit_test(expected_file_checked_before_recording),
	    cmocka_unit_test(floor_from_environment),
	    cmocka_unit_test(no_bootloader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
