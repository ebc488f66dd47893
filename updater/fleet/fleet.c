// SPDX-License-Identifier: MIT
/*
 * Polling a channel (fleet.h, docs/fleet.md). One poll:
 *   1. send status reports queued by earlier polls (state_dir/reports/);
 *   2. GET the index with If-None-Match: a 304 ends the poll (one small
 *      request, no signature check);
 *   3. verify it (keyring, threshold), refuse it when expired or when its
 *      sequence is below the highest one accepted (a replayed old index);
 *   4. find the release for this board; stop if the booted slot runs it,
 *      the other slot already holds it (waiting for a reboot), or it
 *      failed on this device before; stop if the device is outside the
 *      staged rollout;
 *   5. install the delta whose base is the booted slot's image, else the
 *      full bundle, streaming from the server; a delta that fails for a
 *      reason other than the network falls back to the full bundle once;
 *   6. record the outcome and report it.
 * The ETag is kept only once an index was acted on completely, so a poll
 * whose install failed is not answered 304 next time.
 */
#include "fleet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "bootctl.h"
#include "bootloader.h"
#include "channel.h"
#include "delta.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "sign.h"
#include "state.h"
#include "timeutil.h"
#include "transaction.h"
#include "util.h"

#define REPORTS_DIR "reports"
#define REPORTS_MAX 32 /* queued reports kept while the server is away */
#define BACKOFF_MIN 30 /* seconds before the first retry of a failed poll */

/* ------------------------------------------------------------ reports */

static void device_id(const struct tnd_config *cfg, char *out, size_t size)
{
	char *text;
	size_t n;

	out[0] = '\0';
	if (tnd_read_small_file(cfg->server.device_id_file, 4096, &text, &n))
		return;
	text[strcspn(text, "\r\n")] = '\0';
	snprintf(out, size, "%s", text);
	free(text);
}

static bool is_report(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 5 && !strcmp(name + n - 5, ".json");
}

/*
 * The reports directory, opened once and never through a symlink: it is
 * in state_dir, which others may write, and what Tandem does there
 * (create files, delete the oldest, read and send them) must not happen
 * in a directory a link points at. -1 (with a warning) when it cannot.
 */
static int open_reports(const struct tnd_config *cfg, char *dir, size_t size, bool create)
{
	int dfd;

	snprintf(dir, size, "%s/%s", cfg->state_dir, REPORTS_DIR);
	if (create && mkdir(dir, 0755) < 0 && errno != EEXIST) {
		tnd_warn("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && errno != ENOENT)
		tnd_warn("status reports: refusing %s: %s", dir,
			 errno == ELOOP || errno == ENOTDIR ? "not a directory (a symbolic link?)"
							    : strerror(errno));
	return dfd;
}

/* The queued reports' names, oldest first (their names sort by time). */
static int list_reports(int dfd, struct dirent ***list)
{
	return scandirat(dfd, ".", list, NULL, alphasort);
}

static void free_list(struct dirent **list, int n)
{
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* Queues a report file; the oldest go when more than REPORTS_MAX wait. */
static void queue_report(const struct tnd_config *cfg, const char *json)
{
	char dir[PATH_MAX + 16], name[64];
	struct dirent **list;
	unsigned queued = 0;
	int dfd, n;

	if ((dfd = open_reports(cfg, dir, sizeof(dir), true)) < 0)
		return;
	n = list_reports(dfd, &list);
	if (n >= 0) {
		for (int i = 0; i < n; i++)
			queued += is_report(list[i]->d_name);
		for (int i = 0; i < n && queued >= REPORTS_MAX; i++)
			if (is_report(list[i]->d_name) && !unlinkat(dfd, list[i]->d_name, 0))
				queued--;
		free_list(list, n);
	}
	snprintf(name, sizeof(name), "%020" PRId64 "-%08x.json", tnd_time_now(),
		 (unsigned)getpid());
	if (tnd_atomic_write_at(dfd, dir, name, json, strlen(json), 0644))
		tnd_warn("cannot queue a status report: %s", tnd_err_msg());
	close(dfd);
}

/* Sends queued reports, oldest first; stops at the first failure. A file
 * that is not a regular one of ours (a link, a FIFO) is not read. */
static void flush_reports(const struct tnd_config *cfg, const struct tnd_http_opts *ho)
{
	char dir[PATH_MAX + 16], *text;
	struct dirent **list;
	int dfd, n;

	if ((dfd = open_reports(cfg, dir, sizeof(dir), false)) < 0)
		return;
	n = list_reports(dfd, &list);
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;

		if (!is_report(name))
			continue;
		if (tnd_read_own_file_at(dfd, name, 64 * 1024, &text, NULL)) {
			tnd_warn("status report %s/%s: %s", dir, name, tnd_err_msg());
			continue;
		}
		if (tnd_http_post_json(cfg->server.report_url, text, ho)) {
			free(text);
			tnd_info("status reports stay queued: %s", tnd_err_msg());
			break;
		}
		free(text);
		unlinkat(dfd, name, 0);
		tnd_info("sent a queued status report");
	}
	if (n >= 0)
		free_list(list, n);
	close(dfd);
}

/* Reports an event, or queues it when the server cannot be reached. ps:
 * the poll that installed or failed to (what it downloaded goes into the
 * report); NULL for the outcome of an update after its reboot. */
static void report(const struct tnd_config *cfg, const struct tnd_http_opts *ho, const char *event,
		   const char *version, const char *slot, int code, const char *msg,
		   const struct tnd_poll_state *ps)
{
	char id[256], now[TND_TIME_STR_LEN], *text;
	cJSON *o;

	if (!cfg->server.report_url[0])
		return;
	o = cJSON_CreateObject();
	if (!o)
		return;
	device_id(cfg, id, sizeof(id));
	tnd_time_format(now, tnd_time_now());
	tnd_json_add_string_opt(o, "device_id", id);
	tnd_json_add_string_opt(o, "compatible", cfg->compatible);
	tnd_json_add_string_opt(o, "event", event);
	tnd_json_add_string_opt(o, "version", version);
	tnd_json_add_string_opt(o, "slot", slot);
	tnd_json_add_string_opt(o, "time", now);
	if (ps && ps->bundle[0]) {
		tnd_json_add_string_opt(o, "bundle", ps->bundle);
		cJSON_AddNumberToObject(o, "bytes", (double)ps->bytes);
	}
	if (code) {
		tnd_json_add_string_opt(o, "error_code", tnd_err_name(code));
		tnd_json_add_string_opt(o, "error", msg);
	}
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return;
	flush_reports(cfg, ho); /* keep the order */
	if (tnd_http_post_json(cfg->server.report_url, text, ho)) {
		tnd_info("status report queued: %s", tnd_err_msg());
		queue_report(cfg, text);
	} else {
		tnd_info("status report sent: %s %s", event, version ? version : "");
	}
	free(text);
}

/* Reports how the last activated update ended (confirm or fall-back after
 * the reboot), once. */
static void report_update_outcome(const struct tnd_config *cfg, const struct tnd_http_opts *ho,
				  const struct tnd_state *st, struct tnd_poll_state *ps)
{
	const struct tnd_outcome *u = &st->last_update;

	if (!cfg->server.report_url[0] || !u->time || u->time <= ps->reported_update)
		return;
	report(cfg, ho, !strcmp(u->result, "success") ? "confirmed" : "rolled-back", u->version,
	       u->slot, !strcmp(u->result, "success") ? 0 : TND_E_HEALTH, u->reason, NULL);
	ps->reported_update = u->time;
}

/* ------------------------------------------------------------ one poll */

/* What the signed index says the bundle at this entry's URL is: the
 * install transaction refuses anything else (install/policy.h). */
static void expect_entry(struct tnd_expect *e, const struct tnd_channel_release *rel,
			 const struct tnd_channel_delta *d)
{
	const struct tnd_channel_file *f = d ? &d->file : &rel->full;

	memset(e, 0, sizeof(*e));
	snprintf(e->version, sizeof(e->version), "%s", rel->version);
	e->security_version = rel->security_version;
	e->image_size = rel->image_size;
	memcpy(e->image_sha256, rel->image_sha256, TND_SHA256_LEN);
	e->delta = d != NULL;
	if (d) {
		e->base_size = d->base_size;
		memcpy(e->base_sha256, d->base_sha256, TND_SHA256_LEN);
	}
	e->file_size = f->size;
	memcpy(e->file_sha256, f->sha256, TND_SHA256_LEN);
}

/* Installs the bundle of one index entry; fills *res. */
static int install_entry(const struct tnd_config *cfg, const struct tnd_http_opts *ho,
			 const struct tnd_poll_opts *po, const struct tnd_channel_release *rel,
			 const struct tnd_channel_delta *d, struct tnd_install_result *res,
			 struct tnd_http_stats *hs)
{
	struct tnd_install_opts io = {
	    .slot = -1, .no_activate = po->no_activate, .cancel = po->cancel};
	char url[TND_URL_MAX];
	struct tnd_source *src;
	struct tnd_expect e;
	int r;

	*hs = (struct tnd_http_stats){0};
	if ((r = tnd_channel_resolve_url(cfg->server.url, d ? d->file.url : rel->full.url, url,
					 sizeof(url))) ||
	    (r = tnd_http_url_allowed(ho, url)) || (r = tnd_http_source_open(&src, url, ho)))
		return r;
	expect_entry(&e, rel, d);
	io.source = url;
	io.src = src;
	io.expect = &e;
	r = tnd_install(cfg, &io, res);
	tnd_http_source_stats(src, hs);
	tnd_source_close(src);
	return r;
}

static bool same_hash(const struct tnd_slot_info *si, const uint8_t h[TND_SHA256_LEN])
{
	return si->has_sha256 && !memcmp(si->sha256, h, TND_SHA256_LEN);
}

/*
 * Whether the other slot waits for an activation that a power cut stopped
 * (between the install's pending mark and the store that makes the slot
 * boot), which confirm at the next boot only notes (interrupted_slot: it
 * does not activate on state_dir's word, docs/security.md). The
 * environment vouches for what the slot holds, at or above the floor; it
 * is neither pending nor first with tries. The poll activates it when it
 * holds the channel's release. A slot staged with --no-activate, or whose
 * update was cancelled by activating the booted slot, is not interrupted:
 * the poll leaves it alone. (A forged note gets an attacker the
 * activation of the channel's own release, which the poll would have
 * installed anyway.)
 */
static bool awaits_activation(const struct tnd_state *st, const struct tnd_boot_state *bs,
			      uint64_t floor, int other)
{
	return st->interrupted_slot == other && bs->id[other].kind == TND_ID_VALID &&
	       bs->id[other].security_version >= floor &&
	       st->slot[other].state == TND_SLOT_INSTALLED && st->pending_slot < 0 &&
	       !(bs->norder && bs->order[0] == other && bs->tries[other] > 0);
}

/* Whether this device takes deltas that rebuild xz streams: its
 * configuration's choice, when the build can apply them at all. */
static bool xz_rebuild_ok(const struct tnd_config *cfg)
{
#ifdef CONFIG_DELTA_XZ
	return cfg->server.delta_xz_rebuild;
#else
	(void)cfg;
	return false;
#endif
}

void tnd_fleet_http_opts(const struct tnd_config *cfg, volatile sig_atomic_t *cancel,
			 struct tnd_http_opts *ho)
{
	*ho = (struct tnd_http_opts){.server = &cfg->server,
				     .policy = cfg->server.url_policy,
				     .origin = cfg->server.url,
				     .cancel = cancel};
}

/* Sets ps->result; returns 0, or an error (message set). */
static int poll_once(const struct tnd_config *cfg, const struct tnd_poll_opts *po,
		     struct tnd_poll_state *ps)
{
	struct tnd_http_opts ho;
	char id[256];
	const struct tnd_channel_release *rel;
	const struct tnd_channel_delta *delta = NULL;
	struct tnd_http_response resp;
	struct tnd_install_result res;
	struct tnd_http_stats hs = {0};
	struct tnd_channel ch = {0};
	struct tnd_keyring kr = {0};
	struct tnd_verify_opts vo = {.keyring = &kr, .threshold = cfg->signature_threshold};
	struct tnd_state st;
	struct tnd_boot_state bs;
	uint64_t floor;
	int booted, other, r;
	bool waiting;

	tnd_fleet_http_opts(cfg, po->cancel, &ho);
	ps->bytes = 0;
	ps->requests = 0;
	ps->version[0] = '\0';
	ps->bundle[0] = '\0';
	r = tnd_state_load(&st, cfg->state_dir);
	if (r)
		return r;
	if (cfg->server.report_url[0]) {
		flush_reports(cfg, &ho);
		report_update_outcome(cfg, &ho, &st, ps);
	}

	r = tnd_booted_slot(cfg, &booted);
	if (!r)
		r = tnd_bl_floor(cfg, st.security_floor, &floor, &bs);
	if (r)
		return r;
	other = 1 - booted;
	waiting = !po->no_activate && awaits_activation(&st, &bs, floor, other);
	/* A slot that waits for its activation needs the index whatever its
	 * ETag: a 304 would leave it waiting for good. */
	r = tnd_http_get(cfg->server.url, waiting ? "" : ps->etag, TND_CHANNEL_MAX, &ho, &resp);
	ps->requests++;
	ps->bytes += resp.header_bytes + resp.body_bytes;
	if (r)
		return r;
	if (resp.status == 304) {
		snprintf(ps->result, sizeof(ps->result), "not-modified");
		tnd_info("poll: index not modified");
		return 0;
	}
	r = tnd_keyring_load_dir(&kr, cfg->keyring);
	if (!r)
		r = tnd_channel_parse(&ch, resp.body, resp.len, &vo);
	tnd_keyring_free(&kr);
	if (r) {
		tnd_http_response_free(&resp);
		return tnd_err_prefix(r, "channel index %s", cfg->server.url);
	}
	bool unset;

	if (ch.expires <= tnd_trusted_now(&st, &unset)) {
		char t[TND_TIME_STR_LEN];

		tnd_time_format(t, ch.expires);
		r = tnd_err_set(TND_E_EXPIRED,
				"channel index %s expired at %s (stale or replayed: the publisher "
				"must re-sign it)%s",
				cfg->server.url, t,
				unset ? "; the system clock is unset: checked against the build "
					"time or the newest installed release"
				      : "");
		goto out;
	}
	tnd_warn_unset_clock(&st);
	if (ch.sequence < ps->sequence) {
		r = tnd_err_set(TND_E_DOWNGRADE,
				"channel index %s has sequence %" PRIu64 ", below %" PRIu64
				" seen before (an old index replayed)",
				cfg->server.url, ch.sequence, ps->sequence);
		goto out;
	}
	ps->sequence = ch.sequence;

	rel = tnd_channel_find(&ch, cfg->compatible);
	if (!rel) {
		snprintf(ps->result, sizeof(ps->result), "no-release");
		tnd_info("poll: no release for %s", cfg->compatible);
		goto out;
	}
	snprintf(ps->version, sizeof(ps->version), "%s", rel->version);
	if (same_hash(&st.slot[booted], rel->image_sha256)) {
		snprintf(ps->result, sizeof(ps->result), "up-to-date");
		tnd_info("poll: %s is running", rel->version);
		goto out;
	}
	if (same_hash(&st.slot[other], rel->image_sha256)) {
		enum tnd_slot_state s = st.slot[other].state;

		if (s != TND_SLOT_BAD && waiting &&
		    !memcmp(bs.id[other].sha256, rel->image_sha256, TND_SHA256_LEN)) {
			tnd_info("poll: %s is installed in slot %s but its activation never "
				 "completed: activating it",
				 rel->version, tnd_slot_name(other));
			if ((r = tnd_activate(cfg, other)))
				goto out;
			snprintf(ps->result, sizeof(ps->result), "activated");
			report(cfg, &ho, "activated", rel->version, tnd_slot_name(other), 0, NULL,
			       ps);
			goto out;
		}

		if (s == TND_SLOT_BAD) {
			snprintf(ps->result, sizeof(ps->result), "failed-before");
			tnd_info("poll: %s failed on this device before: not again", rel->version);
		} else if (cfg->bootloader != TND_BL_NONE &&
			   !(bs.norder && bs.order[0] == other && bs.tries[other] > 0)) {
			/* installed with --no-activate, or its update cancelled by
			 * activating the booted slot: someone's choice, kept */
			snprintf(ps->result, sizeof(ps->result), "staged");
			tnd_info("poll: %s is installed in slot %s and not activated (`tandem "
				 "activate %s` makes it boot)",
				 rel->version, tnd_slot_name(other), tnd_slot_name(other));
		} else {
			snprintf(ps->result, sizeof(ps->result), "pending-reboot");
			tnd_info("poll: %s is installed in slot %s, waiting for a reboot",
				 rel->version, tnd_slot_name(other));
		}
		goto out;
	}
	/* A release below the floor would be refused: nothing to fetch
	 * (docs/channel-format.md, rule 4). */
	if (rel->security_version < floor) {
		snprintf(ps->result, sizeof(ps->result), "below-floor");
		tnd_info("poll: %s has security version %" PRIu64 ", below this device's floor of "
			 "%" PRIu64 ": not installed",
			 rel->version, rel->security_version, floor);
		goto out;
	}
	device_id(cfg, id, sizeof(id));
	if (rel->rollout_percent < 100 && !tnd_rollout_selected(id, rel)) {
		snprintf(ps->result, sizeof(ps->result), "not-selected");
		tnd_info("poll: %s is rolled out to %u%%; this device (position %u of 10000) waits",
			 rel->version, rel->rollout_percent, tnd_rollout_position(id, rel));
		goto out;
	}

	if (st.slot[booted].has_sha256)
		delta = tnd_channel_pick_delta(rel, st.slot[booted].sha256, xz_rebuild_ok(cfg));
	if (delta) {
		if (delta->xz_rebuild)
			tnd_info("poll: installing %s from a delta (%" PRIu64
				 " bytes; this device compresses %" PRIu64
				 " bytes of xz stream content again)",
				 rel->version, delta->file.size, delta->xz_rebuild);
		else
			tnd_info("poll: installing %s from a delta (%" PRIu64 " bytes)",
				 rel->version, delta->file.size);
		snprintf(ps->bundle, sizeof(ps->bundle), "%s",
			 delta->xz_rebuild ? "delta-xz" : "delta");
		r = install_entry(cfg, &ho, po, rel, delta, &res, &hs);
		ps->requests += hs.requests;
		ps->bytes += hs.received;
		/* what the server sent is not what the index promised: a full
		 * bundle from the same server proves nothing more */
		if (r == TND_E_NETWORK || r == TND_E_CANCELLED || r == TND_E_NOT_FOUND ||
		    r == TND_E_WRONG_RELEASE || r == TND_E_BUSY || !r)
			goto installed;
		/* a delta this device cannot apply (another liblzma, a base
		 * that changed): the full bundle does not depend on it */
		tnd_warn("poll: the delta failed (%s); installing the full bundle", tnd_err_msg());
	}
	tnd_info("poll: installing %s (%" PRIu64 " bytes)", rel->version, rel->full.size);
	snprintf(ps->bundle, sizeof(ps->bundle), "full");
	r = install_entry(cfg, &ho, po, rel, NULL, &res, &hs);
	ps->requests += hs.requests;
	ps->bytes += hs.received;
installed:
	if (r) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		report(cfg, &ho, "failed", rel->version, tnd_slot_name(other), r, msg, ps);
		tnd_err_set(r, "%s", msg);
		goto out;
	}
	snprintf(ps->result, sizeof(ps->result), "installed");
	/* what was installed, by its signed manifest: a format-1 index does
	 * not say whether a delta rebuilds xz streams */
	snprintf(ps->bundle, sizeof(ps->bundle), "%s",
		 !res.delta_format			  ? "full"
		 : tnd_delta_version_xz(res.delta_format) ? "delta-xz"
							  : "delta");
	tnd_info("poll: installed %s into slot %s%s", rel->version, tnd_slot_name(res.slot),
		 res.activated ? "; it boots next" : "");
	report(cfg, &ho, "installed", rel->version, tnd_slot_name(res.slot), 0, NULL, ps);
out:
	/* The ETag is remembered only for an index acted on completely: after
	 * a failure the next poll must not be answered 304. */
	snprintf(ps->etag, sizeof(ps->etag), "%s", r ? "" : resp.etag);
	tnd_channel_free(&ch);
	tnd_http_response_free(&resp);
	return r;
}

int tnd_poll(const struct tnd_config *cfg, const struct tnd_poll_opts *po,
	     struct tnd_poll_state *ps)
{
	int r = poll_once(cfg, po, ps), s;

	ps->last_poll = tnd_time_now();
	ps->error[0] = ps->error_code[0] = '\0';
	if (r) {
		snprintf(ps->result, sizeof(ps->result), "error");
		snprintf(ps->error_code, sizeof(ps->error_code), "%s", tnd_err_name(r));
		snprintf(ps->error, sizeof(ps->error), "%s", tnd_err_msg());
		ps->failures++;
	} else {
		ps->failures = 0;
	}
	s = tnd_poll_state_save(ps, cfg->state_dir);
	if (s && !r) {
		return s;
	} else if (s) {
		tnd_warn("%s", tnd_err_msg());
	}
	if (r)
		tnd_err_set(r, "%s", ps->error);
	return r;
}

int tnd_fleet_open(const struct tnd_config *cfg, struct tnd_poll_state *ps)
{
	if (!cfg->server.url[0])
		return tnd_err_set(TND_E_CONFIG, "%s: no \"server\" with a \"url\" to poll",
				   cfg->path);
	return tnd_poll_state_load(ps, cfg->state_dir);
}

/* Seconds until the next poll: the interval with jitter after a success,
 * exponential backoff after failures (never above the interval), the
 * whole interval after a permanent failure. */
unsigned tnd_poll_delay(const struct tnd_config *cfg, const struct tnd_poll_state *ps, int r)
{
	const struct tnd_server_config *s = &cfg->server;
	unsigned base = s->poll_interval, j = 0;
	uint32_t rnd = 0;

	if (r && r != TND_E_NOT_FOUND && r != TND_E_SIGNATURE && r != TND_E_UNKNOWN_KEY &&
	    r != TND_E_INCOMPATIBLE) {
		unsigned n = ps->failures > 10 ? 10 : ps->failures;
		uint64_t b = (uint64_t)BACKOFF_MIN << (n ? n - 1 : 0);

		if (b < base)
			base = (unsigned)b;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)tnd_time_now() * 2654435761u;
	if (s->poll_jitter && base > 2 * s->poll_jitter)
		j = rnd % (2 * s->poll_jitter + 1);
	else if (s->poll_jitter)
		return base;
	return base - s->poll_jitter + j;
}
