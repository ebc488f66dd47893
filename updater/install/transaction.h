/* SPDX-License-Identifier: MIT */
/*
 * Installing a bundle into the inactive slot. The order of the steps is
 * what keeps a device bootable whatever happens (docs/install.md):
 *   1. authenticate the manifest and apply policy (board, expiry, slot);
 *   2. record the target slot as "installing" and take it out of the boot
 *      order's reach (tries 0), both before its first byte changes;
 *   3. stream: authenticate each chunk, inflate, write, read back;
 *   4. record the slot as "installed" with its version and hash;
 *   5. activate it: first in BOOT_ORDER with boot_tries tries, in one
 *      atomic environment write.
 * A cut before step 5 boots the old slot; a retry starts again at 1.
 */
#ifndef TANDEM_TRANSACTION_H
#define TANDEM_TRANSACTION_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "crypto.h"
#include "progress.h"
#include "source.h"

struct tnd_install_opts {
	const char *source; /* path or "-"; only named in messages when src is set */
	/* Optional, borrowed: an already open source (HTTP, serial link).
	 * NULL: tnd_install opens `source` as a file or standard input. */
	struct tnd_source *src;
	int slot; /* -1: the one not booted */
	bool no_activate;
	/* Install a version older than the booted slot's (same or higher
	 * security version only: the floor still holds). */
	bool allow_downgrade;
	/* Start over even when a checkpoint of this install exists. */
	bool no_resume;
	struct tnd_progress *progress;
	volatile sig_atomic_t *cancel;
};

struct tnd_install_result {
	int slot;
	bool activated;
	char version[TND_NAME_MAX];
	uint8_t sha256[TND_SHA256_LEN];
	uint64_t image_size;
	uint64_t resumed_from; /* image bytes a checkpoint let this run skip */
	/* the payload: 0 a full image, else the delta's op-stream version
	 * (tnd_delta_version_xz says whether it rebuilt xz streams) */
	uint8_t delta_format;
	double seconds;
};

int tnd_install(const struct tnd_config *cfg, const struct tnd_install_opts *o,
		struct tnd_install_result *res) TND_MUST_CHECK;

#endif
