// SPDX-License-Identifier: MIT
/*
 * tnd_config_parse on arbitrary text. The config is root-owned, but it is
 * also what a provisioning script or an over-the-air config update writes:
 * a malformed one must be refused with a message, never crash the updater.
 */
#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tnd_config cfg;
	char *text;

	if (size > 64 * 1024) /* tnd_config_load reads at most 64 KiB */
		return 0;
	/* The parser takes a C string: copy so ASan sees the exact end. */
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	if (tnd_config_parse(&cfg, text, "fuzz.conf") == 0) {
		FUZZ_ASSERT(cfg.compatible[0]);
		FUZZ_ASSERT(cfg.slot_dev[0][0] && cfg.slot_dev[1][0]);
		FUZZ_ASSERT(strcmp(cfg.slot_dev[0], cfg.slot_dev[1]) != 0);
		FUZZ_ASSERT(cfg.boot_tries >= 1 && cfg.boot_tries <= 9);
		FUZZ_ASSERT(cfg.health_timeout >= 1 && cfg.health_timeout <= 3600);
		FUZZ_ASSERT(cfg.bootloader == TND_BL_NONE || cfg.bootloader == TND_BL_UBOOT);
	}
	free(text);
	return 0;
}
