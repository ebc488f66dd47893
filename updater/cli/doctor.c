// SPDX-License-Identifier: MIT
#include "doctor.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bootloader.h"
#include "sign.h"
#include "slot.h"
#include "state.h"
#include "util.h"

enum verdict { OK, WARN, FAIL };

struct report {
	bool json;
	cJSON *checks;
	unsigned failed, warned;
};

static void TND_PRINTF(4, 5)
    note(struct report *r, enum verdict v, const char *what, const char *fmt, ...)
{
	static const char *const tag[] = {"ok", "warn", "FAIL"};
	char msg[TND_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->failed += v == FAIL;
	r->warned += v == WARN;
	if (r->json) {
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "check", what);
		cJSON_AddStringToObject(c, "result", v == OK ? "ok" : v == WARN ? "warn" : "fail");
		cJSON_AddStringToObject(c, "message", msg);
		cJSON_AddItemToArray(r->checks, c);
	} else {
		printf("%-4s  %-12s %s\n", tag[v], what, msg);
	}
}

/* "rw" or "ro" when dev is mounted (by path or by device number), else NULL. */
static const char *mount_mode(const char *dev)
{
	static char mode[3];
	char line[4096], src[1024], opts[1024];
	struct stat sd, sm;
	const char *res = NULL;
	FILE *f = fopen("/proc/self/mounts", "re");

	if (!f || stat(dev, &sd) != 0) {
		if (f)
			fclose(f);
		return NULL;
	}
	while (!res && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%1023s %*s %*s %1023s", src, opts) != 2)
			continue;
		if (strcmp(src, dev) != 0 && !(S_ISBLK(sd.st_mode) && stat(src, &sm) == 0 &&
					       S_ISBLK(sm.st_mode) && sm.st_rdev == sd.st_rdev))
			continue;
		snprintf(mode, sizeof(mode), "%.2s", opts);
		res = mode;
	}
	fclose(f);
	return res;
}

static void check_slots(const struct tnd_config *cfg, struct report *r, int booted)
{
	for (int i = 0; i < TND_NSLOTS; i++) {
		const char *m = mount_mode(cfg->slot_dev[i]);
		uint64_t size;

		if (tnd_slot_dev_size(cfg->slot_dev[i], &size)) {
			note(r, FAIL, "slot", "slot %s: %s", tnd_slot_name(i), tnd_err_msg());
			continue;
		}
		if (m && !strcmp(m, "rw") && i != booted)
			note(r, FAIL, "slot",
			     "slot %s (%s) is mounted read-write: an install would write under a "
			     "live filesystem",
			     tnd_slot_name(i), cfg->slot_dev[i]);
		else if (m && !strcmp(m, "rw"))
			note(r, WARN, "slot",
			     "booted slot %s (%s) is mounted read-write: it cannot serve as a "
			     "delta base and its hash will drift",
			     tnd_slot_name(i), cfg->slot_dev[i]);
		else
			note(r, OK, "slot", "slot %s: %s, %llu bytes%s", tnd_slot_name(i),
			     cfg->slot_dev[i], (unsigned long long)size,
			     m ? ", mounted read-only" : "");
	}
}

static void check_env(const struct tnd_config *cfg, struct report *r, int booted,
		      const struct tnd_state *st)
{
	struct tnd_bootloader *bl = NULL;
	struct tnd_boot_state bs;
	char *text = NULL, order[16];
	int lines = 0;

	if (cfg->bootloader == TND_BL_NONE) {
		note(r, WARN, "bootloader", "bootloader \"none\": installs are never activated");
		return;
	}
	if (cfg->bootloader == TND_BL_GRUB) {
		/* One block, no redundant copy: its size and header are what the
		 * backend's open checks (docs/boot-protocol.md, "GRUB"). */
		if (tnd_bl_open(&bl, cfg)) {
			note(r, FAIL, "grubenv", "%s", tnd_err_msg());
			return;
		}
		tnd_bl_close(bl);
		bl = NULL;
		note(r, OK, "grubenv",
		     "%s is a 1024-byte GRUB environment block (one copy: GRUB has no "
		     "redundant environment)",
		     cfg->grubenv);
	} else if (cfg->bootloader == TND_BL_UBOOT &&
		   tnd_read_small_file(cfg->env_config, 16384, &text, NULL)) {
		note(r, FAIL, "fw_env", "%s", tnd_err_msg());
		return;
	}
	if (text) {
		for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
			while (*p == ' ' || *p == '\t')
				p++;
			lines += *p && *p != '#';
		}
		free(text);
		note(r, lines >= 2 ? OK : WARN, "fw_env",
		     lines >= 2 ? "%s names a redundant environment (%d copies)"
				: "%s names %d copy: a power cut during an environment write can "
				  "lose it; configure two",
		     cfg->env_config, lines);
	}
	if (tnd_bl_open(&bl, cfg) || tnd_bl_read(bl, &bs)) {
		note(r, FAIL, "environment", "%s", tnd_err_msg());
		tnd_bl_close(bl);
		return;
	}
	tnd_bl_close(bl);
	tnd_boot_order_str(&bs, order, sizeof(order));
	if (cfg->bootloader == TND_BL_GRUB)
		note(r, bs.norder ? OK : FAIL, "environment",
		     "ORDER=\"%s\", tries left: A %u, B %u", order, bs.tries[0], bs.tries[1]);
	else if (cfg->bootloader == TND_BL_CUSTOM)
		note(r, OK, "environment", "%s: primary %s, A %s, B %s", cfg->handler,
		     tnd_slot_name(bs.order[0]), bs.tries[0] ? "good" : "bad",
		     bs.tries[1] ? "good" : "bad");
	else
		note(r, bs.norder ? OK : FAIL, "environment",
		     "BOOT_ORDER=\"%s\" BOOT_A_LEFT=%u BOOT_B_LEFT=%u", order, bs.tries[0],
		     bs.tries[1]);
	for (int i = 0; i < TND_NSLOTS; i++)
		if (cfg->bootloader == TND_BL_UBOOT && bs.tries[i] > 9)
			note(
			    r, WARN, "counters",
			    "BOOT_%s_LEFT is %u (hexadecimal, as RAUC writes it): a boot script "
			    "that compares it with `test -gt`, as RAUC's example and Tandem's do, "
			    "reads a to f as 0 and skips the slot; Tandem writes at most 9, at the "
			    "slot's next confirm or activation",
			    tnd_slot_name(i), bs.tries[i]);
	if (bs.tries[0] > cfg->boot_tries || bs.tries[1] > cfg->boot_tries)
		note(r, WARN, "counters", "a counter exceeds boot_tries=%u", cfg->boot_tries);
	for (int i = 0; i < TND_NSLOTS; i++)
		if (st->slot[i].identity_in_env && bs.id[i].kind == TND_ID_UNKNOWN)
			note(r, FAIL, "identity",
			     "the environment lost TANDEM_%s_IMAGE, which an install stored: the "
			     "boot "
			     "script does not carry it (build boot.scr with this Tandem's "
			     "mkbootscr.sh, docs/boot-protocol.md)",
			     tnd_slot_name(i));
	if (booted < 0)
		return;
	if (bs.norder && bs.order[0] != booted && st->pending_slot != bs.order[0])
		note(r, WARN, "agreement",
		     "slot %s is booted but %s is first in BOOT_ORDER without a pending update",
		     tnd_slot_name(booted), tnd_slot_name(bs.order[0]));
	else
		note(r, OK, "agreement", "booted slot %s agrees with the environment%s",
		     tnd_slot_name(booted), st->pending_slot >= 0 ? " (an update is pending)" : "");
	/* The other slot is a fallback only as far as the environment vouches
	 * for it (docs/security.md): say so while it does not. */
	int other = 1 - booted;
	uint64_t floor = bs.floor > st->security_floor ? bs.floor : st->security_floor;

	if (bs.id[other].kind == TND_ID_UNKNOWN && floor > 0 &&
	    (st->slot[other].state == TND_SLOT_GOOD || st->slot[other].state == TND_SLOT_INSTALLED))
		note(r, WARN, "identity",
		     "the environment does not say which release slot %s holds (written before "
		     "Tandem kept identities, or by other means) and the floor is %llu: no "
		     "rollback or switch to it until a release is installed into it",
		     tnd_slot_name(other), (unsigned long long)floor);
}

int tnd_doctor(const struct tnd_config *cfg, bool json)
{
	struct report r = {.json = json};
	struct tnd_keyring kr = {0};
	struct tnd_state st;
	int booted = -1;
	char probe[PATH_MAX + 32];
	int fd;

	if (json)
		r.checks = cJSON_CreateArray();
	note(&r, OK, "config", "%s parsed (compatible \"%s\")", cfg->path, cfg->compatible);
	if (tnd_booted_slot(cfg, &booted)) {
		booted = -1;
		note(&r, FAIL, "cmdline", "%s", tnd_err_msg());
	} else {
		note(&r, OK, "cmdline", "booted from slot %s", tnd_slot_name(booted));
	}
	if (tnd_keyring_load_dir(&kr, cfg->keyring))
		note(&r, FAIL, "keyring", "%s", tnd_err_msg());
	else
		note(&r, kr.n >= cfg->signature_threshold ? OK : FAIL, "keyring",
		     "%zu key(s) in %s, %u signature(s) required", kr.n, cfg->keyring,
		     cfg->signature_threshold);
	tnd_keyring_free(&kr);
	snprintf(probe, sizeof(probe), "%s/.doctor-probe", cfg->state_dir);
	/* A new file, never one planted there: O_TRUNC would follow a
	 * symlink and empty whatever it points at. */
	unlink(probe);
	fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		note(&r, FAIL, "state", "cannot write in %s: %s", cfg->state_dir, strerror(errno));
	} else {
		close(fd);
		unlink(probe);
	}
	if (tnd_state_load(&st, cfg->state_dir)) {
		note(&r, FAIL, "state", "%s", tnd_err_msg());
		memset(&st, 0, sizeof(st));
		st.pending_slot = st.interrupted_slot = -1;
	} else if (fd >= 0) {
		note(&r, OK, "state", "%s is writable and its state parses", cfg->state_dir);
	}
	check_slots(cfg, &r, booted);
	check_env(cfg, &r, booted, &st);
	if (json) {
		cJSON *root = cJSON_CreateObject();
		char *s;

		cJSON_AddBoolToObject(root, "healthy", r.failed == 0);
		cJSON_AddNumberToObject(root, "failed", r.failed);
		cJSON_AddNumberToObject(root, "warnings", r.warned);
		cJSON_AddItemToObject(root, "checks", r.checks);
		s = cJSON_Print(root);
		if (s)
			puts(s);
		free(s);
		cJSON_Delete(root);
	} else {
		printf("\n%u problem(s), %u warning(s)\n", r.failed, r.warned);
	}
	return r.failed ? tnd_err_set(TND_E_CONFIG, "doctor found %u problem(s)", r.failed) : 0;
}
