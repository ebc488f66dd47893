// SPDX-License-Identifier: MIT
#include "crypto.h"

#include <string.h>

#if defined(CONFIG_SHA256_OPENSSL)
/* libcrypto's SHA256_* functions call its assembler block function
 * (SHA-NI, ARMv8 crypto extensions) directly. The EVP interface would
 * first set up a provider, which costs about 6 MiB of resident memory
 * on this machine (an install measured at 8.4 MiB instead of 4.3), more
 * than the hashing it speeds up is worth on a device. They are
 * deprecated in OpenSSL 3 in favour of EVP, not removed; the deprecation
 * warning is silenced in crypto.h, for these calls only. They cannot
 * fail with valid arguments. */
void tnd_sha256_init(struct tnd_sha256 *h)
{
	SHA256_Init(&h->ctx);
}

void tnd_sha256_update(struct tnd_sha256 *h, const void *data, size_t len)
{
	SHA256_Update(&h->ctx, data, len);
}

void tnd_sha256_final(struct tnd_sha256 *h, uint8_t out[TND_SHA256_LEN])
{
	SHA256_Final(out, &h->ctx);
}
#elif defined(CONFIG_SHA256_NETTLE)
/* Nettle's functions cannot fail. */
void tnd_sha256_init(struct tnd_sha256 *h)
{
	sha256_init(&h->ctx);
}

void tnd_sha256_update(struct tnd_sha256 *h, const void *data, size_t len)
{
	sha256_update(&h->ctx, len, data);
}

void tnd_sha256_final(struct tnd_sha256 *h, uint8_t out[TND_SHA256_LEN])
{
	sha256_digest(&h->ctx, TND_SHA256_LEN, out);
}
#else
/* mbedtls' SHA-256 functions only fail on bad arguments, which we never
 * pass; the _ret variants are used because the plain ones are deprecated. */
void tnd_sha256_init(struct tnd_sha256 *h)
{
	mbedtls_sha256_init(&h->ctx);
	(void)mbedtls_sha256_starts_ret(&h->ctx, 0);
}

void tnd_sha256_update(struct tnd_sha256 *h, const void *data, size_t len)
{
	(void)mbedtls_sha256_update_ret(&h->ctx, data, len);
}

void tnd_sha256_final(struct tnd_sha256 *h, uint8_t out[TND_SHA256_LEN])
{
	(void)mbedtls_sha256_finish_ret(&h->ctx, out);
	mbedtls_sha256_free(&h->ctx);
}
#endif

void tnd_sha256(const void *data, size_t len, uint8_t out[TND_SHA256_LEN])
{
	struct tnd_sha256 h;

	tnd_sha256_init(&h);
	tnd_sha256_update(&h, data, len);
	tnd_sha256_final(&h, out);
}

int tnd_memeq_ct(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;

	for (size_t i = 0; i < len; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}
