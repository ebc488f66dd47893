/* SPDX-License-Identifier: MIT */
/* Helpers shared by the cmocka unit tests. Header-only: each test is one binary. */
#ifndef TANDEM_TESTUTIL_H
#define TANDEM_TESTUTIL_H

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* A fresh directory under $TMPDIR, removed by tu_rmdir. */
static inline char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *p = malloc(PATH_MAX);

	assert_non_null(p);
	snprintf(p, PATH_MAX, "%s/tandem-unit-XXXXXX", base);
	assert_non_null(mkdtemp(p));
	return p;
}

static inline void tu_rmdir(char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static inline uint8_t *tu_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	FILE *f;

	assert_int_equal(stat(path, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = (size_t)st.st_size;
	return buf;
}

/* Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
static inline void tu_fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 2654435761u + 88172645463325252ull;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
}

static inline char *tu_path(const char *dir, const char *name)
{
	char *p = malloc(PATH_MAX);

	assert_non_null(p);
	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

#endif
