// SPDX-License-Identifier: MIT
/* tandem status, activate, confirm, rollback, doctor: the commands around
 * a reboot and the ones that look at the device. */
#include <getopt.h>
#include <stdio.h>

#include "bootctl.h"
#include "cli.h"
#include "doctor.h"
#include "log.h"
#include "status.h"

static void status_usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] status [--json]\n"
	      "\n"
	      "Shows the booted slot, the boot order and, for each slot, its device,\n"
	      "state, installed version and image hash. --json prints one object\n"
	      "(documented in docs/status.md).\n",
	      f);
}

int cmd_status(const struct cli *g, int argc, char **argv)
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
	if ((ret = cli_begin(g, "status", &cfg, NULL)))
		return ret;
	return tnd_status_print(&cfg, json);
}

int cmd_activate(const struct cli *g, int argc, char **argv)
{
	static const char help[] =
	    "Usage: tandem [-c CONF] activate SLOT\n"
	    "\n"
	    "Puts SLOT (A or B) first in the boot order with boot_tries tries, so it\n"
	    "boots next. SLOT must hold a verified image (installed or good) whose\n"
	    "security version is not below the device's floor; used after\n"
	    "`tandem install --no-activate`, or to cancel a pending update by\n"
	    "activating the booted slot.\n";
	struct tnd_lock lock = TND_LOCK_INIT;
	struct tnd_config cfg;
	int ret = cli_simple_opts(argc, argv, help, NULL), slot;

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind + 1 != argc || (slot = tnd_slot_from_name(argv[optind])) < 0)
		return tnd_err_set(TND_E_USAGE, "activate takes one SLOT, A or B");
	if (!(ret = cli_begin(g, "activate", &cfg, &lock)))
		ret = tnd_activate(&cfg, slot);
	tnd_lock_release(&lock);
	if (ret)
		return ret;
	tnd_info("slot %s boots next", tnd_slot_name(slot));
	return 0;
}

int cmd_confirm(const struct cli *g, int argc, char **argv)
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
	    "holds a verified image the boot environment vouches for at or above the\n"
	    "floor, and exits with status 24 (--reboot reboots then).\n";
	struct tnd_lock lock = TND_LOCK_INIT;
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
	if ((ret = cli_begin(g, "confirm", &cfg, &lock)))
		return ret;
	ret = tnd_confirm(&cfg, &res);
	tnd_lock_release(&lock);
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
		cli_reboot();
	}
	if (!ret && !json)
		tnd_info("slot %s is good (%u health check(s) passed)", tnd_slot_name(res.booted),
			 res.checks);
	return ret;
}

int cmd_rollback(const struct cli *g, int argc, char **argv)
{
	static const char help[] =
	    "Usage: tandem [-c CONF] rollback\n"
	    "\n"
	    "Makes the other slot boot next, with boot_tries tries, when it holds an\n"
	    "image that was confirmed good and is not below the device's security\n"
	    "floor; refuses otherwise. Reboot to use it.\n";
	struct tnd_lock lock = TND_LOCK_INIT;
	struct tnd_config cfg;
	int ret = cli_simple_opts(argc, argv, help, NULL), to;

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "rollback takes no arguments");
	if (!(ret = cli_begin(g, "rollback", &cfg, &lock)))
		ret = tnd_rollback(&cfg, &to);
	tnd_lock_release(&lock);
	if (ret)
		return ret;
	tnd_info("slot %s boots next: reboot to roll back", tnd_slot_name(to));
	return 0;
}

int cmd_doctor(const struct cli *g, int argc, char **argv)
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
	int json = 0, ret = cli_simple_opts(argc, argv, help, &json);

	if (ret)
		return ret > 0 ? 0 : ret;
	if (optind != argc)
		return tnd_err_set(TND_E_USAGE, "doctor takes no arguments");
	if ((ret = cli_begin(g, "doctor", &cfg, NULL)))
		return ret;
	return tnd_doctor(&cfg, json);
}
