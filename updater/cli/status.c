// SPDX-License-Identifier: MIT
#include "status.h"

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "bootloader.h"
#ifdef CONFIG_HTTP
#include "pollstate.h"
#endif
#include "state.h"
#include "timeutil.h"
#include "util.h"

struct status {
	int booted; /* -1 unknown */
	char booted_err[TND_ERR_MSG_MAX];
	struct tnd_state st;
	bool have_bs, switches;
	struct tnd_boot_state bs;
	const char *bl_name;
	uint64_t floor; /* in force: the state's and the environment's */
	char bl_err[TND_ERR_MSG_MAX];
	struct tnd_bl_var raw[16]; /* the backend's variables as stored */
	size_t nraw;
#ifdef CONFIG_HTTP
	bool have_poll; /* a server is configured */
	struct tnd_poll_state poll;
#endif
};

static int gather(const struct tnd_config *cfg, struct status *s)
{
	struct tnd_bootloader *bl = NULL;
	int ret;

	if (tnd_booted_slot(cfg, &s->booted)) {
		s->booted = -1;
		snprintf(s->booted_err, sizeof(s->booted_err), "%s", tnd_err_msg());
	}
	if ((ret = tnd_state_load(&s->st, cfg->state_dir)))
		return ret;
	/* A broken environment is something status must show, not hide behind. */
	s->bl_name = "none";
	s->floor = s->st.security_floor;
	if (tnd_bl_open(&bl, cfg) == 0) {
		s->bl_name = bl->ops->name;
		s->switches = tnd_bl_switches(bl);
		s->have_bs = tnd_bl_read(bl, &s->bs) == 0;
		if (tnd_bl_raw(bl, s->raw, TND_ARRAY_SIZE(s->raw), &s->nraw))
			s->nraw = 0;
		if (!s->have_bs)
			snprintf(s->bl_err, sizeof(s->bl_err), "%s", tnd_err_msg());
		else if (s->bs.floor > s->floor)
			s->floor = s->bs.floor;
	} else {
		snprintf(s->bl_err, sizeof(s->bl_err), "%s", tnd_err_msg());
	}
	tnd_bl_close(bl);
#ifdef CONFIG_HTTP
	s->have_poll = cfg->server.url[0] && !tnd_poll_state_load(&s->poll, cfg->state_dir);
#endif
	return 0;
}

#ifdef CONFIG_HTTP
/* "poll": the fleet poll's last outcome and schedule (docs/status.md),
 * through the one poll-state serializer. */
static void add_poll(cJSON *root, const struct tnd_config *cfg, const struct status *s)
{
	cJSON *o;

	if (!s->have_poll || !(o = cJSON_AddObjectToObject(root, "poll")))
		return;
	cJSON_AddStringToObject(o, "server", cfg->server.url);
	if (tnd_poll_state_to_json(&s->poll, o))
		cJSON_DeleteItemFromObject(root, "poll");
}

static void print_poll(const struct tnd_config *cfg, const struct status *s)
{
	const struct tnd_poll_state *p = &s->poll;
	char t[TND_TIME_STR_LEN];

	if (!s->have_poll)
		return;
	printf("\nserver:       %s\n", cfg->server.url);
	if (!p->last_poll) {
		printf("last poll:    never\n");
		return;
	}
	tnd_time_format(t, p->last_poll);
	printf("last poll:    %s %s%s%s", t, p->result, p->version[0] ? ", release " : "",
	       p->version);
	if (p->bundle[0])
		printf(" (%s bundle, %llu bytes received)", p->bundle,
		       (unsigned long long)p->bytes);
	if (p->error[0])
		printf(" (%s: %s)", p->error_code, p->error);
	printf("\n");
	if (p->next_poll) {
		tnd_time_format(t, p->next_poll);
		printf("next poll:    %s\n", t);
	}
}
#endif

#define ID_STR_LEN (24 + TND_SHA256_HEX_LEN)

/* What the environment vouches the slot holds, as TANDEM_X_IMAGE says
 * it: "<security version>:<SHA-256>", "erased" or "unknown". */
static void identity_str(const struct tnd_slot_id *id, char *out, size_t size)
{
	int n;

	if (id->kind != TND_ID_VALID) {
		snprintf(out, size, "%s", id->kind == TND_ID_ERASED ? "erased" : "unknown");
		return;
	}
	n = snprintf(out, size, "%llu:", (unsigned long long)id->security_version);
	if (n > 0 && (size_t)n + TND_SHA256_HEX_LEN <= size)
		tnd_hex_encode(out + n, id->sha256, TND_SHA256_LEN);
}

static int order_pos(const struct tnd_boot_state *bs, int slot)
{
	for (int i = 0; i < bs->norder; i++)
		if (bs->order[i] == slot)
			return i;
	return -1;
}

static int print_json(const struct tnd_config *cfg, const struct status *s)
{
	cJSON *root = cJSON_CreateObject(), *slots, *bl, *last;
	char hex[TND_SHA256_HEX_LEN], t[TND_TIME_STR_LEN], order[16], id[ID_STR_LEN], *text;

	if (!root)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	cJSON_AddStringToObject(root, "compatible", cfg->compatible);
	if (s->booted >= 0)
		cJSON_AddStringToObject(root, "booted_slot", tnd_slot_name(s->booted));
	else
		cJSON_AddNullToObject(root, "booted_slot");
	if (s->booted < 0)
		cJSON_AddStringToObject(root, "booted_slot_error", s->booted_err);
	bl = cJSON_AddObjectToObject(root, "bootloader");
	cJSON_AddStringToObject(bl, "type", s->bl_name);
	if (s->have_bs && s->switches) {
		tnd_boot_order_str(&s->bs, order, sizeof(order));
		cJSON_AddStringToObject(bl, "boot_order", order);
	} else if (s->bl_err[0]) {
		cJSON_AddStringToObject(bl, "error", s->bl_err);
	}
	if (s->nraw) {
		cJSON *raw = cJSON_AddObjectToObject(bl, "raw");

		for (size_t i = 0; i < s->nraw; i++)
			cJSON_AddStringToObject(raw, s->raw[i].name, s->raw[i].value);
	}
	slots = cJSON_AddObjectToObject(root, "slots");
	for (int i = 0; i < TND_NSLOTS; i++) {
		const struct tnd_slot_info *si = &s->st.slot[i];
		cJSON *o = cJSON_AddObjectToObject(slots, tnd_slot_name(i));

		cJSON_AddStringToObject(o, "device", cfg->slot_dev[i]);
		cJSON_AddStringToObject(o, "state", tnd_slot_state_name(si->state));
		cJSON_AddBoolToObject(o, "booted", s->booted == i);
		if (si->version[0])
			cJSON_AddStringToObject(o, "version", si->version);
		else
			cJSON_AddNullToObject(o, "version");
		if (si->has_sha256) {
			tnd_hex_encode(hex, si->sha256, TND_SHA256_LEN);
			cJSON_AddStringToObject(o, "sha256", hex);
		} else {
			cJSON_AddNullToObject(o, "sha256");
		}
		cJSON_AddNumberToObject(o, "size", (double)si->size);
		cJSON_AddNumberToObject(o, "security_version", (double)si->security_version);
		if (si->updated) {
			tnd_time_format(t, si->updated);
			cJSON_AddStringToObject(o, "updated", t);
		}
		if (s->have_bs && s->switches) {
			cJSON_AddNumberToObject(o, "boot_tries_left", s->bs.tries[i]);
			cJSON_AddNumberToObject(o, "boot_priority", order_pos(&s->bs, i));
			identity_str(&s->bs.id[i], id, sizeof(id));
			cJSON_AddStringToObject(o, "identity", id);
		}
	}
	if (s->st.pending_slot >= 0)
		cJSON_AddStringToObject(root, "pending_slot", tnd_slot_name(s->st.pending_slot));
	else
		cJSON_AddNullToObject(root, "pending_slot");
	if (s->st.interrupted_slot >= 0)
		cJSON_AddStringToObject(root, "interrupted_slot",
					tnd_slot_name(s->st.interrupted_slot));
	cJSON_AddNumberToObject(root, "security_floor", (double)s->floor);
	if (s->st.time_floor) {
		char tf[TND_TIME_STR_LEN];

		tnd_time_format(tf, s->st.time_floor);
		cJSON_AddStringToObject(root, "time_floor", tf);
	}
	tnd_outcome_to_json(root, "last_boot", &s->st.last_boot);
	tnd_outcome_to_json(root, "last_update", &s->st.last_update);
	if (s->st.last_install_result[0]) {
		last = cJSON_AddObjectToObject(root, "last_install");
		tnd_time_format(t, s->st.last_install_time);
		cJSON_AddStringToObject(last, "time", t);
		cJSON_AddStringToObject(last, "result", s->st.last_install_result);
		if (s->st.last_error_code[0]) {
			cJSON_AddStringToObject(last, "error_code", s->st.last_error_code);
			cJSON_AddStringToObject(last, "error", s->st.last_error);
		}
	}
#ifdef CONFIG_HTTP
	add_poll(root, cfg, s);
#endif
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	puts(text);
	free(text);
	return 0;
}

static void print_outcome(const char *label, const struct tnd_outcome *o)
{
	if (o->result[0])
		printf("\n%s %s (slot %s%s%s)%s%s\n", label, o->result, o->slot,
		       o->version[0] ? ", version " : "", o->version, o->reason[0] ? ": " : "",
		       o->reason);
}

static void print_text(const struct tnd_config *cfg, const struct status *s)
{
	char hex[TND_SHA256_HEX_LEN], order[16], id[ID_STR_LEN];

	printf("compatible:  %s\n", cfg->compatible);
	if (s->booted >= 0)
		printf("booted slot: %s\n", tnd_slot_name(s->booted));
	else
		printf("booted slot: unknown (%s)\n", s->booted_err);
	if (s->have_bs && s->switches) {
		tnd_boot_order_str(&s->bs, order, sizeof(order));
		printf("boot order:  %s (%s)\n", order, s->bl_name);
	} else if (s->bl_err[0]) {
		printf("boot order:  unreadable: %s\n", s->bl_err);
	} else {
		printf("boot order:  not managed (bootloader \"none\")\n");
	}
	for (int i = 0; i < TND_NSLOTS; i++) {
		const struct tnd_slot_info *si = &s->st.slot[i];

		printf("\nslot %s%s\n", tnd_slot_name(i), s->booted == i ? " (booted)" : "");
		printf("  device:   %s\n", cfg->slot_dev[i]);
		printf("  state:    %s\n", tnd_slot_state_name(si->state));
		printf("  version:  %s\n", si->version[0] ? si->version : "-");
		if (si->has_sha256) {
			tnd_hex_encode(hex, si->sha256, TND_SHA256_LEN);
			printf("  sha256:   %s\n", hex);
		}
		if (s->have_bs && s->switches) {
			printf("  tries:    %u left%s\n", s->bs.tries[i],
			       order_pos(&s->bs, i) < 0 ? " (not in the boot order: never booted)"
							: "");
			identity_str(&s->bs.id[i], id, sizeof(id));
			printf("  identity: %s\n", id);
		}
	}
	if (s->floor)
		printf("\nsecurity floor: %llu\n", (unsigned long long)s->floor);
	if (s->st.pending_slot >= 0)
		printf("\npending:      slot %s is activated and not yet confirmed\n",
		       tnd_slot_name(s->st.pending_slot));
	if (s->st.interrupted_slot >= 0)
		printf("\ninterrupted:  a power cut stopped the activation of slot %s (installed, "
		       "not tried)\n",
		       tnd_slot_name(s->st.interrupted_slot));
	print_outcome("last boot:  ", &s->st.last_boot);
	print_outcome("last update:", &s->st.last_update);
	if (s->st.last_install_result[0]) {
		printf("\nlast install: %s", s->st.last_install_result);
		if (s->st.last_error[0])
			printf(" (%s: %s)", s->st.last_error_code, s->st.last_error);
		printf("\n");
	}
#ifdef CONFIG_HTTP
	print_poll(cfg, s);
#endif
}

int tnd_status_print(const struct tnd_config *cfg, bool json)
{
	struct status s;
	int ret;

	if ((ret = gather(cfg, &s)))
		return ret;
	if (json)
		return print_json(cfg, &s);
	print_text(cfg, &s);
	return 0;
}
