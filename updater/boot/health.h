/* SPDX-License-Identifier: MIT */
/*
 * Health checks: every executable in a directory (health_dir), run in
 * name order, each with a time limit; all must exit 0. A missing or
 * empty directory means no checks: the slot is healthy if it got this far.
 */
#ifndef TANDEM_HEALTH_H
#define TANDEM_HEALTH_H

#include <stddef.h>

#include "error.h"

/* Runs the checks with TANDEM_SLOT=slot_name in their environment. On a
 * failure returns TND_E_HEALTH with a message naming the check; *count
 * is the number of checks that ran. */
int tnd_health_run(const char *dir, unsigned timeout_s, const char *slot_name,
		   unsigned *count) TND_MUST_CHECK;

#endif
