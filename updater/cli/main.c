// SPDX-License-Identifier: MIT
/* tandem: the device-side updater. Thin: the logic lives in the library. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "log.h"
#include "state.h"
#include "timeutil.h"
#include "util.h"

static volatile sig_atomic_t cancelled;

static void on_signal(int sig)
{
	(void)sig;
	cancelled = 1;
}

int cli_begin(const struct cli *g, const char *name, struct tnd_config *cfg, struct tnd_lock *lock)
{
	int ret = tnd_config_load(cfg, g->config);

	if (!ret && lock)
		ret = tnd_lock_take(lock, cfg, name);
	return ret;
}

void cli_print_json(cJSON *o)
{
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;

	if (text)
		puts(text);
	free(text);
	cJSON_Delete(o);
}

void cli_print_error_json(int code, const char *msg)
{
	cJSON *root = cJSON_CreateObject();

	if (!root)
		return;
	cJSON_AddStringToObject(root, "result", "error");
	cJSON_AddStringToObject(root, "error", tnd_err_name(code));
	cJSON_AddNumberToObject(root, "exit", tnd_err_exit_status(code));
	cJSON_AddStringToObject(root, "message", msg);
	cli_print_json(root);
}

void cli_reboot(void)
{
	tnd_info("rebooting");
	sync();
	if (execl("/sbin/reboot", "reboot", (char *)NULL) < 0)
		reboot(RB_AUTOBOOT);
}

int cli_simple_opts(int argc, char **argv, const char *help, int *json)
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

static const struct {
	const char *name;
	int (*fn)(const struct cli *, int, char **);
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
	struct cli g = {.config = TND_DEFAULT_CONFIG, .cancel = &cancelled};
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
