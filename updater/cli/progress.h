/* SPDX-License-Identifier: MIT */
/*
 * Progress for people and for programs. On a terminal: one redrawn line
 * on stderr. With --progress=json: one JSON object per line on stdout
 * (docs/progress.md), flushed at once, for scripts and fleet agents:
 *   {"event":"phase","phase":"authenticate",...}
 *   {"event":"progress","phase":"install","received":..,"verified":..,
 *    "written":..,"total":..,"chunk":k,"chunks":N,"rate":..}
 *   {"event":"error","code":"E_SIGNATURE","message":"..."}
 *   {"event":"done",...}
 */
#ifndef TANDEM_PROGRESS_H
#define TANDEM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "transaction.h"

enum tnd_progress_mode {
	TND_PROGRESS_AUTO,
	TND_PROGRESS_NONE,
	TND_PROGRESS_TTY,
	TND_PROGRESS_JSON
};

struct tnd_progress {
	enum tnd_progress_mode mode;
	double start, last;
	bool drawn;
	char phase[32];
};

/* AUTO becomes TTY when stderr is a terminal, NONE otherwise. */
void tnd_progress_init(struct tnd_progress *p, enum tnd_progress_mode mode);
int tnd_progress_parse_mode(const char *s, enum tnd_progress_mode *mode) TND_MUST_CHECK;
void tnd_progress_phase(struct tnd_progress *p, const char *phase, const char *detail);
/* Rate-limited; the pipeline calls it after every record. */
void tnd_progress_update(void *p, const struct tnd_pipeline_stats *st);
void tnd_progress_error(struct tnd_progress *p, int code, const char *msg);
/* The install's events (transaction.h) drawn or printed by p. */
struct tnd_events tnd_progress_events(struct tnd_progress *p);
/* Ends the bar; `json_fields` (may be NULL) is spliced into the done event. */
void tnd_progress_done(struct tnd_progress *p, const char *json_fields);

#endif
