/* SPDX-License-Identifier: MIT */
/* `tandem status`: what the device runs and what each slot holds
 * (docs/status.md describes the JSON form). */
#ifndef TANDEM_STATUS_H
#define TANDEM_STATUS_H

#include <stdbool.h>

#include "config.h"

/* Prints status to stdout; JSON when json is set. */
int tnd_status_print(const struct tnd_config *cfg, bool json) TND_MUST_CHECK;

#endif
