/* SPDX-License-Identifier: MIT */
/* SHA-256, the one hash of the formats, from the library Kconfig chose:
 * Nettle (CPU instructions where it has them), mbedtls or libcrypto. */
#ifndef TANDEM_CRYPTO_H
#define TANDEM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#if defined(CONFIG_SHA256_OPENSSL)
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_*: see crypto.c */
#include <openssl/sha.h>
#elif defined(CONFIG_SHA256_NETTLE)
#include <nettle/sha2.h>
#else
#include <mbedtls/sha256.h>
#endif

#define TND_SHA256_LEN	   32
#define TND_SHA256_HEX_LEN 65

struct tnd_sha256 {
#if defined(CONFIG_SHA256_OPENSSL)
	SHA256_CTX ctx;
#elif defined(CONFIG_SHA256_NETTLE)
	struct sha256_ctx ctx;
#else
	mbedtls_sha256_context ctx;
#endif
};

void tnd_sha256_init(struct tnd_sha256 *h);
void tnd_sha256_update(struct tnd_sha256 *h, const void *data, size_t len);
void tnd_sha256_final(struct tnd_sha256 *h, uint8_t out[TND_SHA256_LEN]);
void tnd_sha256(const void *data, size_t len, uint8_t out[TND_SHA256_LEN]);

/* Constant-time comparison, for anything an attacker chose. */
int tnd_memeq_ct(const void *a, const void *b, size_t len);

#endif
