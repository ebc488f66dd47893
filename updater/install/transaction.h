/* SPDX-License-Identifier: MIT */
/*
 * The one install transaction. Every front end that puts a bundle into a
 * slot (install from a file, standard input or a URL; poll and the
 * daemon; receive over a serial line; provision; a resumed install) goes
 * through its three steps, and only says where the bytes come from and
 * what it expects them to be:
 *
 *   prepare  state loaded (the floor with the boot environment's copy),
 *            target slot chosen, keyring loaded, the bundle's manifest
 *            authenticated, the one policy check (install/policy.h: board,
 *            expiry and clock, security floor, downgrade, payload, the
 *            release the caller expected), a delta's base checked, a
 *            checkpoint considered; nothing written;
 *   stream   the target taken out of the boot order's reach and recorded
 *            "installing", every record authenticated before it is
 *            expanded and written, the slot read back, the image's hash
 *            and the file the caller expected checked, the slot recorded
 *            "installed" (docs/install.md gives the order of the writes);
 *   commit   the slot activated: pending in the state, then first in the
 *            boot order with boot_tries tries, in one atomic store.
 *
 * A cut before commit boots the old slot; a retry continues from a
 * checkpoint or starts again at prepare. A failure after the state was
 * loaded is recorded in it (last_install) for status and fleet reports.
 * The caller holds the device's lock (core/lock.h).
 */
#ifndef TANDEM_TRANSACTION_H
#define TANDEM_TRANSACTION_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "crypto.h"
#include "pipeline.h"
#include "policy.h"
#include "source.h"

/* What an install tells whoever watches it (the command line's progress
 * bar or JSON events); each member may be NULL. */
struct tnd_events {
	void (*phase)(void *ctx, const char *phase, const char *detail);
	void (*progress)(void *ctx, const struct tnd_pipeline_stats *st);
	void *ctx;
};

struct tnd_install_opts {
	/* An already open source (HTTP, serial link; borrowed), or NULL: the
	 * transaction opens `source` as a file, or standard input for "-". */
	struct tnd_source *src;
	const char *source; /* for messages too */
	int slot;	    /* -1: the one not booted (provisioning: A) */
	bool no_activate;
	/* Install a version older than the booted slot's (same or higher
	 * security version only: the floor still holds). */
	bool allow_downgrade;
	/* Start over even when a checkpoint of this install exists. */
	bool no_resume;
	/* The release the caller chose the bundle as (a channel entry), or
	 * NULL (policy.h). */
	const struct tnd_expect *expect;
	/* Factory provisioning (install/provision.c): no booted slot, full
	 * bundles only, `keyring` (when set) instead of the configured one,
	 * an environment that may still be blank. */
	bool provision;
	const char *keyring;
	const char *env_defaults;
	const struct tnd_events *events; /* NULL: nobody watches */
	volatile sig_atomic_t *cancel;
};

struct tnd_install_result {
	int slot;
	bool activated;
	char version[TND_NAME_MAX];
	uint8_t sha256[TND_SHA256_LEN];
	uint64_t image_size;
	uint64_t security_version;
	uint64_t resumed_from; /* image bytes a checkpoint let this run skip */
	/* the payload: 0 a full image, else the delta's op-stream version
	 * (tnd_delta_version_xz says whether it rebuilt xz streams) */
	uint8_t delta_format;
	double seconds;
};

struct tnd_txn;

/* prepare: on success *out holds the transaction, to free with
 * tnd_txn_free whatever comes after; on failure *out is NULL. */
int tnd_txn_prepare(struct tnd_txn **out, const struct tnd_config *cfg,
		    const struct tnd_install_opts *o) TND_MUST_CHECK;
/* The authenticated, policy-checked manifest (valid until free). */
const struct tnd_manifest *tnd_txn_manifest(const struct tnd_txn *t);
/* Provisioning: whether the boot environment had no valid copy. */
bool tnd_txn_env_blank(const struct tnd_txn *t);
int tnd_txn_stream(struct tnd_txn *t) TND_MUST_CHECK;
/* Fills *res (also when no_activate leaves the slot unbooted). */
int tnd_txn_commit(struct tnd_txn *t, struct tnd_install_result *res) TND_MUST_CHECK;
/* Records a failure that came after prepare (code and the current
 * message) in the state, for status and fleet reports; returns code. */
int tnd_txn_fail(struct tnd_txn *t, int code);
/* Accepts NULL. */
void tnd_txn_free(struct tnd_txn *t);

/* prepare, stream and commit, recording a failure. */
int tnd_install(const struct tnd_config *cfg, const struct tnd_install_opts *o,
		struct tnd_install_result *res) TND_MUST_CHECK;

#endif
