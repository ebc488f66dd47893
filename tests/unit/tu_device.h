/* SPDX-License-Identifier: MIT */
/*
 * A simulated device for the module tests, as tests/lib/simdev.sh makes
 * one for the shell tests: two file slots, a keyring with its signing
 * key, a state directory, a kernel command line (tandem.slot=A), a boot
 * ID and, with U-Boot, a real redundant environment (mkenvimage) read and
 * written by libubootenv. Header-only: each test is one binary.
 */
#ifndef TANDEM_TU_DEVICE_H
#define TANDEM_TU_DEVICE_H

#include "testutil.h"

#include "config.h"
#include "image_tools.h"
#include "sign.h"

struct tu_dev {
	char *dir;
	char path[8][PATH_MAX]; /* scratch for tu_dev_file */
	struct tnd_config cfg;
};

static inline const char *tu_dev_file(struct tu_dev *d, int i, const char *name)
{
	snprintf(d->path[i], PATH_MAX, "%s/%s", d->dir, name);
	return d->path[i];
}

/* A device with slots of slot_size bytes; uboot: a real environment
 * ("BOOT_ORDER=A B", 3 tries each), else bootloader "none". */
static inline void tu_dev_new(struct tu_dev *d, uint64_t slot_size, bool uboot)
{
	char json[8 * PATH_MAX], path[PATH_MAX], cmd[8 * PATH_MAX];
	FILE *f;

	memset(d, 0, sizeof(*d));
	d->dir = tu_mkdtemp();
	snprintf(path, sizeof(path), "%s/keys", d->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/state", d->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(tnd_keygen(tu_dev_file(d, 0, "key.pem"), tu_dev_file(d, 1, "keys/k.pem")),
			 0);
	for (int i = 0; i < 2; i++) {
		f = fopen(tu_dev_file(d, 0, i ? "slotB.img" : "slotA.img"), "wb");
		assert_non_null(f);
		assert_int_equal(ftruncate(fileno(f), (off_t)slot_size), 0);
		fclose(f);
	}
	tu_write_file(tu_dev_file(d, 0, "cmdline"), "tandem.slot=A\n", 14);
	tu_write_file(tu_dev_file(d, 0, "boot_id"), "boot-1\n", 7);
	if (uboot) {
		tu_write_file(
		    tu_dev_file(d, 0, "env.txt"),
		    "bootcmd=run tandem_boot\nBOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n", 66);
		snprintf(
		    cmd, sizeof(cmd),
		    "mkenvimage -r -s 0x4000 -o %1$s/env1 %1$s/env.txt && "
		    "cp %1$s/env1 %1$s/env2 && "
		    "printf '%1$s/env1 0x0 0x4000\\n%1$s/env2 0x0 0x4000\\n' >%1$s/fw_env.config",
		    d->dir);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(json, sizeof(json),
		 "{\"compatible\":\"sim\",\"keyring\":\"%1$s/keys\",\"state_dir\":\"%1$s/state\","
		 "\"cmdline\":\"%1$s/cmdline\",\"boot_id\":\"%1$s/boot_id\","
		 "\"health_dir\":\"%1$s/health.d\",\"slots\":{\"A\":\"%1$s/slotA.img\","
		 "\"B\":\"%1$s/slotB.img\"},\"bootloader\":%2$s}",
		 d->dir,
		 uboot ? "{\"type\":\"uboot\",\"env_config\":\"ENV\"}" : "{\"type\":\"none\"}");
	assert_int_equal(tnd_config_parse(&d->cfg, json, "tu_dev"), 0);
	snprintf(d->cfg.env_config, sizeof(d->cfg.env_config), "%s/fw_env.config", d->dir);
}

static inline void tu_dev_free(struct tu_dev *d)
{
	tu_rmdir(d->dir);
}

/* Writes a deterministic image of size bytes (random, zeros, text). */
static inline void tu_image(const char *path, size_t size, uint64_t seed)
{
	uint8_t *buf = calloc(1, size);

	assert_non_null(buf);
	tu_fill_random(buf, size / 2, seed);
	for (size_t i = size * 3 / 4; i < size; i++)
		buf[i] = (uint8_t) "tandem module test\n"[i % 19];
	tu_write_file(path, buf, size);
	free(buf);
}

/* Builds a bundle of image (a delta from base when not NULL), signed by
 * the device's key, chunk_size 64 KiB. */
static inline void tu_bundle(struct tu_dev *d, const char *out, const char *image, const char *base,
			     const char *version, uint64_t security_version)
{
	struct tnd_build_opts o = {
	    .image_path = image,
	    .base_path = base,
	    .out_path = out,
	    .nkeys = 1,
	    .compatible = "sim",
	    .version = version,
	    .security_version = security_version,
	    .chunk_size = 65536,
	    .level = 1,
	};

	o.key_paths[0] = tu_dev_file(d, 7, "key.pem");
	assert_int_equal(tnd_build_bundle(&o), 0);
}

/* Whether the first n bytes of two files are equal. */
static inline bool tu_same_prefix(const char *a, const char *b, size_t n)
{
	size_t la, lb;
	uint8_t *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
	bool same = la >= n && lb >= n && memcmp(x, y, n) == 0;

	free(x);
	free(y);
	return same;
}

#endif
