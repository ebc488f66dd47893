// SPDX-License-Identifier: MIT
#include "pollstate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "json.h"
#include "log.h"
#include "util.h"

int tnd_poll_state_to_json(const struct tnd_poll_state *ps, cJSON *o)
{
	int bad = 0;

	bad |= tnd_json_add_string_opt(o, "etag", ps->etag);
	bad |= tnd_json_add_uint(o, "sequence", ps->sequence);
	bad |= tnd_json_add_time_opt(o, "last_poll", ps->last_poll);
	bad |= tnd_json_add_string_opt(o, "result", ps->result);
	bad |= tnd_json_add_string_opt(o, "version", ps->version);
	bad |= tnd_json_add_string_opt(o, "error_code", ps->error_code);
	bad |= tnd_json_add_string_opt(o, "error", ps->error);
	bad |= tnd_json_add_time_opt(o, "next_poll", ps->next_poll);
	bad |= tnd_json_add_uint(o, "failures", ps->failures);
	bad |= tnd_json_add_uint(o, "bytes", ps->bytes);
	bad |= tnd_json_add_uint(o, "requests", ps->requests);
	bad |= tnd_json_add_string_opt(o, "bundle", ps->bundle);
	bad |= tnd_json_add_time_opt(o, "reported_update", ps->reported_update);
	return bad ? -1 : 0;
}

int tnd_poll_state_save(const struct tnd_poll_state *ps, const char *state_dir)
{
	char path[PATH_MAX + 16], *text = NULL;
	cJSON *o = cJSON_CreateObject();
	int r;

	if (o && !tnd_poll_state_to_json(ps, o))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/%s", state_dir, TND_POLL_FILE);
	r = tnd_atomic_write(path, text, strlen(text), 0644);
	free(text);
	return r ? tnd_err_prefix(TND_E_STATE, "poll state") : 0;
}

static void get_s(const cJSON *o, const char *k, char *out, size_t size)
{
	const char *v = tnd_json_string(tnd_json_get(o, k), size);

	if (v)
		snprintf(out, size, "%s", v);
}

static int64_t get_t(const cJSON *o, const char *k)
{
	int64_t t;

	return tnd_json_time(tnd_json_get(o, k), &t) ? t : 0;
}

static uint64_t get_u(const cJSON *o, const char *k, uint64_t max)
{
	uint64_t v;

	return tnd_json_uint(tnd_json_get(o, k), max, &v) ? v : 0;
}

int tnd_poll_state_load(struct tnd_poll_state *ps, const char *state_dir)
{
	char path[PATH_MAX + 16], *text;
	cJSON *o;

	memset(ps, 0, sizeof(*ps));
	snprintf(path, sizeof(path), "%s/%s", state_dir, TND_POLL_FILE);
	if (access(path, F_OK) && errno == ENOENT)
		return 0; /* never polled */
	if (tnd_read_own_file(path, 64 * 1024, &text, NULL))
		return tnd_err_prefix(TND_E_STATE, "poll state");
	o = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		/* Only a cache and a floor: losing it costs one full fetch,
		 * and the sequence floor is rebuilt from the next index (the
		 * index's expiry still bounds what can be replayed). */
		tnd_warn("%s is not valid JSON: starting afresh", path);
		return 0;
	}
	get_s(o, "etag", ps->etag, sizeof(ps->etag));
	ps->sequence = get_u(o, "sequence", TND_JSON_INT_MAX);
	ps->last_poll = get_t(o, "last_poll");
	get_s(o, "result", ps->result, sizeof(ps->result));
	get_s(o, "version", ps->version, sizeof(ps->version));
	get_s(o, "error_code", ps->error_code, sizeof(ps->error_code));
	get_s(o, "error", ps->error, sizeof(ps->error));
	ps->next_poll = get_t(o, "next_poll");
	ps->failures = (unsigned)get_u(o, "failures", UINT32_MAX);
	ps->bytes = get_u(o, "bytes", TND_JSON_INT_MAX);
	ps->requests = (unsigned)get_u(o, "requests", UINT32_MAX);
	get_s(o, "bundle", ps->bundle, sizeof(ps->bundle));
	ps->reported_update = get_t(o, "reported_update");
	cJSON_Delete(o);
	return 0;
}
