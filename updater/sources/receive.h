/* SPDX-License-Identifier: MIT */
/*
 * tandem receive: installs a bundle that arrives over a serial line from
 * `tandem-image send` (docs/serial.md). The link is wrapped as a struct
 * tnd_source and handed to tnd_install, so the bundle goes through the
 * one verified install path and is never stored on the device.
 */
#ifndef TANDEM_RECEIVE_H
#define TANDEM_RECEIVE_H

#include <signal.h>

#include "error.h"

/* The `receive` command: argv[0] is "receive"; config_path is the -c
 * option; cancel is set by the signal handler. Returns 0 or a TND_E_*
 * code with the message set. */
int tnd_cmd_receive(const char *config_path, volatile sig_atomic_t *cancel, int argc,
		    char **argv) TND_MUST_CHECK;

#endif
