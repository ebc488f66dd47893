// SPDX-License-Identifier: MIT
#include "timeutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's algorithm); avoids timegm's locale and TZ baggage. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

int tnd_time_parse(const char *s, int64_t *out)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se;
	char z;
	int n = 0;

	if (!s || strlen(s) != 20 ||
	    sscanf(s, "%4u-%2u-%2uT%2u:%2u:%2u%c%n", &y, &mo, &d, &h, &mi, &se, &z, &n) != 7 ||
	    n != 20 || z != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return tnd_err_set(TND_E_FORMAT, "'%s' is not a UTC time like 2027-01-01T00:00:00Z",
				   s ? s : "");
	for (int i = 0; i < 19; i++)
		if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (s[i] < '0' || s[i] > '9'))
			return tnd_err_set(TND_E_FORMAT, "'%s' is not a UTC time", s);
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || se > 60)
		return tnd_err_set(TND_E_FORMAT, "'%s' is not a valid time", s);
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}

void tnd_time_format(char out[TND_TIME_STR_LEN], int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, TND_TIME_STR_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t tnd_time_now(void)
{
	const char *fake = getenv("TANDEM_NOW");
	int64_t t;

	if (fake && tnd_time_parse(fake, &t) == 0)
		return t;
	return (int64_t)time(NULL);
}
