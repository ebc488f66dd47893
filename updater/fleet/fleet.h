/* SPDX-License-Identifier: MIT */
/*
 * Fleet updates (docs/fleet.md): `tandem poll` and `tandem daemon` fetch
 * the signed channel index from server.url, decide whether this device
 * takes the board's latest release (not installed yet, not failed here
 * before, inside the staged rollout), pick the delta whose base is the
 * booted slot's image or else the full bundle, and install it streaming
 * from the server. The poll's outcome is kept in state_dir/poll.json
 * (written atomically) for `tandem status` and the next poll.
 */
#ifndef TANDEM_FLEET_H
#define TANDEM_FLEET_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "manifest.h"

#define TND_POLL_FILE "poll.json"

/* What state_dir/poll.json holds (docs/status.md, "poll"). */
struct tnd_poll_state {
	char etag[256];	   /* of the last index acted on completely */
	uint64_t sequence; /* highest index sequence accepted: never goes back */
	int64_t last_poll; /* when the last poll ended */
	char result[24];   /* see docs/fleet.md: installed, up-to-date, ... */
	char version[TND_NAME_MAX];
	char error_code[32];
	char error[TND_ERR_MSG_MAX];
	int64_t next_poll; /* daemon: when it polls next; 0: not scheduled */
	unsigned failures; /* failed polls in a row */
	uint64_t bytes;	   /* bytes the last poll received (headers and bodies) */
	unsigned requests; /* HTTP requests the last poll made */
	/* what the last poll installed or tried last: "full", "delta" or
	 * "delta-xz" (a delta that rebuilt xz streams); "": nothing */
	char bundle[16];
	int64_t reported_update; /* time of the last update outcome reported */
};

int tnd_poll_state_load(struct tnd_poll_state *ps, const char *state_dir) TND_MUST_CHECK;
int tnd_poll_state_save(const struct tnd_poll_state *ps, const char *state_dir) TND_MUST_CHECK;

/* `tandem poll` and `tandem daemon`; argv[0] is the command's name. */
int tnd_cmd_poll(const char *config_path, volatile sig_atomic_t *cancel, int argc,
		 char **argv) TND_MUST_CHECK;
int tnd_cmd_daemon(const char *config_path, volatile sig_atomic_t *cancel, int argc,
		   char **argv) TND_MUST_CHECK;

#endif
