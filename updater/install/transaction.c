// SPDX-License-Identifier: MIT
#include "transaction.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootloader.h"
#include "bundle.h"
#include "delta.h"
#include "digest.h"
#include "log.h"
#include "resume.h"
#include "sign.h"
#include "slot.h"
#include "state.h"
#include "timeutil.h"
#include "util.h"

struct tnd_txn {
	const struct tnd_config *cfg;
	struct tnd_install_opts o;
	struct tnd_state st;
	struct tnd_keyring kr;
	struct tnd_source *src;	  /* the one read from */
	struct tnd_source *owned; /* opened here, closed by free */
	struct tnd_bundle_reader r;
	const struct tnd_manifest *m; /* &r.manifest once authenticated */
	int booted, target;	      /* booted: -1 when provisioning */
	uint64_t floor;		      /* in force: state's and environment's */
	bool env_blank;
	int base_fd;
	struct tnd_resume rs;
	struct tnd_slot_writer w;
	bool streamed;
	uint64_t resumed_from; /* image bytes a checkpoint let this run skip */
	double t0;
};

static void phase(const struct tnd_txn *t, const char *name, const char *detail)
{
	const struct tnd_events *e = t->o.events;

	if (e && e->phase)
		e->phase(e->ctx, name, detail);
}

static bool same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return false;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int choose_slot(struct tnd_txn *t)
{
	const struct tnd_config *cfg = t->cfg;
	int ret;

	if (t->o.provision) {
		/* Provisioning rewrites both slots: never from the system it runs on. */
		if (tnd_booted_slot(cfg, &t->booted) == 0)
			return tnd_err_set(TND_E_SLOT,
					   "this system booted slot %s: provisioning rewrites both "
					   "slots, run it from a provisioning host, installer or "
					   "recovery system",
					   tnd_slot_name(t->booted));
		tnd_err_clear();
		t->booted = -1;
		t->target = 0;
	} else {
		if ((ret = tnd_booted_slot(cfg, &t->booted)))
			return ret;
		t->target = t->o.slot >= 0 ? t->o.slot : 1 - t->booted;
		if (t->target == t->booted)
			return tnd_err_set(TND_E_SLOT,
					   "slot %s is the booted slot: refusing to overwrite the "
					   "running system",
					   tnd_slot_name(t->booted));
	}
	if (same_device(cfg->slot_dev[0], cfg->slot_dev[1]))
		return tnd_err_set(TND_E_CONFIG, "slots A and B are the same device (%s)",
				   cfg->slot_dev[0]);
	return 0;
}

/*
 * The floor in force: the state's copy, raised by the boot environment's
 * (which survives the loss of the state directory). Provisioning a blank
 * environment has only the state's.
 */
static int read_floor(struct tnd_txn *t)
{
	struct tnd_bootloader *bl = NULL;
	struct tnd_boot_state bs;
	int ret;

	t->floor = t->st.security_floor;
	if (t->o.provision)
		ret = tnd_bl_open_init(&bl, t->cfg, t->o.env_defaults, &t->env_blank);
	else
		ret = tnd_bl_open(&bl, t->cfg);
	if (!ret && !t->env_blank)
		ret = tnd_bl_read(bl, &bs);
	/* libubootenv holds a machine-wide lock while a context is open: not
	 * through the stream, or a `tandem status` or fw_printenv (a health
	 * check) would wait for the whole download. */
	tnd_bl_close(bl);
	if (ret)
		return ret;
	if (!t->env_blank && bs.floor > t->floor)
		t->floor = bs.floor;
	return 0;
}

/*
 * A delta rebuilds the image from the booted slot: it must hold exactly
 * the base the delta was made from. The descriptor stays open for the
 * decoder; the booted slot is only ever opened read-only.
 *
 * A record of the slot (the image it was installed or provisioned with)
 * that names another base refuses the delta before anything is read or
 * written. One that names the base lets an op stream that authenticates
 * every span (formats 5 and 6) go on without hashing the slot first: a
 * slot changed behind its record then fails at the first span built from
 * the change, before it is written. Everything else hashes the slot
 * whole before anything is written.
 */
static int open_base(struct tnd_txn *t)
{
	const struct tnd_manifest *m = t->m;
	const char *dev = t->cfg->slot_dev[t->booted];
	const struct tnd_slot_info *rec = &t->st.slot[t->booted];
	char want[TND_SHA256_HEX_LEN], got_hex[TND_SHA256_HEX_LEN];
	uint8_t got[TND_SHA256_LEN];
	/* The record is only a shortcut, and only where every span the delta
	 * writes is checked against a signed SHA-256 first (formats 5 and 6):
	 * the record lives in state_dir, which an attacker may write. Older
	 * formats hash the base whole, so that nothing they write derives
	 * from unauthenticated bytes. A record that names another base
	 * refuses the delta at once either way. */
	bool recorded =
	    rec->has_sha256 && (rec->state == TND_SLOT_INSTALLED || rec->state == TND_SLOT_GOOD);
	bool trust_record = recorded && tnd_delta_version_authenticated(m->delta_format);
	struct tnd_sha256 h;
	uint64_t size;
	int fd, ret;

	if ((ret = tnd_slot_dev_size(dev, &size)))
		return ret;
	if (size < m->base_size)
		return tnd_err_set(
		    TND_E_INCOMPATIBLE,
		    "delta needs a %llu-byte base, booted slot %s (%s) has %llu bytes",
		    (unsigned long long)m->base_size, tnd_slot_name(t->booted), dev,
		    (unsigned long long)size);
	if (recorded && !tnd_memeq_ct(rec->sha256, m->base_sha256, TND_SHA256_LEN)) {
		memcpy(got, rec->sha256, TND_SHA256_LEN);
		goto other_base;
	}
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open booted slot %s", dev);
	if (trust_record) {
		tnd_debug("base: booted slot %s is recorded with the delta's base image",
			  tnd_slot_name(t->booted));
		t->base_fd = fd;
		return 0;
	}
	tnd_sha256_init(&h);
	ret = tnd_digest_fd(fd, m->base_size, dev, TND_E_SLOT, &h, NULL, NULL);
	tnd_sha256_final(&h, got);
	if (ret) {
		close(fd);
		return tnd_err_prefix(ret, "booted slot %s", tnd_slot_name(t->booted));
	}
	if (tnd_memeq_ct(got, m->base_sha256, TND_SHA256_LEN)) {
		t->base_fd = fd;
		return 0;
	}
	close(fd);
other_base:
	tnd_hex_encode(want, m->base_sha256, TND_SHA256_LEN);
	tnd_hex_encode(got_hex, got, TND_SHA256_LEN);
	return tnd_err_set(TND_E_INCOMPATIBLE,
			   "delta is for a base with SHA-256 %s, but booted slot %s holds %s: "
			   "install a full bundle",
			   want, tnd_slot_name(t->booted), got_hex);
}

int tnd_txn_fail(struct tnd_txn *t, int code)
{
	char msg[TND_ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
	/* A resumed run that meets a record or an image it cannot trust must
	 * not lead the next one to the same place. */
	if (t->rs.active &&
	    (code == TND_E_INTEGRITY || code == TND_E_FORMAT || code == TND_E_VERIFY))
		tnd_resume_discard(&t->rs, NULL);
	/* A factory refusal leaves a board as it was (docs/factory.md): the
	 * provisioning script has the error. */
	if (t->o.provision)
		return tnd_err_set(code, "%s", msg);
	t->st.last_install_time = tnd_time_now();
	snprintf(t->st.last_install_result, sizeof(t->st.last_install_result), "failed");
	snprintf(t->st.last_error_code, sizeof(t->st.last_error_code), "%s", tnd_err_name(code));
	snprintf(t->st.last_error, sizeof(t->st.last_error), "%s", msg);
	/* Best effort: the original error is what the caller reports. */
	if (tnd_state_save(&t->st, t->cfg->state_dir))
		tnd_warn("%s", tnd_err_msg());
	return tnd_err_set(code, "%s", msg);
}

/* prepare's steps after the state is loaded; failures are recorded. */
static int prepare_loaded(struct tnd_txn *t)
{
	struct tnd_verify_opts vo = {.keyring = &t->kr, .threshold = t->cfg->signature_threshold};
	const struct tnd_install_opts *o = &t->o;
	int ret;

	if ((ret = choose_slot(t)) || (ret = read_floor(t)) ||
	    (ret = tnd_keyring_load_dir(&t->kr, o->keyring ? o->keyring : t->cfg->keyring)))
		return ret;
	if (o->src) {
		t->src = o->src;
	} else {
		if ((ret = tnd_source_open_file(&t->owned, o->source)))
			return ret;
		t->src = t->owned;
	}
	/* The file the caller expects: every byte is hashed on its way. */
	if (o->expect)
		tnd_source_hash_begin(t->src);

	phase(t, "authenticate", NULL);
	if ((ret = tnd_bundle_open(&t->r, t->src, &vo)))
		return ret;
	t->m = &t->r.manifest;
	ret = tnd_policy_check(
	    &(struct tnd_policy){.mode = o->provision ? TND_POLICY_PROVISION : TND_POLICY_INSTALL,
				 .cfg = t->cfg,
				 .st = &t->st,
				 .floor = t->floor,
				 .booted = t->booted,
				 .allow_downgrade = o->allow_downgrade,
				 .expect = o->expect},
	    t->m);
	if (ret)
		return ret;
	/* The size the manifest declares is the file's: it must be the one
	 * the caller expects before a payload byte is read. */
	if (o->expect && t->r.payload_offset + t->m->payload_size != o->expect->file_size)
		return tnd_err_set(TND_E_WRONG_RELEASE,
				   "the bundle from %s is %llu bytes, the signed index lists %llu",
				   o->source,
				   (unsigned long long)(t->r.payload_offset + t->m->payload_size),
				   (unsigned long long)o->expect->file_size);
	if (t->m->payload_type == TND_PAYLOAD_DELTA) {
		phase(t, "check-base", NULL);
		if ((ret = open_base(t)))
			return ret;
	}
	/* Before the slot's record changes: a checkpoint applies only to a
	 * slot still recorded "installing" (docs/install.md, "Resume"). */
	tnd_resume_init(&t->rs, t->cfg->state_dir, t->target, t->cfg->slot_dev[t->target],
			t->r.manifest_digest);
	tnd_resume_load(&t->rs, &t->st, t->m, o->no_resume ? "--no-resume" : NULL);
	return 0;
}

int tnd_txn_prepare(struct tnd_txn **out, const struct tnd_config *cfg,
		    const struct tnd_install_opts *o)
{
	struct tnd_txn *t;
	int ret;

	*out = NULL;
	if (!(t = calloc(1, sizeof(*t))))
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	t->cfg = cfg;
	t->o = *o;
	t->base_fd = -1;
	t->t0 = tnd_now_mono();
	tnd_slot_writer_init(&t->w);
	phase(t, "prepare", NULL);
	/* State first, so that every later refusal is recorded for status. */
	if ((ret = tnd_state_load(&t->st, cfg->state_dir))) {
		tnd_txn_free(t);
		return ret;
	}
	if ((ret = prepare_loaded(t))) {
		tnd_txn_fail(t, ret);
		tnd_txn_free(t);
		return ret;
	}
	*out = t;
	return 0;
}

const struct tnd_manifest *tnd_txn_manifest(const struct tnd_txn *t)
{
	return t->m;
}

bool tnd_txn_env_blank(const struct tnd_txn *t)
{
	return t->env_blank;
}

/*
 * From here the slot changes: first make that harmless, then visible.
 * Each prefix of these three writes leaves state and environment agreeing
 * about a slot whose content has not changed yet:
 *  1. an activated, not yet booted target stops being pending (its
 *     record still describes its content), so the next confirm will not
 *     call its being disabled a failed update;
 *  2. the target leaves the boot order's reach (no tries, last);
 *  3. only then its record says "installing".
 * (Found by tests/torture: with 3 before 2, a cut between them let the
 * device boot a slot its state no longer described.)
 */
static int make_harmless(struct tnd_txn *t)
{
	struct tnd_bootloader *bl = NULL;
	struct tnd_slot_info *si = &t->st.slot[t->target];
	int ret;

	if (t->st.pending_slot == t->target) {
		if ((ret = tnd_state_set_pending(&t->st, t->cfg, -1)) ||
		    (ret = tnd_state_save(&t->st, t->cfg->state_dir)))
			return ret;
	}
	if (t->st.interrupted_slot == t->target) /* saved with "installing" below */
		t->st.interrupted_slot = -1;
	/* A blank environment (a new board) boots nothing yet. */
	if (!t->env_blank) {
		if ((ret = tnd_bl_open(&bl, t->cfg)) || (ret = tnd_bl_disable(bl, t->target))) {
			tnd_bl_close(bl);
			return ret;
		}
		tnd_bl_close(bl);
	}
	memset(si, 0, sizeof(*si));
	si->state = TND_SLOT_INSTALLING;
	si->updated = tnd_time_now();
	return tnd_state_save(&t->st, t->cfg->state_dir);
}

/* Op-stream versions that authenticate every span of their output check
 * each one before it is written (lib/delta.c); for the others the image,
 * made from the booted slot's bytes, which nothing signed vouched for, is
 * hashed as it is read back and must be the signed one before it is
 * recorded or activated. */
static bool delta_needs_image_hash(const struct tnd_manifest *m)
{
	return m->payload_type == TND_PAYLOAD_DELTA &&
	       !tnd_delta_version_authenticated(m->delta_format);
}

static int check_image_hash(struct tnd_txn *t, const uint8_t got[TND_SHA256_LEN], const char *how)
{
	char want_hex[TND_SHA256_HEX_LEN], got_hex[TND_SHA256_HEX_LEN];

	if (tnd_memeq_ct(got, t->m->image_sha256, TND_SHA256_LEN))
		return 0;
	tnd_hex_encode(want_hex, t->m->image_sha256, TND_SHA256_LEN);
	tnd_hex_encode(got_hex, got, TND_SHA256_LEN);
	return tnd_err_set(TND_E_INTEGRITY,
			   "slot %s holds an image with SHA-256 %s %s, the manifest says %s: "
			   "not recorded, not activated",
			   tnd_slot_name(t->target), got_hex, how, want_hex);
}

static int set_identity(struct tnd_txn *t)
{
	struct tnd_slot_id id = {.kind = TND_ID_VALID, .security_version = t->m->security_version};
	struct tnd_bootloader *bl = NULL;
	int ret;

	if (t->env_blank) /* a new board: provisioning writes the whole environment */
		return 0;
	memcpy(id.sha256, t->m->image_sha256, TND_SHA256_LEN);
	if (!(ret = tnd_bl_open(&bl, t->cfg)))
		ret = tnd_bl_set_identity(bl, t->target, &id);
	tnd_bl_close(bl);
	return ret;
}

/* Whether commit will make the target boot next (the backend switches). */
static bool will_activate(const struct tnd_txn *t)
{
	return !t->o.no_activate && !t->o.provision && t->cfg->bootloader != TND_BL_NONE;
}

static int stream(struct tnd_txn *t)
{
	const struct tnd_config *cfg = t->cfg;
	const struct tnd_manifest *m = t->m;
	struct tnd_slot_info *si = &t->st.slot[t->target];
	const struct tnd_events *ev = t->o.events;
	uint8_t got[TND_SHA256_LEN];
	char detail[256];
	bool readback_hash;
	int ret;

	if (t->rs.active && m->payload_type == TND_PAYLOAD_FULL &&
	    (ret = tnd_bundle_resume(&t->r, t->rs.pt.index, t->rs.pt.payload_read, t->rs.pt.out,
				     tnd_manifest_resume_point(m, t->rs.pt.index))))
		return ret;
	if ((ret = tnd_slot_open(&t->w, cfg->slot_dev[t->target], m->image_size, m->chunk_size,
				 (uint64_t)CONFIG_READBACK_WINDOW_MIB << 20)) ||
	    (ret = make_harmless(t)))
		return ret;
	if (t->rs.active) {
		t->resumed_from = t->rs.pt.out;
		tnd_slot_start_at(&t->w, t->rs.pt.out);
		if (m->payload_type == TND_PAYLOAD_FULL)
			tnd_info("resuming at chunk %llu of %llu: %.1f MiB of the image are "
				 "already on slot %s",
				 (unsigned long long)t->rs.pt.index + 1,
				 (unsigned long long)m->chunks, (double)t->rs.pt.out / 1048576.0,
				 tnd_slot_name(t->target));
		else
			tnd_info("resuming the delta at %.1f MiB of the image, which slot %s "
				 "already holds: its op stream is read again, nothing before is "
				 "rewritten",
				 (double)t->rs.pt.out / 1048576.0, tnd_slot_name(t->target));
	}
	/* A resumed install reads back only what it writes: the whole slot is
	 * hashed afterwards instead. */
	readback_hash = delta_needs_image_hash(m) && !t->rs.active;
	if (readback_hash)
		tnd_slot_hash_readback(&t->w);
	snprintf(detail, sizeof(detail), "%s %s into slot %s (%s)", m->compatible, m->version,
		 tnd_slot_name(t->target), cfg->slot_dev[t->target]);
	phase(t, "install", detail);
	ret = tnd_pipeline_run(&t->r, &t->w,
			       &(struct tnd_pipeline_opts){
				   .threads = CONFIG_INSTALL_THREADS,
				   .base_fd = t->base_fd,
				   .progress = ev ? ev->progress : NULL,
				   .progress_ctx = ev ? ev->ctx : NULL,
				   .cancel = t->o.cancel,
				   .checkpoint = tnd_resume_save,
				   .checkpoint_ctx = &t->rs,
				   .start_out = t->rs.active ? t->rs.pt.out : 0,
				   .start_crc = t->rs.active ? t->rs.pt.prefix_crc : 0,
			       });
	if (ret)
		return ret;
	if (readback_hash) {
		tnd_slot_readback_sha256(&t->w, got);
		if ((ret = check_image_hash(t, got, "as written")))
			return ret;
	}
	/* The records before the checkpoint were not authenticated by this
	 * run: the whole image, as the slot holds it, must be the signed one. */
	if (t->rs.active) {
		phase(t, "verify", NULL);
		if ((ret = tnd_slot_hash(cfg->slot_dev[t->target], m->image_size, got)) ||
		    (ret = check_image_hash(t, got, "after resuming")))
			return ret;
	}
	/* The file the caller expected, when it came whole (a resume skipped
	 * part of it: the manifest's identity, checked in prepare, is then
	 * what vouches for it). */
	if (t->o.expect && tnd_source_hash_end(t->src, got) &&
	    !tnd_memeq_ct(got, t->o.expect->file_sha256, TND_SHA256_LEN))
		return tnd_err_set(TND_E_WRONG_RELEASE,
				   "the bundle from %s is not the file the signed index lists (its "
				   "SHA-256 differs): not recorded, not activated",
				   t->o.source);
	tnd_slot_close(&t->w);
	/* The environment learns what the slot verifiably holds (still out of
	 * the boot order's reach): the one record an attacker who can write
	 * state_dir cannot forge, which every later decision to boot the slot
	 * or raise the floor reads (bootloader.h, struct tnd_slot_id). */
	if ((ret = set_identity(t)))
		return ret;

	tnd_slot_record_installed(si, m);
	si->identity_in_env = !t->env_blank && t->cfg->bootloader != TND_BL_NONE;
	/* A signed creation time is a lower bound for the clock from now on. */
	if (m->created > t->st.time_floor)
		t->st.time_floor = m->created;
	t->st.last_install_time = si->updated;
	snprintf(t->st.last_install_result, sizeof(t->st.last_install_result), "success");
	t->st.last_error_code[0] = t->st.last_error[0] = '\0';
	/* An install that is to be activated says so in the same save that
	 * records it: a cut before the activating store then leaves a slot
	 * pending and not activated, which confirm notes as interrupted and a
	 * fleet's next poll activates. Saved apart, a cut between the two
	 * left an installed slot nothing would ever activate (the torture
	 * test's invariant 8). */
	if (will_activate(t) && (ret = tnd_state_set_pending(&t->st, cfg, t->target)))
		return ret;
	if ((ret = tnd_state_save(&t->st, cfg->state_dir)))
		return ret;
	tnd_resume_discard(&t->rs, NULL);
	t->streamed = true;
	return 0;
}

int tnd_txn_stream(struct tnd_txn *t)
{
	int ret = stream(t);

	return ret ? tnd_txn_fail(t, ret) : 0;
}

static int commit(struct tnd_txn *t, struct tnd_install_result *res)
{
	struct tnd_bootloader *bl = NULL;
	int ret;

	if (!t->streamed)
		return tnd_err_set(TND_E_INTERNAL, "commit before the slot was written");
	res->slot = t->target;
	snprintf(res->version, sizeof(res->version), "%s", t->m->version);
	memcpy(res->sha256, t->m->image_sha256, TND_SHA256_LEN);
	res->image_size = t->m->image_size;
	res->security_version = t->m->security_version;
	res->resumed_from = t->resumed_from;
	res->delta_format = t->m->payload_type == TND_PAYLOAD_DELTA ? t->m->delta_format : 0;
	if (t->o.no_activate || t->o.provision)
		goto out;
	if ((ret = tnd_bl_open(&bl, t->cfg)))
		return ret;
	if (tnd_bl_switches(bl)) {
		phase(t, "activate", NULL);
		/* Pending first (saved with the record, in stream): if the cut
		 * comes after the environment write, confirm on the next boot
		 * still knows what was expected. */
		if (t->st.pending_slot != t->target &&
		    ((ret = tnd_state_set_pending(&t->st, t->cfg, t->target)) ||
		     (ret = tnd_state_save(&t->st, t->cfg->state_dir)))) {
			tnd_bl_close(bl);
			return ret;
		}
		if ((ret = tnd_bl_activate(bl, t->target, t->cfg->boot_tries))) {
			tnd_bl_close(bl);
			return ret;
		}
		res->activated = true;
		/* The store landed: a fallback from here on is a failed update
		 * (bootctl.c, note_fallback). */
		t->st.pending_activated = true;
		if ((ret = tnd_state_save(&t->st, t->cfg->state_dir))) {
			tnd_bl_close(bl);
			return ret;
		}
	}
	tnd_bl_close(bl);
out:
	res->seconds = tnd_now_mono() - t->t0;
	return 0;
}

int tnd_txn_commit(struct tnd_txn *t, struct tnd_install_result *res)
{
	int ret;

	memset(res, 0, sizeof(*res));
	ret = commit(t, res);
	return ret ? tnd_txn_fail(t, ret) : 0;
}

void tnd_txn_free(struct tnd_txn *t)
{
	if (!t)
		return;
	tnd_slot_close(&t->w);
	if (t->base_fd >= 0)
		close(t->base_fd);
	tnd_source_close(t->owned);
	tnd_keyring_free(&t->kr);
	free(t);
}

int tnd_install(const struct tnd_config *cfg, const struct tnd_install_opts *o,
		struct tnd_install_result *res)
{
	struct tnd_txn *t;
	int ret;

	memset(res, 0, sizeof(*res));
	if ((ret = tnd_txn_prepare(&t, cfg, o)))
		return ret;
	if (!(ret = tnd_txn_stream(t)))
		ret = tnd_txn_commit(t, res);
	tnd_txn_free(t);
	return ret;
}
