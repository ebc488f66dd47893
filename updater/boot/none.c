// SPDX-License-Identifier: MIT
/*
 * "none": a device whose boot order Tandem does not control (a bench
 * machine, a simulated device, a board whose firmware picks the slot by
 * other means). Installs write and verify slots as usual; nothing is
 * activated, and the commands that would switch slots say so. Its state
 * is empty: no order, no tries, no copy of the floor (which then lives in
 * the state directory alone, docs/security.md).
 */
#include <stdlib.h>
#include <string.h>

#include "bootloader.h"

static int none_open(struct tnd_bootloader **out, const struct tnd_config *cfg)
{
	struct tnd_bootloader *bl = calloc(1, sizeof(*bl));

	if (!bl)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	bl->ops = &tnd_bl_none_ops;
	bl->cfg = cfg;
	*out = bl;
	return 0;
}

static int none_open_init(struct tnd_bootloader **out, const struct tnd_config *cfg,
			  const char *defaults, bool *blank)
{
	(void)defaults;
	*blank = false;
	return none_open(out, cfg);
}

static void none_close(struct tnd_bootloader *bl)
{
	free(bl);
}

static int none_read(struct tnd_bootloader *bl, struct tnd_boot_state *bs)
{
	(void)bl;
	memset(bs, 0, sizeof(*bs));
	return 0;
}

const struct tnd_bootloader_ops tnd_bl_none_ops = {
    .name = "none",
    .switches = false,
    .open = none_open,
    .open_init = none_open_init,
    .close = none_close,
    .read = none_read,
};
