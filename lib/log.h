/* SPDX-License-Identifier: MIT */
/*
 * One logging module: levels, printf-checked, no hidden control flow.
 * Messages go to stderr (one line each, prefixed with the program name)
 * or to syslog when tnd_log_use_syslog() was called (daemons).
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include "error.h"

enum tnd_log_level { TND_LOG_ERROR, TND_LOG_WARN, TND_LOG_INFO, TND_LOG_DEBUG };

void tnd_log_init(const char *progname, enum tnd_log_level level);
void tnd_log_use_syslog(void);
enum tnd_log_level tnd_log_level(void);
void tnd_log(enum tnd_log_level level, const char *fmt, ...) TND_PRINTF(2, 3);

#define tnd_error(...) tnd_log(TND_LOG_ERROR, __VA_ARGS__)
#define tnd_warn(...)  tnd_log(TND_LOG_WARN, __VA_ARGS__)
#define tnd_info(...)  tnd_log(TND_LOG_INFO, __VA_ARGS__)
#define tnd_debug(...) tnd_log(TND_LOG_DEBUG, __VA_ARGS__)

#endif
