/* SPDX-License-Identifier: MIT */
/*
 * What a fleet device remembers of its polls: state_dir/poll.json
 * (docs/status.md, "poll"). One serializer writes it, `tandem poll
 * --json` and `tandem status --json`, so that a field has one name
 * everywhere.
 */
#ifndef TANDEM_POLLSTATE_H
#define TANDEM_POLLSTATE_H

#include <stdint.h>

#include "error.h"
#include "manifest.h"

#define TND_POLL_FILE "poll.json"

struct cJSON;

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

/* A missing file is a device that never polled; a damaged one is
 * started afresh (it is a cache and a floor the next index rebuilds). */
int tnd_poll_state_load(struct tnd_poll_state *ps, const char *state_dir) TND_MUST_CHECK;
int tnd_poll_state_save(const struct tnd_poll_state *ps, const char *state_dir) TND_MUST_CHECK;
/* Adds every field to obj (0 on success, -1 out of memory). */
int tnd_poll_state_to_json(const struct tnd_poll_state *ps, struct cJSON *obj);

#endif
