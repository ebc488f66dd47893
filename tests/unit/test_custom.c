// SPDX-License-Identifier: MIT
/* The custom backend (updater/boot/custom.c) against a handler script
 * that keeps RAUC's state (primary, good/bad) and Tandem's variables in
 * files, and misbehaves on request: a non-zero exit, garbage, a hang. */
#include "testutil.h"

#include <time.h>

#include "bootloader.h"
#include "config.h"
#include "util.h"

/* The handler: state in its own directory ($0.d); a file fail-CMD makes
 * CMD exit 3, garbage-CMD print junk, hang-CMD sleep; every call is
 * logged in log. */
static const char handler[] =
    "#!/bin/sh\n"
    "d=$0.d\n"
    "echo \"$*\" >>$d/log\n"
    "[ ! -e $d/fail-$1 ] || { echo \"handler: $1 is broken\" >&2; exit 3; }\n"
    "[ ! -e $d/hang-$1 ] || { sleep 30; sleep 30; }\n"
    "[ ! -e $d/garbage-$1 ] || { cat $d/garbage-$1; exit 0; }\n"
    "case $1 in\n"
    "get-primary) cat $d/primary ;;\n"
    "set-primary) echo $2 >$d/primary ;;\n"
    "get-state) cat $d/state-$2 ;;\n"
    "set-state) echo $3 >$d/state-$2 ;;\n"
    "get-current) echo A ;;\n"
    "get-env) cat $d/env-$2 2>/dev/null || true ;;\n"
    "set-env) if [ -n \"$3\" ]; then echo \"$3\" >$d/env-$2; else rm -f $d/env-$2; fi ;;\n"
    "*) echo \"unknown command $1\" >&2; exit 1 ;;\n"
    "esac\n";

struct fixture {
	char *dir, *h, *hd;
	struct tnd_config cfg;
};

static void put(struct fixture *f, const char *name, const char *text)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", f->hd, name);
	tu_write_file(p, text, strlen(text));
}

static char *get(struct fixture *f, const char *name)
{
	static char buf[4][256];
	static int k;
	char p[PATH_MAX];
	FILE *fp;
	size_t n;

	k = (k + 1) % 4;
	snprintf(p, sizeof(p), "%s/%s", f->hd, name);
	buf[k][0] = '\0';
	if ((fp = fopen(p, "r"))) {
		n = fread(buf[k], 1, sizeof(buf[k]) - 1, fp);
		buf[k][n] = '\0';
		fclose(fp);
	}
	return buf[k];
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char json[2 * PATH_MAX];

	assert_non_null(f);
	f->dir = tu_mkdtemp();
	f->h = tu_path(f->dir, "handler");
	f->hd = tu_path(f->dir, "handler.d");
	tu_write_file(f->h, handler, sizeof(handler) - 1);
	assert_int_equal(chmod(f->h, 0755), 0);
	assert_int_equal(mkdir(f->hd, 0755), 0);
	snprintf(json, sizeof(json),
		 "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/dev/a\",\"B\":\"/dev/b\"},"
		 "\"bootloader\":{\"type\":\"custom\",\"handler\":\"%s\",\"handler_timeout\":1}}",
		 f->h);
	assert_int_equal(tnd_config_parse(&f->cfg, json, "t"), 0);
	assert_int_equal(f->cfg.bootloader, TND_BL_CUSTOM);
	put(f, "primary", "A\n");
	put(f, "state-A", "good\n");
	put(f, "state-B", "good\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmdir(f->dir);
	free(f->h);
	free(f->hd);
	free(f);
	return 0;
}

static void config_keys(void **state)
{
	static const char *const bad[] = {
	    "{\"type\":\"custom\"}",
	    "{\"type\":\"custom\",\"handler\":\"/x\",\"handler_timeout\":0}",
	    "{\"type\":\"custom\",\"handler\":\"/x\",\"handler_env\":1}",
	};
	struct tnd_config cfg;
	char json[512];

	(void)state;
	for (size_t i = 0; i < TND_ARRAY_SIZE(bad); i++) {
		snprintf(json, sizeof(json),
			 "{\"compatible\":\"s\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
			 "\"bootloader\":%s}",
			 bad[i]);
		if (tnd_config_parse(&cfg, json, "t") >= 0)
			fail_msg("accepted %s", bad[i]);
	}
}

static void round_trip(void **state)
{
	struct fixture *f = *state;
	struct tnd_bootloader *bl;
	struct tnd_boot_state bs;
	struct tnd_slot_id id = {.kind = TND_ID_VALID, .security_version = 4};
	struct tnd_bl_var vars[8];
	size_t n;

	memset(id.sha256, 0x11, sizeof(id.sha256));
	assert_int_equal(tnd_bl_open(&bl, &f->cfg), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	assert_int_equal(bs.order[0], 0);
	assert_int_equal(bs.tries[1], 3);
	assert_int_equal(bs.id[1].kind, TND_ID_UNKNOWN);
	/* an install into B: out of reach and erased, its identity, active */
	assert_int_equal(tnd_bl_disable(bl, 1), 0);
	assert_string_equal(get(f, "state-B"), "bad\n");
	assert_string_equal(get(f, "env-TANDEM_B_IMAGE"), "erased\n");
	assert_int_equal(tnd_bl_set_identity(bl, 1, &id), 0);
	assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
	assert_string_equal(get(f, "primary"), "B\n");
	assert_string_equal(get(f, "state-B"), "good\n");
	assert_int_equal(tnd_bl_mark_good(bl, 1, 3, 4), 0);
	assert_string_equal(get(f, "env-TANDEM_SECURITY_FLOOR"), "4\n");
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	assert_int_equal(bs.floor, 4);
	assert_int_equal(bs.id[1].kind, TND_ID_VALID);
	assert_int_equal(bs.id[1].security_version, 4);
	assert_memory_equal(bs.id[1].sha256, id.sha256, TND_SHA256_LEN);
	/* bad: B bad before A is made primary */
	put(f, "log", "");
	assert_int_equal(tnd_bl_mark_bad(bl, 1), 0);
	assert_non_null(strstr(get(f, "log"), "set-state B bad\nset-primary A\n"));
	assert_int_equal(tnd_bl_raw(bl, vars, TND_ARRAY_SIZE(vars), &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(vars[0].value, "A");
	assert_string_equal(vars[2].value, "bad");
	assert_string_equal(vars[3].name, "current");
	tnd_bl_close(bl);
}

/* Each failure: one line that says which call and why, and the calls
 * after it never made (nothing half-switched). */
static void failures(void **state)
{
	static const struct {
		const char *file, *content, *msg;
	} cases[] = {
	    {"fail-get-primary", "",
	     "get-primary exited with status 3: handler: get-primary is broken"},
	    {"garbage-get-primary", "C\n", "printed \"C\", not A or B"},
	    {"garbage-get-primary", "A\nB\n", "more than one line"},
	    {"garbage-get-state", "fine\n", "printed \"fine\", not good or bad"},
	    {"garbage-get-env", "1\n2\n", "printed garbage"},
	    {"hang-get-state", "", "did not finish within 1 s"},
	    {"fail-set-primary", "", "set-primary B exited with status 3"},
	    {"hang-set-primary", "", "did not finish within 1 s"},
	};
	struct fixture *f = *state;
	struct tnd_bootloader *bl;
	char big[1024];
	int ret;

	for (size_t i = 0; i < TND_ARRAY_SIZE(cases); i++) {
		struct timespec t0, t1;

		put(f, "primary", "A\n");
		put(f, "state-B", "bad\n");
		put(f, "log", "");
		put(f, cases[i].file, cases[i].content);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(tnd_bl_open(&bl, &f->cfg), 0);
		ret = tnd_bl_activate(bl, 1, 3);
		tnd_bl_close(bl);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (ret >= 0)
			fail_msg("case %zu (%s) succeeded", i, cases[i].file);
		if (!strstr(tnd_err_msg(), cases[i].msg))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, tnd_err_msg(),
				 cases[i].msg);
		assert_null(strchr(tnd_err_msg(), '\n'));
		assert_true(t1.tv_sec - t0.tv_sec < 5); /* a hang is cut at 1 s */
		/* never switched, nothing made good after the failure */
		assert_string_equal(get(f, "primary"), "A\n");
		assert_string_equal(get(f, "state-B"), "bad\n");
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s", f->hd, cases[i].file);
		unlink(p);
	}
	/* too much output */
	memset(big, 'A', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	put(f, "garbage-get-primary", big);
	assert_int_equal(tnd_bl_open(&bl, &f->cfg), 0);
	assert_int_not_equal(tnd_bl_activate(bl, 1, 3), 0);
	tnd_bl_close(bl);
	assert_non_null(strstr(tnd_err_msg(), "more than an answer"));
	/* a handler that cannot be run */
	assert_int_equal(chmod(f->h, 0644), 0);
	assert_int_not_equal(tnd_bl_open(&bl, &f->cfg), 0);
	assert_non_null(strstr(tnd_err_msg(), "cannot be run"));
}

/* "handler_env": false: RAUC's interface only; no identities kept. */
static void without_env(void **state)
{
	struct fixture *f = *state;
	struct tnd_bootloader *bl;
	struct tnd_boot_state bs;
	struct tnd_slot_id id = {.kind = TND_ID_VALID, .security_version = 4};

	f->cfg.handler_env = false;
	put(f, "fail-get-env", "");
	put(f, "fail-set-env", "");
	assert_int_equal(tnd_bl_open(&bl, &f->cfg), 0);
	assert_int_equal(tnd_bl_disable(bl, 1), 0);
	assert_int_equal(tnd_bl_set_identity(bl, 1, &id), 0);
	assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	tnd_bl_close(bl);
	assert_int_equal(bs.order[0], 1);
	assert_int_equal(bs.id[1].kind, TND_ID_UNKNOWN);
	assert_null(strstr(get(f, "log"), "-env"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_keys),
	    cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(without_env, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
