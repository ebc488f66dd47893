// SPDX-License-Identifier: MIT
/* tandem provision (install/provision.h, docs/factory.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "log.h"
#include "progress.h"
#include "provision.h"
#include "util.h"

static void usage(FILE *f)
{
	fputs("Usage: tandem [-c CONF] provision [OPTIONS] BUNDLE\n"
	      "\n"
	      "Factory provisioning: writes the full bundle's image into both slots (A from\n"
	      "the bundle, B copied from A), initialises the boot environment (BOOT_ORDER\n"
	      "\"A B\", full tries on both) and the state directory, and installs the keyring\n"
	      "and the device's identity, checking each after writing it. BUNDLE is a file or\n"
	      "- for standard input. Parts that already hold what they should are left\n"
	      "alone, so running it again is safe and writes nothing. Refused on a system\n"
	      "booted from one of the slots. See docs/factory.md.\n"
	      "\n"
	      "Options:\n"
	      "  --keyring DIR        install DIR's *.pem public keys as the device's keyring\n"
	      "                       (exactly: other keys there are removed); the bundle is\n"
	      "                       checked against them. Default: the configured keyring\n"
	      "  --device-id ID       write ID to the configuration's server.device_id_file\n"
	      "  --client-cert FILE   with --client-key: the device's TLS certificate and key,\n"
	      "  --client-key FILE    copied to server.client_cert and server.client_key\n"
	      "                       (mode 0600); they must be a matching pair\n"
	      "  --env-defaults FILE  a blank environment (no valid copy) starts from FILE's\n"
	      "                       name=value lines, e.g. U-Boot's u-boot-initial-env;\n"
	      "                       default: Tandem's variables only\n"
	      "  --progress=MODE      auto (bar on a terminal), tty, json (JSON lines), none\n"
	      "  --json               print the result (or the error) as one JSON object\n",
	      f);
}

static void result_json(const struct tnd_config *cfg, const struct tnd_provision_result *res)
{
	cJSON *root = cJSON_CreateObject(), *slots, *o;
	char hex[TND_SHA256_HEX_LEN];

	if (!root)
		return;
	tnd_hex_encode(hex, res->sha256, TND_SHA256_LEN);
	cJSON_AddStringToObject(root, "result", "success");
	cJSON_AddStringToObject(root, "version", res->version);
	cJSON_AddStringToObject(root, "sha256", hex);
	cJSON_AddNumberToObject(root, "size", (double)res->image_size);
	slots = cJSON_AddObjectToObject(root, "slots");
	for (int i = 0; slots && i < TND_NSLOTS; i++) {
		if (!(o = cJSON_AddObjectToObject(slots, tnd_slot_name(i))))
			continue;
		cJSON_AddStringToObject(o, "device", cfg->slot_dev[i]);
		cJSON_AddStringToObject(o, "action", tnd_prov_action_name(res->slot[i]));
	}
	if ((o = cJSON_AddObjectToObject(root, "environment"))) {
		cJSON_AddStringToObject(o, "action", tnd_prov_action_name(res->env));
		cJSON_AddBoolToObject(o, "was_blank", res->env_was_blank);
		if (res->env != TND_PROV_NONE) {
			cJSON_AddStringToObject(o, "boot_order", "A B");
			cJSON_AddNumberToObject(o, "tries", res->tries);
		}
	}
	if ((o = cJSON_AddObjectToObject(root, "state"))) {
		cJSON_AddStringToObject(o, "action", tnd_prov_action_name(res->state));
		cJSON_AddStringToObject(o, "dir", cfg->state_dir);
	}
	if ((o = cJSON_AddObjectToObject(root, "keyring"))) {
		cJSON_AddStringToObject(o, "action", tnd_prov_action_name(res->keyring));
		cJSON_AddStringToObject(o, "dir", cfg->keyring);
		if (res->keyring != TND_PROV_NONE)
			cJSON_AddNumberToObject(o, "keys", res->keys);
	}
	if ((o = cJSON_AddObjectToObject(root, "identity"))) {
		cJSON_AddStringToObject(o, "device_id", tnd_prov_action_name(res->device_id));
		cJSON_AddStringToObject(o, "client_cert", tnd_prov_action_name(res->client_cert));
		cJSON_AddStringToObject(o, "client_key", tnd_prov_action_name(res->client_key));
	}
	cJSON_AddNumberToObject(root, "seconds", (double)(int64_t)(res->seconds * 1000) / 1000);
	cli_print_json(root);
}

int cmd_provision(const struct cli *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"keyring", required_argument, NULL, 'k'},
	    {"device-id", required_argument, NULL, 'i'},
	    {"client-cert", required_argument, NULL, 'C'},
	    {"client-key", required_argument, NULL, 'K'},
	    {"env-defaults", required_argument, NULL, 'e'},
	    {"progress", required_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	enum tnd_progress_mode mode = TND_PROGRESS_AUTO;
	struct tnd_provision_opts o = {.cancel = g->cancel};
	struct tnd_provision_result res;
	struct tnd_lock lock = TND_LOCK_INIT;
	struct tnd_progress prog;
	struct tnd_events ev;
	struct tnd_config cfg;
	char done[256];
	int c, ret, json = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.keyring = optarg;
			break;
		case 'i':
			o.device_id = optarg;
			break;
		case 'C':
			o.client_cert = optarg;
			break;
		case 'K':
			o.client_key = optarg;
			break;
		case 'e':
			o.env_defaults = optarg;
			break;
		case 'p':
			if ((ret = tnd_progress_parse_mode(optarg, &mode)))
				return ret;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return tnd_err_set(TND_E_USAGE, "provision takes one BUNDLE");
	o.source = argv[optind];
	tnd_progress_init(&prog, mode);
	ev = tnd_progress_events(&prog);
	o.events = &ev;
	ret = cli_begin(g, "provision", &cfg, &lock);
	if (!ret)
		ret = tnd_provision(&cfg, &o, &res);
	tnd_lock_release(&lock);
	if (ret) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		tnd_progress_error(&prog, ret, msg);
		if (json)
			cli_print_error_json(ret, msg);
		tnd_err_set(ret, "%s", msg);
		return ret;
	}
	snprintf(done, sizeof(done), "{\"slot_a\":\"%s\",\"slot_b\":\"%s\",\"seconds\":%.3f}",
		 tnd_prov_action_name(res.slot[0]), tnd_prov_action_name(res.slot[1]), res.seconds);
	tnd_progress_done(&prog, done);
	if (json)
		result_json(&cfg, &res);
	else if (prog.mode != TND_PROGRESS_JSON)
		tnd_info("provisioned %s: slot A %s, slot B %s, environment %s, state %s, "
			 "keyring %s (%.2f s)",
			 res.version, tnd_prov_action_name(res.slot[0]),
			 tnd_prov_action_name(res.slot[1]), tnd_prov_action_name(res.env),
			 tnd_prov_action_name(res.state), tnd_prov_action_name(res.keyring),
			 res.seconds);
	return 0;
}
