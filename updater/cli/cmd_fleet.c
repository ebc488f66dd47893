// SPDX-License-Identifier: MIT
/* tandem poll and tandem daemon (fleet/fleet.h, docs/fleet.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "fleet.h"
#include "log.h"
#include "timeutil.h"

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
	      "  --reboot        reboot when another slot boots next (installed or activated)\n",
	      f);
}

/* Whether the poll made another slot boot next: --reboot's cue. */
static bool boots_next(const struct tnd_poll_state *ps)
{
	return !strcmp(ps->result, "installed") || !strcmp(ps->result, "activated");
}

/*
 * One poll under the device's lock, from poll.json as it is then (another
 * `tandem poll` may have moved its sequence floor or ETag since this
 * process last looked). With delay (the daemon), the next poll's time is
 * computed and saved under the same lock. A poll that finds the lock
 * taken (a manual install, a confirm) records nothing: it is simply not
 * its turn.
 */
static int locked_poll(const struct tnd_config *cfg, const struct tnd_poll_opts *po,
		       struct tnd_poll_state *ps, unsigned *delay)
{
	struct tnd_lock lock = TND_LOCK_INIT;
	int ret = tnd_lock_take(&lock, cfg, "poll");

	/* Not polled (the lock taken by another tandem, poll.json unreadable):
	 * nothing to record, and the schedule lives in this process only. */
	if (ret || (ret = tnd_poll_state_load(ps, cfg->state_dir))) {
		if (delay)
			*delay = tnd_poll_delay(cfg, ps, ret);
		tnd_lock_release(&lock);
		return ret;
	}
	if (!delay)
		ps->next_poll = 0; /* a poll by hand: no schedule */
	ret = tnd_poll(cfg, po, ps);
	if (delay) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		*delay = tnd_poll_delay(cfg, ps, ret);
		ps->next_poll = tnd_time_now() + *delay;
		if (tnd_poll_state_save(ps, cfg->state_dir))
			tnd_warn("%s", tnd_err_msg());
		if (ret) /* the poll's error, not the save's */
			tnd_err_set(ret, "%s", msg);
	}
	tnd_lock_release(&lock);
	return ret;
}

int cmd_poll(const struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"once", no_argument, NULL, 'o'},	     {"json", no_argument, NULL, 'j'},
	    {"no-activate", no_argument, NULL, 'n'}, {"reboot", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},	     {0},
	};
	struct tnd_poll_opts po = {.cancel = g->cancel};
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
	if ((r = cli_begin(g, "poll", &cfg, NULL)) || (r = tnd_fleet_open(&cfg, &ps)))
		return r;
	r = locked_poll(&cfg, &po, &ps, NULL);
	if (json) {
		cJSON *o = cJSON_CreateObject();

		/* A busy device did not poll: its poll.json says nothing of it. */
		if (o && r == TND_E_BUSY) {
			cJSON_AddStringToObject(o, "result", "busy");
			cJSON_AddStringToObject(o, "error_code", tnd_err_name(r));
			cJSON_AddStringToObject(o, "error", tnd_err_msg());
		} else if (o && tnd_poll_state_to_json(&ps, o)) {
			cJSON_Delete(o);
			o = NULL;
		}
		cli_print_json(o);
	}
	if (!r && reboot_after && !po.no_activate && boots_next(&ps))
		cli_reboot();
	return r;
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
	      "  --reboot        reboot when another slot boots next (installed or activated)\n"
	      "  --syslog        log to syslog instead of standard error\n",
	      f);
}

int cmd_daemon(const struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"no-activate", no_argument, NULL, 'n'},
	    {"reboot", no_argument, NULL, 'r'},
	    {"syslog", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tnd_poll_opts po = {.cancel = g->cancel};
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
	if ((r = cli_begin(g, "daemon", &cfg, NULL)) || (r = tnd_fleet_open(&cfg, &ps)))
		return r;
	if (use_syslog)
		tnd_log_use_syslog();
	tnd_info("daemon: polling %s every %u s (+- %u s)", cfg.server.url,
		 cfg.server.poll_interval, cfg.server.poll_jitter);
	while (!*g->cancel) {
		unsigned delay;

		r = locked_poll(&cfg, &po, &ps, &delay);
		if (r == TND_E_CANCELLED || *g->cancel)
			break;
		if (r)
			tnd_error("poll failed: %s", tnd_err_msg());
		if (!r && reboot_after && !po.no_activate && boots_next(&ps))
			cli_reboot();
		tnd_info("daemon: next poll in %u s", delay);
		for (unsigned i = 0; i < delay * 10 && !*g->cancel; i++) {
			struct timespec ts = {0, 100 * 1000 * 1000};

			nanosleep(&ts, NULL);
		}
	}
	tnd_info("daemon: stopping");
	return 0;
}
