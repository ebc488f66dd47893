/* SPDX-License-Identifier: MIT */
/* RFC 3339 UTC timestamps ("2027-01-01T00:00:00Z"), the only form bundles use. */
#ifndef TANDEM_TIMEUTIL_H
#define TANDEM_TIMEUTIL_H

#include <stdint.h>

#include "error.h"

#define TND_TIME_STR_LEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Parses exactly "YYYY-MM-DDTHH:MM:SSZ" into seconds since the epoch. */
int tnd_time_parse(const char *s, int64_t *out) TND_MUST_CHECK;
void tnd_time_format(char out[TND_TIME_STR_LEN], int64_t t);
/* Wall-clock time; TANDEM_NOW (same format) overrides it for tests. */
int64_t tnd_time_now(void);

#endif
