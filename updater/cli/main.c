// SPDX-License-Identifier: MIT
/* tandem: the device-side updater. Thin: the logic lives in the library. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "bootctl.h"
#include "config.h"
#include "doctor.h"
#ifdef CONFIG_HTTP
#include "fleet.h"
#include "http.h"
#endif
#include "transaction.h"
#include "log.h"
#ifdef CONFIG_PROVISION
#include "provision.h"
#endif
#ifdef CONFIG_SERIAL
#include "receive.h"
#endif
#include "state.h"
#include "status.h"
#include "timeutil.h"
#include "util.h"

static volatile sig_atomic_t cancelled;

static void on_signal(int sig)
{
	(void)sig;
	cancelled = 1;
}

struct global {
	const char *config;
};

static int load_config(const struct global *g, struct tnd_config *cfg)
{
	return tnd_config_load(cfg, g->config);
}

static void install_usage(FILE *f)
{
	fputs(
	    "Usage: tandem [-c CONF] install [OPTIONS] SOURCE\n"
	    "\n"
	    "Installs a signed bundle into the inactive slot and makes it boot next.\n"
	    "SOURCE is a bundle file, - for standard input, or an http:// or https:// URL\n"
	    "(streamed, resumed with Range requests after a dropped connection; TLS\n"
	    "settings from the configuration's \"server\"). The manifest's signatures\n"
	    "are checked before any payload is read, every chunk is authenticated before\n"
	    "it is written, and the slot is read back from the device at the end.\n"
	    "\n"
	    "Options:\n"
	    "  --progress=MODE   auto (bar on a terminal), tty, json (JSON lines on stdout), none\n"
	    "  --json            print the result as one JSON object on stdout\n"
	    "  --slot A|B        target slot (default: the one not booted; never the booted one)\n"
	    "  --no-activate     install and verify, but leave the boot order alone\n"
	    "                    (the slot stays unbootable until `tandem activate`)\n"
	    "  --allow-downgrade install a version older than the booted slot's (the\n"
	    "                    security-version floor still applies)\n"
	    "  --no-resume       start over even where an interrupted install of this\n"
	    "                    bundle left a checkpoint (docs/install.md, \"Resume\")\n",
	    f);
}

static int cmd_install(const struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"progress", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"slot", required_argument, NULL, 's'},
	    {"no-activate", no_argument, NULL, 'n'},
	    {"allow-downgrade", no_argument, NULL, 'D'},
	    {"no-resume", no_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	enum tnd_progress_mode mode = TND_PROGRESS_AUTO;
	struct tnd_install_opts o = {.slot = -1, .cancel = &cancelled};
	struct tnd_install_result res;
	struct tnd_progress prog;
	struct tnd_config cfg;
	char hex[TND_SHA256_HEX_LEN], done[512];
	int c, ret, json = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((ret = tnd_progress_parse_mode(optarg, &mode)))
				return ret;
			break;
		case 'j':
			json = 1;
			break;
		case 'n':
			o.no_activate = true;
			break;
		case 'D':
			o.allow_downgrade = true;
			break;
		case 'R':
			o.no_resume = true;
			break;
		case 's':
			o.slot = tnd_slot_from_name(optarg);
			if (o.slot < 0)
				return tnd_err_set(TND_E_USAGE, "--slot must be A or B");
			break;
		case 'h':
			install_usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind + 1 != argc) {
		return tnd_err_set(TND_E_USAGE, "install takes one SOURCE");
	}
	o.source = argv[optind];
	tnd_progress_init(&prog, mode);
	o.progress = &prog;
	ret = load_config(g, &cfg);
#ifdef CONFIG_HTTP
	struct tnd_source *net = NULL;
	struct tnd_http_opts ho = {.server = &cfg.server, .cancel = &cancelled};

	if (!ret && tnd_is_url(o.source)) {
		ret = tnd_http_source_open(&net, o.source, &ho);
		o.src = net;
	}
#else
	if (!ret && (!strncmp(o.source, "http://", 7) || !strncmp(o.source, "https://", 8)))
		ret = tnd_err_set(TND_E_UNSUPPORTED,
				  "installing from a URL needs a build with CONFIG_HTTP");
#endif
	if (!ret)
		ret = tnd_install(&cfg, &o, &res);
#ifdef CONFIG_HTTP
	tnd_source_close(net);
#endif
	if (ret) {
		tnd_progress_error(&prog, ret, tnd_err_msg());
		return ret;
	}
	tnd_hex_encode(hex, res.sha256, TND_SHA256_LEN);
	snprintf(done, sizeof(done),
		 "{\"slot\":\"%s\",\"version\":\"%s\",\"sha256\":\"%s\",\"size\":%llu,"
		 "\"activated\":%s,\"resumed_from\":%llu,\"seconds\":%.3f}",
		 tnd_slot_name(res.slot), res.version, hex, (unsigned long long)res.image_size,
		 res.activated ? "true" : "false", (unsigned long long)res.resumed_from,
		 res.seconds);
	tnd_progress_done(&prog, done);
	if (json)
		puts(done);
	else if (prog.mode != TND_PROGRESS_JSON)
		tnd_info("installed %s into slot %s (%.1f MiB in %.2f s)%s", res.version,
			 tnd_slot_name(res.slot), (double)res.image_size / 1048576.0, res.seconds,
			 res.activated ? "; it boots next" : "; not activated");
	return 0;
}

static void status_usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] status [--json]\n"
	      "\n"
	      "Shows the booted slot, the boot order and, for each slot, its device,\n"
	      "state, installed version and image hash. --json prints one object\n"
	      "(documented in docs/status.md).\n",
	      f);
}

static int cmd_status(const struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tnd_config cfg;
	int c, json = 0, ret;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			status_usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind != argc) {
		return tnd_err_set(TND_E_USAGE, "status takes no arguments");
	}
	if ((ret = load_config(g, &cfg)))
		return ret;
	return tnd_status_print(&cfg, json);
}

/* Parses the options every small command shares: --json and --help. */
static int simple_opts(int argc, char **argv, const char *help, int *json)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			if (!json)
				return tnd_err_set(TND_E_USAGE, "%s has no --json", argv[0]);
			*json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return 1;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	return 0;
}

static int cmd_activate(const struct global *g, int argc, char **argv)
{
	static const char help[] =
	    "Usage: tandem [-c CONF] activate SLOT\n"
	    "\n"
	    "Puts SLOT (A or B) first in the boot order with boot_tries tries, so it\n"
	    "boots next. SLOT must hold a verified image (installed or good); used after\n"
	    "`tandem install --no-activate`, or to cancel a pending update by\n"
	    "activating the booted slot.\n";
	struct tnd_config cfg;
	int ret = simple_opts(argc, argv, help, NULL), slot;

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind + 1 != argc || (slot = tnd_slot_from_name(argv[optind])) < 0)
		return tnd_err_set(TND_E_USAGE, "activate takes one SLOT, A or B");
	if ((ret = load_config(g, &cfg)) || (ret = tnd_activate(&cfg, slot)))
		return ret;
	tnd_info("slot %s boots next", tnd_slot_name(slot));
	return 0;
}

static int cmd_confirm(const struct global *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"reboot", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char help[] =
	    "Usage: tandem [-c CONF] confirm [--reboot] [--json]\n"
	    "\n"
	    "Run once per boot, after the system is up (the init scripts in\n"
	    "bootloader-hooks/ do it). If an activated update did not come up and\n"
	    "U-Boot fell back, records that the update failed and why. Then runs the\n"
	    "health checks (executables in health_dir, each within health_timeout\n"
	    "seconds): if all pass, marks the booted slot good (full boot tries) and\n"
	    "exits 0; if one fails, marks it bad, puts the other slot first when it\n"
	    "holds a verified image, and exits with status 24 (--reboot reboots then).\n";
	struct tnd_confirm_result res;
	struct tnd_config cfg;
	int c, ret, json = 0, reboot_after = 0;

	while ((c = getopt_long(argc, argv, "jrh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'r':
			reboot_after = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "confirm takes no arguments");
	if ((ret = load_config(g, &cfg)))
		return ret;
	ret = tnd_confirm(&cfg, &res);
	if (json && (ret == 0 || ret == TND_E_HEALTH)) {
		printf(
		    "{\"booted_slot\":\"%s\",\"healthy\":%s,\"checks\":%u,\"fallback_from\":%s%s%s,"
		    "\"switched\":%s}\n",
		    tnd_slot_name(res.booted), res.healthy ? "true" : "false", res.checks,
		    res.fallback_from >= 0 ? "\"" : "",
		    res.fallback_from >= 0 ? tnd_slot_name(res.fallback_from) : "null",
		    res.fallback_from >= 0 ? "\"" : "", res.switched ? "true" : "false");
	}
	if (ret == TND_E_HEALTH && reboot_after) {
		tnd_error("%s", tnd_err_msg());
		tnd_info("rebooting");
		sync();
		if (execl("/sbin/reboot", "reboot", (char *)NULL) < 0)
			reboot(RB_AUTOBOOT);
	}
	if (!ret && !json)
		tnd_info("slot %s is good (%u health check(s) passed)", tnd_slot_name(res.booted),
			 res.checks);
	return ret;
}

static int cmd_rollback(const struct global *g, int argc, char **argv)
{
	static const char help[] =
	    "Usage: tandem [-c CONF] rollback\n"
	    "\n"
	    "Makes the other slot boot next, with boot_tries tries, when it holds an\n"
	    "image that was confirmed good; refuses otherwise. Reboot to use it.\n";
	struct tnd_config cfg;
	int ret = simple_opts(argc, argv, help, NULL), to;

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "rollback takes no arguments");
	if ((ret = load_config(g, &cfg)) || (ret = tnd_rollback(&cfg, &to)))
		return ret;
	tnd_info("slot %s boots next: reboot to roll back", tnd_slot_name(to));
	return 0;
}

static int cmd_doctor(const struct global *g, int argc, char **argv)
{
	static const char help[] =
	    "Usage: tandem [-c CONF] doctor [--json]\n"
	    "\n"
	    "Checks the device's setup and says what is wrong in plain words: the\n"
	    "configuration, the kernel command line, the keyring, the state directory,\n"
	    "the slots (present, not mounted read-write), fw_env.config and the\n"
	    "environment (redundant, counters sane, agreeing with the booted slot).\n"
	    "Exits 0 when nothing failed (warnings allowed).\n";
	struct tnd_config cfg;
	int json = 0, ret = simple_opts(argc, argv, help, &json);

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "doctor takes no arguments");
	if ((ret = load_config(g, &cfg)))
		return ret;
	return tnd_doctor(&cfg, json);
}

#ifdef CONFIG_HTTP
static int cmd_poll(const struct global *g, int argc, char **argv)
{
	return tnd_cmd_poll(g->config, &cancelled, argc, argv);
}

static int cmd_daemon(const struct global *g, int argc, char **argv)
{
	return tnd_cmd_daemon(g->config, &cancelled, argc, argv);
}
#endif

#ifdef CONFIG_PROVISION
static int cmd_provision(const struct global *g, int argc, char **argv)
{
	return tnd_cmd_provision(g->config, &cancelled, argc, argv);
}
#endif

#ifdef CONFIG_SERIAL
static int cmd_receive(const struct global *g, int argc, char **argv)
{
	return tnd_cmd_receive(g->config, &cancelled, argc, argv);
}
#endif

static const struct {
	const char *name;
	int (*fn)(const struct global *, int, char **);
	const char *help;
} cmds[] = {
    {"install", cmd_install, "install a bundle into the inactive slot"},
    {"status", cmd_status, "show the slots, their versions and the boot order"},
    {"activate", cmd_activate, "make a slot holding a verified image boot next"},
    {"confirm", cmd_confirm, "after boot: run health checks, mark the slot good or bad"},
    {"rollback", cmd_rollback, "make the other, known-good slot boot next"},
    {"doctor", cmd_doctor, "check the device's setup and explain what is wrong"},
#ifdef CONFIG_PROVISION
    {"provision", cmd_provision, "factory: write both slots, environment, keys, identity"},
#endif
#ifdef CONFIG_SERIAL
    {"receive", cmd_receive, "install a bundle sent over a serial line"},
#endif
#ifdef CONFIG_HTTP
    {"poll", cmd_poll, "check the update server once and install what it offers"},
    {"daemon", cmd_daemon, "poll the update server on a schedule"},
#endif
};

static void usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] [-q|-v] COMMAND [OPTIONS]\n"
	      "\n"
	      "A/B image updater for embedded Linux.\n"
	      "\n"
	      "Options:\n"
	      "  -c, --config FILE   configuration (default " TND_DEFAULT_CONFIG ")\n"
	      "  -q, --quiet         only warnings and errors\n"
	      "  -v, --verbose       debug messages\n"
	      "  -h, --help          this help;  --version  the version\n"
	      "\nCommands:\n",
	      f);
	for (size_t i = 0; i < TND_ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fputs("\n`tandem COMMAND --help` describes each command; see tandem(1).\n"
	      "Exit status: 0 success, 2 usage; others in docs/exit-codes.md.\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {0},
	};
	struct global g = {.config = TND_DEFAULT_CONFIG};
	enum tnd_log_level level = TND_LOG_INFO;
	struct sigaction sa = {.sa_handler = on_signal};
	int c, ret;

	opterr = 0; /* one error line, ours, not getopt's as well */
	/* '+': stop at the command name; its options are its own. */
	while ((c = getopt_long(argc, argv, "+c:qvh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			g.config = optarg;
			break;
		case 'q':
			level = TND_LOG_WARN;
			break;
		case 'v':
			level = TND_LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V': {
			char t[TND_TIME_STR_LEN] = "unknown";

			if (tnd_build_time())
				tnd_time_format(t, tnd_build_time());
			printf("tandem %s (sources of %s)\n", TANDEM_VERSION, t);
			return 0;
		}
		default:
			fprintf(
			    stderr,
			    "tandem: error: unknown option or missing value '%s' (see --help)\n",
			    argv[optind - 1]);
			return 2;
		}
	}
	tnd_log_init("tandem", level);
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (size_t i = 0; i < TND_ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[optind], cmds[i].name))
			continue;
		argc -= optind;
		argv += optind;
		optind = 0; /* reset getopt for the command's own options */
		ret = cmds[i].fn(&g, argc, argv);
		if (ret) {
			tnd_error("%s", tnd_err_msg());
			return tnd_err_exit_status(ret);
		}
		return 0;
	}
	fprintf(stderr, "tandem: error: unknown command '%s' (see tandem --help)\n", argv[optind]);
	return 2;
}
