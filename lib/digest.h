/* SPDX-License-Identifier: MIT */
/*
 * Hashing a file, a slot or a bundle front to back: the one loop every
 * "what does this hold" question uses (a delta's base, a slot read back,
 * a bundle for a channel, an image to sign, a bundle to send).
 */
#ifndef TANDEM_DIGEST_H
#define TANDEM_DIGEST_H

#include <stdint.h>

#include "crypto.h"
#include "error.h"

#define TND_DIGEST_TO_END UINT64_MAX

/*
 * Reads fd from offset 0 (pread: its file position is not used) up to
 * `size` bytes, or to its end with TND_DIGEST_TO_END, and feeds every
 * byte to h (a started SHA-256) and to *crc (a CRC-32 to continue; 0 to
 * start), each when not NULL. *got (may be NULL) is the bytes read. A
 * file shorter than size is TND_E_TRUNCATED; read errors are `code`
 * (TND_E_IO, or TND_E_SLOT_IO for a slot), naming `name`.
 */
int tnd_digest_fd(int fd, uint64_t size, const char *name, int code, struct tnd_sha256 *h,
		  uint32_t *crc, uint64_t *got) TND_MUST_CHECK;
/* The SHA-256 and size of a whole file. */
int tnd_sha256_path(const char *path, uint8_t out[TND_SHA256_LEN], uint64_t *size) TND_MUST_CHECK;

#endif
