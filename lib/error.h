/* SPDX-License-Identifier: MIT */
/*
 * Error codes and the per-thread error message.
 *
 * Every fallible function returns 0 or a negative TND_E_* code and, on
 * failure, leaves a one-line human message in the calling thread's error
 * buffer (tnd_err_set). Callers add context on the way up with
 * tnd_err_prefix(), so the user reads for example
 *   "slot B: cannot write at offset 4194304: No space left on device".
 * The codes are stable: their names appear in JSON output and docs/exit-codes.md
 * maps them to process exit codes.
 */
#ifndef TANDEM_ERROR_H
#define TANDEM_ERROR_H

#define TND_MUST_CHECK	 __attribute__((warn_unused_result))
#define TND_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum tnd_err {
	TND_OK = 0,
	TND_E_USAGE = -1,	   /* bad command line */
	TND_E_CONFIG = -2,	   /* runtime configuration missing or invalid */
	TND_E_IO = -3,		   /* read/write/open failure outside the slot */
	TND_E_NOMEM = -4,	   /* allocation failed */
	TND_E_FORMAT = -5,	   /* malformed bundle, manifest or record */
	TND_E_SIGNATURE = -6,	   /* no valid signature from a trusted key */
	TND_E_UNKNOWN_KEY = -7,	   /* signed, but by no key in the keyring */
	TND_E_INTEGRITY = -8,	   /* a chunk's hash does not match the signed chain */
	TND_E_TRUNCATED = -9,	   /* the bundle ended early */
	TND_E_TRAILING = -10,	   /* data after the declared payload */
	TND_E_INCOMPATIBLE = -11,  /* manifest is for another board */
	TND_E_EXPIRED = -12,	   /* manifest past its expiry time */
	TND_E_SLOT = -13,	   /* target slot unusable: booted, missing, too small, mounted */
	TND_E_SLOT_IO = -14,	   /* write or read-back of the slot failed */
	TND_E_VERIFY = -15,	   /* read-back differs from what was authenticated */
	TND_E_STATE = -16,	   /* state directory unreadable or unwritable */
	TND_E_BOOTLOADER = -17,	   /* boot environment could not be read or written */
	TND_E_UNSUPPORTED = -18,   /* valid, but needs a feature this build lacks */
	TND_E_CRYPTO = -19,	   /* key load, signing or RNG failure */
	TND_E_INTERNAL = -20,	   /* a bug: please report */
	TND_E_CANCELLED = -21,	   /* interrupted by a signal */
	TND_E_DOWNGRADE = -22,	   /* security version below the device's floor */
	TND_E_NOT_FOUND = -23,	   /* a named thing does not exist */
	TND_E_HEALTH = -24,	   /* a health check failed: the booted slot is bad */
	TND_E_NOT_READY = -25,	   /* the request does not fit the device's state */
	TND_E_NETWORK = -26,	   /* connection, TLS or HTTP failure talking to a server */
	TND_E_WRONG_RELEASE = -27, /* a genuine bundle, but not the release that was expected */
	TND_E_BUSY = -28,	   /* another tandem process holds the device's lock */
};

#define TND_ERR_MSG_MAX 512

/* Stable machine name of a code, e.g. "E_SIGNATURE". Never NULL. */
const char *tnd_err_name(int code);
/* Process exit status for a code (docs/exit-codes.md). */
int tnd_err_exit_status(int code);

/* Sets this thread's error message and returns code (so `return tnd_err_set(...)`). */
int tnd_err_set(int code, const char *fmt, ...) TND_PRINTF(2, 3);
/* Like tnd_err_set, appending ": strerror(errnum)". */
int tnd_err_errno(int code, int errnum, const char *fmt, ...) TND_PRINTF(3, 4);
/* Prepends "context: " to the current message; returns code unchanged. */
int tnd_err_prefix(int code, const char *fmt, ...) TND_PRINTF(2, 3);
/* The usage error for a getopt_long() '?' result: `arg` is argv[optind - 1]. */
int tnd_err_bad_option(const char *arg);
/* The current message (borrowed, valid until the next tnd_err_* call). */
const char *tnd_err_msg(void);
/* The code recorded with the current message, TND_OK if none. */
int tnd_err_code(void);
void tnd_err_clear(void);

#endif
