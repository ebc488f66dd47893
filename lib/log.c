// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

/* Process-wide logging setup: set once by main() before any thread starts. */
static const char *log_prog = "tandem";
static enum tnd_log_level log_level = TND_LOG_INFO;
static bool log_syslog;

void tnd_log_init(const char *progname, enum tnd_log_level level)
{
	log_prog = progname;
	log_level = level;
}

void tnd_log_use_syslog(void)
{
	openlog(log_prog, LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

enum tnd_log_level tnd_log_level(void)
{
	return log_level;
}

void tnd_log(enum tnd_log_level level, const char *fmt, ...)
{
	static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog)
		syslog(prio[level], "%s", line);
	else
		fprintf(stderr, "%s: %s%s\n", log_prog, tag[level], line);
}
