// SPDX-License-Identifier: MIT
/* tandem-image inspect and verify. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bundle.h"
#include "chunk.h"
#include "delta.h"
#include "image_tools.h"
#include "timeutil.h"
#include "util.h"

/* The format version, and what it promises the device (docs/delta-format.md). */
static void print_delta_format(unsigned v)
{
	uint32_t span = tnd_delta_check_span(v);
	const char *sep = " (";

	printf("delta format:     %u", v);
	if (tnd_delta_version_xz(v)) {
		printf("%sxz streams rebuilt on the device", sep);
		sep = "; ";
	}
	if (span) {
		printf("%s%s of every %u KiB checked before it is written", sep,
		       tnd_delta_version_authenticated(v) ? "SHA-256" : "CRC-32", span >> 10);
		sep = "; ";
	}
	puts(*sep == ';' ? ")" : "");
}

static void print_manifest_text(const struct tnd_bundle_reader *r, const char *status)
{
	const struct tnd_manifest *m = &r->manifest;
	char hex[TND_SHA256_HEX_LEN], t[TND_TIME_STR_LEN];

	printf("signature:        %s\n", status);
	printf("compatible:       %s\n", m->compatible);
	printf("version:          %s\n", m->version);
	if (m->description[0])
		printf("description:      %s\n", m->description);
	printf("security version: %llu\n", (unsigned long long)m->security_version);
	tnd_time_format(t, m->created);
	printf("created:          %s\n", t);
	if (m->expires) {
		tnd_time_format(t, m->expires);
		printf("expires:          %s\n", t);
	} else {
		printf("expires:          never\n");
	}
	tnd_hex_encode(hex, m->image_sha256, TND_SHA256_LEN);
	printf("image:            %llu bytes, sha256 %s\n", (unsigned long long)m->image_size, hex);
	printf("payload:          %s, zlib, %llu chunks of up to %u bytes, %llu bytes\n",
	       m->payload_type == TND_PAYLOAD_DELTA ? "delta" : "full",
	       (unsigned long long)m->chunks, m->chunk_size, (unsigned long long)m->payload_size);
	if (m->payload_type == TND_PAYLOAD_DELTA)
		print_delta_format(m->delta_format);
	for (size_t i = 0; i < r->nsigs; i++) {
		tnd_hex_encode(hex, r->sigs[i].keyid, TND_KEYID_LEN);
		printf("signed by key:    %s\n", hex);
	}
}

static int print_manifest_json(const struct tnd_bundle_reader *r, const char *status)
{
	cJSON *root = cJSON_CreateObject(), *man = NULL, *sigs;
	char *json = NULL, *out;
	int ret = tnd_manifest_to_json(&r->manifest, &json);

	if (!ret && root) {
		man = cJSON_Parse(json);
		cJSON_AddStringToObject(root, "signature", status);
		if (man)
			cJSON_AddItemToObject(root, "manifest", man);
		sigs = cJSON_AddArrayToObject(root, "signatures");
		for (size_t i = 0; sigs && i < r->nsigs; i++) {
			char hex[TND_SHA256_HEX_LEN];
			cJSON *s = cJSON_CreateObject();

			tnd_hex_encode(hex, r->sigs[i].keyid, TND_KEYID_LEN);
			cJSON_AddStringToObject(s, "keyid", hex);
			cJSON_AddStringToObject(s, "algorithm", "ecdsa-p256-sha256");
			cJSON_AddItemToArray(sigs, s);
		}
		out = cJSON_Print(root);
		if (out)
			puts(out);
		free(out);
	}
	cJSON_Delete(root);
	free(json);
	return ret;
}

static void inspect_usage(FILE *f)
{
	fputs("Usage: tandem-image inspect [--json] (UPDATE.tnd | index.json)\n"
	      "\n"
	      "Shows a bundle's manifest, or a channel index's releases, and who signed\n"
	      "it. Signatures are NOT checked: use `tandem-image verify` for that.\n",
	      f);
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct tnd_bundle_reader r;
	struct tnd_source *src;
	int c, json = 0, ret;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			inspect_usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (optind + 1 != argc) {
		return tnd_err_set(TND_E_USAGE, "inspect takes one bundle");
	}
	if (tnd_is_channel_file(argv[optind]))
		return tnd_channel_show(argv[optind], NULL, json);
	if ((ret = tnd_source_open_file(&src, argv[optind])))
		return ret;
	ret = tnd_bundle_open(&r, src, NULL);
	if (!ret) {
		if (json)
			ret = print_manifest_json(&r, "not checked");
		else
			print_manifest_text(&r, "not checked (use tandem-image verify)");
	}
	tnd_source_close(src);
	return ret;
}

static void verify_usage(FILE *f)
{
	fputs("Usage: tandem-image verify (--pub PUB.pem ... | --keyring DIR) [--threshold N]\n"
	      "         [--base BASE.img] [--json] UPDATE.tnd\n"
	      "\n"
	      "Checks a bundle as a device would: signatures from trusted keys, every\n"
	      "chunk against the signed chain, and the image hash. Prints OK and exits 0\n"
	      "only if everything holds. A delta's image is rebuilt and checked when its\n"
	      "base image is given with --base. Given a channel index (index.json), it\n"
	      "checks its signatures and that it has not expired.\n",
	      f);
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pub", required_argument, NULL, 'p'},
	    {"keyring", required_argument, NULL, 'k'},
	    {"threshold", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"base", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *base_path = NULL;
	bool image_checked = false;
	struct tnd_keyring kr = {0};
	struct tnd_verify_opts vo = {.keyring = &kr, .threshold = 1};
	struct tnd_bundle_reader r;
	struct tnd_source *src = NULL;
	int c, ret = 0, json = 0;
	uint64_t v;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1 && !ret) {
		switch (c) {
		case 'p':
			ret = tnd_keyring_add_file(&kr, optarg);
			break;
		case 'k':
			ret = tnd_keyring_load_dir(&kr, optarg);
			break;
		case 'b':
			base_path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 't':
			if (tnd_parse_u64(optarg, &v) || v < 1 || v > TND_MAX_SIGS)
				ret = tnd_err_set(TND_E_USAGE, "--threshold must be 1 to %d",
						  TND_MAX_SIGS);
			vo.threshold = (unsigned)v;
			break;
		case 'h':
			verify_usage(stdout);
			goto out;
		default:
			ret = tnd_err_bad_option(argv[optind - 1]);
			goto out;
		}
	}
	if (ret)
		goto out;
	if (optind + 1 != argc || kr.n == 0) {
		ret = tnd_err_set(TND_E_USAGE, "verify needs --pub or --keyring and one bundle");
		goto out;
	}
	if (tnd_is_channel_file(argv[optind])) {
		ret = tnd_channel_show(argv[optind], &vo, json);
		goto out;
	}
	if ((ret = tnd_source_open_file(&src, argv[optind])))
		goto out;
	ret = tnd_bundle_open(&r, src, &vo);
	if (!ret)
		ret = tnd_bundle_decode(&r, base_path, -1, &image_checked);
	if (!ret) {
		if (json)
			printf("{\"result\":\"ok\",\"valid_signatures\":%u,\"image_checked\":%s}\n",
			       r.valid_sigs, image_checked ? "true" : "false");
		else
			printf("%s: OK (%u valid signature(s), %llu chunks, image %llu bytes%s)\n",
			       argv[optind], r.valid_sigs, (unsigned long long)r.manifest.chunks,
			       (unsigned long long)r.manifest.image_size,
			       image_checked ? "" : "; delta image not rebuilt: give --base");
	}
out:
	tnd_source_close(src);
	tnd_keyring_free(&kr);
	return ret;
}
