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
#include "log.h"
#include "slot.h"
#include "util.h"

#define RESUME_FILE "resume.json"
#define RESUME_MAX  4096

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

/* A non-negative integer below 2^53 (exact in a JSON number), or false. */
static bool get_count(const cJSON *o, const char *key, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0) ||
	    (double)(uint64_t)v->valuedouble != v->valuedouble)
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

static bool get_hex(const cJSON *o, const char *key, uint8_t out[TND_SHA256_LEN])
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) && strlen(v->valuestring) == 2 * TND_SHA256_LEN &&
	       tnd_hex_decode(out, TND_SHA256_LEN, v->valuestring) == 0;
}

/* Parses the file; false with *why set when it is not this install's. */
static bool parse(struct tnd_resume *rs, const char *text, const char **why)
{
	cJSON *root = cJSON_Parse(text);
	const cJSON *slot, *dev;
	uint8_t digest[TND_SHA256_LEN];
	uint64_t crc, format;
	bool ok = false;

	*why = "the checkpoint is damaged";
	if (!cJSON_IsObject(root) || !get_count(root, "format", &format) || format != 1)
		goto out;
	slot = cJSON_GetObjectItemCaseSensitive(root, "slot");
	dev = cJSON_GetObjectItemCaseSensitive(root, "device");
	if (!get_hex(root, "manifest", digest) || !cJSON_IsString(slot) || !cJSON_IsString(dev) ||
	    !get_count(root, "chunk", &rs->pt.index) ||
	    !get_count(root, "payload_read", &rs->pt.payload_read) ||
	    !get_count(root, "image_offset", &rs->pt.out) || !get_count(root, "prefix_crc", &crc) ||
	    crc > UINT32_MAX || !get_hex(root, "next_chunk_sha256", rs->pt.expect))
		goto out;
	rs->pt.prefix_crc = (uint32_t)crc;
	if (!tnd_memeq_ct(digest, rs->digest, TND_SHA256_LEN))
		*why = "the checkpoint belongs to another bundle";
	else if (tnd_slot_from_name(slot->valuestring) != rs->slot ||
		 strcmp(dev->valuestring, rs->device) != 0)
		*why = "the checkpoint belongs to another slot";
	else
		ok = true;
out:
	cJSON_Delete(root);
	return ok;
}

void tnd_resume_load(struct tnd_resume *rs, const struct tnd_state *st, const char *refuse)
{
	const char *why = NULL;
	char *text = NULL;
	uint32_t crc;
	int ret;

	rs->active = false;
	ret = tnd_read_small_file(rs->path, RESUME_MAX, &text, NULL);
	if (ret == TND_E_NOT_FOUND) {
		tnd_err_clear();
		return;
	}
	if (ret) {
		why = "the checkpoint cannot be read";
	} else if (refuse) {
		why = refuse;
	} else if (!parse(rs, text, &why)) {
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
	char digest[TND_SHA256_HEX_LEN], next[TND_SHA256_HEX_LEN], *text = NULL;
	cJSON *root = cJSON_CreateObject();
	int ret;

	tnd_hex_encode(digest, rs->digest, TND_SHA256_LEN);
	tnd_hex_encode(next, pt->expect, TND_SHA256_LEN);
	if (root && cJSON_AddNumberToObject(root, "format", 1) &&
	    cJSON_AddStringToObject(root, "manifest", digest) &&
	    cJSON_AddStringToObject(root, "slot", tnd_slot_name(rs->slot)) &&
	    cJSON_AddStringToObject(root, "device", rs->device) &&
	    cJSON_AddNumberToObject(root, "chunk", (double)pt->index) &&
	    cJSON_AddNumberToObject(root, "payload_read", (double)pt->payload_read) &&
	    cJSON_AddNumberToObject(root, "image_offset", (double)pt->out) &&
	    cJSON_AddNumberToObject(root, "prefix_crc", (double)pt->prefix_crc) &&
	    cJSON_AddStringToObject(root, "next_chunk_sha256", next))
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
