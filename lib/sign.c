// SPDX-License-Identifier: MIT
#include "sign.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "util.h"

struct tnd_pubkey {
	mbedtls_pk_context pk;
	uint8_t id[TND_KEYID_LEN];
	char name[PATH_MAX];
};

struct tnd_signer {
	mbedtls_pk_context pk;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	uint8_t id[TND_KEYID_LEN];
};

static int key_is_p256(const mbedtls_pk_context *pk)
{
	return mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY &&
	       mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

/* Key ID = SHA-256(SubjectPublicKeyInfo DER). mbedtls writes DER at the
 * end of the buffer. */
static int key_id(mbedtls_pk_context *pk, uint8_t id[TND_KEYID_LEN])
{
	unsigned char der[512];
	int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof(der));

	if (n <= 0)
		return tnd_err_set(TND_E_CRYPTO, "cannot encode public key (mbedtls -0x%04x)", -n);
	tnd_sha256(der + sizeof(der) - n, (size_t)n, id);
	return 0;
}

int tnd_keyring_add_file(struct tnd_keyring *kr, const char *path)
{
	struct tnd_pubkey *key, **keys;
	int r;

	key = calloc(1, sizeof(*key));
	if (!key)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	mbedtls_pk_init(&key->pk);
	r = mbedtls_pk_parse_public_keyfile(&key->pk, path);
	if (r) {
		r = tnd_err_set(TND_E_CRYPTO, "%s: not a PEM public key (mbedtls -0x%04x)", path,
				-r);
		goto fail;
	}
	if (!key_is_p256(&key->pk)) {
		r = tnd_err_set(TND_E_CRYPTO, "%s: not an ECDSA P-256 key", path);
		goto fail;
	}
	r = key_id(&key->pk, key->id);
	if (r)
		goto fail;
	snprintf(key->name, sizeof(key->name), "%s", path);
	/* The same key twice would count twice towards a signature threshold. */
	if (tnd_keyring_find(kr, key->id)) {
		mbedtls_pk_free(&key->pk);
		free(key);
		return 0;
	}
	keys = realloc(kr->keys, (kr->n + 1) * sizeof(*keys));
	if (!keys) {
		r = tnd_err_set(TND_E_NOMEM, "out of memory");
		goto fail;
	}
	kr->keys = keys;
	kr->keys[kr->n++] = key;
	return 0;
fail:
	mbedtls_pk_free(&key->pk);
	free(key);
	return r;
}

int tnd_keyring_add_signer(struct tnd_keyring *kr, const struct tnd_signer *s)
{
	struct tnd_pubkey *key, **keys;
	unsigned char der[512];
	int n;

	if (tnd_keyring_find(kr, s->id))
		return 0;
	/* The public half, through its DER encoding: mbedtls has no copy. */
	n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&s->pk, der, sizeof(der));
	if (n <= 0)
		return tnd_err_set(TND_E_CRYPTO, "cannot encode public key (mbedtls -0x%04x)", -n);
	key = calloc(1, sizeof(*key));
	keys = realloc(kr->keys, (kr->n + 1) * sizeof(*keys));
	if (keys)
		kr->keys = keys;
	if (!key || !keys) {
		free(key);
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	}
	mbedtls_pk_init(&key->pk);
	if (mbedtls_pk_parse_public_key(&key->pk, der + sizeof(der) - n, (size_t)n)) {
		mbedtls_pk_free(&key->pk);
		free(key);
		return tnd_err_set(TND_E_CRYPTO, "cannot load a signing key's public half");
	}
	memcpy(key->id, s->id, TND_KEYID_LEN);
	snprintf(key->name, sizeof(key->name), "signing key %02x%02x%02x%02x...", s->id[0],
		 s->id[1], s->id[2], s->id[3]);
	kr->keys[kr->n++] = key;
	return 0;
}

static int pem_name(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 4 && d->d_name[0] != '.' && strcmp(d->d_name + n - 4, ".pem") == 0;
}

int tnd_keyring_load_dir(struct tnd_keyring *kr, const char *dir)
{
	struct dirent **list = NULL;
	int n, ret = 0;

	n = scandir(dir, &list, pem_name, alphasort);
	if (n < 0)
		return tnd_err_errno(TND_E_CONFIG, errno, "keyring %s", dir);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];

		if (!ret) {
			snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
			ret = tnd_keyring_add_file(kr, path);
		}
		free(list[i]);
	}
	free(list);
	if (!ret && kr->n == 0)
		ret = tnd_err_set(TND_E_CONFIG, "keyring %s holds no *.pem public key", dir);
	return ret;
}

void tnd_keyring_free(struct tnd_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n; i++) {
		mbedtls_pk_free(&kr->keys[i]->pk);
		free(kr->keys[i]);
	}
	free(kr->keys);
	kr->keys = NULL;
	kr->n = 0;
}

const struct tnd_pubkey *tnd_keyring_find(const struct tnd_keyring *kr,
					  const uint8_t keyid[TND_KEYID_LEN])
{
	for (size_t i = 0; i < kr->n; i++)
		if (memcmp(kr->keys[i]->id, keyid, TND_KEYID_LEN) == 0)
			return kr->keys[i];
	return NULL;
}

const uint8_t *tnd_pubkey_id(const struct tnd_pubkey *key)
{
	return key->id;
}

const char *tnd_pubkey_name(const struct tnd_pubkey *key)
{
	return key->name;
}

int tnd_pubkey_verify(const struct tnd_pubkey *key, enum tnd_sig_alg alg,
		      const uint8_t hash[TND_SHA256_LEN], const uint8_t *sig, size_t sig_len)
{
	if (alg != TND_SIG_ECDSA_P256_SHA256)
		return tnd_err_set(TND_E_SIGNATURE, "unknown signature algorithm %d", (int)alg);
	/* mbedtls_pk_verify does not modify the key; its prototype predates const. */
	if (mbedtls_pk_verify((mbedtls_pk_context *)&key->pk, MBEDTLS_MD_SHA256, hash,
			      TND_SHA256_LEN, sig, sig_len) != 0)
		return tnd_err_set(TND_E_SIGNATURE, "signature does not verify");
	return 0;
}

static int signer_rng_init(struct tnd_signer *s)
{
	static const char pers[] = "tandem-sign";
	int r;

	r = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1);
	if (r)
		return tnd_err_set(TND_E_CRYPTO, "cannot seed random generator (mbedtls -0x%04x)",
				   -r);
	return 0;
}

static void signer_init(struct tnd_signer *s)
{
	mbedtls_pk_init(&s->pk);
	mbedtls_entropy_init(&s->entropy);
	mbedtls_ctr_drbg_init(&s->drbg);
}

void tnd_signer_free(struct tnd_signer *s)
{
	if (!s)
		return;
	mbedtls_pk_free(&s->pk);
	mbedtls_ctr_drbg_free(&s->drbg);
	mbedtls_entropy_free(&s->entropy);
	mbedtls_platform_zeroize(s, sizeof(*s));
	free(s);
}

int tnd_signer_load(struct tnd_signer **out, const char *path)
{
	struct tnd_signer *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	signer_init(s);
	r = mbedtls_pk_parse_keyfile(&s->pk, path, NULL);
	if (r) {
		r = tnd_err_set(TND_E_CRYPTO, "%s: not a PEM private key (mbedtls -0x%04x)", path,
				-r);
		goto fail;
	}
	if (!key_is_p256(&s->pk)) {
		r = tnd_err_set(TND_E_CRYPTO, "%s: not an ECDSA P-256 key", path);
		goto fail;
	}
	r = key_id(&s->pk, s->id);
	if (!r)
		r = signer_rng_init(s);
	if (r)
		goto fail;
	*out = s;
	return 0;
fail:
	tnd_signer_free(s);
	return r;
}

const uint8_t *tnd_signer_id(const struct tnd_signer *s)
{
	return s->id;
}

int tnd_signer_sign(struct tnd_signer *s, const uint8_t hash[TND_SHA256_LEN], uint8_t *sig,
		    size_t *sig_len)
{
	unsigned char buf[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t n = 0;
	int r;

	r = mbedtls_pk_sign(&s->pk, MBEDTLS_MD_SHA256, hash, TND_SHA256_LEN, buf, &n,
			    mbedtls_ctr_drbg_random, &s->drbg);
	if (r || n > TND_SIG_MAX)
		return tnd_err_set(TND_E_CRYPTO, "signing failed (mbedtls -0x%04x)", -r);
	memcpy(sig, buf, n);
	*sig_len = n;
	return 0;
}

static int write_file_mode(const char *path, const unsigned char *data, size_t len, mode_t mode)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s", path);
	r = tnd_write_full(fd, data, len);
	if (!r && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r) {
		unlink(path);
		return tnd_err_errno(TND_E_IO, -r, "cannot write %s", path);
	}
	return 0;
}

int tnd_keygen(const char *priv_path, const char *pub_path)
{
	struct tnd_signer *s;
	unsigned char pem[4096];
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	signer_init(s);
	r = signer_rng_init(s);
	if (r)
		goto out;
	r = mbedtls_pk_setup(&s->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (!r)
		r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(s->pk),
					mbedtls_ctr_drbg_random, &s->drbg);
	if (r) {
		r = tnd_err_set(TND_E_CRYPTO, "key generation failed (mbedtls -0x%04x)", -r);
		goto out;
	}
	r = mbedtls_pk_write_key_pem(&s->pk, pem, sizeof(pem));
	if (r) {
		r = tnd_err_set(TND_E_CRYPTO, "cannot encode private key (mbedtls -0x%04x)", -r);
		goto out;
	}
	r = write_file_mode(priv_path, pem, strlen((char *)pem), 0600);
	if (r)
		goto out;
	r = mbedtls_pk_write_pubkey_pem(&s->pk, pem, sizeof(pem));
	if (r) {
		unlink(priv_path);
		r = tnd_err_set(TND_E_CRYPTO, "cannot encode public key (mbedtls -0x%04x)", -r);
		goto out;
	}
	r = write_file_mode(pub_path, pem, strlen((char *)pem), 0644);
	if (r)
		unlink(priv_path);
out:
	mbedtls_platform_zeroize(pem, sizeof(pem));
	tnd_signer_free(s);
	return r;
}

int tnd_tls_identity_check(const char *cert, const char *key)
{
	mbedtls_x509_crt crt;
	mbedtls_pk_context pk;
	char why[128];
	int r, ret = 0;

	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	r = mbedtls_x509_crt_parse_file(&crt, cert);
	if (r != 0) {
		mbedtls_strerror(r, why, sizeof(why));
		ret = tnd_err_set(TND_E_CRYPTO, "%s is not an X.509 certificate (%s)", cert, why);
		goto out;
	}
	r = mbedtls_pk_parse_keyfile(&pk, key, NULL);
	if (r != 0) {
		mbedtls_strerror(r, why, sizeof(why));
		ret = tnd_err_set(TND_E_CRYPTO, "%s is not an unencrypted private key (%s)", key,
				  why);
		goto out;
	}
	r = mbedtls_pk_check_pair(&crt.pk, &pk);
	if (r != 0)
		ret = tnd_err_set(TND_E_CRYPTO, "private key %s does not belong to certificate %s",
				  key, cert);
out:
	mbedtls_pk_free(&pk);
	mbedtls_x509_crt_free(&crt);
	return ret;
}
