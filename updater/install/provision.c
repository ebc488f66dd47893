// SPDX-License-Identifier: MIT
/*
 * tandem provision: a new board, or one sent back for repair, from one
 * full bundle. The order of the writes is chosen so that a cut anywhere
 * leaves something the next run repairs, and a board that had a working
 * slot keeps booting one while the other is rewritten:
 *
 *   1. nothing is written before the manifest is authenticated, the
 *      policy holds and the identity files have been checked;
 *   2. each slot that does not already hold the image is first taken out
 *      of the boot order (when the environment is valid), recorded as
 *      "installing", written and read back, then recorded "installed";
 *      A is written from the bundle, B is copied from A and read back;
 *   3. keyring and identity files, each replaced atomically;
 *   4. the environment last: order "A B", full tries on both.
 *
 * What already holds the wanted content (a slot's image hash, a file's
 * bytes, the environment's variables) is left alone, so a second run
 * writes nothing and reports every part "unchanged".
 */
#include "provision.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "bootloader.h"
#include "bundle.h"
#include "chunk.h"
#include "log.h"
#include "pipeline.h"
#include "sign.h"
#include "slot.h"
#include "source.h"
#include "state.h"
#include "timeutil.h"
#include "util.h"

#define KEY_FILE_MAX   (64 * 1024)
#define IDENT_FILE_MAX (256 * 1024)
#define DEVICE_ID_MAX  128

const char *tnd_prov_action_name(enum tnd_prov_action a)
{
	switch (a) {
	case TND_PROV_UNCHANGED:
		return "unchanged";
	case TND_PROV_WRITTEN:
		return "written";
	default:
		return "none";
	}
}

/* mkdir -p, for the state, keyring and identity directories. */
static int make_dirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return tnd_err_set(TND_E_CONFIG, "bad directory name \"%s\"", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return tnd_err_errno(TND_E_IO, errno, "cannot create %s", buf);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s", buf);
	return 0;
}

static int make_parent(const char *file)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", file);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	return make_dirs(dir, 0755);
}

/*
 * Writes data to path unless it already holds exactly that (and has the
 * mode), then reads it back. *act says which.
 */
static int put_file(const char *path, const void *data, size_t len, unsigned mode,
		    enum tnd_prov_action *act)
{
	char *old = NULL;
	size_t old_len = 0;
	struct stat st;
	int ret;

	ret = tnd_read_small_file(path, len + 1, &old, &old_len);
	if (ret == 0 && old_len == len && memcmp(old, data, len) == 0 && stat(path, &st) == 0 &&
	    (st.st_mode & 07777) == mode) {
		free(old);
		*act = TND_PROV_UNCHANGED;
		return 0;
	}
	free(old);
	tnd_err_clear();
	if ((ret = make_parent(path)) || (ret = tnd_atomic_write(path, data, len, mode)))
		return ret;
	if ((ret = tnd_read_small_file(path, len + 1, &old, &old_len)))
		return tnd_err_prefix(TND_E_IO, "reading back %s", path);
	ret =
	    old_len == len && memcmp(old, data, len) == 0
		? 0
		: tnd_err_set(TND_E_VERIFY, "%s reads back different from what was written", path);
	free(old);
	*act = TND_PROV_WRITTEN;
	return ret;
}

static int copy_file(const char *from, const char *to, unsigned mode, enum tnd_prov_action *act)
{
	char *data;
	size_t len;
	int ret;

	if ((ret = tnd_read_small_file(from, IDENT_FILE_MAX, &data, &len)))
		return ret;
	ret = put_file(to, data, len, mode, act);
	free(data);
	return ret;
}

static int join_path(char out[PATH_MAX], const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	return n < 0 || n >= PATH_MAX ? tnd_err_set(TND_E_CONFIG, "path too long: %s/%s", dir, name)
				      : 0;
}

static bool is_pem_name(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".pem") == 0;
}

/*
 * The keyring directory becomes exactly the source's *.pem files: new and
 * changed ones are replaced atomically, then the ones the source does not
 * have are removed (a revoked key must not survive a re-provisioning).
 */
static int install_keyring(const char *src, const char *dst, struct tnd_provision_result *res)
{
	struct dirent *de;
	bool changed = false;
	DIR *d;
	int ret = 0;

	if ((ret = make_dirs(dst, 0755)))
		return ret;
	if (!(d = opendir(src)))
		return tnd_err_errno(TND_E_IO, errno, "cannot read keyring %s", src);
	while (!ret && (de = readdir(d))) {
		char from[PATH_MAX], to[PATH_MAX];
		enum tnd_prov_action act;

		if (!is_pem_name(de->d_name))
			continue;
		if ((ret = join_path(from, src, de->d_name)) ||
		    (ret = join_path(to, dst, de->d_name)) ||
		    (ret = copy_file(from, to, 0644, &act)))
			break;
		changed |= act == TND_PROV_WRITTEN;
		res->keys++;
	}
	closedir(d);
	if (ret)
		return ret;
	if (!(d = opendir(dst)))
		return tnd_err_errno(TND_E_IO, errno, "cannot read %s", dst);
	while ((de = readdir(d))) {
		char in_src[PATH_MAX], path[PATH_MAX];

		if (!is_pem_name(de->d_name))
			continue;
		if ((ret = join_path(in_src, src, de->d_name)) ||
		    (ret = join_path(path, dst, de->d_name)))
			break;
		if (access(in_src, F_OK) == 0)
			continue;
		if (unlink(path) < 0) {
			ret = tnd_err_errno(TND_E_IO, errno, "cannot remove %s", path);
			break;
		}
		tnd_info("keyring: removed %s (not in %s)", de->d_name, src);
		changed = true;
	}
	closedir(d);
	if (!ret && changed)
		ret = tnd_fsync_dir(dst);
	res->keyring = changed ? TND_PROV_WRITTEN : TND_PROV_UNCHANGED;
	return ret;
}

/*
 * Copies the verified image from slot `from` to slot `to` through the
 * same writer as an install (read-back of every window), hashing what it
 * copies: it must still be the manifest's image.
 */
static int copy_slot(const struct tnd_config *cfg, const struct tnd_manifest *m, int from, int to,
		     const struct tnd_provision_opts *o)
{
	struct tnd_pipeline_stats ps = {.image_size = m->image_size};
	struct tnd_slot_writer w;
	uint32_t chunk = m->chunk_size;
	uint8_t got[TND_SHA256_LEN], *buf = NULL;
	struct tnd_sha256 h;
	uint64_t pos = 0;
	int fd, ret;

	tnd_slot_writer_init(&w);
	if ((fd = open(cfg->slot_dev[from], O_RDONLY | O_CLOEXEC)) < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open %s", cfg->slot_dev[from]);
	if ((ret = tnd_slot_open(&w, cfg->slot_dev[to], m->image_size, chunk,
				 (uint64_t)CONFIG_READBACK_WINDOW_MIB << 20)))
		goto out;
	if (!(buf = malloc(chunk))) {
		ret = tnd_err_set(TND_E_NOMEM, "out of memory");
		goto out;
	}
	posix_fadvise(fd, 0, (off_t)m->image_size, POSIX_FADV_SEQUENTIAL);
	tnd_sha256_init(&h);
	while (pos < m->image_size) {
		size_t n = m->image_size - pos < chunk ? (size_t)(m->image_size - pos) : chunk;

		if (o->cancel && *o->cancel) {
			ret = tnd_err_set(TND_E_CANCELLED, "interrupted");
			goto out;
		}
		if ((ret = tnd_pread_full(fd, buf, n, (off_t)pos))) {
			ret = tnd_err_errno(TND_E_SLOT_IO, -ret, "cannot read %s",
					    cfg->slot_dev[from]);
			goto out;
		}
		tnd_sha256_update(&h, buf, n);
		ret = tnd_is_zero(buf, n) ? tnd_slot_zero(&w, pos, n)
					  : tnd_slot_write(&w, pos, buf, n, tnd_crc32(buf, n));
		if (ret)
			goto out;
		pos += n;
		ps.written = ps.verified = ps.received = pos;
		if (o->events && o->events->progress)
			o->events->progress(o->events->ctx, &ps);
	}
	tnd_sha256_final(&h, got);
	if (!tnd_memeq_ct(got, m->image_sha256, TND_SHA256_LEN)) {
		ret = tnd_err_set(TND_E_VERIFY, "slot %s (%s) changed while it was being copied",
				  tnd_slot_name(from), cfg->slot_dev[from]);
		goto out;
	}
	ret = tnd_slot_finish(&w);
out:
	free(buf);
	tnd_slot_close(&w);
	close(fd);
	return ret;
}

/* Everything the identity options name is checked before anything is written. */
static int check_identity(const struct tnd_config *cfg, const struct tnd_provision_opts *o)
{
	if (o->device_id) {
		size_t n = strlen(o->device_id);

		if (n == 0 || n > DEVICE_ID_MAX)
			return tnd_err_set(TND_E_USAGE, "--device-id must be 1 to %d characters",
					   DEVICE_ID_MAX);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)o->device_id[i] <= ' ' ||
			    (unsigned char)o->device_id[i] >= 0x7f)
				return tnd_err_set(TND_E_USAGE,
						   "--device-id: only printable ASCII without "
						   "spaces");
		/* The default, systemd's machine ID, is read, never written. */
		if (!cfg->server.device_id_file[0] ||
		    !strcmp(cfg->server.device_id_file, "/etc/machine-id"))
			return tnd_err_set(TND_E_CONFIG,
					   "--device-id given, but %s names no "
					   "server.device_id_file of its own to write it to",
					   cfg->path);
	}
	if (!o->client_cert != !o->client_key)
		return tnd_err_set(TND_E_USAGE, "--client-cert and --client-key go together");
	if (o->client_cert) {
		if (!cfg->server.client_cert[0] || !cfg->server.client_key[0])
			return tnd_err_set(TND_E_CONFIG,
					   "--client-cert given, but %s does not name "
					   "server.client_cert and server.client_key",
					   cfg->path);
		return tnd_tls_identity_check(o->client_cert, o->client_key);
	}
	return 0;
}

static int install_identity(const struct tnd_config *cfg, const struct tnd_provision_opts *o,
			    struct tnd_provision_result *res)
{
	char line[DEVICE_ID_MAX + 2];
	int ret;

	if (o->device_id) {
		snprintf(line, sizeof(line), "%s\n", o->device_id);
		if ((ret = put_file(cfg->server.device_id_file, line, strlen(line), 0644,
				    &res->device_id)))
			return ret;
	}
	if (o->client_cert) {
		/* The key first and private: a certificate without its key is
		 * useless, a key readable by others is a leak. */
		if ((ret = copy_file(o->client_key, cfg->server.client_key, 0600,
				     &res->client_key)) ||
		    (ret = copy_file(o->client_cert, cfg->server.client_cert, 0644,
				     &res->client_cert)))
			return ret;
	}
	return 0;
}

static void raise_time_floor(struct tnd_state *st, const struct tnd_manifest *m)
{
	if (m->created > st->time_floor)
		st->time_floor = m->created;
}

static bool same_env(const struct tnd_boot_state *got, const struct tnd_boot_state *want)
{
	if (got->norder != 2 || got->order[0] != 0 || got->order[1] != 1)
		return false;
	for (int i = 0; i < TND_NSLOTS; i++)
		if (got->tries[i] != want->tries[i] || !got->tries_set[i] ||
		    got->id[i].kind != want->id[i].kind ||
		    got->id[i].security_version != want->id[i].security_version ||
		    memcmp(got->id[i].sha256, want->id[i].sha256, TND_SHA256_LEN))
			return false;
	return true;
}

/* The environment a provisioned board starts with: A first, full tries,
 * both slots vouched for as holding m's image (hashed or written and
 * verified just before), the floor the state holds. "none": nothing to
 * set up. */
static int provision_env(const struct tnd_config *cfg, struct tnd_bootloader **blp, bool blank,
			 const struct tnd_manifest *m, uint64_t floor,
			 struct tnd_provision_result *res)
{
	struct tnd_boot_state want = {.order = {0, 1}, .norder = 2, .floor = floor}, got;
	struct tnd_bootloader *bl = *blp;
	int ret;

	if (!tnd_bl_switches(bl))
		return 0;
	for (int i = 0; i < TND_NSLOTS; i++) {
		want.tries[i] = cfg->boot_tries;
		want.tries_set[i] = true;
		want.id[i].kind = TND_ID_VALID;
		want.id[i].security_version = m->security_version;
		memcpy(want.id[i].sha256, m->image_sha256, TND_SHA256_LEN);
	}
	res->tries = cfg->boot_tries;
	res->env_was_blank = blank;
	if (!blank && (ret = tnd_bl_read(bl, &got)) == 0 && same_env(&got, &want) &&
	    got.floor >= want.floor) {
		res->env = TND_PROV_UNCHANGED;
		return 0;
	}
	/* never lower a floor the environment already holds */
	if (!blank && !ret && got.floor > want.floor)
		want.floor = got.floor;
	tnd_err_clear();
	if ((ret = tnd_bl_write(bl, &want)))
		return ret;
	/* Read back through a fresh open, as the bootloader will see it
	 * (libubootenv holds a lock per open context: close first). */
	tnd_bl_close(bl);
	*blp = NULL;
	if ((ret = tnd_bl_open(blp, cfg)) || (ret = tnd_bl_read(*blp, &got)))
		return ret;
	if (!same_env(&got, &want) || got.floor != want.floor)
		return tnd_err_set(TND_E_VERIFY, "the environment at %s reads back different",
				   cfg->env_config);
	res->env = TND_PROV_WRITTEN;
	return 0;
}

static void phase(const struct tnd_provision_opts *o, const char *name, const char *detail)
{
	if (o->events && o->events->phase)
		o->events->phase(o->events->ctx, name, detail);
}

/* Slot i is about to change: out of the boot order's reach (when the
 * environment is valid), then recorded "installing". */
static int begin_slot(const struct tnd_config *cfg, struct tnd_state *st, int i, bool blank)
{
	struct tnd_bootloader *bl = NULL;
	int ret;

	if (!blank) {
		if ((ret = tnd_bl_open(&bl, cfg)) || (ret = tnd_bl_disable(bl, i))) {
			tnd_bl_close(bl);
			return ret;
		}
		tnd_bl_close(bl);
	}
	if (st->pending_slot == i && (ret = tnd_state_set_pending(st, cfg, -1)))
		return ret;
	memset(&st->slot[i], 0, sizeof(st->slot[i]));
	st->slot[i].state = TND_SLOT_INSTALLING;
	st->slot[i].updated = tnd_time_now();
	return tnd_state_save(st, cfg->state_dir);
}

static int provision(const struct tnd_config *cfg, const struct tnd_provision_opts *o,
		     struct tnd_txn *t, struct tnd_provision_result *res)
{
	const struct tnd_manifest *m = tnd_txn_manifest(t);
	struct tnd_bootloader *bl = NULL;
	struct tnd_state st, before;
	bool need[TND_NSLOTS], blank = tnd_txn_env_blank(t);
	char detail[PATH_MAX + 160];
	int ret;

	snprintf(res->version, sizeof(res->version), "%s", m->version);
	memcpy(res->sha256, m->image_sha256, TND_SHA256_LEN);
	res->image_size = m->image_size;

	phase(o, "check", NULL);
	for (int i = 0; i < TND_NSLOTS; i++) {
		uint8_t h[TND_SHA256_LEN];

		if ((ret = tnd_slot_hash(cfg->slot_dev[i], m->image_size, h)))
			return ret;
		need[i] = !tnd_memeq_ct(h, m->image_sha256, TND_SHA256_LEN);
		res->slot[i] = need[i] ? TND_PROV_WRITTEN : TND_PROV_UNCHANGED;
		tnd_debug("slot %s (%s): %s", tnd_slot_name(i), cfg->slot_dev[i],
			  need[i] ? "to be written" : "already holds the image");
	}
	/* Slot A from the bundle, through the install transaction's stream;
	 * it records A "installing", then "installed". */
	if (need[0] && (ret = tnd_txn_stream(t)))
		return ret;
	if ((ret = tnd_state_load(&st, cfg->state_dir)))
		return ret;
	before = st;
	if (!need[0] && !tnd_slot_record_holds(&st.slot[0], m))
		tnd_slot_record_installed(&st.slot[0], m);
	if (need[1]) {
		/* Slot B from slot A, which holds the verified image. */
		if ((ret = begin_slot(cfg, &st, 1, blank)))
			return ret;
		snprintf(detail, sizeof(detail), "%s %s into slot B (%s)", m->compatible,
			 m->version, cfg->slot_dev[1]);
		phase(o, "copy", detail);
		if ((ret = copy_slot(cfg, m, 0, 1, o)))
			return ret;
		tnd_slot_record_installed(&st.slot[1], m);
		if ((ret = tnd_state_save(&st, cfg->state_dir)))
			return ret;
	} else if (!tnd_slot_record_holds(&st.slot[1], m)) {
		tnd_slot_record_installed(&st.slot[1], m);
	}

	if (o->keyring) {
		phase(o, "keyring", cfg->keyring);
		if ((ret = install_keyring(o->keyring, cfg->keyring, res)))
			return ret;
	}
	if ((ret = install_identity(cfg, o, res)))
		return ret;

	/* The state: both slots installed, nothing pending. Left alone when a
	 * previous run already wrote it (its times are history worth keeping). */
	if (st.pending_slot >= 0 && (ret = tnd_state_set_pending(&st, cfg, -1)))
		return ret;
	st.interrupted_slot = -1;
	for (int i = 0; i < TND_NSLOTS; i++) /* the environment, below, says so */
		st.slot[i].identity_in_env = cfg->bootloader != TND_BL_NONE;
	if (!need[0] && !need[1] && tnd_slot_record_holds(&before.slot[0], m) &&
	    tnd_slot_record_holds(&before.slot[1], m) && before.pending_slot < 0 &&
	    before.interrupted_slot < 0 && !strcmp(before.last_install_result, "success")) {
		res->state = TND_PROV_UNCHANGED;
	} else {
		struct tnd_state again;

		raise_time_floor(&st, m);
		st.last_install_time = tnd_time_now();
		snprintf(st.last_install_result, sizeof(st.last_install_result), "success");
		st.last_error_code[0] = st.last_error[0] = '\0';
		if ((ret = tnd_state_save(&st, cfg->state_dir)) ||
		    (ret = tnd_state_load(&again, cfg->state_dir)))
			return ret;
		if (!tnd_slot_record_holds(&again.slot[0], m) ||
		    !tnd_slot_record_holds(&again.slot[1], m))
			return tnd_err_set(TND_E_VERIFY, "state in %s reads back different",
					   cfg->state_dir);
		res->state = TND_PROV_WRITTEN;
	}

	phase(o, "environment", cfg->env_config);
	if ((ret = tnd_bl_open_init(&bl, cfg, o->env_defaults, &blank)))
		return ret;
	ret = provision_env(cfg, &bl, blank, m, st.security_floor, res);
	tnd_bl_close(bl);
	return ret;
}

int tnd_provision(const struct tnd_config *cfg, const struct tnd_provision_opts *o,
		  struct tnd_provision_result *res)
{
	struct tnd_install_opts io = {
	    .source = o->source,
	    .provision = true,
	    .keyring = o->keyring,
	    .env_defaults = o->env_defaults,
	    .events = o->events,
	    .cancel = o->cancel,
	};
	double t0 = tnd_now_mono();
	struct tnd_txn *t = NULL;
	int ret;

	memset(res, 0, sizeof(*res));
	/* Nothing is written before the identity options are checked and the
	 * manifest is authenticated and allowed (the transaction's prepare). */
	if ((ret = check_identity(cfg, o)) || (ret = make_dirs(cfg->state_dir, 0755)) ||
	    (ret = tnd_txn_prepare(&t, cfg, &io)))
		return ret;
	ret = provision(cfg, o, t, res);
	if (ret)
		tnd_txn_fail(t, ret);
	tnd_txn_free(t);
	res->seconds = tnd_now_mono() - t0;
	return ret;
}
