// SPDX-License-Identifier: MIT
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "timeutil.h"
#include "util.h"

bool tnd_json_uint(const cJSON *v, uint64_t max, uint64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	/* !(d >= 0) also refuses NaN; the bound is checked as a double
	 * before the conversion, which is undefined out of range. */
	if (!(d >= 0) || d > (double)TND_JSON_INT_MAX || d != floor(d) || (uint64_t)d > max)
		return false;
	*out = (uint64_t)d;
	return true;
}

const char *tnd_json_string(const cJSON *v, size_t size)
{
	if (!cJSON_IsString(v) || !v->valuestring || strlen(v->valuestring) >= size)
		return NULL;
	return v->valuestring;
}

bool tnd_json_sha256(const cJSON *v, bool strict, uint8_t out[TND_SHA256_LEN])
{
	const char *s = tnd_json_string(v, TND_SHA256_HEX_LEN);

	if (!s || strlen(s) != 2 * TND_SHA256_LEN)
		return false;
	/* strict: one spelling per hash, so that signed documents compare
	 * as text too */
	for (const char *p = s; strict && *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return tnd_hex_decode(out, TND_SHA256_LEN, s) == 0;
}

bool tnd_json_time(const cJSON *v, int64_t *out)
{
	const char *s = tnd_json_string(v, TND_TIME_STR_LEN);

	return s && tnd_time_parse(s, out) == 0;
}

const cJSON *tnd_json_get(const cJSON *obj, const char *key)
{
	return obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

int tnd_json_add_uint(cJSON *obj, const char *key, uint64_t v)
{
	char text[24];

	if (v > TND_JSON_INT_MAX)
		return -1;
	snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
	return cJSON_AddRawToObject(obj, key, text) ? 0 : -1;
}

int tnd_json_add_sha256(cJSON *obj, const char *key, const uint8_t h[TND_SHA256_LEN])
{
	char hex[TND_SHA256_HEX_LEN];

	tnd_hex_encode(hex, h, TND_SHA256_LEN);
	return cJSON_AddStringToObject(obj, key, hex) ? 0 : -1;
}

int tnd_json_add_time(cJSON *obj, const char *key, int64_t t)
{
	char s[TND_TIME_STR_LEN];

	tnd_time_format(s, t);
	return cJSON_AddStringToObject(obj, key, s) ? 0 : -1;
}

int tnd_json_add_time_opt(cJSON *obj, const char *key, int64_t t)
{
	return t ? tnd_json_add_time(obj, key, t) : 0;
}

int tnd_json_add_string_opt(cJSON *obj, const char *key, const char *s)
{
	return s && s[0] && !cJSON_AddStringToObject(obj, key, s) ? -1 : 0;
}
