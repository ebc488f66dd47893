// SPDX-License-Identifier: MIT
/* tandem-image: the host-side tool that makes and checks bundles. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "image_tools.h"
#include "log.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} cmds[] = {
    {"keygen", cmd_keygen, "generate a signing key pair"},
    {"build", cmd_build, "build a signed bundle from an image"},
    {"inspect", cmd_inspect, "show a bundle's manifest (no signature check)"},
    {"verify", cmd_verify, "check a bundle's signatures and every chunk"},
    {"publish", cmd_publish, "add bundles to a channel directory and sign its index"},
    {"send", cmd_send, "send a bundle over a serial line to `tandem receive`"},
};

static void usage(FILE *f)
{
	fputs("Usage: tandem-image [-q|-v] COMMAND [OPTIONS]\n\nCommands:\n", f);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fputs("\n`tandem-image COMMAND --help` describes each command; see tandem-image(1).\n"
	      "Exit status: 0 success, 2 usage, other values per docs/exit-codes.md.\n",
	      f);
}

int main(int argc, char **argv)
{
	enum tnd_log_level level = TND_LOG_INFO;
	int i = 1, ret;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			level = TND_LOG_WARN;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			level = TND_LOG_DEBUG;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			puts("tandem-image " TANDEM_VERSION);
			return 0;
		} else {
			break;
		}
	}
	tnd_log_init("tandem-image", level);
	opterr = 0; /* one error line, ours, not getopt's as well */
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		if (strcmp(argv[i], cmds[c].name) == 0) {
			ret = cmds[c].fn(argc - i, argv + i);
			if (ret) {
				tnd_error("%s", tnd_err_msg());
				return tnd_err_exit_status(ret);
			}
			return 0;
		}
	}
	fprintf(stderr, "tandem-image: error: unknown command '%s' (see tandem-image --help)\n",
		argv[i]);
	return 2;
}
