// SPDX-License-Identifier: MIT
/* tandem install SOURCE: a file, standard input or a URL. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#ifdef CONFIG_HTTP
#include "http.h"
#endif
#include "log.h"
#include "progress.h"
#include "transaction.h"
#include "util.h"

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

/* The "done" fields of an install, for --json and the progress events. */
static void result_fields(const struct tnd_install_result *res, char *out, size_t size)
{
	char hex[TND_SHA256_HEX_LEN];

	tnd_hex_encode(hex, res->sha256, TND_SHA256_LEN);
	snprintf(out, size,
		 "{\"slot\":\"%s\",\"version\":\"%s\",\"sha256\":\"%s\",\"size\":%llu,"
		 "\"activated\":%s,\"resumed_from\":%llu,\"seconds\":%.3f}",
		 tnd_slot_name(res->slot), res->version, hex, (unsigned long long)res->image_size,
		 res->activated ? "true" : "false", (unsigned long long)res->resumed_from,
		 res->seconds);
}

/* Opens a URL as the source (the caller closes it), or leaves a file or
 * "-" to the transaction. */
static int open_source(const char *source, const struct tnd_config *cfg,
		       volatile sig_atomic_t *cancel, struct tnd_source **src)
{
	*src = NULL;
	if (strncmp(source, "http://", 7) && strncmp(source, "https://", 8))
		return 0;
#ifdef CONFIG_HTTP
	/* What the operator typed is followed; a redirect never leaves https. */
	struct tnd_http_opts ho = {.server = &cfg->server,
				   .policy = strncmp(source, "https://", 8) ? TND_URLS_ANY
									    : TND_URLS_HTTPS,
				   .cancel = cancel};

	return tnd_http_source_open(src, source, &ho);
#else
	(void)cfg;
	(void)cancel;
	return tnd_err_set(TND_E_UNSUPPORTED,
			   "installing from a URL needs a build with CONFIG_HTTP");
#endif
}

int cmd_install(const struct cli *g, int argc, char **argv)
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
	struct tnd_install_opts o = {.slot = -1, .cancel = g->cancel};
	struct tnd_lock lock = TND_LOCK_INIT;
	struct tnd_install_result res;
	struct tnd_source *src = NULL;
	struct tnd_progress prog;
	struct tnd_events ev;
	struct tnd_config cfg;
	char done[512];
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
	if (optind + 1 != argc)
		return tnd_err_set(TND_E_USAGE, "install takes one SOURCE");
	o.source = argv[optind];
	tnd_progress_init(&prog, mode);
	ev = tnd_progress_events(&prog);
	o.events = &ev;
	ret = cli_begin(g, "install", &cfg, &lock);
	if (!ret)
		ret = open_source(o.source, &cfg, g->cancel, &src);
	o.src = src;
	if (!ret)
		ret = tnd_install(&cfg, &o, &res);
	tnd_source_close(src);
	tnd_lock_release(&lock);
	if (ret) {
		tnd_progress_error(&prog, ret, tnd_err_msg());
		return ret;
	}
	result_fields(&res, done, sizeof(done));
	tnd_progress_done(&prog, done);
	if (json)
		puts(done);
	else if (prog.mode != TND_PROGRESS_JSON)
		tnd_info("installed %s into slot %s (%.1f MiB in %.2f s)%s", res.version,
			 tnd_slot_name(res.slot), (double)res.image_size / 1048576.0, res.seconds,
			 res.activated ? "; it boots next" : "; not activated");
	return 0;
}
