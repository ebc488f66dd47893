/* SPDX-License-Identifier: MIT */
/* tandem-image subcommands; each parses its own options (getopt_long). */
#ifndef TANDEM_IMAGE_TOOLS_H
#define TANDEM_IMAGE_TOOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

int cmd_keygen(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_send(int argc, char **argv);

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
	/* delta: no xz streams rebuilt (an odd format version), for devices
	 * without CONFIG_DELTA_XZ */
	int no_delta_xz;
	/* delta: format version to write, 1..6 (tnd_delta_enc_opts); 0: 6 */
	unsigned delta_format;
	/* delta, when set: the bytes of xz stream content the device will
	 * compress again (0: the delta rebuilds none) */
	uint64_t *xz_rebuild;
};

/* --delta-format's argument (build and publish): 1 to 6, else TND_E_USAGE. */
int tnd_parse_delta_format(const char *arg, unsigned *format) TND_MUST_CHECK;

/* Builds a signed full-image bundle. The output appears atomically. */
int tnd_build_bundle(const struct tnd_build_opts *o) TND_MUST_CHECK;

struct tnd_bundle_reader;
/*
 * Reads every record of an opened bundle, inflates it, checks its CRC-32
 * and, for a delta with its base image at base_path, applies it; then
 * checks the image hash: the checks a device makes, without a slot. With
 * out_fd >= 0 the image is also written there (sequentially). A delta
 * without base_path is checked as far as it can be (chain, records) and
 * writes nothing; *image_checked says whether the image hash was checked.
 */
int tnd_bundle_decode(struct tnd_bundle_reader *r, const char *base_path, int out_fd,
		      bool *image_checked) TND_MUST_CHECK;

/* A file that starts with '{' is a channel index (a bundle starts with
 * its magic); inspect and verify take both. */
bool tnd_is_channel_file(const char *path);
/* Prints a channel index (docs/channel-format.md): with vo, its signatures
 * and expiry are checked first, as a device would. */
struct tnd_verify_opts;
int tnd_channel_show(const char *path, const struct tnd_verify_opts *vo, bool json) TND_MUST_CHECK;

#endif
