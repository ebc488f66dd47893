/* SPDX-License-Identifier: MIT */
/*
 * The device's memory between runs : what each slot holds,
 * the last install and its error (docs/status.md). One JSON file,
 * state_dir/state.json,
 * replaced atomically; a missing file is a fresh device.
 */
#ifndef TANDEM_STATE_H
#define TANDEM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "error.h"
#include "manifest.h"

enum tnd_slot_state {
	TND_SLOT_UNKNOWN = 0, /* never written by Tandem */
	TND_SLOT_INSTALLING,  /* being written: its content is not an image */
	TND_SLOT_INSTALLED,   /* complete and verified, not yet confirmed */
	TND_SLOT_GOOD,	      /* booted and confirmed healthy */
	TND_SLOT_BAD,	      /* failed its health check or ran out of tries */
};

struct tnd_slot_info {
	enum tnd_slot_state state;
	char version[TND_NAME_MAX];
	char compatible[TND_NAME_MAX];
	bool has_sha256;
	uint8_t sha256[TND_SHA256_LEN];
	uint64_t size;
	uint64_t security_version;
	int64_t updated; /* when the state last changed */
	/* Tandem stored this slot's identity in the boot environment
	 * (TANDEM_X_IMAGE): if the environment now says nothing, something
	 * dropped it (a boot script that does not carry it). Only ever a
	 * reason to warn: the environment is what decides. */
	bool identity_in_env;
};

/* A verdict kept for status and fleet reports. */
struct tnd_outcome {
	int64_t time;
	char result[16]; /* see docs/status.md */
	char slot[2];
	char version[TND_NAME_MAX];
	char reason[TND_ERR_MSG_MAX];
};

struct tnd_state {
	struct tnd_slot_info slot[TND_NSLOTS];
	/* The slot activated and not yet confirmed: -1 when none. After a
	 * reboot, booting any other slot means the update did not come up. */
	int pending_slot;
	int64_t pending_since;
	char pending_boot_id[64]; /* the boot in which it was activated */
	/* The environment store that makes it boot next completed. The mark
	 * is saved before that store and this after it, so that confirm can
	 * tell a slot whose activation a cut stopped (never tried) from one
	 * that was tried and fell back. */
	bool pending_activated;
	/* The slot whose activation a power cut stopped (the pending mark
	 * saved, the environment store never made): confirm notes it instead
	 * of activating it, and a fleet poll activates it when it holds the
	 * channel's release (-1: none). Cleared by any activation, and by an
	 * install into that slot. */
	int interrupted_slot;
	/* Anti-rollback floor: raised only when a slot holding a higher
	 * security version is confirmed healthy. */
	uint64_t security_floor;
	/* The newest `created` time of a manifest installed here: with the
	 * build time, a floor for a clock that is obviously unset. */
	int64_t time_floor;
	/* The last boot verdict of confirm: "good" or "bad". */
	struct tnd_outcome last_boot;
	/* How the last activated update ended: "success" (confirmed) or
	 * "failed" (health check failed, or it never came up). */
	struct tnd_outcome last_update;
	/* The last install attempt, for status and fleet reports. */
	int64_t last_install_time;
	char last_install_result[16]; /* "success", "failed" or "" */
	char last_error_code[32];
	char last_error[TND_ERR_MSG_MAX];
};

const char *tnd_slot_state_name(enum tnd_slot_state s);
/* The slot now holds the verified image m describes: "installed", with
 * m's version, board, image hash and size and security version. */
void tnd_slot_record_installed(struct tnd_slot_info *si, const struct tnd_manifest *m);
/* Whether si records exactly that (installed or good). */
bool tnd_slot_record_holds(const struct tnd_slot_info *si, const struct tnd_manifest *m);
void tnd_outcome_set(struct tnd_outcome *o, const char *result, int slot, const char *version,
		     const char *reason);

struct cJSON;
/* Adds o as parent[key] (nothing when o is unset); shared by state and status. */
void tnd_outcome_to_json(struct cJSON *parent, const char *key, const struct tnd_outcome *o);

/* Marks slot as about to be activated and awaiting confirmation after a
 * reboot (-1: nothing pending); pending_activated is cleared, for the
 * caller to set once the environment store is done. */
int tnd_state_set_pending(struct tnd_state *st, const struct tnd_config *cfg,
			  int slot) TND_MUST_CHECK;

/* Loads state_dir/state.json; a missing file gives an empty state. */
/*
 * The time expiry is checked against (docs/security.md, "Unset clock"):
 * the system clock, but never earlier than this program was built or
 * than the newest manifest this device installed. A clock behind that
 * floor is unset (a board without an RTC battery boots in 1970): the
 * floor is used instead, and *unset says so. st may be NULL. Silent.
 */
int64_t tnd_trusted_now(const struct tnd_state *st, bool *unset);
/* One warning line when the clock is unset (after a check that passed:
 * a refusal says so in its error instead). */
void tnd_warn_unset_clock(const struct tnd_state *st);
/* When the sources of this build were committed (0: unknown). */
int64_t tnd_build_time(void);

int tnd_state_load(struct tnd_state *st, const char *state_dir) TND_MUST_CHECK;
/* Writes it atomically (temp file, fsync, rename, fsync directory). */
int tnd_state_save(const struct tnd_state *st, const char *state_dir) TND_MUST_CHECK;

#endif
