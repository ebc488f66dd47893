/* SPDX-License-Identifier: MIT */
/*
 * Factory provisioning (docs/factory.md, "Provisioning"): both slots from
 * one full bundle, the boot environment, the state directory, the keyring
 * and the device's identity, each checked after it is written. Running it
 * again converges: what already holds the wanted content is left alone.
 */
#ifndef TANDEM_PROVISION_H
#define TANDEM_PROVISION_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "transaction.h"

struct tnd_provision_opts {
	const char *source; /* bundle file or "-" */
	/* A directory of *.pem public keys that becomes the device's keyring
	 * (cfg->keyring), exactly: keys not in it are removed. NULL: the
	 * configured keyring is used as it is. */
	const char *keyring;
	const char *device_id;	 /* NULL: none written */
	const char *client_cert; /* with client_key; NULL: none written */
	const char *client_key;
	const char *env_defaults;	 /* a blank environment starts from this file */
	const struct tnd_events *events; /* NULL: nobody watches */
	volatile sig_atomic_t *cancel;
};

enum tnd_prov_action {
	TND_PROV_NONE,	    /* not asked for */
	TND_PROV_UNCHANGED, /* already as wanted: not written */
	TND_PROV_WRITTEN,   /* written and checked */
};

struct tnd_provision_result {
	char version[TND_NAME_MAX];
	uint8_t sha256[TND_SHA256_LEN];
	uint64_t image_size;
	enum tnd_prov_action slot[TND_NSLOTS];
	enum tnd_prov_action env;
	bool env_was_blank;
	unsigned tries;
	enum tnd_prov_action state;
	enum tnd_prov_action keyring;
	unsigned keys;
	enum tnd_prov_action device_id, client_cert, client_key;
	double seconds;
};

const char *tnd_prov_action_name(enum tnd_prov_action a);

/* The caller holds the device's lock. The bundle goes through the one
 * install transaction (its prepare refuses deltas here, and the policy
 * holds as for any install); slot A is written by its stream step. */
int tnd_provision(const struct tnd_config *cfg, const struct tnd_provision_opts *o,
		  struct tnd_provision_result *res) TND_MUST_CHECK;

#endif
