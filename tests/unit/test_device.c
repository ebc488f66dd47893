// SPDX-License-Identifier: MIT
/* Device-side modules: configuration, state, slot writer with read-back,
 * and the U-Boot backend on real environment images (mkenvimage). */
#include "testutil.h"

#include <sys/mman.h>

#include "bootloader.h"
#include "chunk.h"
#include "config.h"
#include "slot.h"
#include "state.h"
#include "util.h"

#define CONF_OK                                                                                    \
	"{\"compatible\":\"sim\",\"slots\":{\"A\":\"/dev/a\",\"B\":\"/dev/b\"},"                   \
	"\"bootloader\":{\"type\":\"none\"}}"

static void config_defaults_and_errors(void **state)
{
	static const char *const bad[] = {
	    "[]",
	    "{\"slots\":{\"A\":\"/a\",\"B\":\"/b\"}}",			      /* no compatible */
	    "{\"compatible\":\"sim\"}",					      /* no slots */
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\"}}",	      /* no B */
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/a\"}}", /* same */
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\",\"C\":\"/c\"}}",
	    "{\"compatible\":\"sim\",\"slot\":{}}", /* typo */
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},\"boot_tries\":0}",
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},\"boot_tries\":\"3\"}",
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},"
	    "\"bootloader\":{\"type\":\"lilo\"}}",
	    "{\"compatible\":\"sim\",\"slots\":{\"A\":\"/a\",\"B\":\"/b\"},\"keyring\":\"\"}",
	};
	struct tnd_config cfg;

	(void)state;
	assert_int_equal(tnd_config_parse(&cfg, CONF_OK, "t"), 0);
	assert_string_equal(cfg.keyring, "/etc/tandem/keys");
	assert_string_equal(cfg.cmdline, "/proc/cmdline");
	assert_int_equal(cfg.boot_tries, 3);
	assert_int_equal(cfg.bootloader, TND_BL_NONE);
	assert_string_equal(cfg.slot_dev[1], "/dev/b");
	for (size_t i = 0; i < TND_ARRAY_SIZE(bad); i++) {
		if (tnd_config_parse(&cfg, bad[i], "t") >= 0)
			fail_msg("accepted bad config %zu: %s", i, bad[i]);
		assert_non_null(strstr(tnd_err_msg(), "t"));
	}
}

static void booted_slot_from_cmdline(void **state)
{
	static const struct {
		const char *cmdline;
		int slot;
	} cases[] = {
	    {"root=/dev/x tandem.slot=A quiet\n", 0},
	    {"tandem.slot=B", 1},
	    {"tandem.slot=A tandem.slot=B", 1},
	    {"xtandem.slot=A", -1},
	    {"tandem.slot=C", -1},
	    {"", -1},
	    /* a board that used RAUC's U-Boot scheme passes rauc.slot= */
	    {"root=/dev/mmcblk0p2 rauc.slot=A rootwait", 0},
	    {"rauc.slot=A rauc.slot=B", 1},
	    {"rauc.slot=B tandem.slot=B", 1},
	    {"tandem.slot=A rauc.slot=B", -1}, /* they disagree: refused */
	    {"rauc.slot=a", -1},	       /* RAUC's boot names are exact */
	    {"rauc.slot=recovery", -1},
	    {"rauc.slot=", -1},
	    {"tandem.slot=C rauc.slot=A", -1},
	    {"xrauc.slot=A", -1},
	};
	char *dir = tu_mkdtemp(), *p = tu_path(dir, "cmdline");
	struct tnd_config cfg;

	(void)state;
	assert_int_equal(tnd_config_parse(&cfg, CONF_OK, "t"), 0);
	snprintf(cfg.cmdline, sizeof(cfg.cmdline), "%s", p);
	for (size_t i = 0; i < TND_ARRAY_SIZE(cases); i++) {
		int slot = -1;

		tu_write_file(p, cases[i].cmdline, strlen(cases[i].cmdline));
		if (cases[i].slot < 0) {
			assert_int_equal(tnd_booted_slot(&cfg, &slot), TND_E_SLOT);
		} else {
			assert_int_equal(tnd_booted_slot(&cfg, &slot), 0);
			assert_int_equal(slot, cases[i].slot);
		}
	}
	free(p);
	tu_rmdir(dir);
}

static void state_round_trip(void **state)
{
	char *dir = tu_mkdtemp(), *p = tu_path(dir, "state.json");
	struct tnd_state st, got;

	(void)state;
	assert_int_equal(tnd_state_load(&st, dir), 0); /* missing: empty */
	assert_int_equal(st.slot[0].state, TND_SLOT_UNKNOWN);
	st.slot[1].state = TND_SLOT_INSTALLED;
	strcpy(st.slot[1].version, "2.0");
	st.slot[1].has_sha256 = true;
	memset(st.slot[1].sha256, 0x5a, 32);
	st.slot[1].size = 12345;
	st.slot[1].security_version = 7;
	st.slot[1].updated = 1700000000;
	strcpy(st.last_install_result, "failed");
	strcpy(st.last_error_code, "E_SIGNATURE");
	strcpy(st.last_error, "bad \"signature\"\n");
	st.last_install_time = 1700000001;
	st.time_floor = 1700000002;
	assert_int_equal(tnd_state_save(&st, dir), 0);
	assert_int_equal(tnd_state_load(&got, dir), 0);
	assert_memory_equal(&got.slot[1], &st.slot[1], sizeof(st.slot[1]));
	assert_int_equal(got.time_floor, 1700000002);
	assert_string_equal(got.last_error, st.last_error);
	assert_int_equal(access(p, F_OK), 0);
	tu_write_file(p, "{garbage", 8);
	assert_int_equal(tnd_state_load(&got, dir), TND_E_STATE);
	/* a damaged anti-rollback floor fails closed (fuzz finding: 1e300 was
	 * an undefined conversion, read as 0 on x86-64) */
	tu_write_file(p, "{\"security_floor\":1e300}", 24);
	assert_int_equal(tnd_state_load(&got, dir), TND_E_STATE);
	tu_write_file(p, "{\"security_floor\":-1}", 21);
	assert_int_equal(tnd_state_load(&got, dir), TND_E_STATE);
	tu_write_file(p, "{\"security_floor\":2.5}", 22);
	assert_int_equal(tnd_state_load(&got, dir), TND_E_STATE);
	tu_write_file(p, "{\"time_floor\":\"yesterday\"}", 26);
	assert_int_equal(tnd_state_load(&got, dir), TND_E_STATE);
	tu_write_file(p, "{\"security_floor\":7}", 20);
	assert_int_equal(tnd_state_load(&got, dir), 0);
	assert_int_equal(got.security_floor, 7);
	free(p);
	tu_rmdir(dir);
}

static void slot_write_zero_and_read_back(void **state)
{
	char *dir = tu_mkdtemp(), *p = tu_path(dir, "slot");
	uint8_t data[8192], *got;
	struct tnd_slot_writer w;
	size_t len;

	(void)state;
	tu_fill_random(data, sizeof(data), 9);
	tu_write_file(p, "", 0);
	assert_int_equal(truncate(p, 1 << 20), 0);
	/* too small for the image */
	assert_int_equal(tnd_slot_open(&w, p, (1 << 20) + 1, 4096, 8192), TND_E_SLOT);
	assert_int_equal(tnd_slot_open(&w, p, 4 * 8192, 8192, 8192), 0);
	assert_int_equal(tnd_slot_write(&w, 0, data, 8192, tnd_crc32(data, 8192)), 0);
	assert_int_equal(tnd_slot_zero(&w, 8192, 16384), 0);
	assert_int_equal(tnd_slot_write(&w, 24576, data, 8192, tnd_crc32(data, 8192)), 0);
	assert_int_equal(tnd_slot_finish(&w), 0);
	assert_int_equal(w.verified, 4 * 8192);
	tnd_slot_close(&w);
	got = tu_read_file(p, &len);
	assert_int_equal(len, 1 << 20);
	assert_memory_equal(got, data, 8192);
	assert_true(tnd_is_zero(got + 8192, 16384));
	assert_memory_equal(got + 24576, data, 8192);
	free(got);
	free(p);
	tu_rmdir(dir);
}

/* A device that stores something else than it was given (modelled by a
 * second writer changing the range before it is read back) is caught. */
static void slot_read_back_catches_bad_storage(void **state)
{
	char *dir = tu_mkdtemp(), *p = tu_path(dir, "slot");
	uint8_t data[4096];
	struct tnd_slot_writer w;
	int fd;

	(void)state;
	tu_fill_random(data, sizeof(data), 10);
	tu_write_file(p, "", 0);
	assert_int_equal(truncate(p, 1 << 20), 0);
	assert_int_equal(tnd_slot_open(&w, p, 1 << 20, 4096, 1 << 20), 0);
	assert_int_equal(tnd_slot_write(&w, 0, data, 4096, tnd_crc32(data, 4096)), 0);
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "X", 1, 100), 1);
	close(fd);
	assert_int_equal(tnd_slot_finish(&w), TND_E_VERIFY);
	tnd_slot_close(&w);
	/* and a zero range that does not read as zeros */
	assert_int_equal(tnd_slot_open(&w, p, 1 << 20, 4096, 1 << 20), 0);
	assert_int_equal(tnd_slot_zero(&w, 0, 8192), 0);
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "X", 1, 5000), 1);
	close(fd);
	assert_int_equal(tnd_slot_finish(&w), TND_E_VERIFY);
	tnd_slot_close(&w);
	free(p);
	tu_rmdir(dir);
}

/* Read-back must see what the device holds, not what the page cache
 * holds. A loop device makes the two differ: once a write has reached
 * the backing file, changing the file directly leaves the loop device's
 * cached copy of the page as it was written. A read-back from the cache
 * would pass; one from the device finds the change. Needs root (losetup),
 * as make check has in CI. */
/* One round on the loop device: 8 KiB written through the slot writer,
 * synced to the backing file, the byte at 4000 changed there to `change`
 * (0: left alone), with the page kept mapped or not; the read-back's
 * verdict. */
static int device_round(const char *loop, const char *backing, const uint8_t data[8192],
			bool keep_mapped, char change)
{
	volatile uint8_t *m = MAP_FAILED;
	struct tnd_slot_writer w;
	int fd, ret;

	assert_int_equal(tnd_slot_open(&w, loop, 1 << 20, 8192, 1 << 20), 0);
	assert_int_equal(tnd_slot_write(&w, 0, data, 8192, tnd_crc32(data, 8192)), 0);
	fd = open(loop, O_RDONLY);
	assert_true(fd >= 0);
	if (keep_mapped) {
		m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
		assert_true(m != MAP_FAILED);
		assert_int_equal(m[4000], data[4000]); /* faulted in, kept */
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
	if (change) {
		fd = open(backing, O_WRONLY);
		assert_int_equal(pwrite(fd, &change, 1, 4000), 1);
		assert_int_equal(fsync(fd), 0);
		close(fd);
	}
	ret = tnd_slot_finish(&w);
	tnd_slot_close(&w);
	if (m != MAP_FAILED)
		munmap((void *)m, 8192);
	return ret;
}

static void slot_read_back_comes_from_the_device(void **state)
{
	char *dir = tu_mkdtemp(), *backing = tu_path(dir, "backing"), cmd[512], loop[64] = "";
	uint8_t data[8192];
	FILE *f;

	(void)state;
	if (geteuid() != 0)
		fail_msg("needs root for losetup (make check runs as root in CI)");
	tu_fill_random(data, sizeof(data), 11);
	tu_write_file(backing, "", 0);
	assert_int_equal(truncate(backing, 1 << 20), 0);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s", backing);
	assert_non_null(f = popen(cmd, "r"));
	assert_non_null(fgets(loop, sizeof(loop), f));
	assert_int_equal(pclose(f), 0);
	loop[strcspn(loop, "\n")] = 0;

	/* The cache dropped: plain reads must reach the device. */
	assert_int_equal(device_round(loop, backing, data, false, 'X'), TND_E_VERIFY);
	/* A page someone keeps mapped stays cached: then the verifier must
	 * read with O_DIRECT, and still find the change. */
	assert_int_equal(device_round(loop, backing, data, true, 'Y'), TND_E_VERIFY);
	/* Unchanged, the same steps pass: the failures above are the changes. */
	assert_int_equal(device_round(loop, backing, data, false, 0), 0);
	assert_int_equal(device_round(loop, backing, data, true, 0), 0);

	snprintf(cmd, sizeof(cmd), "losetup -d %s", loop);
	assert_int_equal(system(cmd), 0);
	free(backing);
	tu_rmdir(dir);
}

static void uboot_env(void **state)
{
	char *dir = tu_mkdtemp(), cmd[4 * PATH_MAX], *conf = tu_path(dir, "fw_env.config");
	char *txt = tu_path(dir, "env.txt"), *e1 = tu_path(dir, "e1"), *e2 = tu_path(dir, "e2");
	struct tnd_bootloader *bl;
	struct tnd_boot_state bs;
	struct tnd_config cfg;
	char order[16];

	(void)state;
	assert_int_equal(tnd_config_parse(&cfg, CONF_OK, "t"), 0);
	cfg.bootloader = TND_BL_UBOOT;
	snprintf(cfg.env_config, sizeof(cfg.env_config), "%s", conf);
	tu_write_file(txt, "BOOT_ORDER=A B\nBOOT_A_LEFT=2\nfoo=bar\n", 37);
	snprintf(cmd, sizeof(cmd),
		 "mkenvimage -r -s 0x2000 -o %s %s && cp %s %s && "
		 "printf '%s 0x0 0x2000\\n%s 0x0 0x2000\\n' > %s",
		 e1, txt, e1, e2, e1, e2, conf);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_non_null(bl);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	assert_int_equal(bs.norder, 2);
	assert_int_equal(bs.tries[0], 2);
	assert_int_equal(bs.tries[1], 3); /* missing: the configured default */
	assert_int_equal(tnd_bl_disable(bl, 1), 0);
	assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
	tnd_bl_close(bl);
	/* no floor yet: the variable is not written (a RAUC board's
	 * environment stays as it was) */
	snprintf(cmd, sizeof(cmd), "! fw_printenv -c %s | grep -q ^TANDEM_SECURITY_FLOOR=", conf);
	assert_int_equal(system(cmd), 0);
	/* reopened: what was stored, and only that */
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	tnd_boot_order_str(&bs, order, sizeof(order));
	assert_string_equal(order, "B A");
	assert_int_equal(bs.tries[0], 2);
	assert_int_equal(bs.tries[1], 3);
	tnd_bl_close(bl);
	/* several stores through one open context, from every starting copy:
	 * each must land (libubootenv alone gets this wrong, see bl_uboot.c) */
	for (int round = 0; round < 4; round++) {
		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		assert_int_equal(tnd_bl_disable(bl, round % 2), 0);
		assert_int_equal(tnd_bl_activate(bl, round % 2, 2), 0);
		assert_int_equal(tnd_bl_mark_good(bl, 1 - round % 2, 1, 0), 0);
		tnd_bl_close(bl);
		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		assert_int_equal(tnd_bl_read(bl, &bs), 0);
		tnd_bl_close(bl);
		assert_int_equal(bs.order[0], round % 2);
		assert_int_equal(bs.tries[round % 2], 2);
		assert_int_equal(bs.tries[1 - round % 2], 1);
		snprintf(cmd, sizeof(cmd), "fw_setenv -c %s BOOT_A_LEFT 3", conf);
		assert_int_equal(system(cmd), 0);
	}
	/* mark_bad: no tries, and last */
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_bad(bl, 1), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	tnd_bl_close(bl);
	assert_int_equal(bs.order[0], 0);
	assert_int_equal(bs.order[1], 1);
	assert_int_equal(bs.tries[1], 0);
	snprintf(cmd, sizeof(cmd), "fw_printenv -c %s foo | grep -qx foo=bar", conf);
	assert_int_equal(system(cmd), 0);
	/* the floor: raised with the store that confirms, never lowered, kept
	 * by the stores that do not name one */
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_good(bl, 0, 3, 5), 0);
	assert_int_equal(tnd_bl_activate(bl, 0, 3), 0);
	assert_int_equal(tnd_bl_mark_good(bl, 0, 3, 2), 0);
	assert_int_equal(tnd_bl_mark_bad(bl, 1), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0);
	tnd_bl_close(bl);
	assert_int_equal(bs.floor, 5);
	snprintf(cmd, sizeof(cmd),
		 "fw_printenv -c %s TANDEM_SECURITY_FLOOR | grep -qx TANDEM_SECURITY_FLOOR=5",
		 conf);
	assert_int_equal(system(cmd), 0);
	/* identities: set, kept by mark_bad and activate, forgotten by the
	 * store that takes the slot out before it is written */
	{
		struct tnd_slot_id id = {.kind = TND_ID_VALID, .security_version = 7};

		memset(id.sha256, 0xab, sizeof(id.sha256));
		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		assert_int_equal(tnd_bl_set_identity(bl, 1, &id), 0);
		assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
		assert_int_equal(tnd_bl_mark_bad(bl, 1), 0);
		assert_int_equal(tnd_bl_read(bl, &bs), 0);
		tnd_bl_close(bl);
		assert_int_equal(bs.id[1].kind, TND_ID_VALID);
		assert_int_equal(bs.id[0].kind, TND_ID_ERASED); /* the rounds above disabled A */
		assert_int_equal(bs.id[1].security_version, 7);
		assert_memory_equal(bs.id[1].sha256, id.sha256, sizeof(id.sha256));
		snprintf(cmd, sizeof(cmd),
			 "fw_printenv -c %s -n TANDEM_B_IMAGE | grep -qx 7:abababab.*ab", conf);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		assert_int_equal(tnd_bl_disable(bl, 1), 0);
		assert_int_equal(tnd_bl_read(bl, &bs), 0);
		tnd_bl_close(bl);
		assert_int_equal(bs.id[1].kind, TND_ID_ERASED);
		snprintf(cmd, sizeof(cmd), "fw_printenv -c %s | grep -qx TANDEM_B_IMAGE=erased",
			 conf);
		assert_int_equal(system(cmd), 0);
		/* a damaged identity fails closed, as a damaged floor does */
		static const char *const bad[] = {"7", "7:abc", "x:" /* 64 hex follow */,
						  "4294967296:"};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			bool full = bad[i][strlen(bad[i]) - 1] == ':';

			snprintf(
			    cmd, sizeof(cmd), "fw_setenv -c %s TANDEM_A_IMAGE '%s%s'", conf, bad[i],
			    full
				? "abababababababababababababababababababababababababababababababab"
				: "");
			assert_int_equal(system(cmd), 0);
			assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
			assert_int_equal(tnd_bl_read(bl, &bs), TND_E_BOOTLOADER);
			tnd_bl_close(bl);
		}
		snprintf(cmd, sizeof(cmd), "fw_setenv -c %s TANDEM_A_IMAGE", conf);
		assert_int_equal(system(cmd), 0);
	}
	/* a damaged floor fails closed: the environment is refused */
	snprintf(cmd, sizeof(cmd), "fw_setenv -c %s TANDEM_SECURITY_FLOOR 5x", conf);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), TND_E_BOOTLOADER);
	tnd_bl_close(bl);
	snprintf(cmd, sizeof(cmd), "fw_setenv -c %s TANDEM_SECURITY_FLOOR 5", conf);
	assert_int_equal(system(cmd), 0);
	/* a garbage counter is an error, not a guess */
	snprintf(cmd, sizeof(cmd), "fw_setenv -c %s BOOT_A_LEFT x", conf);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), TND_E_BOOTLOADER);
	tnd_bl_close(bl);
	/* both copies destroyed: refused */
	snprintf(cmd, sizeof(cmd),
		 "dd if=/dev/urandom of=%s bs=8192 count=1 conv=notrunc 2>/dev/null"
		 " && cp %s %s",
		 e1, e1, e2);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tnd_bl_open(&bl, &cfg), TND_E_BOOTLOADER);
	free(conf);
	free(txt);
	free(e1);
	free(e2);
	tu_rmdir(dir);
}

/* A redundant environment of `text` (name=value lines) in dir, read and
 * written through libubootenv by cfg. */
static void rauc_env(const char *dir, struct tnd_config *cfg, const char *text)
{
	char cmd[4 * PATH_MAX], *txt = tu_path(dir, "env.txt");

	tu_write_file(txt, text, strlen(text));
	snprintf(cmd, sizeof(cmd),
		 "cd %s && mkenvimage -r -s 0x2000 -o e1 env.txt && cp e1 e2 && "
		 "printf '%s/e1 0x0 0x2000\\n%s/e2 0x0 0x2000\\n' > fw_env.config",
		 dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cfg->env_config, sizeof(cfg->env_config), "%s/fw_env.config", dir);
	free(txt);
}

/* fw_printenv's whole view of the environment, sorted, one line each. */
static char *env_dump(const char *dir)
{
	char cmd[2 * PATH_MAX], *out = calloc(1, 4096);
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "fw_printenv -c %s/fw_env.config | LC_ALL=C sort", dir);
	assert_non_null(out);
	assert_non_null(f = popen(cmd, "r"));
	n = fread(out, 1, 4095, f);
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	return out;
}

/*
 * The states RAUC's U-Boot scheme leaves (its documented behaviour: the
 * counters in hexadecimal, as its "%x" and U-Boot's setexpr write them;
 * mark-bad removes a slot from BOOT_ORDER; an empty or unset variable is
 * the script's default), read as its boot script reads them, and written
 * back changing only what Tandem changes.
 */
static void uboot_env_rauc_states(void **state)
{
	static const struct {
		const char *env;
		const char *order; /* as read; NULL: refused */
		unsigned a, b;
	} reads[] = {
	    {"BOOT_ORDER=A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n", "A", 3, 0},
	    {"BOOT_ORDER=B\nBOOT_A_LEFT=0\nBOOT_B_LEFT=3\n", "B", 0, 3},
	    {"BOOT_ORDER=\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n", "A B", 3, 3},
	    {"BOOT_A_LEFT=1\n", "A B", 1, 5}, /* unset: the default (boot_tries) */
	    {"BOOT_ORDER=B A\nBOOT_A_LEFT=a\nBOOT_B_LEFT=0\n", "B A", 10, 0},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT=f\nBOOT_B_LEFT=10\n", "A B", 15, 16},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT=\nBOOT_B_LEFT=0x3\n", "A B", 5, 3},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT=A\nBOOT_B_LEFT=09\n", "A B", 10, 9},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT=-1\n", NULL, 0, 0},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT=3x\n", NULL, 0, 0},
	    {"BOOT_ORDER=A B\nBOOT_A_LEFT= 2\n", NULL, 0, 0},
	    {"BOOT_ORDER=A B\nBOOT_B_LEFT=g\n", NULL, 0, 0},
	    {"BOOT_ORDER=A B\nBOOT_B_LEFT=0x\n", NULL, 0, 0},
	    {"BOOT_ORDER=A B\nBOOT_B_LEFT=123456789\n", NULL, 0, 0},
	};
	char *dir = tu_mkdtemp(), *before, *after, order[16];
	struct tnd_bootloader *bl;
	struct tnd_boot_state bs;
	struct tnd_config cfg;

	(void)state;
	assert_int_equal(tnd_config_parse(&cfg, CONF_OK, "t"), 0);
	cfg.bootloader = TND_BL_UBOOT;
	cfg.boot_tries = 5;
	for (size_t i = 0; i < TND_ARRAY_SIZE(reads); i++) {
		rauc_env(dir, &cfg, reads[i].env);
		/* (libubootenv locks the environment while a context is open:
		 * fw_printenv runs only with none) */
		before = env_dump(dir);
		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		if (!reads[i].order) {
			assert_int_equal(tnd_bl_read(bl, &bs), TND_E_BOOTLOADER);
			assert_non_null(strstr(tnd_err_msg(), "is not a count of boot tries"));
			assert_int_equal(tnd_bl_mark_good(bl, 0, 3, 0), TND_E_BOOTLOADER);
		} else {
			assert_int_equal(tnd_bl_read(bl, &bs), 0);
			tnd_boot_order_str(&bs, order, sizeof(order));
			assert_string_equal(order, reads[i].order);
			assert_int_equal(bs.tries[0], reads[i].a);
			assert_int_equal(bs.tries[1], reads[i].b);
		}
		tnd_bl_close(bl);
		if (!reads[i].order) { /* refused, and nothing written */
			after = env_dump(dir);
			assert_string_equal(before, after);
			free(after);
		}
		free(before);
	}

	/* RAUC marked B bad (removed it); confirm on A: only A's counter
	 * changes, the order stays as RAUC left it */
	rauc_env(dir, &cfg, "BOOT_ORDER=A\nBOOT_A_LEFT=a\nBOOT_B_LEFT=0\nbootcmd=run x\n");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_good(bl, 0, 3, 0), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(after, "BOOT_A_LEFT=3\nBOOT_B_LEFT=0\nBOOT_ORDER=A\nbootcmd=run x\n");
	free(after);
	/* an install into B: out of reach already (not in the order, no
	 * tries), so only its identity is erased; then activated */
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_disable(bl, 1), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(
	    after,
	    "BOOT_A_LEFT=3\nBOOT_B_LEFT=0\nBOOT_ORDER=A\nTANDEM_B_IMAGE=erased\nbootcmd=run x\n");
	free(after);
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(
	    after,
	    "BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=B A\nTANDEM_B_IMAGE=erased\nbootcmd=run x\n");
	free(after);

	/* a counter Tandem does not change keeps RAUC's spelling */
	rauc_env(dir, &cfg, "BOOT_ORDER=B A\nBOOT_A_LEFT=a\nBOOT_B_LEFT=2\n");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_good(bl, 1, 3, 0), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(after, "BOOT_A_LEFT=a\nBOOT_B_LEFT=3\nBOOT_ORDER=B A\n");
	free(after);
	/* nothing to change: nothing stored (the files stay byte for byte) */
	{
		char *e1 = tu_path(dir, "e1"), *e2 = tu_path(dir, "e2");
		size_t n1, n2, m1, m2;
		uint8_t *b1 = tu_read_file(e1, &n1), *b2 = tu_read_file(e2, &n2), *c1, *c2;

		assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
		assert_int_equal(tnd_bl_read(bl, &bs), 0);
		assert_int_equal(tnd_bl_write(bl, &bs), 0);
		tnd_bl_close(bl);
		c1 = tu_read_file(e1, &m1);
		c2 = tu_read_file(e2, &m2);
		assert_int_equal(n1, m1);
		assert_int_equal(n2, m2);
		assert_memory_equal(b1, c1, n1);
		assert_memory_equal(b2, c2, n2);
		free(b1), free(b2), free(c1), free(c2), free(e1), free(e2);
	}

	/* A alone in the order, marked bad: both scripts would reset the
	 * counters and boot A again, so B goes first */
	rauc_env(dir, &cfg, "BOOT_ORDER=A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=0\n");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_bad(bl, 0), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(after, "BOOT_A_LEFT=0\nBOOT_B_LEFT=0\nBOOT_ORDER=B A\n");
	free(after);
	/* B alone, A taken out: already so, nothing written */
	rauc_env(dir, &cfg, "BOOT_ORDER=B\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\n");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_bad(bl, 0), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(after, "BOOT_A_LEFT=0\nBOOT_B_LEFT=2\nBOOT_ORDER=B\n");
	free(after);
	/* an empty order is the scripts' default, and written out as such by
	 * the first store */
	rauc_env(dir, &cfg, "BOOT_ORDER=\nBOOT_A_LEFT=2\nBOOT_B_LEFT=3\n");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_good(bl, 0, 3, 0), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	assert_string_equal(after, "BOOT_A_LEFT=3\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n");
	free(after);
	tu_rmdir(dir);
}

/* fw_env.config in dir naming one copy, dir/uboot.env, of `size`. */
static void whole_env_config(const char *dir, struct tnd_config *cfg, const char *size)
{
	char cmd[2 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "printf '%s/uboot.env 0x0 %s\\n' >%s/fw_env.config", dir, size,
		 dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cfg->env_config, sizeof(cfg->env_config), "%s/fw_env.config", dir);
}

static bool file_is(const char *path, const uint8_t *want, size_t n)
{
	size_t got;
	uint8_t *b = tu_read_file(path, &got);
	bool same = got == n && !memcmp(b, want, n);

	free(b);
	return same;
}

/*
 * U-Boot's whole environment in one file (a RAUC board's uboot.env on its
 * FAT partition): Tandem's stores keep every other variable, and what
 * libubootenv cannot carry over whole is refused before anything is
 * written: an environment with .flags, and, for provisioning, a place
 * with no valid copy that is not blank (a size other than U-Boot's).
 */
static void uboot_env_whole(void **state)
{
	static const char env[] = "arch=arm\nbaudrate=115200\nbootcmd=run distro_bootcmd; reset\n"
				  "bootdelay=2\nethaddr=02:00:00:00:00:01\n"
				  "fdtfile=board.dtb\nloadaddr=0x40200000\nvar=a=b\n";
	char *dir = tu_mkdtemp(), cmd[4 * PATH_MAX], *envf = tu_path(dir, "uboot.env"), *after;
	char *txt = tu_path(dir, "env.txt");
	struct tnd_bootloader *bl;
	struct tnd_boot_state bs;
	struct tnd_config cfg;
	uint8_t *img;
	size_t n;
	bool blank;

	(void)state;
	assert_int_equal(tnd_config_parse(&cfg, CONF_OK, "t"), 0);
	cfg.bootloader = TND_BL_UBOOT;
	tu_write_file(txt, env, strlen(env));
	snprintf(cmd, sizeof(cmd), "cd %s && mkenvimage -s 0x20000 -o uboot.env env.txt", dir);
	assert_int_equal(system(cmd), 0);
	whole_env_config(dir, &cfg, "0x20000");
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_mark_bad(bl, 1), 0);
	assert_int_equal(tnd_bl_activate(bl, 1, 3), 0);
	tnd_bl_close(bl);
	after = env_dump(dir);
	/* A's counter stays the script's default: nobody set it */
	assert_string_equal(after, "BOOT_B_LEFT=3\nBOOT_ORDER=B A\n"
				   "arch=arm\nbaudrate=115200\nbootcmd=run distro_bootcmd; reset\n"
				   "bootdelay=2\nethaddr=02:00:00:00:00:01\n"
				   "fdtfile=board.dtb\nloadaddr=0x40200000\nvar=a=b\n");
	free(after);

	/* fw_env.config says 0x4000 where U-Boot's environment is 0x20000: no
	 * valid copy there. Refused, and provisioning does not start a new
	 * environment over it. */
	img = tu_read_file(envf, &n);
	whole_env_config(dir, &cfg, "0x4000");
	assert_int_equal(tnd_bl_open(&bl, &cfg), TND_E_BOOTLOADER);
	assert_int_equal(tnd_bl_open_init(&bl, &cfg, NULL, &blank), TND_E_BOOTLOADER);
	assert_non_null(strstr(tnd_err_msg(), "none is blank"));
	assert_null(bl);
	assert_true(file_is(envf, img, n));
	free(img);
	/* a blank place (zeros, or erased flash) is started afresh */
	for (int fill = 0; fill <= 0xff; fill += 0xff) {
		snprintf(cmd, sizeof(cmd), "head -c 131072 /dev/zero | tr '\\0' '\\%o' >%s",
			 (unsigned)fill, envf);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(tnd_bl_open_init(&bl, &cfg, NULL, &blank), 0);
		assert_true(blank);
		tnd_bl_close(bl);
	}

	/* .flags: libubootenv 0.3.2 would keep only its first entry */
	whole_env_config(dir, &cfg, "0x20000");
	tu_write_file(txt, "bootcmd=boot\n.flags=ethaddr:mo,serverip:io\n", 42);
	snprintf(cmd, sizeof(cmd), "cd %s && mkenvimage -s 0x20000 -o uboot.env env.txt", dir);
	assert_int_equal(system(cmd), 0);
	img = tu_read_file(envf, &n);
	assert_int_equal(tnd_bl_open(&bl, &cfg), 0);
	assert_int_equal(tnd_bl_read(bl, &bs), 0); /* reading is fine */
	assert_int_equal(tnd_bl_activate(bl, 1, 3), TND_E_BOOTLOADER);
	assert_non_null(strstr(tnd_err_msg(), ".flags"));
	tnd_bl_close(bl);
	assert_true(file_is(envf, img, n));
	free(img);
	free(envf);
	free(txt);
	tu_rmdir(dir);
}

static void boot_order_parse(void **state)
{
	struct tnd_boot_state bs;

	(void)state;
	assert_int_equal(tnd_boot_order_parse(&bs, "B"), 0);
	assert_int_equal(bs.norder, 1);
	assert_int_equal(tnd_boot_order_parse(&bs, ""), 0);
	assert_int_equal(bs.norder, 0);
	assert_int_equal(tnd_boot_order_parse(&bs, "A A"), TND_E_BOOTLOADER);
	assert_int_equal(tnd_boot_order_parse(&bs, "A B C"), TND_E_BOOTLOADER);
	assert_int_equal(tnd_boot_order_parse(&bs, "X"), TND_E_BOOTLOADER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(config_defaults_and_errors),
	    cmocka_unit_test(booted_slot_from_cmdline),
	    cmocka_unit_test(state_round_trip),
	    cmocka_unit_test(slot_write_zero_and_read_back),
	    cmocka_unit_test(slot_read_back_catches_bad_storage),
	    cmocka_unit_test(slot_read_back_comes_from_the_device),
	    cmocka_unit_test(uboot_env),
	    cmocka_unit_test(uboot_env_rauc_states),
	    cmocka_unit_test(uboot_env_whole),
	    cmocka_unit_test(boot_order_parse),
	};
	return cmocka_run_group_tests_name("device", tests, NULL, NULL);
}
