// SPDX-License-Identifier: MIT
#include "crypto.h"

#include <string.h>

#ifdef CONFIG_SHA256_OPENSSL
#include <openssl/crypto.h>
#include <pthread.h>
#endif

#ifdef CONFIG_SHA256_OPENSSL
/* An allocation failure here leaves ctx NULL; update and final then
 * produce a hash of nothing, which can match no signed hash, so the
 * caller's comparison fails closed. */
/* libcrypto's defaults read openssl.cnf and set up every algorithm: a
 * device needs one digest, and its memory is budgeted. */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha_md;

static void sha_setup(void)
{
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
				OPENSSL_INIT_NO_ADD_ALL_DIGESTS,
			    NULL);
	sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void tnd_sha256_init(struct tnd_sha256 *h)
{
	pthread_once(&sha_once, sha_setup);
	h->ctx = sha_md ? EVP_MD_CTX_new() : NULL;
	if (h->ctx && EVP_DigestInit_ex(h->ctx, sha_md, NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		h->ctx = NULL;
	}
}

void tnd_sha256_update(struct tnd_sha256 *h, const void *data, size_t len)
{
	if (h->ctx)
		EVP_DigestUpdate(h->ctx, data, len);
}

void tnd_sha256_final(struct tnd_sha256 *h, uint8_t out[TND_SHA256_LEN])
{
	unsigned int n = 0;

	if (!h->ctx || EVP_DigestFinal_ex(h->ctx, out, &n) != 1 || n != TND_SHA256_LEN)
		memset(out, 0xff, TND_SHA256_LEN); /* never a real hash of anything */
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
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
