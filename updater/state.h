/* SPDX-License-Identifier: MIT */
/*
 * The device's memory between runs (docs/state.md): what each slot holds,
 * the last install and its error. One JSON file, state_dir/state.json,
 * replaced atomically; a missing file is a fresh device.
 */
#ifndef TANDEM_STATE_H
#define TANDEM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "error.h"

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
};

struct tnd_state {
	struct tnd_slot_info slot[TND_NSLOTS];
	/* The last install attempt, for status and fleet reports. */
	int64_t last_install_time;
	char last_install_result[16]; /* "success", "failed" or "" */
	char last_error_code[32];
	char last_error[TND_ERR_MSG_MAX];
};

const char *tnd_slot_state_name(enum tnd_slot_state s);

/* Loads state_dir/state.json; a missing file gives an empty state. */
int tnd_state_load(struct tnd_state *st, const char *state_dir) TND_MUST_CHECK;
/* Writes it atomically (temp file, fsync, rename, fsync directory). */
int tnd_state_save(const struct tnd_state *st, const char *state_dir) TND_MUST_CHECK;

#endif
