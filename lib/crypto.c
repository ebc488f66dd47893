// SPDX-License-Identifier: MIT
#include "crypto.h"

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
