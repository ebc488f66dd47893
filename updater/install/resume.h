/* SPDX-License-Identifier: MIT */
/*
 * Resuming an interrupted install (docs/install.md, "Resume").
 *
 * While a bundle streams, the pipeline hands out points that are durable
 * (everything before them written, synced and read back right); each is
 * saved in state_dir/resume.json, atomically, so after a crash or a power
 * cut the file can lag behind the slot, never run ahead of it. The next
 * install of the very same bundle (same signed manifest) into the same
 * slot, still recorded "installing", re-reads the slot's prefix and
 * checks its CRC-32 against the checkpoint, then continues.
 *
 * Nothing in the file is a root of trust: state_dir lies on a partition
 * an attacker may write. A full payload continues only at a record the
 * signed manifest names as a resume point, and the hash that record must
 * have comes from the manifest, never from the file; the file's offsets
 * are hints that a wrong value turns into a refusal before any byte is
 * written. A delta's op stream is read again from its start, and only
 * writing is skipped. Either way the whole slot is read back and must
 * hash to the manifest's image before it is recorded installed.
 */
#ifndef TANDEM_RESUME_H
#define TANDEM_RESUME_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "bundle.h"
#include "crypto.h"
#include "pipeline.h"
#include "state.h"

struct tnd_resume {
	char path[PATH_MAX]; /* state_dir/resume.json */
	uint8_t digest[TND_SHA256_LEN];
	int slot;
	const char *device;
	bool active; /* this install continues at pt */
	struct tnd_resume_point pt;
};

void tnd_resume_init(struct tnd_resume *rs, const char *state_dir, int slot, const char *device,
		     const uint8_t digest[TND_SHA256_LEN]);
/*
 * Looks for a checkpoint of this install (same manifest digest, slot and
 * device, the slot recorded "installing" in st, a point m allows) and
 * checks the slot still holds the prefix it describes. Any other
 * checkpoint is removed, with a log line saying why; so is every one when
 * `refuse` (the reason, e.g. "--no-resume") is not NULL.
 * Leaves rs->active set when the install can continue at rs->pt.
 */
void tnd_resume_load(struct tnd_resume *rs, const struct tnd_state *st,
		     const struct tnd_manifest *m, const char *refuse);
/* The pipeline's checkpoint callback (ctx: the struct tnd_resume). */
int tnd_resume_save(void *ctx, const struct tnd_resume_point *pt) TND_MUST_CHECK;
/* Removes the checkpoint durably; why, when not NULL, is logged. */
void tnd_resume_discard(struct tnd_resume *rs, const char *why);

#endif
