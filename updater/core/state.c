// SPDX-License-Identifier: MIT
#include "state.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "json.h"
#include "log.h"
#include "timeutil.h"
#include "util.h"

#define STATE_FILE "state.json"
#define STATE_MAX  (64 * 1024)

static const char *const state_names[] = {"unknown", "installing", "installed", "good", "bad"};

const char *tnd_slot_state_name(enum tnd_slot_state s)
{
	return (unsigned)s < TND_ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

void tnd_slot_record_installed(struct tnd_slot_info *si, const struct tnd_manifest *m)
{
	memset(si, 0, sizeof(*si));
	si->state = TND_SLOT_INSTALLED;
	snprintf(si->version, sizeof(si->version), "%s", m->version);
	snprintf(si->compatible, sizeof(si->compatible), "%s", m->compatible);
	memcpy(si->sha256, m->image_sha256, TND_SHA256_LEN);
	si->has_sha256 = true;
	si->size = m->image_size;
	si->security_version = m->security_version;
	si->updated = tnd_time_now();
}

bool tnd_slot_record_holds(const struct tnd_slot_info *si, const struct tnd_manifest *m)
{
	return (si->state == TND_SLOT_INSTALLED || si->state == TND_SLOT_GOOD) && si->has_sha256 &&
	       memcmp(si->sha256, m->image_sha256, TND_SHA256_LEN) == 0 &&
	       si->size == m->image_size && strcmp(si->version, m->version) == 0 &&
	       strcmp(si->compatible, m->compatible) == 0 &&
	       si->security_version == m->security_version;
}

static void copy_str(const cJSON *obj, const char *key, char *out, size_t size)
{
	const char *v = tnd_json_string(tnd_json_get(obj, key), size);

	if (v)
		snprintf(out, size, "%s", v);
}

/* A non-negative integer below 2^53, or 0 when absent. Anything else
 * marks the file corrupt (*bad): a damaged anti-rollback floor must fail
 * closed, never read as 0. */
static uint64_t get_uint(const cJSON *obj, const char *key, uint64_t max, bool *bad)
{
	const cJSON *v = tnd_json_get(obj, key);
	uint64_t n = 0;

	if (v && !tnd_json_uint(v, max, &n))
		*bad = true;
	return n;
}

static uint64_t get_u64(const cJSON *obj, const char *key, bool *bad)
{
	return get_uint(obj, key, TND_JSON_INT_MAX, bad);
}

/* A security version: a manifest's never exceeds UINT32_MAX, so a state
 * that says more was not written by Tandem. */
static uint64_t get_sv(const cJSON *obj, const char *key, bool *bad)
{
	return get_uint(obj, key, UINT32_MAX, bad);
}

static int64_t get_time(const cJSON *obj, const char *key)
{
	int64_t t;

	return tnd_json_time(tnd_json_get(obj, key), &t) ? t : 0;
}

static void parse_slot(struct tnd_slot_info *si, const cJSON *o, bool *bad)
{
	char state[16] = "", hex[TND_SHA256_HEX_LEN] = "";

	copy_str(o, "state", state, sizeof(state));
	for (size_t i = 0; i < TND_ARRAY_SIZE(state_names); i++)
		if (!strcmp(state, state_names[i]))
			si->state = (enum tnd_slot_state)i;
	copy_str(o, "version", si->version, sizeof(si->version));
	copy_str(o, "compatible", si->compatible, sizeof(si->compatible));
	copy_str(o, "sha256", hex, sizeof(hex));
	si->has_sha256 = hex[0] && tnd_hex_decode(si->sha256, TND_SHA256_LEN, hex) == 0;
	si->size = get_u64(o, "size", bad);
	si->security_version = get_sv(o, "security_version", bad);
	si->updated = get_time(o, "updated");
	si->identity_in_env = cJSON_IsTrue(tnd_json_get(o, "identity_in_env"));
}

static void parse_outcome(struct tnd_outcome *o, const cJSON *j)
{
	if (!cJSON_IsObject(j))
		return;
	o->time = get_time(j, "time");
	copy_str(j, "result", o->result, sizeof(o->result));
	copy_str(j, "slot", o->slot, sizeof(o->slot));
	copy_str(j, "version", o->version, sizeof(o->version));
	copy_str(j, "reason", o->reason, sizeof(o->reason));
}

void tnd_outcome_set(struct tnd_outcome *o, const char *result, int slot, const char *version,
		     const char *reason)
{
	o->time = tnd_time_now();
	snprintf(o->result, sizeof(o->result), "%s", result);
	snprintf(o->slot, sizeof(o->slot), "%s", tnd_slot_name(slot));
	snprintf(o->version, sizeof(o->version), "%s", version ? version : "");
	snprintf(o->reason, sizeof(o->reason), "%s", reason ? reason : "");
}

int tnd_state_set_pending(struct tnd_state *st, const struct tnd_config *cfg, int slot)
{
	st->pending_slot = slot;
	st->interrupted_slot = -1;
	st->pending_since = slot >= 0 ? tnd_time_now() : 0;
	st->pending_boot_id[0] = '\0';
	st->pending_activated = false;
	return slot >= 0 ? tnd_boot_id(cfg, st->pending_boot_id) : 0;
}

int tnd_state_load(struct tnd_state *st, const char *state_dir)
{
	char path[PATH_MAX], *text = NULL;
	const cJSON *slots, *last;
	bool bad = false;
	cJSON *root;
	int ret;

	memset(st, 0, sizeof(*st));
	st->pending_slot = st->interrupted_slot = -1;
	snprintf(path, sizeof(path), "%s/" STATE_FILE, state_dir);
	ret = tnd_read_own_file(path, STATE_MAX, &text, NULL);
	if (ret == TND_E_NOT_FOUND) {
		tnd_err_clear();
		return 0;
	}
	if (ret)
		return tnd_err_prefix(TND_E_STATE, "state");
	root = cJSON_Parse(text);
	free(text);
	/* The file is only ever replaced by rename, so a parse failure is
	 * outside damage: refuse rather than forget what the slots hold. */
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tnd_err_set(TND_E_STATE, "%s is corrupt (not a JSON object)", path);
	}
	slots = tnd_json_get(root, "slots");
	for (int i = 0; i < TND_NSLOTS; i++) {
		const cJSON *o = tnd_json_get(slots, tnd_slot_name(i));

		if (cJSON_IsObject(o))
			parse_slot(&st->slot[i], o, &bad);
	}
	{
		char pending[4] = "";

		copy_str(root, "pending_slot", pending, sizeof(pending));
		st->pending_slot = pending[0] ? tnd_slot_from_name(pending) : -1;
		st->pending_since = get_time(root, "pending_since");
		copy_str(root, "pending_boot_id", st->pending_boot_id, sizeof(st->pending_boot_id));
		/* absent: written before the key existed, when the mark was
		 * saved only around a completed store */
		st->pending_activated = !cJSON_IsFalse(tnd_json_get(root, "pending_activated"));
		copy_str(root, "interrupted_slot", pending, sizeof(pending));
		st->interrupted_slot = pending[0] ? tnd_slot_from_name(pending) : -1;
		st->security_floor = get_sv(root, "security_floor", &bad);
		/* Like the security floor, a damaged clock floor fails closed. */
		if (tnd_json_get(root, "time_floor") &&
		    !(st->time_floor = get_time(root, "time_floor")))
			bad = true;
		parse_outcome(&st->last_boot, tnd_json_get(root, "last_boot"));
		parse_outcome(&st->last_update, tnd_json_get(root, "last_update"));
	}
	last = tnd_json_get(root, "last_install");
	if (cJSON_IsObject(last)) {
		st->last_install_time = get_time(last, "time");
		copy_str(last, "result", st->last_install_result, sizeof(st->last_install_result));
		copy_str(last, "error_code", st->last_error_code, sizeof(st->last_error_code));
		copy_str(last, "error", st->last_error, sizeof(st->last_error));
	}
	cJSON_Delete(root);
	if (bad)
		return tnd_err_set(TND_E_STATE, "%s is corrupt (a number out of range)", path);
	return 0;
}

void tnd_outcome_to_json(cJSON *parent, const char *key, const struct tnd_outcome *o)
{
	cJSON *j;

	if (!o->result[0] || !(j = cJSON_AddObjectToObject(parent, key)))
		return;
	tnd_json_add_time_opt(j, "time", o->time);
	cJSON_AddStringToObject(j, "result", o->result);
	cJSON_AddStringToObject(j, "slot", o->slot);
	if (o->version[0])
		cJSON_AddStringToObject(j, "version", o->version);
	if (o->reason[0])
		cJSON_AddStringToObject(j, "reason", o->reason);
}

int tnd_state_save(const struct tnd_state *st, const char *state_dir)
{
	cJSON *root = cJSON_CreateObject(), *slots, *last;
	char path[PATH_MAX], *text;
	int ret;

	if (!root)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	cJSON_AddNumberToObject(root, "format", 1);
	slots = cJSON_AddObjectToObject(root, "slots");
	for (int i = 0; slots && i < TND_NSLOTS; i++) {
		const struct tnd_slot_info *si = &st->slot[i];
		cJSON *o = cJSON_AddObjectToObject(slots, tnd_slot_name(i));
		char hex[TND_SHA256_HEX_LEN];

		if (!o)
			continue;
		cJSON_AddStringToObject(o, "state", tnd_slot_state_name(si->state));
		if (si->version[0])
			cJSON_AddStringToObject(o, "version", si->version);
		if (si->compatible[0])
			cJSON_AddStringToObject(o, "compatible", si->compatible);
		if (si->has_sha256) {
			tnd_hex_encode(hex, si->sha256, TND_SHA256_LEN);
			cJSON_AddStringToObject(o, "sha256", hex);
		}
		if (si->size)
			tnd_json_add_uint(o, "size", si->size);
		tnd_json_add_uint(o, "security_version", si->security_version);
		tnd_json_add_time_opt(o, "updated", si->updated);
		if (si->identity_in_env)
			cJSON_AddBoolToObject(o, "identity_in_env", true);
	}
	if (st->interrupted_slot >= 0)
		cJSON_AddStringToObject(root, "interrupted_slot",
					tnd_slot_name(st->interrupted_slot));
	if (st->pending_slot >= 0) {
		cJSON_AddStringToObject(root, "pending_slot", tnd_slot_name(st->pending_slot));
		tnd_json_add_time_opt(root, "pending_since", st->pending_since);
		cJSON_AddStringToObject(root, "pending_boot_id", st->pending_boot_id);
		cJSON_AddBoolToObject(root, "pending_activated", st->pending_activated);
	}
	tnd_json_add_uint(root, "security_floor", st->security_floor);
	tnd_json_add_time_opt(root, "time_floor", st->time_floor);
	tnd_outcome_to_json(root, "last_boot", &st->last_boot);
	tnd_outcome_to_json(root, "last_update", &st->last_update);
	if (st->last_install_result[0]) {
		last = cJSON_AddObjectToObject(root, "last_install");
		if (last) {
			tnd_json_add_time_opt(last, "time", st->last_install_time);
			cJSON_AddStringToObject(last, "result", st->last_install_result);
			if (st->last_error_code[0])
				cJSON_AddStringToObject(last, "error_code", st->last_error_code);
			if (st->last_error[0])
				cJSON_AddStringToObject(last, "error", st->last_error);
		}
	}
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/" STATE_FILE, state_dir);
	ret = tnd_atomic_write(path, text, strlen(text), 0644);
	free(text);
	return ret ? tnd_err_prefix(TND_E_STATE, "cannot save state") : 0;
}

#ifndef TANDEM_BUILD_TIME
#define TANDEM_BUILD_TIME 0
#endif

int64_t tnd_build_time(void)
{
	return TANDEM_BUILD_TIME;
}

int64_t tnd_trusted_now(const struct tnd_state *st, bool *unset)
{
	int64_t now = tnd_time_now(), floor = TANDEM_BUILD_TIME;

	if (st && st->time_floor > floor)
		floor = st->time_floor;
	*unset = now < floor;
	return *unset ? floor : now;
}

void tnd_warn_unset_clock(const struct tnd_state *st)
{
	char a[TND_TIME_STR_LEN], b[TND_TIME_STR_LEN];
	bool unset;
	int64_t floor = tnd_trusted_now(st, &unset);

	if (!unset)
		return;
	tnd_time_format(a, tnd_time_now());
	tnd_time_format(b, floor);
	tnd_warn("the system clock (%s) is earlier than this build or the newest installed "
		 "release: expiry was checked against %s",
		 a, b);
}
