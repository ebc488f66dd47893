/* SPDX-License-Identifier: MIT */
/* tandem-image subcommands; each parses its own options (getopt_long). */
#ifndef TANDEM_IMAGE_TOOLS_H
#define TANDEM_IMAGE_TOOLS_H

#include <stdint.h>

#include "error.h"

int cmd_keygen(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);

/* Options for tnd_build_bundle(), also used by tests. */
struct tnd_build_opts {
	const char *image_path;
	const char *base_path; /* set: a delta bundle from this image to image_path */
	const char *out_path;
	const char *key_paths[16];
	unsigned nkeys;
	const char *compatible;
	const char *version;
	const char *description;
	uint64_t security_version;
	int64_t created; /* 0: now (or SOURCE_DATE_EPOCH) */
	int64_t expires; /* 0: never */
	uint32_t chunk_size;
	int level; /* zlib level 1..9 */
};

/* Builds a signed full-image bundle. The output appears atomically. */
int tnd_build_bundle(const struct tnd_build_opts *o) TND_MUST_CHECK;

#endif
