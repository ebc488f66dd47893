// SPDX-License-Identifier: MIT
/* tandem receive: a bundle over a serial line (sources/serial.h). */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "link.h"
#include "log.h"
#include "progress.h"
#include "serial.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs(
	    "Usage: tandem [-c CONF] receive --serial DEV [--baud B] [--timeout S]\n"
	    "                          [--progress=MODE] [--json] [--slot A|B] [--no-activate]\n"
	    "\n"
	    "Installs a bundle sent over a serial line by `tandem-image send`. The bundle\n"
	    "streams through the same verified install path as `tandem install` and is\n"
	    "never stored on the device. The sender learns the result: the installed\n"
	    "version, or the error that refused the bundle.\n"
	    "\n"
	    "Options:\n"
	    "  --serial DEV      serial device, e.g. /dev/ttyS0 (not in use by a getty)\n"
	    "  --baud B          line rate (default 115200; standard rates up to 4000000)\n"
	    "  --timeout S       give up after S seconds without a word from the sender,\n"
	    "                    before or during the transfer (default 300; 0: never)\n"
	    "  --progress=MODE   auto (bar on a terminal), tty, json (JSON lines on stdout), none\n"
	    "  --json            print the result as one JSON object on stdout\n"
	    "  --slot A|B        target slot (default: the one not booted)\n"
	    "  --no-activate     install and verify, but leave the boot order alone\n",
	    f);
}

static int parse_args(struct tnd_receive_opts *r, struct tnd_install_opts *o,
		      enum tnd_progress_mode *mode, int *json, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"serial", required_argument, NULL, 'd'},
	    {"baud", required_argument, NULL, 'b'},
	    {"timeout", required_argument, NULL, 't'},
	    {"progress", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"slot", required_argument, NULL, 's'},
	    {"no-activate", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	uint64_t v;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			r->device = optarg;
			break;
		case 'b':
			if (tnd_parse_u64(optarg, &v) || v > 4000000 ||
			    !tnd_link_baud_ok((unsigned)v))
				return tnd_err_set(TND_E_USAGE,
						   "--baud: '%s' is not a standard rate "
						   "(1200 to 4000000)",
						   optarg);
			r->baud = (unsigned)v;
			break;
		case 't':
			if (tnd_parse_u64(optarg, &v) || v > 86400)
				return tnd_err_set(TND_E_USAGE,
						   "--timeout takes seconds (0..86400)");
			r->timeout = (double)v;
			break;
		case 'p':
			if ((ret = tnd_progress_parse_mode(optarg, mode)))
				return ret;
			break;
		case 'j':
			*json = 1;
			break;
		case 's':
			o->slot = tnd_slot_from_name(optarg);
			if (o->slot < 0)
				return tnd_err_set(TND_E_USAGE, "--slot must be A or B");
			break;
		case 'n':
			o->no_activate = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (!r->device)
		return tnd_err_set(TND_E_USAGE, "receive needs --serial DEV");
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "receive takes no arguments");
	return 0;
}

static void on_waiting(void *ctx, const char *device, unsigned baud)
{
	(void)ctx;
	tnd_info("waiting for `tandem-image send` on %s at %u baud", device, baud);
}

int cmd_receive(const struct cli *g, int argc, char **argv)
{
	struct tnd_receive_opts o = {.baud = 115200, .timeout = 300};
	enum tnd_progress_mode mode = TND_PROGRESS_AUTO;
	struct tnd_lock lock = TND_LOCK_INIT;
	struct tnd_receive_result res;
	struct tnd_progress prog;
	struct tnd_events ev;
	struct tnd_config cfg;
	int ret, json = 0;

	o.install = (struct tnd_install_opts){.slot = -1, .cancel = g->cancel};
	if ((ret = parse_args(&o, &o.install, &mode, &json, argc, argv)))
		return ret > 0 ? 0 : ret;
	/* Configuration and lock first: a device that cannot install should
	 * say so here, not after the sender pushed the bundle. */
	if ((ret = cli_begin(g, "receive", &cfg, &lock)))
		return ret;
	tnd_progress_init(&prog, mode);
	ev = tnd_progress_events(&prog);
	o.install.events = &ev;
	if (prog.mode != TND_PROGRESS_JSON && !json)
		o.waiting = on_waiting;
	ret = tnd_receive(&cfg, &o, &res);
	tnd_lock_release(&lock);
	if (ret) {
		tnd_progress_error(&prog, ret, tnd_err_msg());
		return ret;
	}
	tnd_progress_done(&prog, res.json);
	if (json)
		puts(res.json);
	else if (prog.mode != TND_PROGRESS_JSON)
		tnd_info("installed %s into slot %s (%.1f MiB in %.2f s)%s", res.install.version,
			 tnd_slot_name(res.install.slot),
			 (double)res.install.image_size / 1048576.0, res.install.seconds,
			 res.install.activated ? "; it boots next" : "; not activated");
	return 0;
}
