// SPDX-License-Identifier: MIT
/*
 * U-Boot backend: BOOT_ORDER, BOOT_A_LEFT and BOOT_B_LEFT in the U-Boot
 * environment (RAUC's names, docs/boot-protocol.md), Tandem's copy of the
 * anti-rollback floor, TANDEM_SECURITY_FLOOR, and each slot's verified
 * identity, TANDEM_A_IMAGE and TANDEM_B_IMAGE ("<security version>:<image
 * SHA-256>"), through libubootenv and fw_env.config. libubootenv writes the inactive copy of a
 * redundant environment and flips the flag last, so each libuboot_env_store() is one atomic change
 * of all of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libuboot.h>

#include "bootloader.h"
#include "chunk.h"
#include "log.h"
#include "util.h"

#define FLOOR_VAR "TANDEM_SECURITY_FLOOR"

struct uboot_bl {
	struct tnd_bootloader base; /* first: the ops see a struct tnd_bootloader */
	struct uboot_ctx *ctx;
};

/*
 * The environment's bytes as fw_env.config places them, read beside
 * libubootenv, for what its API does not tell: whether a place with no
 * valid copy is blank (a new board) or holds something (a damaged
 * environment, or a size in fw_env.config other than U-Boot's), and
 * whether the current copy holds a `.flags` variable. On a board that keeps
 * U-Boot's whole environment there (bootcmd and the rest), writing over
 * either would lose variables that Tandem does not own.
 */
#define ENV_MAX (16u << 20) /* larger is not a U-Boot environment */

struct env_raw {
	int copies;	 /* 1 or 2 (redundant: CRC, flags byte, data) */
	size_t size;	 /* of each copy */
	uint8_t *buf[2]; /* NULL when the place could not be read */
	bool crc_ok[2];
	int current; /* -1: no valid copy */
};

static void env_raw_free(struct env_raw *r)
{
	free(r->buf[0]);
	free(r->buf[1]);
}

/*
 * Returns 0 with r filled, a positive value when fw_env.config holds a
 * place these checks do not read the way libubootenv does (a negative
 * offset, counted from a device's end; an MTD or UBI device, whose bad
 * blocks and volumes libubootenv handles; a YAML configuration): the
 * checks then step aside and libubootenv's own behaviour stands, as
 * before them. A negative value is an error.
 */
static int env_raw_read(const char *config, struct env_raw *r)
{
	char line[PATH_MAX + 128], dev[PATH_MAX];
	long long off, size;
	FILE *f = fopen(config, "r");
	int ret = 0;

	memset(r, 0, sizeof(*r));
	r->current = -1;
	if (!f)
		return tnd_err_errno(TND_E_BOOTLOADER, errno, "cannot read %s", config);
	while (!ret && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		struct stat sb;
		int fd;

		if (*p == '#' || *p == '\n' || !*p)
			continue;
		if (r->copies == 2 || sscanf(p, "%4095s %lli %lli", dev, &off, &size) != 3 ||
		    off < 0 || size < 8 || size > ENV_MAX ||
		    (r->copies && (size_t)size != r->size)) {
			tnd_debug("%s: \"%.*s\" is not a place the raw checks read: skipped",
				  config, (int)strcspn(p, "\n"), p);
			ret = 1;
			break;
		}
		r->size = (size_t)size;
		if (!(r->buf[r->copies] = malloc(r->size))) {
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
			break;
		}
		fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 &&
		    (fstat(fd, &sb) < 0 || !(S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode)))) {
			tnd_debug("%s: %s is neither a file nor a block device: raw checks skipped",
				  config, dev);
			close(fd);
			ret = 1;
			break;
		}
		if (fd < 0 || pread(fd, r->buf[r->copies], r->size, (off_t)off) != (ssize_t)size) {
			free(r->buf[r->copies]);
			r->buf[r->copies] = NULL; /* libubootenv reports it */
		}
		if (fd >= 0)
			close(fd);
		r->copies++;
	}
	fclose(f);
	if (ret) {
		env_raw_free(r);
		memset(r, 0, sizeof(*r));
		r->current = -1;
		return ret;
	}
	for (int i = 0; i < r->copies; i++) {
		size_t data = r->copies == 2 ? 5 : 4;
		uint8_t *b = r->buf[i];

		r->crc_ok[i] =
		    b && tnd_crc32(b + data, r->size - data) ==
			     (uint32_t)(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24);
	}
	/* libubootenv's choice: the valid copy; of two, the higher sequence
	 * byte, 0 after 255; equal: the first */
	if (r->crc_ok[0] && r->crc_ok[1]) {
		uint8_t f0 = r->buf[0][4], f1 = r->buf[1][4];

		r->current = (f1 > f0 && !(f1 == 0xff && f0 == 0)) || (f0 == 0xff && f1 == 0);
	} else if (r->crc_ok[0] || r->crc_ok[1]) {
		r->current = r->crc_ok[1];
	}
	return 0;
}

/*
 * Provisioning found no valid copy. It may start a new environment only
 * where nothing is lost by it: a copy is blank (all 0x00, or all 0xff as
 * erased flash has it). libubootenv writes one copy per store, so a first
 * store that was cut leaves the other copy blank and the next run still
 * starts afresh; a whole U-Boot environment that fw_env.config gives the
 * wrong size, or a damaged one, leaves none blank and is refused.
 */
static int check_blank(const char *config)
{
	struct env_raw r;
	bool blank = false;
	int ret = env_raw_read(config, &r);

	for (int i = 0; !ret && i < r.copies; i++) {
		uint8_t *b = r.buf[i];
		size_t n = 0;

		while (b && n < r.size && b[n] == b[0])
			n++;
		blank |= b && n == r.size && (b[0] == 0 || b[0] == 0xff);
	}
	if (!ret && !blank)
		ret = tnd_err_set(
		    TND_E_BOOTLOADER,
		    "no copy of the U-Boot environment at the places %s names is valid, and "
		    "none is blank: refusing to start a new environment over them (a size there "
		    "other than U-Boot's CONFIG_ENV_SIZE, or a damaged environment, would lose "
		    "bootcmd and every other variable)",
		    config);
	env_raw_free(&r);
	return ret < 0 ? ret : 0;
}

/* libubootenv 0.3.2 rewrites `.flags` (U-Boot's variable attributes) at
 * every store from what it parsed, and parses only its first entry: the
 * rest would be lost. An environment that has one is not written. */
static int check_no_flags(const char *config)
{
	struct env_raw r;
	int ret = env_raw_read(config, &r);

	if (!ret && r.current >= 0) {
		size_t data = r.copies == 2 ? 5 : 4;
		const char *p = (const char *)r.buf[r.current] + data,
			   *end = (const char *)r.buf[r.current] + r.size;

		while (p < end && *p) {
			size_t n = strnlen(p, (size_t)(end - p));

			if (n >= 7 && !memcmp(p, ".flags=", 7)) {
				ret = tnd_err_set(
				    TND_E_BOOTLOADER,
				    "the U-Boot environment at %s holds a .flags variable, which "
				    "libubootenv 0.3.2 rewrites partly at every store: refusing "
				    "to write it (nothing was changed)",
				    config);
				break;
			}
			p += n + 1;
		}
	}
	env_raw_free(&r);
	return ret < 0 ? ret : 0;
}

static int uboot_open_any(struct tnd_bootloader **out, const struct tnd_config *cfg, bool init,
			  const char *defaults, bool *blank)
{
	struct uboot_bl *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	u->base.ops = &tnd_bl_uboot_ops;
	u->base.cfg = cfg;
	if (libuboot_initialize(&u->ctx, NULL) < 0) {
		free(u);
		return tnd_err_set(TND_E_NOMEM, "cannot initialise libubootenv");
	}
	r = libuboot_read_config(u->ctx, cfg->env_config);
	if (r < 0) {
		r = tnd_err_errno(TND_E_BOOTLOADER, -r, "cannot read %s", cfg->env_config);
		goto fail;
	}
	r = libuboot_open(u->ctx);
	/* -ENODATA: the devices opened, but no copy has a valid CRC (a new
	 * board). libubootenv keeps the context usable: a default set loaded
	 * now is what its first store writes, as fw_setenv -f does. */
	if (r == -ENODATA && init) {
		if ((r = check_blank(cfg->env_config)))
			goto fail;
		*blank = true;
		r = libuboot_load_file(u->ctx, defaults ? defaults : "/dev/null");
		if (r < 0) {
			r = tnd_err_errno(TND_E_BOOTLOADER, -r,
					  "cannot read the default environment %s",
					  defaults ? defaults : "/dev/null");
			goto fail;
		}
	} else if (r < 0) {
		r = tnd_err_errno(TND_E_BOOTLOADER, -r,
				  "no valid U-Boot environment at the places %s names",
				  cfg->env_config);
		goto fail;
	}
	*out = &u->base;
	return 0;
fail:
	/* libuboot_open() takes the machine-wide lock (/var/lock/fw_printenv.lock)
	 * even when it fails: release it, or a daemon that met a bad
	 * environment once would stall every fw_printenv and health check */
	libuboot_close(u->ctx);
	libuboot_exit(u->ctx);
	free(u);
	return r;
}

static int uboot_open(struct tnd_bootloader **out, const struct tnd_config *cfg)
{
	return uboot_open_any(out, cfg, false, NULL, NULL);
}

static int uboot_open_init(struct tnd_bootloader **out, const struct tnd_config *cfg,
			   const char *defaults, bool *blank)
{
	return uboot_open_any(out, cfg, true, defaults, blank);
}

static void uboot_close(struct tnd_bootloader *bl)
{
	struct uboot_bl *u = (struct uboot_bl *)bl;

	libuboot_close(u->ctx);
	libuboot_exit(u->ctx);
	free(u);
}

/* TANDEM_X_IMAGE: "<security version>:<64 hex digits>", or "erased";
 * absent: unknown; anything else refuses the environment, as a damaged
 * floor does. */
static int read_identity(struct uboot_bl *u, int slot, struct tnd_slot_id *id)
{
	char name[24], *v;
	int ret;

	snprintf(name, sizeof(name), "TANDEM_%s_IMAGE", tnd_slot_name(slot));
	v = libuboot_get_env(u->ctx, name);
	ret = tnd_slot_id_parse(name, v, id);
	free(v);
	return ret;
}

/* Unset, or set to nothing: both boot scripts (Tandem's and RAUC's) use
 * their default then, and so does the updater. */
static char *get_set(struct uboot_bl *u, const char *name)
{
	char *v = libuboot_get_env(u->ctx, name);

	if (v && !*v) {
		free(v);
		v = NULL;
	}
	return v;
}

/*
 * A boot counter as the environment holds it: hexadecimal, optionally with
 * 0x, because that is what RAUC writes ("%x") and what U-Boot's setexpr
 * writes when RAUC's boot script counts down ("a" is ten tries). Tandem
 * itself writes only 0 to 9 (boot_tries), which every reader takes alike:
 * setexpr, itest, and `test -gt`, which reads decimal (and takes "a" for
 * 0: docs/boot-protocol.md, "Migrating from RAUC"). Anything else (a sign,
 * a blank, trailing text) is refused: a guess could make a bad slot boot.
 */
static int parse_count(const char *v, unsigned *n)
{
	const char *p = v;
	unsigned long x = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!*p || strlen(p) > 8 || strspn(p, "0123456789abcdefABCDEF") != strlen(p))
		return -1;
	x = strtoul(p, NULL, 16);
	*n = (unsigned)x;
	return 0;
}

static int read_count(struct uboot_bl *u, int slot, unsigned *n, bool *set)
{
	char name[16], *v;
	int ret = 0;

	snprintf(name, sizeof(name), "BOOT_%s_LEFT", tnd_slot_name(slot));
	if (!(v = get_set(u, name))) {
		*n = u->base.cfg->boot_tries;
		*set = false;
		return 0;
	}
	*set = true;
	if (parse_count(v, n))
		ret = tnd_err_set(TND_E_BOOTLOADER,
				  "%s=\"%s\" is not a count of boot tries (hexadecimal digits, as "
				  "RAUC and U-Boot's setexpr write it)",
				  name, v);
	free(v);
	return ret;
}

static int uboot_read(struct tnd_bootloader *bl, struct tnd_boot_state *bs)
{
	struct uboot_bl *u = (struct uboot_bl *)bl;
	char *order = get_set(u, "BOOT_ORDER");
	int ret = 0;

	memset(bs, 0, sizeof(*bs));
	/* A fresh environment without our variables boots as the script's
	 * defaults would: order "A B", full tries. A slot missing from the
	 * order (RAUC's mark-bad removes it) is never booted by either
	 * script, and is read so. */
	ret = tnd_boot_order_parse(bs, order ? order : "A B");
	free(order);
	for (int i = 0; !ret && i < TND_NSLOTS; i++)
		ret = read_count(u, i, &bs->tries[i], &bs->tries_set[i]);
	if (!ret) {
		char *v = libuboot_get_env(u->ctx, FLOOR_VAR);

		/* A damaged floor fails closed: the environment is refused,
		 * never read as "no floor" (docs/security.md). */
		if (v && (tnd_parse_u64(v, &bs->floor) || bs->floor > UINT32_MAX))
			ret = tnd_err_set(TND_E_BOOTLOADER,
					  FLOOR_VAR "=\"%s\" is not a security version", v);
		free(v);
	}
	for (int i = 0; !ret && i < TND_NSLOTS; i++)
		ret = read_identity(u, i, &bs->id[i]);
	return ret;
}

/* Sets name to want (NULL: unset) unless it already holds exactly that;
 * *changed tells whether anything was set. */
static int set_changed(struct uboot_bl *u, const char *name, const char *want, bool *changed)
{
	char *cur = libuboot_get_env(u->ctx, name);
	bool same = cur ? want && !strcmp(cur, want) : !want;

	free(cur);
	if (same)
		return 0;
	*changed = true;
	return libuboot_set_env(u->ctx, name, want);
}

static bool same_order(const char *text, const struct tnd_boot_state *bs)
{
	struct tnd_boot_state now;

	if (tnd_boot_order_parse(&now, text)) {
		tnd_err_clear(); /* not an error here: it is simply rewritten */
		return false;
	}
	return now.norder == bs->norder &&
	       !memcmp(now.order, bs->order, sizeof(now.order[0]) * (size_t)bs->norder);
}

/*
 * Only what changes is set, and nothing is stored when nothing changes. A
 * value that already says what is wanted keeps its spelling: a counter
 * RAUC left as "a", an order "A  B", stay as the board's script wrote
 * them. Every other variable (bootcmd and the rest of a whole U-Boot
 * environment) is libubootenv's to carry over; uboot_store_guard refused
 * the environments it cannot carry over whole.
 */
static int uboot_write(struct tnd_bootloader *bl, const struct tnd_boot_state *bs)
{
	struct uboot_bl *u = (struct uboot_bl *)bl;
	char order[16], tries[12], name[24], floor[24], id[TND_ID_VAR_MAX], *cur;
	bool changed = false;
	int r = 0;

	tnd_boot_order_str(bs, order, sizeof(order));
	cur = get_set(u, "BOOT_ORDER");
	/* kept when it reads as the wanted order; else written out, also
	 * where the scripts' default stood (the updater's reading made true) */
	if (!cur || !same_order(cur, bs))
		r = set_changed(u, "BOOT_ORDER", order, &changed);
	free(cur);
	for (int i = 0; !r && i < TND_NSLOTS; i++) {
		unsigned n;

		snprintf(name, sizeof(name), "BOOT_%s_LEFT", tnd_slot_name(i));
		cur = get_set(u, name);
		/* Left to the script's default while nobody set it; otherwise
		 * hexadecimal, as RAUC writes it (Tandem's own values, 0 to 9,
		 * read the same in every radix). */
		if ((cur || bs->tries_set[i]) &&
		    (!cur || parse_count(cur, &n) || n != bs->tries[i])) {
			snprintf(tries, sizeof(tries), "%x", bs->tries[i]);
			r = set_changed(u, name, tries, &changed);
		}
		free(cur);
	}
	/* Written once there is a floor to keep: an environment a RAUC board
	 * left stays as it was until then. */
	if (!r && bs->floor) {
		snprintf(floor, sizeof(floor), "%llu", (unsigned long long)bs->floor);
		r = set_changed(u, FLOOR_VAR, floor, &changed);
	}
	for (int i = 0; !r && i < TND_NSLOTS; i++) {
		snprintf(name, sizeof(name), "TANDEM_%s_IMAGE", tnd_slot_name(i));
		tnd_slot_id_format(&bs->id[i], id);
		/* NULL drops the variable (unknown stays unknown) */
		r = set_changed(u, name, id[0] ? id : NULL, &changed);
	}
	if (r)
		return tnd_err_set(TND_E_BOOTLOADER, "cannot set variables (error %d)", r);
	if (!changed)
		return 0; /* spare the flash */
	if ((r = check_no_flags(bl->cfg->env_config)))
		return r;
	r = libuboot_env_store(u->ctx);
	if (r)
		return tnd_err_set(TND_E_BOOTLOADER, "cannot store the environment (error %d)", r);
	/* libubootenv 0.3.2 keeps its idea of which redundant copy is current
	 * from open time, so a second store through the same context can
	 * overwrite the copy just written with a stale flag (found by
	 * tests/integration/test_boot.sh). Reload after every store. */
	libuboot_close(u->ctx);
	r = libuboot_open(u->ctx);
	if (r < 0)
		return tnd_err_set(TND_E_BOOTLOADER,
				   "environment unreadable after storing it (error %d)", r);
	return 0;
}

const struct tnd_bootloader_ops tnd_bl_uboot_ops = {
    .name = "uboot",
    .switches = true,
    .open = uboot_open,
    .open_init = uboot_open_init,
    .close = uboot_close,
    .read = uboot_read,
    .write = uboot_write,
};
