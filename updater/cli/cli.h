/* SPDX-License-Identifier: MIT */
/*
 * The command line of `tandem`: argument parsing, usage text, human and
 * JSON output, signals, the device's lock and reboots. The only part of
 * the device program that prints; everything it runs is a library call
 * that takes a parsed configuration (so the tests reach all of it).
 */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <signal.h>

#include "config.h"
#include "lock.h"

struct cJSON;

struct cli {
	const char *config;	       /* -c FILE */
	volatile sig_atomic_t *cancel; /* set by SIGINT and SIGTERM */
};

/* Loads the configuration and, for a command that changes slots, state
 * or the boot environment, takes the device's lock (lock may be NULL for
 * one that only reads). */
int cli_begin(const struct cli *g, const char *name, struct tnd_config *cfg,
	      struct tnd_lock *lock) TND_MUST_CHECK;
/* Prints o as one line of JSON on stdout and frees it. */
void cli_print_json(struct cJSON *o);
/* {"result":"error","error":CODE,"exit":STATUS,"message":MSG} */
void cli_print_error_json(int code, const char *msg);
/* Syncs and reboots; returns only when it could not. */
void cli_reboot(void);
/* The options every small command shares: --json (when json is not
 * NULL) and --help. 1 when help was printed. */
int cli_simple_opts(int argc, char **argv, const char *help, int *json) TND_MUST_CHECK;

int cmd_install(const struct cli *g, int argc, char **argv);
int cmd_status(const struct cli *g, int argc, char **argv);
int cmd_activate(const struct cli *g, int argc, char **argv);
int cmd_confirm(const struct cli *g, int argc, char **argv);
int cmd_rollback(const struct cli *g, int argc, char **argv);
int cmd_doctor(const struct cli *g, int argc, char **argv);
int cmd_provision(const struct cli *g, int argc, char **argv);
int cmd_receive(const struct cli *g, int argc, char **argv);
int cmd_poll(const struct cli *g, int argc, char **argv);
int cmd_daemon(const struct cli *g, int argc, char **argv);

#endif
