// SPDX-License-Identifier: MIT
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[TND_ERR_MSG_MAX];
static _Thread_local int err_code;

static const struct {
	int code;
	const char *name;
	int status;
} err_table[] = {
    {TND_OK, "OK", 0},
    {TND_E_USAGE, "E_USAGE", 2},
    {TND_E_CONFIG, "E_CONFIG", 3},
    {TND_E_IO, "E_IO", 4},
    {TND_E_NOMEM, "E_NOMEM", 4},
    {TND_E_FORMAT, "E_FORMAT", 10},
    {TND_E_SIGNATURE, "E_SIGNATURE", 11},
    {TND_E_UNKNOWN_KEY, "E_UNKNOWN_KEY", 11},
    {TND_E_INTEGRITY, "E_INTEGRITY", 12},
    {TND_E_TRUNCATED, "E_TRUNCATED", 12},
    {TND_E_TRAILING, "E_TRAILING", 12},
    {TND_E_INCOMPATIBLE, "E_INCOMPATIBLE", 13},
    {TND_E_EXPIRED, "E_EXPIRED", 13},
    {TND_E_DOWNGRADE, "E_DOWNGRADE", 13},
    {TND_E_SLOT, "E_SLOT", 20},
    {TND_E_SLOT_IO, "E_SLOT_IO", 21},
    {TND_E_VERIFY, "E_VERIFY", 21},
    {TND_E_STATE, "E_STATE", 22},
    {TND_E_BOOTLOADER, "E_BOOTLOADER", 23},
    {TND_E_UNSUPPORTED, "E_UNSUPPORTED", 14},
    {TND_E_CRYPTO, "E_CRYPTO", 4},
    {TND_E_NOT_FOUND, "E_NOT_FOUND", 5},
    {TND_E_HEALTH, "E_HEALTH", 24},
    {TND_E_NOT_READY, "E_NOT_READY", 25},
    {TND_E_NETWORK, "E_NETWORK", 6},
    {TND_E_WRONG_RELEASE, "E_WRONG_RELEASE", 12},
    {TND_E_BUSY, "E_BUSY", 26},
    {TND_E_CANCELLED, "E_CANCELLED", 130},
    {TND_E_INTERNAL, "E_INTERNAL", 70},
};

const char *tnd_err_name(int code)
{
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == code)
			return err_table[i].name;
	return "E_INTERNAL";
}

int tnd_err_exit_status(int code)
{
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == code)
			return err_table[i].status;
	return 70;
}

int tnd_err_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	err_code = code;
	return code;
}

int tnd_err_errno(int code, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	n = strlen(err_msg);
	snprintf(err_msg + n, sizeof(err_msg) - n, ": %s", strerror(errnum));
	err_code = code;
	return code;
}

int tnd_err_prefix(int code, const char *fmt, ...)
{
	char prefix[TND_ERR_MSG_MAX];
	char old[TND_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err_msg, sizeof(old));
	/* Truncation is fine here: the start of the message matters most. */
	size_t pl = strnlen(prefix, sizeof(err_msg) - 3), ol = strnlen(old, sizeof(old));
	if (!ol) {
		strcpy(old, "failed");
		ol = 6;
	}
	memcpy(err_msg, prefix, pl);
	memcpy(err_msg + pl, ": ", 2);
	if (ol > sizeof(err_msg) - pl - 3)
		ol = sizeof(err_msg) - pl - 3;
	memcpy(err_msg + pl + 2, old, ol);
	err_msg[pl + 2 + ol] = '\0';
	if (!err_code)
		err_code = code;
	return code;
}

int tnd_err_bad_option(const char *arg)
{
	return tnd_err_set(TND_E_USAGE, "unknown option or missing value '%s' (see --help)", arg);
}

const char *tnd_err_msg(void)
{
	return err_msg[0] ? err_msg : "unknown error";
}

int tnd_err_code(void)
{
	return err_code;
}

void tnd_err_clear(void)
{
	err_msg[0] = '\0';
	err_code = TND_OK;
}
