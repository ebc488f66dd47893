/* SPDX-License-Identifier: MIT */
/*
 * Keys, keyrings and ECDSA P-256 signatures (mbedtls). No other module
 * calls mbedtls' public-key code.
 *
 * A key is named by its key ID: the SHA-256 of its SubjectPublicKeyInfo
 * DER encoding, the same bytes on every platform, so a bundle can say
 * which key made each signature.
 */
#ifndef TANDEM_SIGN_H
#define TANDEM_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "error.h"

#define TND_KEYID_LEN 32
#define TND_SIG_MAX   160 /* DER ECDSA P-256 is at most 72; room for P-384 later */

enum tnd_sig_alg {
	TND_SIG_ECDSA_P256_SHA256 = 1,
};

struct tnd_pubkey;

struct tnd_keyring {
	struct tnd_pubkey **keys; /* owned */
	size_t n;
};

/* Loads every *.pem file of dir as a public key. An empty or missing
 * directory is an error: a device without keys can install nothing. */
int tnd_keyring_load_dir(struct tnd_keyring *kr, const char *dir) TND_MUST_CHECK;
/* Adds one PEM public key file. */
int tnd_keyring_add_file(struct tnd_keyring *kr, const char *path) TND_MUST_CHECK;
/* Frees the keys; accepts a zeroed keyring. */
void tnd_keyring_free(struct tnd_keyring *kr);
/* The key with this ID, or NULL (borrowed). */
const struct tnd_pubkey *tnd_keyring_find(const struct tnd_keyring *kr,
					  const uint8_t keyid[TND_KEYID_LEN]);
const uint8_t *tnd_pubkey_id(const struct tnd_pubkey *key);
/* File the key came from (borrowed). */
const char *tnd_pubkey_name(const struct tnd_pubkey *key);

/* 0 when sig is a valid signature of hash by key, TND_E_SIGNATURE otherwise. */
int tnd_pubkey_verify(const struct tnd_pubkey *key, enum tnd_sig_alg alg,
		      const uint8_t hash[TND_SHA256_LEN], const uint8_t *sig,
		      size_t sig_len) TND_MUST_CHECK;

/* A private key for signing (host side). Secrets are zeroised on free. */
struct tnd_signer;
int tnd_signer_load(struct tnd_signer **out, const char *path) TND_MUST_CHECK;
void tnd_signer_free(struct tnd_signer *s);
const uint8_t *tnd_signer_id(const struct tnd_signer *s);
/* Signs hash; sig must hold TND_SIG_MAX bytes. */
int tnd_signer_sign(struct tnd_signer *s, const uint8_t hash[TND_SHA256_LEN], uint8_t *sig,
		    size_t *sig_len) TND_MUST_CHECK;

/* Adds the public half of a signing key to a keyring (host side: check
 * bundles against the keys that will sign the channel). */
int tnd_keyring_add_signer(struct tnd_keyring *kr, const struct tnd_signer *s) TND_MUST_CHECK;

/*
 * A device's TLS identity (factory provisioning): cert must be a PEM or
 * DER X.509 certificate and key an unencrypted private key whose public
 * half is the certificate's. TND_E_CRYPTO, naming the file, otherwise.
 */
int tnd_tls_identity_check(const char *cert, const char *key) TND_MUST_CHECK;

/* Generates a P-256 key pair: private PEM (mode 0600) and public PEM. */
int tnd_keygen(const char *priv_path, const char *pub_path) TND_MUST_CHECK;

#endif
