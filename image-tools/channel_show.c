// SPDX-License-Identifier: MIT
/* tandem-image inspect and verify of a channel index (docs/channel-format.md):
 * its releases, who signed it and, with a keyring, whether a device would
 * accept it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "channel.h"
#include "image_tools.h"
#include "timeutil.h"
#include "util.h"

bool tnd_is_channel_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	int c;

	if (!f)
		return false;
	do
		c = fgetc(f);
	while (c == ' ' || c == '\t' || c == '\r' || c == '\n');
	fclose(f);
	return c == '{';
}

static void show_text(const struct tnd_channel *c, const cJSON *env, const char *status)
{
	char t[TND_TIME_STR_LEN], hex[TND_SHA256_HEX_LEN];
	const cJSON *s;

	printf("signature:        %s\n", status);
	printf("format:           %u\n", c->format);
	printf("sequence:         %llu\n", (unsigned long long)c->sequence);
	tnd_time_format(t, c->created);
	printf("created:          %s\n", t);
	tnd_time_format(t, c->expires);
	printf("expires:          %s\n", t);
	for (size_t i = 0; i < c->nreleases; i++) {
		const struct tnd_channel_release *r = &c->releases[i];

		printf("release:          %s %s, security version %llu, rollout %u%%\n",
		       r->compatible, r->version, (unsigned long long)r->security_version,
		       r->rollout_percent);
		tnd_hex_encode(hex, r->image_sha256, TND_SHA256_LEN);
		printf("  image:          %llu bytes, sha256 %s\n",
		       (unsigned long long)r->image_size, hex);
		tnd_hex_encode(hex, r->full.sha256, TND_SHA256_LEN);
		printf("  full:           %s, %llu bytes, sha256 %s\n", r->full.url,
		       (unsigned long long)r->full.size, hex);
		for (size_t j = 0; j < r->ndeltas; j++) {
			const struct tnd_channel_delta *d = &r->deltas[j];

			tnd_hex_encode(hex, d->base_sha256, TND_SHA256_LEN);
			printf("  delta:          from %s (image sha256 %s): %s, %llu bytes",
			       d->base_version, hex, d->file.url, (unsigned long long)d->file.size);
			if (d->xz_rebuild)
				printf(", rebuilds %llu bytes of xz content",
				       (unsigned long long)d->xz_rebuild);
			putchar('\n');
		}
	}
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(env, "signatures"))
	{
		printf("signed by key:    %s\n",
		       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "keyid")));
	}
}

static int show_json(const struct tnd_channel *c, const cJSON *env, const char *status)
{
	const cJSON *s, *sigs = cJSON_GetObjectItemCaseSensitive(env, "signatures");
	const char *doc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(env, "signed"));
	cJSON *root = cJSON_CreateObject(), *arr;
	char *out = NULL;

	/* The signed document as signed, not re-printed: cJSON would print
	 * integers near 2^53 in floating point. */
	if (root && doc) {
		cJSON_AddStringToObject(root, "signature", status);
		cJSON_AddNumberToObject(root, "valid_signatures", c->valid_sigs);
		cJSON_AddRawToObject(root, "index", doc);
		arr = cJSON_AddArrayToObject(root, "signatures");
		cJSON_ArrayForEach(s, sigs)
		{
			cJSON *o = cJSON_CreateObject();

			cJSON_AddItemToArray(arr, o);
			cJSON_AddStringToObject(
			    o, "keyid",
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "keyid")));
		}
		out = cJSON_Print(root);
	}
	cJSON_Delete(root);
	if (!out)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	puts(out);
	free(out);
	return 0;
}

int tnd_channel_show(const char *path, const struct tnd_verify_opts *vo, bool json)
{
	struct tnd_channel c;
	char *text = NULL, t[TND_TIME_STR_LEN];
	cJSON *env = NULL;
	size_t len;
	int ret;

	if ((ret = tnd_read_small_file(path, TND_CHANNEL_MAX, &text, &len)))
		return ret;
	ret = tnd_channel_parse(&c, text, len, vo);
	if (ret) {
		free(text);
		return tnd_err_prefix(ret, "%s", path);
	}
	/* Expiry as a device sees it: verify says whether devices accept it now. */
	if (vo && c.expires <= tnd_time_now()) {
		tnd_time_format(t, c.expires);
		ret = tnd_err_set(TND_E_EXPIRED, "%s: the channel index expired at %s", path, t);
	}
	/* The parser accepted it, so this cannot fail but for memory. */
	if (!ret && !(env = cJSON_ParseWithLength(text, len)))
		ret = tnd_err_set(TND_E_NOMEM, "out of memory");
	if (!ret && json) {
		ret = show_json(&c, env, vo ? "ok" : "not checked");
	} else if (!ret && vo) {
		tnd_time_format(t, c.expires);
		printf("%s: OK (%u valid signature(s), sequence %llu, expires %s)\n", path,
		       c.valid_sigs, (unsigned long long)c.sequence, t);
	} else if (!ret) {
		show_text(&c, env, "not checked (use tandem-image verify)");
	}
	cJSON_Delete(env);
	tnd_channel_free(&c);
	free(text);
	return ret;
}
