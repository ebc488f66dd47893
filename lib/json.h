/* SPDX-License-Identifier: MIT */
/*
 * The JSON rules every Tandem document follows, written once: the signed
 * formats (manifest, channel index) and the device's own files (state,
 * resume checkpoint, poll state, configuration) all read and write their
 * numbers, hashes and times through here.
 *
 * Numbers: cJSON, like most JSON parsers, holds a number as a double, so
 * an integer is exact only below 2^53; a larger one can mean different
 * numbers to different readers (a signer and a device). Readers accept
 * exactly the integers 0..2^53-1, writers print exact decimal text (cJSON
 * prints numbers with %.15g, which rounds: 9007199254740991 came out as
 * 9.00719925474099e+15, found by fuzz_manifest).
 *
 * Readers take the item (NULL when absent) and say only yes or no: each
 * format words its own error message.
 */
#ifndef TANDEM_JSON_H
#define TANDEM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct cJSON;

#define TND_JSON_INT_MAX 9007199254740991ULL /* 2^53 - 1 */

/* v is a number holding an integer from 0 to max (and to TND_JSON_INT_MAX). */
bool tnd_json_uint(const struct cJSON *v, uint64_t max, uint64_t *out);
/* v is a string shorter than size bytes: the string (borrowed), else NULL. */
const char *tnd_json_string(const struct cJSON *v, size_t size);
/* v is a string of exactly 64 hex digits (lower case only when strict). */
bool tnd_json_sha256(const struct cJSON *v, bool strict, uint8_t out[TND_SHA256_LEN]);
/* v is an RFC 3339 UTC time string "YYYY-MM-DDTHH:MM:SSZ". */
bool tnd_json_time(const struct cJSON *v, int64_t *out);
/* obj[key], case-sensitive; NULL when absent (or obj is NULL). */
const struct cJSON *tnd_json_get(const struct cJSON *obj, const char *key);

/* Writers: 0, or -1 (out of memory, or an integer above TND_JSON_INT_MAX).
 * The _opt forms add nothing for 0 or an empty string. */
int tnd_json_add_uint(struct cJSON *obj, const char *key, uint64_t v);
int tnd_json_add_sha256(struct cJSON *obj, const char *key, const uint8_t h[TND_SHA256_LEN]);
int tnd_json_add_time(struct cJSON *obj, const char *key, int64_t t);
int tnd_json_add_time_opt(struct cJSON *obj, const char *key, int64_t t);
int tnd_json_add_string_opt(struct cJSON *obj, const char *key, const char *s);

#endif
