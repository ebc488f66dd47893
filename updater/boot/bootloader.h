/* SPDX-License-Identifier: MIT */
/*
 * Bootloader backends behind one ops table, chosen by configuration from
 * a static table (docs/boot-protocol.md). The boot state is RAUC's U-Boot
 * scheme: an ordered list of slots and a count of boot tries left for
 * each, plus Tandem's copy of the anti-rollback floor. Backends only read
 * and write that state as a whole, and every write is one atomic store;
 * the policy (what activate, mark good or mark bad change) lives here,
 * once, for all backends. "none" is a backend too: it switches nothing,
 * and says so.
 *
 * A new backend is one file in this folder with a `const struct
 * tnd_bootloader_ops`, one entry in the table of bootloader.c, one
 * value of enum tnd_bl_type (core/config.c parses its name) and one
 * Kconfig option.
 */
#ifndef TANDEM_BOOTLOADER_H
#define TANDEM_BOOTLOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "error.h"

/*
 * What a slot verifiably holds, as the boot environment keeps it: the
 * image's SHA-256 and security version from the signed manifest it was
 * installed from, set in a store after the slot was written and read
 * back. The store that takes the slot out of the boot order's reach
 * before its first byte changes marks it erased instead. State files may
 * say the same, but an attacker can write those; the environment is what
 * the device boots from (docs/security.md), so every decision that makes
 * a slot boot, or raises the floor, reads it from here.
 */
enum tnd_id_kind {
	TND_ID_UNKNOWN = 0, /* nothing said: written by other means, or before
			     * Tandem kept identities (counts as security
			     * version 0) */
	TND_ID_ERASED,	    /* being written, or written and not verified */
	TND_ID_VALID,
};

struct tnd_slot_id {
	enum tnd_id_kind kind;
	uint64_t security_version; /* TND_ID_VALID only */
	uint8_t sha256[TND_SHA256_LEN];
};

/* An identity as every backend keeps it, in TANDEM_A_IMAGE/TANDEM_B_IMAGE:
 * "<security version>:<64 hex digits>", "erased", or absent (NULL or "":
 * unknown). Anything else refuses the environment (name: for the
 * message), as a damaged floor does. One parser, one formatter, for all
 * backends. */
#define TND_ID_VAR_MAX 96 /* "4294967295:" + 64 hex digits + NUL, with room */
int tnd_slot_id_parse(const char *name, const char *value, struct tnd_slot_id *id) TND_MUST_CHECK;
/* The value to store; "" for unknown (the backend drops the variable). */
void tnd_slot_id_format(const struct tnd_slot_id *id, char out[TND_ID_VAR_MAX]);

struct tnd_boot_state {
	int order[TND_NSLOTS]; /* slot numbers, first boots first */
	int norder;
	unsigned tries[TND_NSLOTS];
	/* false: the environment leaves the counter to the boot script's
	 * default (unset or empty), which tries[] then assumes */
	bool tries_set[TND_NSLOTS];
	/* The anti-rollback floor as the boot environment keeps it, so that it
	 * survives the loss of the state directory (docs/security.md); 0 when
	 * the environment has none. Writes only ever raise it. */
	uint64_t floor;
	struct tnd_slot_id id[TND_NSLOTS];
};

struct tnd_bootloader;

/* One variable of a backend's raw state, as `status --json` shows it. */
struct tnd_bl_var {
	char name[32];
	char value[96];
};

struct tnd_bootloader_ops {
	const char *name;
	/* false for "none": nothing Tandem writes decides what boots */
	bool switches;
	int (*open)(struct tnd_bootloader **out, const struct tnd_config *cfg);
	/* Provisioning: as open, but an environment with no valid copy is
	 * started from `defaults` (NULL: empty) instead of refused; *blank
	 * tells which. Nothing is written before the first write. */
	int (*open_init)(struct tnd_bootloader **out, const struct tnd_config *cfg,
			 const char *defaults, bool *blank);
	void (*close)(struct tnd_bootloader *bl);
	int (*read)(struct tnd_bootloader *bl, struct tnd_boot_state *bs);
	/* Stores the whole state in one atomic write. */
	int (*write)(struct tnd_bootloader *bl, const struct tnd_boot_state *bs);
	/* Optional: the variables as stored, up to max into vars, *n of them. */
	int (*raw)(struct tnd_bootloader *bl, struct tnd_bl_var *vars, size_t max, size_t *n);
};

struct tnd_bootloader {
	const struct tnd_bootloader_ops *ops;
	const struct tnd_config *cfg; /* borrowed */
};

/* Opens the configured backend ("none" included); close with tnd_bl_close. */
int tnd_bl_open(struct tnd_bootloader **out, const struct tnd_config *cfg) TND_MUST_CHECK;
/*
 * For `tandem provision`: opens the configured backend even when the
 * environment has no valid copy yet (a new board), starting it from the
 * file `defaults` of name=value lines (NULL: Tandem's variables only).
 * *blank is true when there was no valid copy.
 */
int tnd_bl_open_init(struct tnd_bootloader **out, const struct tnd_config *cfg,
		     const char *defaults, bool *blank) TND_MUST_CHECK;
/* Accepts NULL. */
void tnd_bl_close(struct tnd_bootloader *bl);
/* Whether this backend decides what boots (false for "none"). */
bool tnd_bl_switches(const struct tnd_bootloader *bl);
int tnd_bl_read(struct tnd_bootloader *bl, struct tnd_boot_state *bs) TND_MUST_CHECK;
/* Writes the whole boot state (order, tries, floor) in one atomic store;
 * "none" refuses (E_UNSUPPORTED). */
int tnd_bl_write(struct tnd_bootloader *bl, const struct tnd_boot_state *bs) TND_MUST_CHECK;

/* The backend's variables as stored (status --json); *n is 0 for a
 * backend that does not say. */
int tnd_bl_raw(struct tnd_bootloader *bl, struct tnd_bl_var *vars, size_t max,
	       size_t *n) TND_MUST_CHECK;

/* The anti-rollback floor in force: state_floor (the state's copy),
 * raised by the boot environment's copy; with bs (may be NULL) the whole
 * boot state too. */
int tnd_bl_floor(const struct tnd_config *cfg, uint64_t state_floor, uint64_t *floor,
		 struct tnd_boot_state *bs) TND_MUST_CHECK;

/* Before a slot is written: make sure it cannot be booted (tries 0, last
 * in the order) and its identity erased, so a power cut mid-write never
 * leaves a half image in line to boot or vouched for. Writes the
 * environment only when something changes; "none": nothing to do. */
int tnd_bl_disable(struct tnd_bootloader *bl, int slot) TND_MUST_CHECK;
/* After a slot was written and verified: its identity (still out of the
 * boot order's reach). "none": nothing to do. */
int tnd_bl_set_identity(struct tnd_bootloader *bl, int slot,
			const struct tnd_slot_id *id) TND_MUST_CHECK;
/* After a verified install: slot first in the order with `tries` tries;
 * nothing else changes. "none" refuses: nothing would make the slot boot. */
int tnd_bl_activate(struct tnd_bootloader *bl, int slot, unsigned tries) TND_MUST_CHECK;

/* A slot that booted and passed its health checks: full tries again, so
 * later reboots of a good system never run it out; the floor raised to
 * `floor`. "none": nothing to do. */
int tnd_bl_mark_good(struct tnd_bootloader *bl, int slot, unsigned tries,
		     uint64_t floor) TND_MUST_CHECK;
/* A slot that failed: no tries, and last in the order. "none": nothing. */
int tnd_bl_mark_bad(struct tnd_bootloader *bl, int slot) TND_MUST_CHECK;

/* "A B" style text of an order; buf of at least 8 bytes. */
void tnd_boot_order_str(const struct tnd_boot_state *bs, char *buf, size_t size);
/* Parses "A B", "B", "B A"; unknown or repeated names are TND_E_BOOTLOADER. */
int tnd_boot_order_parse(struct tnd_boot_state *bs, const char *s) TND_MUST_CHECK;

extern const struct tnd_bootloader_ops tnd_bl_none_ops;
#ifdef CONFIG_BOOTLOADER_UBOOT
extern const struct tnd_bootloader_ops tnd_bl_uboot_ops;
#endif
#ifdef CONFIG_BOOTLOADER_GRUB
extern const struct tnd_bootloader_ops tnd_bl_grub_ops;
#endif
#ifdef CONFIG_BOOTLOADER_CUSTOM
extern const struct tnd_bootloader_ops tnd_bl_custom_ops;
#endif

#endif
