// SPDX-License-Identifier: MIT
/* Keys, key IDs, keyrings, signatures (lib/sign.c). */
#include "testutil.h"

#include "sign.h"

struct fx {
	char *dir;
	char *priv[2], *pub[2];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char name[32];

	f->dir = tu_mkdtemp();
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "k%d.key", i);
		f->priv[i] = tu_path(f->dir, name);
		snprintf(name, sizeof(name), "keys/k%d.pem", i);
		f->pub[i] = tu_path(f->dir, name);
	}
	char *keys = tu_path(f->dir, "keys");
	assert_int_equal(mkdir(keys, 0755), 0);
	free(keys);
	for (int i = 0; i < 2; i++)
		assert_int_equal(tnd_keygen(f->priv[i], f->pub[i]), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 2; i++) {
		free(f->priv[i]);
		free(f->pub[i]);
	}
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static void keygen_modes_and_no_overwrite(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(stat(f->priv[0], &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(tnd_keygen(f->priv[0], f->pub[0]), TND_E_IO);
}

static void sign_and_verify(void **state)
{
	struct fx *f = *state;
	struct tnd_keyring kr = {0};
	struct tnd_signer *s;
	uint8_t hash[32], sig[TND_SIG_MAX];
	const struct tnd_pubkey *k;
	size_t len;

	tnd_sha256("message", 7, hash);
	assert_int_equal(tnd_signer_load(&s, f->priv[0]), 0);
	assert_int_equal(tnd_signer_sign(s, hash, sig, &len), 0);
	char *keys = tu_path(f->dir, "keys");

	assert_int_equal(tnd_keyring_load_dir(&kr, keys), 0);
	free(keys);
	assert_int_equal(kr.n, 2);
	k = tnd_keyring_find(&kr, tnd_signer_id(s));
	assert_non_null(k);
	assert_int_equal(tnd_pubkey_verify(k, TND_SIG_ECDSA_P256_SHA256, hash, sig, len), 0);
	/* another key, another message, a flipped bit, an unknown algorithm */
	const struct tnd_pubkey *other = kr.keys[0] == k ? kr.keys[1] : kr.keys[0];
	assert_int_equal(tnd_pubkey_verify(other, 1, hash, sig, len), TND_E_SIGNATURE);
	hash[0] ^= 1;
	assert_int_equal(tnd_pubkey_verify(k, 1, hash, sig, len), TND_E_SIGNATURE);
	hash[0] ^= 1;
	sig[len - 1] ^= 1;
	assert_int_equal(tnd_pubkey_verify(k, 1, hash, sig, len), TND_E_SIGNATURE);
	sig[len - 1] ^= 1;
	assert_int_equal(tnd_pubkey_verify(k, 2, hash, sig, len), TND_E_SIGNATURE);
	tnd_signer_free(s);
	tnd_keyring_free(&kr);
}

static void keyring_dedups_and_refuses_junk(void **state)
{
	struct fx *f = *state;
	struct tnd_keyring kr = {0};
	char *junk = tu_path(f->dir, "junk.pem"), *empty = tu_path(f->dir, "empty");

	assert_int_equal(tnd_keyring_add_file(&kr, f->pub[0]), 0);
	assert_int_equal(tnd_keyring_add_file(&kr, f->pub[0]), 0);
	assert_int_equal(kr.n, 1);
	tu_write_file(junk, "not a key\n", 10);
	assert_int_equal(tnd_keyring_add_file(&kr, junk), TND_E_CRYPTO);
	assert_int_equal(tnd_keyring_add_file(&kr, f->priv[1]),
			 TND_E_CRYPTO); /* private key file */
	assert_int_equal(mkdir(empty, 0755), 0);
	tnd_keyring_free(&kr);
	assert_int_equal(tnd_keyring_load_dir(&kr, empty), TND_E_CONFIG);
	assert_int_equal(tnd_keyring_load_dir(&kr, "/nonexistent/keys"), TND_E_CONFIG);
	tnd_keyring_free(&kr);
	free(junk);
	free(empty);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(keygen_modes_and_no_overwrite),
	    cmocka_unit_test(sign_and_verify),
	    cmocka_unit_test(keyring_dedups_and_refuses_junk),
	};
	return cmocka_run_group_tests_name("sign", tests, setup, teardown);
}
