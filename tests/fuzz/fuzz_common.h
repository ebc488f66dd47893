/* SPDX-License-Identifier: MIT */
/*
 * Shared by the fuzz targets: a memory-backed bundle source and a private
 * scratch directory. Each target defines LLVMFuzzerTestOneInput (and, when
 * it needs keys or files set up once, LLVMFuzzerInitialize); the same
 * source builds with clang/libFuzzer (make fuzz) and with gcc against
 * tests/fuzz/replay_main.c (the corpus replay of make check).
 */
#ifndef TANDEM_FUZZ_COMMON_H
#define TANDEM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Property violations abort, so libFuzzer and the replay both report them
 * as crashes with the input that caused them. */
#define FUZZ_ASSERT(c)                                                                       \
	do {                                                                                 \
		if (!(c)) {                                                                  \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, \
				#c);                                                         \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* A source over memory. step > 0 hands out at most step bytes per read, as
 * a pipe or socket does; size_known sets src.size like a regular file, so
 * both the up-front size check and the streaming checks are reachable. */
struct fuzz_memsrc {
	struct tnd_source base;
	const uint8_t *data;
	size_t len, off, step;
};

static inline ssize_t fuzz_mem_read(struct tnd_source *s, void *buf, size_t len)
{
	struct fuzz_memsrc *m = (struct fuzz_memsrc *)s;
	size_t n = m->len - m->off;

	if (n > len)
		n = len;
	if (m->step && n > m->step)
		n = m->step;
	if (n)
		memcpy(buf, m->data + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static inline void fuzz_memsrc_init(struct fuzz_memsrc *m, const uint8_t *data, size_t len,
				    size_t step, int size_known)
{
	memset(m, 0, sizeof(*m));
	m->base.read = fuzz_mem_read;
	m->base.fd = -1;
	snprintf(m->base.name, sizeof(m->base.name), "fuzz input");
	m->base.size = size_known ? len : 0;
	m->data = data;
	m->len = len;
	m->step = step;
}

/* A scratch directory under $TMPDIR (else /dev/shm, else /tmp), removed with its files at
 * exit; the name is kept in a static buffer. */
char *fuzz_scratch_dir(void);

#endif
