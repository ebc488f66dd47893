/* SPDX-License-Identifier: MIT */
/* `tandem doctor`: checks a device's setup and says what is wrong in plain words. */
#ifndef TANDEM_DOCTOR_H
#define TANDEM_DOCTOR_H

#include <stdbool.h>

#include "config.h"

/* Prints one line per check (or a JSON object); returns TND_E_CONFIG if
 * any check failed. Warnings do not fail. */
int tnd_doctor(const struct tnd_config *cfg, bool json) TND_MUST_CHECK;

#endif
