// SPDX-License-Identifier: MIT
#include <getopt.h>
#include <stdio.h>

#include "image_tools.h"
#include "sign.h"

static void usage(FILE *f)
{
	fputs("Usage: tandem-image keygen --out KEY.pem --pub PUB.pem\n"
	      "\n"
	      "Generates an ECDSA P-256 signing key pair. KEY.pem (mode 0600) stays on\n"
	      "the build server; PUB.pem goes into the devices' keyring directory.\n"
	      "Existing files are never overwritten.\n",
	      f);
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"pub", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *out = NULL, *pub = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "o:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'p':
			pub = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (!out || !pub || optind != argc) {
		return tnd_err_set(TND_E_USAGE, "keygen needs --out and --pub");
	}
	return tnd_keygen(out, pub);
}
