// SPDX-License-Identifier: MIT
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "json.h"
#include "util.h"

#define CONFIG_MAX (64 * 1024)

const char *tnd_slot_name(int slot)
{
	return slot == 0 ? "A" : slot == 1 ? "B" : "?";
}

int tnd_slot_from_name(const char *name)
{
	if (!strcmp(name, "A") || !strcmp(name, "a"))
		return 0;
	if (!strcmp(name, "B") || !strcmp(name, "b"))
		return 1;
	return -1;
}

static int get_string(const cJSON *obj, const char *key, char *out, size_t size, const char *where)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v)
		return 0; /* keep the default */
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= size)
		return tnd_err_set(TND_E_CONFIG, "%s: \"%s\" must be a non-empty string", where,
				   key);
	strcpy(out, v->valuestring);
	return 0;
}

static int get_unsigned(const cJSON *obj, const char *key, unsigned min, unsigned max,
			unsigned *out, const char *where)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	uint64_t n;

	if (!v)
		return 0;
	if (!tnd_json_uint(v, max, &n) || n < min)
		return tnd_err_set(TND_E_CONFIG, "%s: \"%s\" must be an integer from %u to %u",
				   where, key, min, max);
	*out = (unsigned)n;
	return 0;
}

static int get_bool(const cJSON *obj, const char *key, bool *out, const char *where)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v)
		return 0;
	if (!cJSON_IsBool(v))
		return tnd_err_set(TND_E_CONFIG, "%s: \"%s\" must be true or false", where, key);
	*out = cJSON_IsTrue(v);
	return 0;
}

static int check_keys(const cJSON *obj, const char *const *known, const char *where)
{
	for (const cJSON *it = obj->child; it; it = it->next) {
		const char *const *k = known;

		while (*k && strcmp(*k, it->string))
			k++;
		if (!*k)
			return tnd_err_set(TND_E_CONFIG, "%s: unknown key \"%s\"", where,
					   it->string);
	}
	return 0;
}

static int parse_bootloader(struct tnd_config *cfg, const cJSON *bl, const char *where)
{
	static const char *const keys[] = {
	    "type", "env_config", "grubenv", "handler", "handler_timeout", "handler_env", NULL};
	char type[16] = "";

	if (!cJSON_IsObject(bl))
		return tnd_err_set(TND_E_CONFIG, "%s: \"bootloader\" must be an object", where);
	if (check_keys(bl, keys, where) || get_string(bl, "type", type, sizeof(type), where) ||
	    get_string(bl, "env_config", cfg->env_config, sizeof(cfg->env_config), where) ||
	    get_string(bl, "grubenv", cfg->grubenv, sizeof(cfg->grubenv), where) ||
	    get_string(bl, "handler", cfg->handler, sizeof(cfg->handler), where) ||
	    get_unsigned(bl, "handler_timeout", 1, 600, &cfg->handler_timeout, where) ||
	    get_bool(bl, "handler_env", &cfg->handler_env, where))
		return TND_E_CONFIG;
	if (!strcmp(type, "uboot"))
		cfg->bootloader = TND_BL_UBOOT;
	else if (!strcmp(type, "none"))
		cfg->bootloader = TND_BL_NONE;
	else if (!strcmp(type, "grub"))
		cfg->bootloader = TND_BL_GRUB;
	else if (!strcmp(type, "custom"))
		cfg->bootloader = TND_BL_CUSTOM;
	else
		return tnd_err_set(TND_E_CONFIG,
				   "%s: bootloader type must be \"uboot\", \"grub\", \"custom\" or "
				   "\"none\"",
				   where);
	if (cfg->bootloader == TND_BL_CUSTOM && !cfg->handler[0])
		return tnd_err_set(TND_E_CONFIG, "%s: bootloader \"custom\" needs a \"handler\"",
				   where);
#ifndef CONFIG_BOOTLOADER_UBOOT
	if (cfg->bootloader == TND_BL_UBOOT)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "%s: this build has no U-Boot support (CONFIG_BOOTLOADER_UBOOT)",
				   where);
#endif
#ifndef CONFIG_BOOTLOADER_GRUB
	if (cfg->bootloader == TND_BL_GRUB)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "%s: this build has no GRUB support (CONFIG_BOOTLOADER_GRUB)",
				   where);
#endif
#ifndef CONFIG_BOOTLOADER_CUSTOM
	if (cfg->bootloader == TND_BL_CUSTOM)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "%s: this build has no custom bootloader support "
				   "(CONFIG_BOOTLOADER_CUSTOM)",
				   where);
#endif
	return 0;
}

static int parse_slots(struct tnd_config *cfg, const cJSON *slots, const char *where)
{
	static const char *const keys[] = {"A", "B", NULL};

	if (!cJSON_IsObject(slots))
		return tnd_err_set(TND_E_CONFIG, "%s: \"slots\" must be an object", where);
	if (check_keys(slots, keys, where))
		return TND_E_CONFIG;
	for (int i = 0; i < TND_NSLOTS; i++) {
		if (!cJSON_GetObjectItemCaseSensitive(slots, tnd_slot_name(i)))
			return tnd_err_set(TND_E_CONFIG, "%s: slot %s has no device", where,
					   tnd_slot_name(i));
		if (get_string(slots, tnd_slot_name(i), cfg->slot_dev[i], sizeof(cfg->slot_dev[i]),
			       where))
			return TND_E_CONFIG;
	}
	if (!strcmp(cfg->slot_dev[0], cfg->slot_dev[1]))
		return tnd_err_set(TND_E_CONFIG, "%s: slots A and B name the same device", where);
	return 0;
}

static int parse_server(struct tnd_config *cfg, const cJSON *sv, const char *where)
{
	static const char *const keys[] = {"url",
					   "ca",
					   "client_cert",
					   "client_key",
					   "proxy",
					   "report_url",
					   "device_id_file",
					   "poll_interval",
					   "poll_jitter",
					   "connect_timeout",
					   "stall_timeout",
					   "retries",
					   "delta_xz_rebuild",
					   "url_policy",
					   NULL};
	struct tnd_server_config *s = &cfg->server;
	char policy[16] = "https";

	if (!cJSON_IsObject(sv))
		return tnd_err_set(TND_E_CONFIG, "%s: \"server\" must be an object", where);
	if (check_keys(sv, keys, where) || get_string(sv, "url", s->url, sizeof(s->url), where) ||
	    get_string(sv, "ca", s->ca, sizeof(s->ca), where) ||
	    get_string(sv, "client_cert", s->client_cert, sizeof(s->client_cert), where) ||
	    get_string(sv, "client_key", s->client_key, sizeof(s->client_key), where) ||
	    get_string(sv, "proxy", s->proxy, sizeof(s->proxy), where) ||
	    get_string(sv, "report_url", s->report_url, sizeof(s->report_url), where) ||
	    get_string(sv, "device_id_file", s->device_id_file, sizeof(s->device_id_file), where) ||
	    get_unsigned(sv, "poll_interval", 1, 30 * 86400, &s->poll_interval, where) ||
	    get_unsigned(sv, "poll_jitter", 0, 86400, &s->poll_jitter, where) ||
	    get_unsigned(sv, "connect_timeout", 1, 600, &s->connect_timeout, where) ||
	    get_unsigned(sv, "stall_timeout", 1, 3600, &s->stall_timeout, where) ||
	    get_unsigned(sv, "retries", 0, 100, &s->retries, where) ||
	    get_bool(sv, "delta_xz_rebuild", &s->delta_xz_rebuild, where) ||
	    get_string(sv, "url_policy", policy, sizeof(policy), where))
		return TND_E_CONFIG;
	if (!strcmp(policy, "https"))
		s->url_policy = TND_URLS_HTTPS;
	else if (!strcmp(policy, "same-origin"))
		s->url_policy = TND_URLS_SAME_ORIGIN;
	else if (!strcmp(policy, "any"))
		s->url_policy = TND_URLS_ANY;
	else
		return tnd_err_set(
		    TND_E_CONFIG,
		    "%s: \"url_policy\" must be \"https\", \"same-origin\" or \"any\"", where);
	if (!s->url[0])
		return tnd_err_set(TND_E_CONFIG, "%s: \"server\" needs a \"url\"", where);
	if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
		return tnd_err_set(TND_E_CONFIG,
				   "%s: server url must start with http:// or https://", where);
	/* The device fetches nothing over plain HTTP unless told to: the
	 * signatures protect what it installs either way, but a hop that can
	 * change bytes can also stall or replay them. */
	if (s->url_policy == TND_URLS_HTTPS &&
	    (strncmp(s->url, "https://", 8) ||
	     (s->report_url[0] && strncmp(s->report_url, "https://", 8))))
		return tnd_err_set(TND_E_CONFIG,
				   "%s: server url and report_url must be https:// (or set "
				   "\"url_policy\": \"any\" to allow plain HTTP)",
				   where);
	if (!s->client_cert[0] != !s->client_key[0])
		return tnd_err_set(TND_E_CONFIG,
				   "%s: \"client_cert\" and \"client_key\" go together", where);
	if (!cJSON_GetObjectItemCaseSensitive(sv, "poll_jitter"))
		s->poll_jitter = s->poll_interval / 10;
	if (s->poll_jitter > s->poll_interval / 2)
		return tnd_err_set(TND_E_CONFIG,
				   "%s: \"poll_jitter\" must be at most half of \"poll_interval\"",
				   where);
#ifndef CONFIG_HTTP
	return tnd_err_set(TND_E_UNSUPPORTED,
			   "%s: this build has no HTTP support (CONFIG_HTTP) for \"server\"",
			   where);
#else
	return 0;
#endif
}

int tnd_config_parse(struct tnd_config *cfg, const char *json, const char *origin)
{
	static const char *const keys[] = {"compatible", "keyring",	   "signature_threshold",
					   "state_dir",	 "cmdline",	   "boot_id",
					   "bootloader", "slots",	   "boot_tries",
					   "health_dir", "health_timeout", "server",
					   NULL};
	const cJSON *v;
	cJSON *root;
	int ret = TND_E_CONFIG;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->path, sizeof(cfg->path), "%s", origin);
	strcpy(cfg->keyring, "/etc/tandem/keys");
	strcpy(cfg->state_dir, "/var/lib/tandem");
	strcpy(cfg->cmdline, "/proc/cmdline");
	strcpy(cfg->boot_id, "/proc/sys/kernel/random/boot_id");
	strcpy(cfg->env_config, "/etc/fw_env.config");
	strcpy(cfg->grubenv, "/boot/grub/grubenv");
	cfg->handler_timeout = 30;
	cfg->handler_env = true;
	strcpy(cfg->health_dir, "/etc/tandem/health.d");
	cfg->signature_threshold = 1;
	cfg->boot_tries = 3;
	cfg->health_timeout = 60;
	cfg->bootloader = TND_BL_UBOOT;
	strcpy(cfg->server.device_id_file, "/etc/machine-id");
	cfg->server.poll_interval = 3600;
	cfg->server.connect_timeout = 30;
	cfg->server.stall_timeout = 60;
	cfg->server.retries = 5;
	cfg->server.delta_xz_rebuild = true;

	root = cJSON_Parse(json);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return tnd_err_set(TND_E_CONFIG, "%s: not a valid JSON object", origin);
	}
	if (check_keys(root, keys, origin) ||
	    get_string(root, "compatible", cfg->compatible, sizeof(cfg->compatible), origin) ||
	    get_string(root, "keyring", cfg->keyring, sizeof(cfg->keyring), origin) ||
	    get_unsigned(root, "signature_threshold", 1, 16, &cfg->signature_threshold, origin) ||
	    get_string(root, "state_dir", cfg->state_dir, sizeof(cfg->state_dir), origin) ||
	    get_string(root, "cmdline", cfg->cmdline, sizeof(cfg->cmdline), origin) ||
	    get_string(root, "boot_id", cfg->boot_id, sizeof(cfg->boot_id), origin) ||
	    get_unsigned(root, "boot_tries", 1, 9, &cfg->boot_tries, origin) ||
	    get_string(root, "health_dir", cfg->health_dir, sizeof(cfg->health_dir), origin) ||
	    get_unsigned(root, "health_timeout", 1, 3600, &cfg->health_timeout, origin))
		goto out;
	if (!cfg->compatible[0]) {
		tnd_err_set(TND_E_CONFIG, "%s: \"compatible\" is required", origin);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "slots");
	if (!v) {
		tnd_err_set(TND_E_CONFIG, "%s: \"slots\" is required", origin);
		goto out;
	}
	if (parse_slots(cfg, v, origin))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(root, "bootloader");
	if (v && (ret = parse_bootloader(cfg, v, origin)))
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(root, "server");
	if (v && (ret = parse_server(cfg, v, origin)))
		goto out;
	ret = 0;
out:
	cJSON_Delete(root);
	return ret ? tnd_err_code() : 0;
}

int tnd_config_load(struct tnd_config *cfg, const char *path)
{
	char *text;
	int ret;

	ret = tnd_read_small_file(path, CONFIG_MAX, &text, NULL);
	if (ret)
		return tnd_err_prefix(TND_E_CONFIG, "configuration");
	ret = tnd_config_parse(cfg, text, path);
	free(text);
	return ret;
}

int tnd_boot_id(const struct tnd_config *cfg, char id[64])
{
	char *text;
	size_t n;

	if (tnd_read_small_file(cfg->boot_id, 256, &text, &n))
		return tnd_err_prefix(TND_E_CONFIG, "cannot read the boot ID");
	while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	snprintf(id, 64, "%s", text);
	free(text);
	return 0;
}

/*
 * The booted slot: the last tandem.slot= word, as the kernel takes the last
 * of a parameter, or the last rauc.slot= word, which the boot script of a
 * board that used RAUC's U-Boot scheme passes (docs/boot-protocol.md,
 * "Migrating from RAUC"). RAUC's value is a slot's boot name, which names
 * the environment's variables (BOOT_A_LEFT): only "A" and "B" are ours. A
 * command line naming different slots under the two names is refused, not
 * guessed.
 */
int tnd_booted_slot(const struct tnd_config *cfg, int *slot)
{
	char *text, *tok, *save = NULL;
	char rauc_word[32] = "";
	int ret, tandem = -2, rauc = -2; /* -2: not given; -1: given, not a slot */

	ret = tnd_read_small_file(cfg->cmdline, 16384, &text, NULL);
	if (ret)
		return tnd_err_prefix(TND_E_SLOT, "cannot tell the booted slot");
	for (tok = strtok_r(text, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (!strncmp(tok, "tandem.slot=", 12)) {
			tandem = tnd_slot_from_name(tok + 12);
		} else if (!strncmp(tok, "rauc.slot=", 10)) {
			snprintf(rauc_word, sizeof(rauc_word), "%s", tok);
			rauc = !strcmp(tok + 10, "A") ? 0 : !strcmp(tok + 10, "B") ? 1 : -1;
		}
	}
	free(text);
	if (tandem >= 0 && rauc >= 0 && tandem != rauc)
		return tnd_err_set(
		    TND_E_SLOT,
		    "cannot tell the booted slot: %s says tandem.slot=%s and rauc.slot=%s",
		    cfg->cmdline, tnd_slot_name(tandem), tnd_slot_name(rauc));
	if (tandem == -1 || (tandem == -2 && rauc == -1))
		return tnd_err_set(TND_E_SLOT,
				   "cannot tell the booted slot: %s names no slot A or B in %s",
				   cfg->cmdline, tandem == -1 ? "tandem.slot=" : rauc_word);
	if (tandem == -2 && rauc == -2)
		return tnd_err_set(TND_E_SLOT,
				   "cannot tell the booted slot: %s has no tandem.slot=A or "
				   "tandem.slot=B (or RAUC's rauc.slot=)",
				   cfg->cmdline);
	*slot = tandem >= 0 ? tandem : rauc;
	return 0;
}
