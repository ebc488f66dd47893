// SPDX-License-Identifier: MIT
#include "resume.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "slot.h"
#include "util.h"

#define RESUME_FILE "resume.json"
#define RESUME_MAX  4096
/* 2: no chain hash in the file (the manifest's resume points instead) */
#define RESUME_FORMAT 2

void tnd_resume_init(struct tnd_resume *rs, const char *state_dir, int slot, const char *device,
		     const uint8_t digest[TND_SHA256_LEN])
{
	memset(rs, 0, sizeof(*rs));
	snprintf(rs->path, sizeof(rs->path), "%s/" RESUME_FILE, state_dir);
	memcpy(rs->digest, digest, TND_SHA256_LEN);
	rs->slot = slot;
	rs->device = device;
}

void tnd_resume_discard(struct tnd_resume *rs, const char *why)
{
	char dir[PATH_MAX];

	rs->active = false;
	if (unlink(rs->path) < 0) {
		if (errno != ENOENT)
			tnd_warn("cannot remove %s: %s", rs->path, strerror(errno));
		return;
	}
	if (why)
		tnd_info("not resuming: %s", why);
	snprintf(dir, sizeof(dir), "%s", rs->path);
	if (tnd_fsync_dir(dirname(dir)))
		tnd_warn("%s", tnd_err_msg());
}

static bool get_count(const cJSON *o, const char *key, uint64_t *out)
{
	return tnd_json_uint(tnd_json_get(o, key), TND_JSON_INT_MAX, out);
}

/*
 * Parses the file; false with *why set when it is not this install's or
 * not a point m allows. Format 1 files (which carried the chain's next
 * hash, trusted, hole 2 of issue 19) are not read: that install starts
 * over once.
 */
static bool parse(struct tnd_resume *rs, const char *text, const struct tnd_manifest *m,
		  const char **why)
{
	cJSON *root = cJSON_Parse(text);
	const cJSON *slot, *dev;
	uint8_t digest[TND_SHA256_LEN];
	uint64_t crc, format;
	bool ok = false;

	*why = "the checkpoint is damaged";
	if (!cJSON_IsObject(root) || !get_count(root, "format", &format))
		goto out;
	if (format != RESUME_FORMAT) {
		*why = "the checkpoint was written by another version of tandem";
		goto out;
	}
	slot = tnd_json_get(root, "slot");
	dev = tnd_json_get(root, "device");
	if (!tnd_json_sha256(tnd_json_get(root, "manifest"), false, digest) ||
	    !cJSON_IsString(slot) || !cJSON_IsString(dev) ||
	    !get_count(root, "chunk", &rs->pt.index) ||
	    !get_count(root, "payload_read", &rs->pt.payload_read) ||
	    !get_count(root, "image_offset", &rs->pt.out) || !get_count(root, "prefix_crc", &crc) ||
	    crc > UINT32_MAX)
		goto out;
	rs->pt.prefix_crc = (uint32_t)crc;
	if (!tnd_memeq_ct(digest, rs->digest, TND_SHA256_LEN))
		*why = "the checkpoint belongs to another bundle";
	else if (tnd_slot_from_name(slot->valuestring) != rs->slot ||
		 strcmp(dev->valuestring, rs->device) != 0)
		*why = "the checkpoint belongs to another slot";
	else if (m->payload_type == TND_PAYLOAD_FULL && !tnd_manifest_resume_point(m, rs->pt.index))
		*why = m->resume_every ? "the checkpoint names no signed resume point of the bundle"
				       : "the bundle names no signed resume points (built by an "
					 "older tandem-image)";
	/* A delta's point names an image offset only (its op stream is read
	 * again from the start); anything else is not one of ours. */
	else if (m->payload_type == TND_PAYLOAD_DELTA &&
		 (rs->pt.index != 0 || rs->pt.payload_read != 0 || rs->pt.out >= m->image_size))
		*why = "the checkpoint is damaged";
	else
		ok = true;
out:
	cJSON_Delete(root);
	return ok;
}

void tnd_resume_load(struct tnd_resume *rs, const struct tnd_state *st,
		     const struct tnd_manifest *m, const char *refuse)
{
	const char *why = NULL;
	char *text = NULL;
	uint32_t crc;
	int ret;

	rs->active = false;
	ret = tnd_read_own_file(rs->path, RESUME_MAX, &text, NULL);
	if (ret == TND_E_NOT_FOUND) {
		tnd_err_clear();
		return;
	}
	if (ret) {
		why = "the checkpoint cannot be read";
	} else if (refuse) {
		why = refuse;
	} else if (!parse(rs, text, m, &why)) {
		/* why set by parse */
	} else if (st->slot[rs->slot].state != TND_SLOT_INSTALLING) {
		why = "the slot is no longer being installed";
	} else {
		/* The file may outlive what it describes (a write lost with the
		 * power, storage that decays): the slot must still hold it. */
		ret = tnd_slot_crc(rs->device, rs->pt.out, &crc);
		if (ret || crc != rs->pt.prefix_crc)
			why = "the slot no longer holds what the checkpoint describes";
		else
			rs->active = true;
	}
	free(text);
	tnd_err_clear();
	if (!rs->active)
		tnd_resume_discard(rs, why);
}

int tnd_resume_save(void *ctx, const struct tnd_resume_point *pt)
{
	struct tnd_resume *rs = ctx;
	cJSON *root = cJSON_CreateObject();
	char *text = NULL;
	int ret;

	if (root && !tnd_json_add_uint(root, "format", RESUME_FORMAT) &&
	    !tnd_json_add_sha256(root, "manifest", rs->digest) &&
	    cJSON_AddStringToObject(root, "slot", tnd_slot_name(rs->slot)) &&
	    cJSON_AddStringToObject(root, "device", rs->device) &&
	    !tnd_json_add_uint(root, "chunk", pt->index) &&
	    !tnd_json_add_uint(root, "payload_read", pt->payload_read) &&
	    !tnd_json_add_uint(root, "image_offset", pt->out) &&
	    !tnd_json_add_uint(root, "prefix_crc", pt->prefix_crc))
		text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	tnd_debug("checkpoint: chunk %llu, %llu bytes of the image durable",
		  (unsigned long long)pt->index, (unsigned long long)pt->out);
	ret = tnd_atomic_write(rs->path, text, strlen(text), 0644);
	free(text);
	return ret;
}
