/* SPDX-License-Identifier: MIT */
/*
 * Runtime configuration (docs/configuration.md): one JSON file, parsed and
 * validated once into this struct, which is passed down explicitly.
 * Unknown keys are errors: a misspelt key must not silently fall back to
 * a default on a device in the field.
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"

#define TND_DEFAULT_CONFIG "/etc/tandem/tandem.conf"
#define TND_NSLOTS	   2

enum tnd_bl_type { TND_BL_NONE, TND_BL_UBOOT, TND_BL_GRUB, TND_BL_CUSTOM };

/* Which URLs a fleet device follows (server.url_policy, docs/fleet.md). */
enum tnd_url_policy {
	TND_URLS_HTTPS,	      /* https:// only, any host (a CDN), redirects too */
	TND_URLS_SAME_ORIGIN, /* server.url's scheme, host and port only; no redirects */
	TND_URLS_ANY,	      /* http:// and https://, any host */
};

struct tnd_config {
	char path[PATH_MAX]; /* the file it came from */
	char compatible[TND_NAME_MAX];
	char keyring[PATH_MAX];
	unsigned signature_threshold;
	char state_dir[PATH_MAX];
	char cmdline[PATH_MAX];
	char boot_id[PATH_MAX]; /* changes at every boot: tells confirm a reboot happened */
	enum tnd_bl_type bootloader;
	char env_config[PATH_MAX];
	char grubenv[PATH_MAX];	  /* "grub": the environment block */
	char handler[PATH_MAX];	  /* "custom": the program RAUC's interface calls */
	unsigned handler_timeout; /* seconds per call of the handler */
	bool handler_env;	  /* the handler keeps the floor and identities */
	char slot_dev[TND_NSLOTS][PATH_MAX];
	unsigned boot_tries;
	char health_dir[PATH_MAX];
	unsigned health_timeout; /* seconds per health check */
	struct tnd_server_config {
		/* "server": the fleet channel this device polls (docs/fleet.md).
		 * url empty: no server configured. */
		char url[1024];		       /* the channel's index.json */
		char ca[PATH_MAX];	       /* CA bundle for HTTPS; empty: the system's */
		char client_cert[PATH_MAX];    /* mutual TLS: the device's certificate */
		char client_key[PATH_MAX];     /* ... and its private key */
		char proxy[1024];	       /* empty: libcurl's default (environment) */
		char report_url[1024];	       /* empty: no status reports */
		char device_id_file[PATH_MAX]; /* the device's ID (first line) */
		unsigned poll_interval;	       /* seconds between polls */
		unsigned poll_jitter;	       /* +- seconds of random jitter */
		unsigned connect_timeout;      /* seconds */
		unsigned stall_timeout;	       /* seconds without a byte: reconnect */
		unsigned retries;	       /* reconnects per download without progress */
		/* May a delta make this device compress xz streams again (the
		 * smallest download, minutes of CPU)? Builds without
		 * CONFIG_DELTA_XZ never take such deltas. */
		bool delta_xz_rebuild;
		enum tnd_url_policy url_policy;
	} server;
};

int tnd_config_load(struct tnd_config *cfg, const char *path) TND_MUST_CHECK;
/* Parses config JSON text; `origin` names it in messages. */
int tnd_config_parse(struct tnd_config *cfg, const char *json, const char *origin) TND_MUST_CHECK;

/* "A" or "B". */
const char *tnd_slot_name(int slot);
/* 0 for "A"/"a", 1 for "B"/"b", else -1. */
int tnd_slot_from_name(const char *name);

/* This boot's identity (the kernel's random boot ID), into id[64]. */
int tnd_boot_id(const struct tnd_config *cfg, char id[64]) TND_MUST_CHECK;

/* The slot the running system booted from, from tandem.slot= in the
 * kernel command line file; TND_E_SLOT when it names none. */
int tnd_booted_slot(const struct tnd_config *cfg, int *slot) TND_MUST_CHECK;

#endif
