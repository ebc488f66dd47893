/* SPDX-License-Identifier: MIT */
/*
 * What happens around a reboot (docs/boot-protocol.md):
 *   activate  a verified slot goes first in the boot order;
 *   confirm   after boot: notices an update that did not come up (U-Boot
 *             fell back), runs the health checks, and marks the booted
 *             slot good (full tries) or bad (no tries, the other slot
 *             first when it holds a good image);
 *   rollback  the other slot, when it holds a good image, boots next.
 * Each changes the environment in one atomic store, and records the
 * outcome in the state so status and fleet reports can tell.
 */
#ifndef TANDEM_BOOTCTL_H
#define TANDEM_BOOTCTL_H

#include <stdbool.h>

#include "config.h"

struct tnd_confirm_result {
	int booted;
	bool healthy;
	unsigned checks;
	int fallback_from; /* slot whose update did not come up, or -1 */
	char reason[TND_ERR_MSG_MAX];
	bool switched; /* the other slot was put first */
};

int tnd_activate(const struct tnd_config *cfg, int slot) TND_MUST_CHECK;
/* Returns TND_E_HEALTH when the booted slot failed its checks. */
int tnd_confirm(const struct tnd_config *cfg, struct tnd_confirm_result *res) TND_MUST_CHECK;
int tnd_rollback(const struct tnd_config *cfg, int *to) TND_MUST_CHECK;

#endif
