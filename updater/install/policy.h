/* SPDX-License-Identifier: MIT */
/*
 * The device's rules for an authenticated manifest, in one place. Every
 * way into a slot (a file, standard input, a URL, a fleet poll, the
 * serial link, provisioning, a resumed install) passes through the one
 * install transaction (transaction.h), whose prepare step calls
 * tnd_policy_check before a single byte of the slot changes: a check that
 * exists for one front end exists for all, because there is only one.
 */
#ifndef TANDEM_POLICY_H
#define TANDEM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "manifest.h"
#include "state.h"

/*
 * What a caller that chose the bundle from a signed description of it (a
 * channel index entry, docs/channel-format.md) expects the bundle to be.
 * The manifest must say the same before anything is written, and the
 * bytes streamed must be the file described before anything is recorded:
 * a mirror, a CDN or a hop that serves another genuine, signed bundle
 * under the entry's URL (an older release, to freeze a fleet) is refused.
 */
struct tnd_expect {
	char version[TND_NAME_MAX];
	uint64_t security_version;
	uint64_t image_size;
	uint8_t image_sha256[TND_SHA256_LEN];
	bool delta; /* a delta from base_sha256; else a full bundle */
	uint64_t base_size;
	uint8_t base_sha256[TND_SHA256_LEN];
	/* the bundle file: its size and, when it is streamed whole, its hash */
	uint64_t file_size;
	uint8_t file_sha256[TND_SHA256_LEN];
};

enum tnd_policy_mode {
	TND_POLICY_INSTALL,   /* into the slot not booted, from a running system */
	TND_POLICY_PROVISION, /* both slots of a board not running from either */
};

struct tnd_policy {
	enum tnd_policy_mode mode;
	const struct tnd_config *cfg;
	const struct tnd_state *st; /* the clock's floor, the booted slot's record */
	/* The anti-rollback floor in force: the highest of the state's and
	 * the boot environment's copies (tnd_floor_effective). */
	uint64_t floor;
	int booted;			 /* the booted slot; -1 when provisioning */
	bool allow_downgrade;		 /* an older version string (never below the floor) */
	const struct tnd_expect *expect; /* NULL: the caller expects nothing */
};

/*
 * Decides whether this device may install the bundle m describes: it was
 * authenticated, is for this board, has not expired by the device's
 * trusted clock, is not below the security floor, is not an older
 * version unless allowed, is a payload this build can apply in its
 * memory bound (provisioning: a full image), and is the release the
 * caller expected. The first rule broken is the error, with a one-line
 * message (E_INCOMPATIBLE, E_EXPIRED, E_DOWNGRADE, E_UNSUPPORTED,
 * E_WRONG_RELEASE).
 */
int tnd_policy_check(const struct tnd_policy *p, const struct tnd_manifest *m) TND_MUST_CHECK;

/*
 * Whether a slot holding a release of security version sv may be made
 * to boot by a command (activate, rollback): never below the floor.
 */
int tnd_policy_may_boot(const struct tnd_policy *p, int slot, uint64_t sv) TND_MUST_CHECK;

#endif
