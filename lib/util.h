/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every module: byte order, hex, full I/O. */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define TND_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline uint32_t tnd_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t tnd_get_be64(const uint8_t *p)
{
	return (uint64_t)tnd_get_be32(p) << 32 | tnd_get_be32(p + 4);
}

static inline uint16_t tnd_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void tnd_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void tnd_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void tnd_put_be64(uint8_t *p, uint64_t v)
{
	tnd_put_be32(p, (uint32_t)(v >> 32));
	tnd_put_be32(p + 4, (uint32_t)v);
}

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void tnd_hex_encode(char *out, const uint8_t *in, size_t len);
/* Exactly 2*len hex digits to bytes; TND_E_FORMAT otherwise. */
int tnd_hex_decode(uint8_t *out, size_t len, const char *hex) TND_MUST_CHECK;

/* read() until len bytes or EOF; returns bytes read (short only at EOF) or -errno. */
ssize_t tnd_read_full(int fd, void *buf, size_t len);
/* write() all of buf, retrying on EINTR and short writes; 0 or -errno. */
int tnd_write_full(int fd, const void *buf, size_t len);
/* pwrite()/pread() the whole range; 0 or -errno (pread: -EIO at early EOF). */
int tnd_pwrite_full(int fd, const void *buf, size_t len, off_t off);
int tnd_pread_full(int fd, void *buf, size_t len, off_t off);

/* True when all len bytes are zero (fast path for sparse data). */
bool tnd_is_zero(const void *buf, size_t len);

/* Reads a whole small file (at most max bytes) into a NUL-terminated
 * buffer the caller frees. */
int tnd_read_small_file(const char *path, size_t max, char **out, size_t *out_len) TND_MUST_CHECK;
/* The same for a file Tandem wrote itself in a directory others may write
 * (state_dir): a symbolic link, a FIFO, anything but a regular file, or
 * one with another name elsewhere (a hard link) is refused, not followed
 * or read (one planted there must not make Tandem read another file, or
 * block on one). */
int tnd_read_own_file(const char *path, size_t max, char **out, size_t *out_len) TND_MUST_CHECK;
/* ... name in the directory open as dfd */
int tnd_read_own_file_at(int dfd, const char *name, size_t max, char **out,
			 size_t *out_len) TND_MUST_CHECK;

/* Parses a decimal unsigned integer, the whole string. */
int tnd_parse_u64(const char *s, uint64_t *out) TND_MUST_CHECK;
/* Parses a size with an optional K/M/G suffix (binary units). */
int tnd_parse_size(const char *s, uint64_t *out) TND_MUST_CHECK;

/* Monotonic time in seconds. */
double tnd_now_mono(void);
/* In a child between fork and exec: standard input from /dev/null, and
 * every descriptor above 2 closed (a library's socket or pipe opened
 * without O_CLOEXEC, a libubootenv lock), so that a program Tandem runs
 * (a health check, a boot handler) inherits nothing of it. */
void tnd_child_fds(void);
/* Reads what fd (non-blocking) has now and keeps its last non-empty
 * line in last: why a child failed, in one line of ours. */
void tnd_drain_last_line(int fd, char *last, size_t size);

#endif
