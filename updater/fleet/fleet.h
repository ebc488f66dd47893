/* SPDX-License-Identifier: MIT */
/*
 * Fleet updates (docs/fleet.md): a poll fetches the signed channel index
 * from server.url, decides whether this device takes the board's latest
 * release (not installed yet, not failed here before, inside the staged
 * rollout), picks the delta whose base is the booted slot's image or else
 * the full bundle, and installs it streaming from the server through the
 * one install transaction, which refuses anything but the release the
 * index entry describes. The poll's outcome is kept in state_dir/poll.json
 * (pollstate.h) for `tandem status` and the next poll. `tandem poll` and
 * `tandem daemon` (cli/) call this once, or on a schedule.
 */
#ifndef TANDEM_FLEET_H
#define TANDEM_FLEET_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "pollstate.h"

struct tnd_http_opts;

struct tnd_poll_opts {
	bool no_activate;
	volatile sig_atomic_t *cancel;
};

/* What a poll needs: a server in the configuration, and the last poll's
 * state (loaded into ps). */
int tnd_fleet_open(const struct tnd_config *cfg, struct tnd_poll_state *ps) TND_MUST_CHECK;
/* One poll, its outcome recorded in ps and poll.json; returns the poll's
 * error. ps->result says what happened ("installed", "up-to-date", ...).
 * The caller holds the device's lock. */
int tnd_poll(const struct tnd_config *cfg, const struct tnd_poll_opts *o,
	     struct tnd_poll_state *ps) TND_MUST_CHECK;
/* Seconds until the next poll of a daemon after one that returned r: the
 * interval with jitter, sooner after a passing failure (30 s doubling). */
unsigned tnd_poll_delay(const struct tnd_config *cfg, const struct tnd_poll_state *ps, int r);
/* HTTP options for the channel's traffic: TLS, timeouts, server.url_policy. */
void tnd_fleet_http_opts(const struct tnd_config *cfg, volatile sig_atomic_t *cancel,
			 struct tnd_http_opts *ho);

#endif
