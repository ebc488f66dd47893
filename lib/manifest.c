// SPDX-License-Identifier: MIT
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "timeutil.h"
#include "util.h"

static int get_uint(const cJSON *obj, const char *key, uint64_t max, bool required, uint64_t *out)
{
	const cJSON *v = tnd_json_get(obj, key);

	if (!v) {
		if (required)
			return tnd_err_set(TND_E_FORMAT, "manifest: missing \"%s\"", key);
		*out = 0;
		return 0;
	}
	if (!tnd_json_uint(v, max, out))
		return tnd_err_set(
		    TND_E_FORMAT, "manifest: \"%s\" must be an integer from 0 to %llu", key,
		    (unsigned long long)(max < TND_JSON_INT_MAX ? max : TND_JSON_INT_MAX));
	return 0;
}

static int get_str(const cJSON *obj, const char *key, bool required, char *out, size_t size)
{
	const cJSON *v = tnd_json_get(obj, key);
	const char *str;

	if (!v) {
		if (required)
			return tnd_err_set(TND_E_FORMAT, "manifest: missing \"%s\"", key);
		out[0] = '\0';
		return 0;
	}
	if (!(str = tnd_json_string(v, size)))
		return tnd_err_set(TND_E_FORMAT,
				   "manifest: \"%s\" must be a string of at most %zu bytes", key,
				   size - 1);
	strcpy(out, str);
	return 0;
}

static int get_hash(const cJSON *obj, const char *key, uint8_t out[TND_SHA256_LEN])
{
	const cJSON *v = tnd_json_get(obj, key);

	if (!v)
		return tnd_err_set(TND_E_FORMAT, "manifest: missing \"%s\"", key);
	if (!tnd_json_sha256(v, false, out))
		return tnd_err_set(TND_E_FORMAT, "manifest: \"%s\" must be 64 hex digits", key);
	return 0;
}

static int get_time(const cJSON *obj, const char *key, bool required, int64_t *out)
{
	char s[32];

	if (get_str(obj, key, required, s, sizeof(s)))
		return TND_E_FORMAT;
	if (!s[0]) {
		/* Absent (optional) is no time; present but empty is not a time
		 * (found by test_manifest: every_field_every_wrong_type). */
		if (tnd_json_get(obj, key))
			return tnd_err_set(TND_E_FORMAT, "manifest: \"%s\" is empty", key);
		*out = 0;
		return 0;
	}
	if (tnd_time_parse(s, out))
		return tnd_err_prefix(TND_E_FORMAT, "manifest: \"%s\"", key);
	return 0;
}

static const cJSON *get_obj(const cJSON *obj, const char *key, bool required)
{
	const cJSON *v = tnd_json_get(obj, key);

	if (!v) {
		if (required)
			tnd_err_set(TND_E_FORMAT, "manifest: missing object \"%s\"", key);
		return NULL;
	}
	if (!cJSON_IsObject(v)) {
		tnd_err_set(TND_E_FORMAT, "manifest: \"%s\" must be an object", key);
		return NULL;
	}
	return v;
}

/* Names are printed in messages and used in file names: keep them plain. */
static int check_name(const char *key, const char *s)
{
	if (!s[0])
		return tnd_err_set(TND_E_FORMAT, "manifest: \"%s\" is empty", key);
	for (const char *p = s; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return tnd_err_set(
			    TND_E_FORMAT,
			    "manifest: \"%s\" may hold only printable ASCII without spaces", key);
	return 0;
}

/* payload.resume: {"every": N, "sha256": [hash of record N, of 2N, ...]} */
static int parse_resume(struct tnd_manifest *m, const cJSON *res)
{
	const cJSON *list, *h;
	uint64_t every;

	if (!res)
		return 0;
	list = tnd_json_get(res, "sha256");
	if (!cJSON_IsObject(res) ||
	    !tnd_json_uint(tnd_json_get(res, "every"), UINT32_MAX, &every) || every == 0 ||
	    !cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1 ||
	    cJSON_GetArraySize(list) > TND_RESUME_MAX)
		return tnd_err_set(
		    TND_E_FORMAT,
		    "manifest: \"resume\" must hold \"every\" (1 or more) and 1 to %d "
		    "\"sha256\" hashes",
		    TND_RESUME_MAX);
	if (m->payload_type != TND_PAYLOAD_FULL)
		return tnd_err_set(TND_E_FORMAT,
				   "manifest: resume points are for full payloads only");
	m->resume_every = (uint32_t)every;
	m->nresume = 0;
	cJSON_ArrayForEach(h, list)
	{
		if (!tnd_json_sha256(h, false, m->resume_sha256[m->nresume]))
			return tnd_err_set(TND_E_FORMAT,
					   "manifest: resume point %u must be 64 hex digits",
					   m->nresume + 1);
		m->nresume++;
	}
	/* every point names a record of the payload, and not its first */
	if ((uint64_t)m->resume_every * m->nresume >= m->chunks)
		return tnd_err_set(
		    TND_E_FORMAT, "manifest: resume point %u lies beyond the payload's %llu chunks",
		    m->nresume, (unsigned long long)m->chunks);
	return 0;
}

const uint8_t *tnd_manifest_resume_point(const struct tnd_manifest *m, uint64_t index)
{
	if (!m->resume_every || !index || index % m->resume_every ||
	    index / m->resume_every > m->nresume)
		return NULL;
	return m->resume_sha256[index / m->resume_every - 1];
}

static int parse_obj(struct tnd_manifest *m, const cJSON *root)
{
	const cJSON *image, *payload, *base, *desc;
	char type[16], comp[16];
	uint64_t v;
	int ret;

	if (!cJSON_IsObject(root))
		return tnd_err_set(TND_E_FORMAT, "manifest is not a JSON object");
	if (get_uint(root, "format", 1000, true, &v))
		return TND_E_FORMAT;
	if (v != TND_MANIFEST_FORMAT)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "manifest format %llu is not supported (this build reads %d)",
				   (unsigned long long)v, TND_MANIFEST_FORMAT);
	m->format = (int)v;
	if (get_str(root, "compatible", true, m->compatible, sizeof(m->compatible)) ||
	    check_name("compatible", m->compatible) ||
	    get_str(root, "version", true, m->version, sizeof(m->version)) ||
	    check_name("version", m->version) ||
	    get_uint(root, "security_version", UINT32_MAX, false, &m->security_version) ||
	    get_time(root, "created", true, &m->created) ||
	    get_time(root, "expires", false, &m->expires))
		return TND_E_FORMAT;
	desc = tnd_json_get(root, "description");
	if (desc && get_str(root, "description", false, m->description, sizeof(m->description)))
		return TND_E_FORMAT;

	image = get_obj(root, "image", true);
	if (!image || get_uint(image, "size", TND_JSON_INT_MAX, true, &m->image_size) ||
	    get_hash(image, "sha256", m->image_sha256))
		return TND_E_FORMAT;

	payload = get_obj(root, "payload", true);
	if (!payload || get_str(payload, "type", true, type, sizeof(type)) ||
	    get_str(payload, "compression", true, comp, sizeof(comp)) ||
	    get_uint(payload, "chunk_size", TND_CHUNK_SIZE_MAX, true, &v))
		return TND_E_FORMAT;
	m->chunk_size = (uint32_t)v;
	if (m->chunk_size < TND_CHUNK_SIZE_MIN || (m->chunk_size & (m->chunk_size - 1)))
		return tnd_err_set(TND_E_FORMAT,
				   "manifest: chunk_size must be a power of two of at least %u",
				   TND_CHUNK_SIZE_MIN);
	if (get_uint(payload, "chunks", UINT32_MAX, true, &m->chunks) ||
	    get_uint(payload, "size", TND_JSON_INT_MAX, true, &m->payload_size) ||
	    get_hash(payload, "first_chunk_sha256", m->first_chunk))
		return TND_E_FORMAT;
	if (strcmp(type, "full") == 0)
		m->payload_type = TND_PAYLOAD_FULL;
	else if (strcmp(type, "delta") == 0)
		m->payload_type = TND_PAYLOAD_DELTA;
	else
		return tnd_err_set(TND_E_UNSUPPORTED, "manifest: unknown payload type \"%s\"",
				   type);
	if (strcmp(comp, "zlib") == 0)
		m->compression = TND_COMP_ZLIB;
	else
		return tnd_err_set(TND_E_UNSUPPORTED, "manifest: unknown compression \"%s\"", comp);
	if (m->payload_type == TND_PAYLOAD_DELTA) {
		if (get_uint(payload, "stream_size", TND_JSON_INT_MAX, true, &m->stream_size) ||
		    get_uint(payload, "delta_format", 255, false, &v))
			return TND_E_FORMAT;
		if (!v && tnd_json_get(payload, "delta_format"))
			return tnd_err_set(TND_E_FORMAT, "manifest: delta_format 0 does not exist");
		m->delta_format = v ? (uint8_t)v : 1;
	} else {
		m->stream_size = m->image_size;
	}
	if ((ret = parse_resume(m, tnd_json_get(payload, "resume"))))
		return ret;
	if ((m->chunks == 0) != (m->stream_size == 0))
		return tnd_err_set(TND_E_FORMAT,
				   "manifest: chunk count does not fit the payload size");

	base = get_obj(root, "base", false);
	if (!base && tnd_json_get(root, "base"))
		return TND_E_FORMAT;
	m->has_base = base != NULL;
	if (base && (get_uint(base, "size", TND_JSON_INT_MAX, true, &m->base_size) ||
		     get_hash(base, "sha256", m->base_sha256)))
		return TND_E_FORMAT;
	if (m->has_base != (m->payload_type == TND_PAYLOAD_DELTA))
		return tnd_err_set(TND_E_FORMAT,
				   "manifest: \"base\" is required for, and only for, "
				   "delta payloads");
	if (m->expires && m->expires <= m->created)
		return tnd_err_set(TND_E_FORMAT, "manifest: expires before it was created");
	return 0;
}

int tnd_manifest_parse(struct tnd_manifest *m, const char *json, size_t len)
{
	const char *end = NULL;
	cJSON *root;
	int r;

	memset(m, 0, sizeof(*m));
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	/* Trailing bytes after the object are refused: the signed bytes
	 * and the parsed object must be the same thing. */
	if (!root || end != json + len) {
		cJSON_Delete(root);
		return tnd_err_set(TND_E_FORMAT, "manifest is not valid JSON");
	}
	r = parse_obj(m, root);
	cJSON_Delete(root);
	if (r)
		memset(m, 0, sizeof(*m));
	return r;
}

static int add_resume(cJSON *payload, const struct tnd_manifest *m)
{
	cJSON *res = cJSON_AddObjectToObject(payload, "resume"), *list;
	int bad = !res || tnd_json_add_uint(res, "every", m->resume_every) ||
		  !(list = cJSON_AddArrayToObject(res, "sha256"));
	char hex[TND_SHA256_HEX_LEN];

	for (uint32_t i = 0; !bad && i < m->nresume; i++) {
		tnd_hex_encode(hex, m->resume_sha256[i], TND_SHA256_LEN);
		bad = !cJSON_AddItemToArray(list, cJSON_CreateString(hex));
	}
	return bad ? -1 : 0;
}

int tnd_manifest_to_json(const struct tnd_manifest *m, char **out)
{
	cJSON *root = cJSON_CreateObject(), *image = NULL, *payload = NULL, *base = NULL;
	int bad = !root;

	if (!bad) {
		bad |= !cJSON_AddNumberToObject(root, "format", TND_MANIFEST_FORMAT);
		bad |= !cJSON_AddStringToObject(root, "compatible", m->compatible);
		bad |= !cJSON_AddStringToObject(root, "version", m->version);
		if (m->description[0])
			bad |= !cJSON_AddStringToObject(root, "description", m->description);
		bad |= tnd_json_add_uint(root, "security_version", m->security_version);
		bad |= tnd_json_add_time(root, "created", m->created);
		if (m->expires)
			bad |= tnd_json_add_time(root, "expires", m->expires);
		image = cJSON_AddObjectToObject(root, "image");
		payload = cJSON_AddObjectToObject(root, "payload");
		if (m->has_base)
			bad |= !(base = cJSON_AddObjectToObject(root, "base"));
		bad |= !image || !payload;
	}
	if (!bad) {
		bad |= tnd_json_add_uint(image, "size", m->image_size);
		bad |= tnd_json_add_sha256(image, "sha256", m->image_sha256);
		bad |= !cJSON_AddStringToObject(
		    payload, "type", m->payload_type == TND_PAYLOAD_DELTA ? "delta" : "full");
		bad |= !cJSON_AddStringToObject(payload, "compression", "zlib");
		bad |= tnd_json_add_uint(payload, "chunk_size", m->chunk_size);
		bad |= tnd_json_add_uint(payload, "chunks", m->chunks);
		bad |= tnd_json_add_uint(payload, "size", m->payload_size);
		bad |= tnd_json_add_sha256(payload, "first_chunk_sha256", m->first_chunk);
		if (m->payload_type == TND_PAYLOAD_DELTA)
			bad |= tnd_json_add_uint(payload, "stream_size", m->stream_size);
		/* written only when it is not the default, so a version 1 delta's
		 * manifest is what it always was */
		if (m->payload_type == TND_PAYLOAD_DELTA && m->delta_format > 1)
			bad |= tnd_json_add_uint(payload, "delta_format", m->delta_format);
		if (m->nresume)
			bad |= add_resume(payload, m);
		if (base) {
			bad |= tnd_json_add_uint(base, "size", m->base_size);
			bad |= tnd_json_add_sha256(base, "sha256", m->base_sha256);
		}
	}
	if (!bad)
		bad = !(*out = cJSON_PrintUnformatted(root));
	cJSON_Delete(root);
	return bad ? tnd_err_set(TND_E_NOMEM, "cannot serialise manifest") : 0;
}
