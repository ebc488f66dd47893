// SPDX-License-Identifier: MIT
/*
 * tandem poll / tandem daemon (fleet.h, docs/fleet.md).
 *
 * One poll:
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
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "channel.h"
#include "delta.h"
#include "http.h"
#include "transaction.h"
#include "log.h"
#include "progress.h"
#include "sign.h"
#include "state.h"
#include "timeutil.h"
#include "util.h"

#define REPORTS_DIR "reports"
#define REPORTS_MAX 32 /* queued reports kept while the server is away */
#define BACKOFF_MIN 30 /* seconds before the first retry of a failed poll */

/* ------------------------------------------------------------ poll.json */

static void put_str(cJSON *o, const char *k, const char *v)
{
	if (v && v[0])
		cJSON_AddStringToObject(o, k, v);
}

static void put_time(cJSON *o, const char *k, int64_t t)
{
	char s[TND_TIME_STR_LEN];

	if (t) {
		tnd_time_format(s, t);
		cJSON_AddStringToObject(o, k, s);
	}
}

int tnd_poll_state_save(const struct tnd_poll_state *ps, const char *state_dir)
{
	char path[PATH_MAX + 16], *text;
	cJSON *o = cJSON_CreateObject();
	int r;

	if (!o)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	put_str(o, "etag", ps->etag);
	cJSON_AddNumberToObject(o, "sequence", (double)ps->sequence);
	put_time(o, "last_poll", ps->last_poll);
	put_str(o, "result", ps->result);
	put_str(o, "version", ps->version);
	put_str(o, "error_code", ps->error_code);
	put_str(o, "error", ps->error);
	put_time(o, "next_poll", ps->next_poll);
	cJSON_AddNumberToObject(o, "failures", ps->failures);
	cJSON_AddNumberToObject(o, "bytes", (double)ps->bytes);
	cJSON_AddNumberToObject(o, "requests", ps->requests);
	put_str(o, "bundle", ps->bundle);
	put_time(o, "reported_update", ps->reported_update);
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
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (cJSON_IsString(v))
		snprintf(out, size, "%s", v->valuestring);
}

static int64_t get_t(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	int64_t t = 0;

	if (cJSON_IsString(v) && tnd_time_parse(v->valuestring, &t))
		t = 0;
	return t;
}

static uint64_t get_u(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0
		   ? (uint64_t)v->valuedouble
		   : 0;
}

int tnd_poll_state_load(struct tnd_poll_state *ps, const char *state_dir)
{
	char path[PATH_MAX + 16], *text;
	cJSON *o;

	memset(ps, 0, sizeof(*ps));
	snprintf(path, sizeof(path), "%s/%s", state_dir, TND_POLL_FILE);
	if (access(path, F_OK) && errno == ENOENT)
		return 0; /* never polled */
	if (tnd_read_small_file(path, 64 * 1024, &text, NULL))
		return tnd_err_prefix(TND_E_STATE, "poll state");
	o = cJSON_Parse(text);
	free(text);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		/* Only a cache and a floor: losing it costs one full fetch,
		 * and the sequence floor is rebuilt from the next index. */
		tnd_warn("%s is not valid JSON: starting afresh", path);
		return 0;
	}
	get_s(o, "etag", ps->etag, sizeof(ps->etag));
	ps->sequence = get_u(o, "sequence");
	ps->last_poll = get_t(o, "last_poll");
	get_s(o, "result", ps->result, sizeof(ps->result));
	get_s(o, "version", ps->version, sizeof(ps->version));
	get_s(o, "error_code", ps->error_code, sizeof(ps->error_code));
	get_s(o, "error", ps->error, sizeof(ps->error));
	ps->next_poll = get_t(o, "next_poll");
	ps->failures = (unsigned)get_u(o, "failures");
	ps->bytes = get_u(o, "bytes");
	ps->requests = (unsigned)get_u(o, "requests");
	get_s(o, "bundle", ps->bundle, sizeof(ps->bundle));
	ps->reported_update = get_t(o, "reported_update");
	cJSON_Delete(o);
	return 0;
}

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

/* Queues a report file; the oldest go when more than REPORTS_MAX wait. */
static void queue_report(const struct tnd_config *cfg, const char *json)
{
	char dir[PATH_MAX + 16], path[PATH_MAX + 64], oldest[PATH_MAX + 300] = "";
	struct dirent *e;
	unsigned n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir, REPORTS_DIR);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return;
	d = opendir(dir);
	if (d) {
		char first[256] = "";

		while ((e = readdir(d)))
			if (e->d_name[0] != '.' && strstr(e->d_name, ".json") &&
			    !strstr(e->d_name, ".tmp")) {
				n++;
				if (!first[0] || strcmp(e->d_name, first) < 0)
					snprintf(first, sizeof(first), "%s", e->d_name);
			}
		closedir(d);
		if (n >= REPORTS_MAX && first[0]) {
			snprintf(oldest, sizeof(oldest), "%s/%s", dir, first);
			unlink(oldest);
		}
	}
	snprintf(path, sizeof(path), "%s/%020" PRId64 "-%08x.json", dir, tnd_time_now(),
		 (unsigned)getpid());
	if (tnd_atomic_write(path, json, strlen(json), 0644))
		tnd_warn("cannot queue a status report: %s", tnd_err_msg());
}

/* Sends queued reports, oldest first; stops at the first failure. */
static void flush_reports(const struct tnd_config *cfg, const struct tnd_http_opts *ho)
{
	char dir[PATH_MAX + 16], path[PATH_MAX + 300], *text;
	struct dirent **list;
	int n, i;

	snprintf(dir, sizeof(dir), "%s/%s", cfg->state_dir, REPORTS_DIR);
	n = scandir(dir, &list, NULL, alphasort);
	if (n < 0)
		return;
	for (i = 0; i < n; i++) {
		const char *name = list[i]->d_name;

		if (name[0] == '.' || !strstr(name, ".json") || strstr(name, ".tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (tnd_read_small_file(path, 64 * 1024, &text, NULL))
			continue;
		if (tnd_http_post_json(cfg->server.report_url, text, ho)) {
			free(text);
			tnd_info("status reports stay queued: %s", tnd_err_msg());
			break;
		}
		free(text);
		unlink(path);
		tnd_info("sent a queued status report");
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
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
	put_str(o, "device_id", id);
	put_str(o, "compatible", cfg->compatible);
	put_str(o, "event", event);
	put_str(o, "version", version);
	put_str(o, "slot", slot);
	put_str(o, "time", now);
	if (ps && ps->bundle[0]) {
		put_str(o, "bundle", ps->bundle);
		cJSON_AddNumberToObject(o, "bytes", (double)ps->bytes);
	}
	if (code) {
		put_str(o, "error_code", tnd_err_name(code));
		put_str(o, "error", msg);
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

struct poll_opts {
	bool no_activate;
	volatile sig_atomic_t *cancel;
};

/* Installs one bundle URL; fills *res. */
static int install_url(const struct tnd_config *cfg, const struct tnd_http_opts *ho,
		       const struct poll_opts *po, const char *url, struct tnd_install_result *res,
		       struct tnd_http_stats *hs)
{
	struct tnd_install_opts io = {
	    .slot = -1, .no_activate = po->no_activate, .cancel = po->cancel};
	struct tnd_progress prog;
	struct tnd_source *src;
	int r;

	r = tnd_http_source_open(&src, url, ho);
	if (r)
		return r;
	tnd_progress_init(&prog, TND_PROGRESS_NONE);
	io.progress = &prog;
	io.source = url;
	io.src = src;
	r = tnd_install(cfg, &io, res);
	tnd_http_source_stats(src, hs);
	tnd_source_close(src);
	return r;
}

static bool same_hash(const struct tnd_slot_info *si, const uint8_t h[TND_SHA256_LEN])
{
	return si->has_sha256 && !memcmp(si->sha256, h, TND_SHA256_LEN);
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

/* Sets ps->result; returns 0, or an error (message set). */
static int poll_once(const struct tnd_config *cfg, const struct poll_opts *po,
		     struct tnd_poll_state *ps)
{
	struct tnd_http_opts ho = {.server = &cfg->server, .cancel = po->cancel};
	char url[TND_URL_MAX], id[256], hex[TND_SHA256_HEX_LEN];
	const struct tnd_channel_release *rel;
	const struct tnd_channel_delta *delta = NULL;
	struct tnd_http_response resp;
	struct tnd_install_result res;
	struct tnd_http_stats hs = {0};
	struct tnd_channel ch = {0};
	struct tnd_keyring kr = {0};
	struct tnd_verify_opts vo = {.keyring = &kr, .threshold = cfg->signature_threshold};
	struct tnd_state st;
	int booted, other, r;

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

	r = tnd_http_get(cfg->server.url, ps->etag, TND_CHANNEL_MAX, &ho, &resp);
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
	r = tnd_booted_slot(cfg, &booted);
	if (r)
		goto out;
	other = 1 - booted;
	if (same_hash(&st.slot[booted], rel->image_sha256)) {
		snprintf(ps->result, sizeof(ps->result), "up-to-date");
		tnd_info("poll: %s is running", rel->version);
		goto out;
	}
	if (same_hash(&st.slot[other], rel->image_sha256)) {
		enum tnd_slot_state s = st.slot[other].state;

		snprintf(ps->result, sizeof(ps->result),
			 s == TND_SLOT_BAD ? "failed-before" : "pending-reboot");
		tnd_info(s == TND_SLOT_BAD
			     ? "poll: %s failed on this device before: not again"
			     : "poll: %s is installed in slot %s, waiting for a reboot",
			 rel->version, tnd_slot_name(other));
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
		r = tnd_channel_resolve_url(cfg->server.url, delta->file.url, url, sizeof(url));
		if (!r && delta->xz_rebuild)
			tnd_info("poll: installing %s from a delta (%" PRIu64
				 " bytes; this device compresses %" PRIu64
				 " bytes of xz stream content again)",
				 rel->version, delta->file.size, delta->xz_rebuild);
		else if (!r)
			tnd_info("poll: installing %s from a delta (%" PRIu64 " bytes)",
				 rel->version, delta->file.size);
		if (!r) {
			snprintf(ps->bundle, sizeof(ps->bundle), "%s",
				 delta->xz_rebuild ? "delta-xz" : "delta");
			r = install_url(cfg, &ho, po, url, &res, &hs);
			ps->requests += hs.requests;
			ps->bytes += hs.received;
		}
		if (r == TND_E_NETWORK || r == TND_E_CANCELLED || r == TND_E_NOT_FOUND || !r)
			goto installed;
		/* a delta this device cannot apply (another liblzma, a base
		 * that changed): the full bundle does not depend on it */
		tnd_warn("poll: the delta failed (%s); installing the full bundle", tnd_err_msg());
	}
	r = tnd_channel_resolve_url(cfg->server.url, rel->full.url, url, sizeof(url));
	if (!r) {
		tnd_info("poll: installing %s (%" PRIu64 " bytes)", rel->version, rel->full.size);
		snprintf(ps->bundle, sizeof(ps->bundle), "full");
		r = install_url(cfg, &ho, po, url, &res, &hs);
		ps->requests += hs.requests;
		ps->bytes += hs.received;
	}
installed:
	if (r) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		report(cfg, &ho, "failed", rel->version, tnd_slot_name(other), r, msg, ps);
		tnd_err_set(r, "%s", msg);
		goto out;
	}
	tnd_hex_encode(hex, res.sha256, TND_SHA256_LEN);
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

/* Runs one poll and records it; returns the poll's error. */
static int poll_and_record(const struct tnd_config *cfg, const struct poll_opts *po,
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

static void print_json(const struct tnd_poll_state *ps)
{
	cJSON *o = cJSON_CreateObject();
	char *t;

	if (!o)
		return;
	put_str(o, "result", ps->result);
	put_str(o, "version", ps->version);
	put_str(o, "error_code", ps->error_code);
	put_str(o, "error", ps->error);
	cJSON_AddNumberToObject(o, "sequence", (double)ps->sequence);
	cJSON_AddNumberToObject(o, "requests", ps->requests);
	cJSON_AddNumberToObject(o, "bytes", (double)ps->bytes);
	put_str(o, "bundle", ps->bundle);
	put_time(o, "next_poll", ps->next_poll);
	t = cJSON_PrintUnformatted(o);
	if (t)
		puts(t);
	free(t);
	cJSON_Delete(o);
}

/* What poll and daemon need before their first poll: the configuration,
 * a server in it, and the last poll's state. */
static int fleet_load(const char *config_path, struct tnd_config *cfg, struct tnd_poll_state *ps)
{
	int r = tnd_config_load(cfg, config_path);

	if (r)
		return r;
	if (!cfg->server.url[0])
		return tnd_err_set(TND_E_CONFIG, "%s: no \"server\" with a \"url\" to poll",
				   cfg->path);
	return tnd_poll_state_load(ps, cfg->state_dir);
}

static void reboot_now(void)
{
	tnd_info("rebooting into the new slot");
	sync();
	if (execl("/sbin/reboot", "reboot", (char *)NULL) < 0)
		reboot(RB_AUTOBOOT);
}

static void poll_usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] poll [--once] [--json] [--no-activate] [--reboot]\n"
	      "\n"
	      "Polls the channel index at server.url once: installs the board's latest\n"
	      "release if this device takes part in it (delta when one fits the booted\n"
	      "slot, else the full bundle), streaming from the server. A 304 answer costs\n"
	      "one small request. The outcome goes to the state directory (poll.json) and\n"
	      "`tandem status`. For cron and tests; `tandem daemon` polls on a schedule.\n"
	      "\n"
	      "Options:\n"
	      "  --once          poll once (the only mode; accepted for clarity)\n"
	      "  --json          print the outcome as one JSON object\n"
	      "  --no-activate   install and verify, but leave the boot order alone\n"
	      "  --reboot        reboot after an update was installed and activated\n",
	      f);
}

int tnd_cmd_poll(const char *config_path, volatile sig_atomic_t *cancel, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"once", no_argument, NULL, 'o'},	     {"json", no_argument, NULL, 'j'},
	    {"no-activate", no_argument, NULL, 'n'}, {"reboot", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},	     {0},
	};
	struct poll_opts po = {.cancel = cancel};
	struct tnd_poll_state ps;
	struct tnd_config cfg;
	int c, r, json = 0, reboot_after = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			break;
		case 'j':
			json = 1;
			break;
		case 'n':
			po.no_activate = true;
			break;
		case 'r':
			reboot_after = 1;
			break;
		case 'h':
			poll_usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "poll takes no arguments");
	r = fleet_load(config_path, &cfg, &ps);
	if (r)
		return r;
	ps.next_poll = 0;
	r = poll_and_record(&cfg, &po, &ps);
	if (json)
		print_json(&ps);
	if (!r && reboot_after && !po.no_activate && !strcmp(ps.result, "installed"))
		reboot_now();
	return r;
}

/* Seconds until the next poll: the interval with jitter after a success,
 * exponential backoff after failures (never above the interval), the
 * whole interval after a permanent failure. */
static unsigned next_delay(const struct tnd_config *cfg, const struct tnd_poll_state *ps, int r)
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

static void daemon_usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] daemon [--no-activate] [--reboot] [--syslog]\n"
	      "\n"
	      "Polls server.url every server.poll_interval seconds (+- poll_jitter),\n"
	      "as `tandem poll` does once, until SIGTERM or SIGINT. After a failed poll\n"
	      "it tries again sooner (30 s, doubling, never above the interval); a\n"
	      "missing file or a bad signature waits the whole interval. Logs one line\n"
	      "per event on standard error (the journal, under systemd).\n"
	      "\n"
	      "Options:\n"
	      "  --no-activate   install and verify, but leave the boot order alone\n"
	      "  --reboot        reboot after an update was installed and activated\n"
	      "  --syslog        log to syslog instead of standard error\n",
	      f);
}

int tnd_cmd_daemon(const char *config_path, volatile sig_atomic_t *cancel, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"no-activate", no_argument, NULL, 'n'},
	    {"reboot", no_argument, NULL, 'r'},
	    {"syslog", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct poll_opts po = {.cancel = cancel};
	struct tnd_poll_state ps;
	struct tnd_config cfg;
	int c, r, reboot_after = 0, use_syslog = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			po.no_activate = true;
			break;
		case 'r':
			reboot_after = 1;
			break;
		case 's':
			use_syslog = 1;
			break;
		case 'h':
			daemon_usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "daemon takes no arguments");
	r = fleet_load(config_path, &cfg, &ps);
	if (r)
		return r;
	if (use_syslog)
		tnd_log_use_syslog();
	tnd_info("daemon: polling %s every %u s (+- %u s)", cfg.server.url,
		 cfg.server.poll_interval, cfg.server.poll_jitter);
	while (!*cancel) {
		unsigned delay;

		r = poll_and_record(&cfg, &po, &ps);
		if (r == TND_E_CANCELLED || *cancel)
			break;
		if (r)
			tnd_error("poll failed: %s", tnd_err_msg());
		if (!r && reboot_after && !po.no_activate && !strcmp(ps.result, "installed"))
			reboot_now();
		delay = next_delay(&cfg, &ps, r);
		ps.next_poll = tnd_time_now() + delay;
		if (tnd_poll_state_save(&ps, cfg.state_dir))
			tnd_warn("%s", tnd_err_msg());
		tnd_info("daemon: next poll in %u s", delay);
		for (unsigned i = 0; i < delay * 10 && !*cancel; i++) {
			struct timespec ts = {0, 100 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
	tnd_info("daemon: stopping");
	return 0;
}
