/* SPDX-License-Identifier: MIT */
/*
 * The serial link as a bundle source (docs/serial.md): `tandem receive`
 * installs a bundle that arrives from `tandem-image send`. The link is a
 * struct tnd_source handed to the one install transaction, so the bundle
 * goes through the same verified path as any other and is never stored
 * on the device; the sender learns the result (DONE with the installed
 * release, or ABORT with the error that refused it).
 */
#ifndef TANDEM_SERIAL_H
#define TANDEM_SERIAL_H

#include <stdint.h>

#include "config.h"
#include "error.h"
#include "transaction.h"

struct tnd_receive_opts {
	const char *device; /* e.g. /dev/ttyS0 */
	unsigned baud;	    /* 0: 115200 */
	double timeout;	    /* seconds without a word from the sender; 0: never */
	/* slot, no_activate, events, cancel; src and source are the link's */
	struct tnd_install_opts install;
	/* Called once the line is open, before the sender is heard (may be NULL). */
	void (*waiting)(void *ctx, const char *device, unsigned baud);
	void *waiting_ctx;
};

struct tnd_receive_result {
	struct tnd_install_result install;
	struct {
		uint64_t bytes, data_frames, duplicates, bad_frames, sessions;
	} link;
	char json[2048]; /* the DONE payload the sender was sent */
};

/* The caller holds the device's lock. Returns the install's error, which
 * the sender was told too. */
int tnd_receive(const struct tnd_config *cfg, const struct tnd_receive_opts *o,
		struct tnd_receive_result *res) TND_MUST_CHECK;

#endif
