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
#include "log.h"
#include "pipeline.h"
#include "resume.h"
#include "slot.h"
#include "state.h"
#include "timeutil.h"
#include "util.h"

static int same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return 0;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int choose_slot(const struct tnd_config *cfg, int requested, int *target, int *booted_out)
{
	int booted, ret;

	if ((ret = tnd_booted_slot(cfg, &booted)))
		return ret;
	*booted_out = booted;
	*target = requested >= 0 ? requested : 1 - booted;
	if (*target == booted)
		return tnd_err_set(
		    TND_E_SLOT,
		    "slot %s is the booted slot: refusing to overwrite the running system",
		    tnd_slot_name(booted));
	if (same_device(cfg->slot_dev[0], cfg->slot_dev[1]))
		return tnd_err_set(TND_E_CONFIG, "slots A and B are the same device (%s)",
				   cfg->slot_dev[*target]);
	return 0;
}

/* Policy on an authenticated manifest: the device's rules, not the format's. */
static int check_policy(const struct tnd_config *cfg, const struct tnd_state *st, int booted,
			bool allow_downgrade, const struct tnd_manifest *m)
{
	char t[TND_TIME_STR_LEN];

	if (!m->verified)
		return tnd_err_set(TND_E_INTERNAL, "manifest was not verified");
	if (strcmp(m->compatible, cfg->compatible) != 0)
		return tnd_err_set(TND_E_INCOMPATIBLE,
				   "bundle is for \"%s\", this device is \"%s\"", m->compatible,
				   cfg->compatible);
	if (m->expires) {
		bool unset;

		if (tnd_trusted_now(st, &unset) >= m->expires) {
			tnd_time_format(t, m->expires);
			return tnd_err_set(TND_E_EXPIRED, "bundle expired at %s%s", t,
					   unset ? " (system clock unset: checked against the "
						   "build time or the newest installed release)"
						 : "");
		}
		tnd_warn_unset_clock(st);
	}
	/* The floor rises only when a slot holding a higher security version
	 * is confirmed healthy (tnd_confirm), never at install time. */
	if (m->security_version < st->security_floor)
		return tnd_err_set(TND_E_DOWNGRADE,
				   "bundle has security version %llu, below this device's floor of "
				   "%llu (a release with known vulnerabilities)",
				   (unsigned long long)m->security_version,
				   (unsigned long long)st->security_floor);
	/* Plain downgrades are usually a mistake (an old bundle picked up by
	 * a script); deliberate ones say so. Versions compare as strverscmp
	 * does: digit runs by value, so 1.10 > 1.9 (docs/install.md). */
	if (!allow_downgrade && booted >= 0 && st->slot[booted].version[0] &&
	    strverscmp(m->version, st->slot[booted].version) < 0)
		return tnd_err_set(TND_E_DOWNGRADE,
				   "bundle version %s is older than %s in booted slot %s "
				   "(--allow-downgrade to install it anyway)",
				   m->version, st->slot[booted].version, tnd_slot_name(booted));
#ifndef CONFIG_DELTA
	if (m->payload_type != TND_PAYLOAD_FULL)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "delta bundles need a build with delta support (CONFIG_DELTA)");
#endif
#ifdef CONFIG_DELTA
	if (m->payload_type == TND_PAYLOAD_DELTA && !tnd_delta_version_supported(m->delta_format))
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "delta format %u%s is not supported by this build",
				   m->delta_format,
				   tnd_delta_version_xz(m->delta_format)
				       ? " (xz streams rebuilt on the device, CONFIG_DELTA_XZ)"
				       : "");
#endif
	if (m->chunk_size > (uint32_t)CONFIG_MAX_CHUNK_SIZE_KIB * 1024)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "bundle chunk size %u exceeds this device's limit of %u KiB",
				   m->chunk_size, CONFIG_MAX_CHUNK_SIZE_KIB);
	return 0;
}

/*
 * A delta rebuilds the image from the booted slot: it must hold exactly
 * the base the delta was made from. The descriptor stays open for the
 * decoder; the booted slot is only ever opened read-only.
 *
 * Deltas of format 3 and 4 carry a signed CRC-32 of every 64 KiB of the
 * target, which the decoder checks before a byte of it is written: a
 * booted slot that differs from the base anywhere the delta reads makes
 * the first span built from it fail, before it reaches the slot. So the
 * base is not hashed first: the slot's record (the image it was installed
 * or provisioned with, verified then) must name the delta's base, which
 * refuses a delta for another release before anything is read or
 * written. Older formats, and slots with no such record, are hashed
 * whole before anything is written.
 */
static int open_base(const struct tnd_config *cfg, const struct tnd_state *st, int booted,
		     const struct tnd_manifest *m, int *fd_out)
{
	char want[TND_SHA256_HEX_LEN], got_hex[TND_SHA256_HEX_LEN];
	const char *dev = cfg->slot_dev[booted];
	const struct tnd_slot_info *rec = &st->slot[booted];
	uint8_t *buf, got[TND_SHA256_LEN];
	size_t bufsize = 256 * 1024;
	struct tnd_sha256 h;
	uint64_t size, pos = 0;
	bool recorded = tnd_delta_version_checked(m->delta_format) && rec->has_sha256 &&
			(rec->state == TND_SLOT_INSTALLED || rec->state == TND_SLOT_GOOD);
	int fd, ret;

	if ((ret = tnd_slot_dev_size(dev, &size)))
		return ret;
	if (size < m->base_size)
		return tnd_err_set(
		    TND_E_INCOMPATIBLE,
		    "delta needs a %llu-byte base, booted slot %s (%s) has %llu bytes",
		    (unsigned long long)m->base_size, tnd_slot_name(booted), dev,
		    (unsigned long long)size);
	if (recorded && !tnd_memeq_ct(rec->sha256, m->base_sha256, TND_SHA256_LEN)) {
		tnd_hex_encode(want, m->base_sha256, TND_SHA256_LEN);
		tnd_hex_encode(got_hex, rec->sha256, TND_SHA256_LEN);
		return tnd_err_set(TND_E_INCOMPATIBLE,
				   "delta is for a base with SHA-256 %s, but booted slot %s holds "
				   "%s: install a full bundle",
				   want, tnd_slot_name(booted), got_hex);
	}
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tnd_err_errno(TND_E_SLOT, errno, "cannot open booted slot %s", dev);
	if (recorded) {
		tnd_debug("base: booted slot %s is recorded with the delta's base image; "
			  "the delta's checks vouch for what it reads",
			  tnd_slot_name(booted));
		*fd_out = fd;
		return 0;
	}
	if (!(buf = malloc(bufsize))) {
		close(fd);
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	}
	posix_fadvise(fd, 0, (off_t)m->base_size, POSIX_FADV_SEQUENTIAL);
	tnd_sha256_init(&h);
	while (pos < m->base_size) {
		size_t n = m->base_size - pos < bufsize ? (size_t)(m->base_size - pos) : bufsize;

		if ((ret = tnd_pread_full(fd, buf, n, (off_t)pos))) {
			tnd_sha256_final(&h, got);
			free(buf);
			close(fd);
			return tnd_err_errno(TND_E_SLOT, -ret, "cannot read booted slot %s", dev);
		}
		tnd_sha256_update(&h, buf, n);
		pos += n;
	}
	tnd_sha256_final(&h, got);
	free(buf);
	if (!tnd_memeq_ct(got, m->base_sha256, TND_SHA256_LEN)) {
		close(fd);
		tnd_hex_encode(want, m->base_sha256, TND_SHA256_LEN);
		tnd_hex_encode(got_hex, got, TND_SHA256_LEN);
		return tnd_err_set(
		    TND_E_INCOMPATIBLE,
		    "delta is for a base with SHA-256 %s, but booted slot %s holds %s: "
		    "install a full bundle",
		    want, tnd_slot_name(booted), got_hex);
	}
	*fd_out = fd;
	return 0;
}

/* Best effort: the original error is what the caller reports. */
static void record_failure(const struct tnd_config *cfg, struct tnd_state *st, int code)
{
	char msg[TND_ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
	st->last_install_time = tnd_time_now();
	snprintf(st->last_install_result, sizeof(st->last_install_result), "failed");
	snprintf(st->last_error_code, sizeof(st->last_error_code), "%s", tnd_err_name(code));
	snprintf(st->last_error, sizeof(st->last_error), "%s", msg);
	if (tnd_state_save(st, cfg->state_dir))
		tnd_warn("%s", tnd_err_msg());
	tnd_err_set(code, "%s", msg);
}

int tnd_install(const struct tnd_config *cfg, const struct tnd_install_opts *o,
		struct tnd_install_result *res)
{
	struct tnd_keyring kr = {0};
	struct tnd_verify_opts vo = {.keyring = &kr, .threshold = cfg->signature_threshold};
	struct tnd_slot_writer w = {.fd = -1, .rfd = -1};
	struct tnd_bootloader *bl = NULL;
	struct tnd_source *src = NULL;
	struct tnd_bundle_reader r;
	struct tnd_state st;
	struct tnd_slot_info *si;
	struct tnd_resume rs = {.active = false};
	double t0 = tnd_now_mono();
	bool state_loaded = false;
	char detail[256];
	int ret, target, booted, base_fd = -1;

	memset(res, 0, sizeof(*res));
	tnd_progress_phase(o->progress, "prepare", NULL);
	/* State first, so that every later refusal is recorded for status. */
	if ((ret = tnd_state_load(&st, cfg->state_dir)))
		goto out;
	state_loaded = true;
	if ((ret = choose_slot(cfg, o->slot, &target, &booted)) ||
	    (ret = tnd_keyring_load_dir(&kr, cfg->keyring)))
		goto out;
	if (o->src)
		src = o->src;
	else if ((ret = tnd_source_open_file(&src, o->source)))
		goto out;

	tnd_progress_phase(o->progress, "authenticate", NULL);
	if ((ret = tnd_bundle_open(&r, src, &vo)) ||
	    (ret = check_policy(cfg, &st, booted, o->allow_downgrade, &r.manifest)))
		goto out;
	if (r.manifest.payload_type == TND_PAYLOAD_DELTA) {
		tnd_progress_phase(o->progress, "check-base", NULL);
		if ((ret = open_base(cfg, &st, booted, &r.manifest, &base_fd)))
			goto out;
	}
	/* Before the slot's record changes: a checkpoint applies only to a
	 * slot still recorded "installing" (docs/install.md, "Resume"). */
	tnd_resume_init(&rs, cfg->state_dir, target, cfg->slot_dev[target], r.manifest_digest);
	tnd_resume_load(&rs, &st, o->no_resume ? "--no-resume" : NULL);
	/* A delta's point names an image offset only (its op stream is read
	 * again from the start); anything else is not one of ours. */
	if (rs.active && r.manifest.payload_type == TND_PAYLOAD_DELTA &&
	    (rs.pt.index != 0 || rs.pt.payload_read != 0 || rs.pt.out >= r.manifest.image_size))
		tnd_resume_discard(&rs, "the checkpoint is damaged");
	if ((ret =
		 tnd_slot_open(&w, cfg->slot_dev[target], r.manifest.image_size,
			       r.manifest.chunk_size, (uint64_t)CONFIG_READBACK_WINDOW_MIB << 20)))
		goto out;
	if ((ret = tnd_bl_open(&bl, cfg)))
		goto out;

	/*
	 * From here the slot changes: first make that harmless, then visible.
	 * Each prefix of these three writes leaves state and environment
	 * agreeing about a slot whose content has not changed yet:
	 *  1. an activated, not yet booted target stops being pending (its
	 *     record still describes its content), so the next confirm will
	 *     not call its being disabled a failed update;
	 *  2. the target leaves the boot order's reach (no tries, last);
	 *  3. only then its record says "installing".
	 * (Found by tests/torture: with 3 before 2, a cut between them let the
	 * device boot a slot its state no longer described.)
	 */
	si = &st.slot[target];
	if (st.pending_slot == target) {
		if ((ret = tnd_state_set_pending(&st, cfg, -1)) ||
		    (ret = tnd_state_save(&st, cfg->state_dir)))
			goto out;
	}
	if ((ret = tnd_bl_disable(bl, target)))
		goto out;
	/* libubootenv holds a machine-wide lock while a context is open: not
	 * through the stream, or a `tandem status` or fw_printenv (a health
	 * check) would wait for the whole download. Reopened to activate. */
	tnd_bl_close(bl);
	bl = NULL;
	memset(si, 0, sizeof(*si));
	si->state = TND_SLOT_INSTALLING;
	si->updated = tnd_time_now();
	if ((ret = tnd_state_save(&st, cfg->state_dir)))
		goto out;

	if (rs.active) {
		if (r.manifest.payload_type == TND_PAYLOAD_FULL &&
		    (ret = tnd_bundle_resume(&r, rs.pt.index, rs.pt.payload_read, rs.pt.out,
					     rs.pt.expect)))
			goto out;
		tnd_slot_start_at(&w, rs.pt.out);
		res->resumed_from = rs.pt.out;
		if (r.manifest.payload_type == TND_PAYLOAD_FULL)
			tnd_info("resuming at chunk %llu of %llu: %.1f MiB of the image are "
				 "already on slot %s",
				 (unsigned long long)rs.pt.index + 1,
				 (unsigned long long)r.manifest.chunks,
				 (double)rs.pt.out / 1048576.0, tnd_slot_name(target));
		else
			tnd_info("resuming the delta at %.1f MiB of the image, which slot %s "
				 "already holds: its op stream is read again, nothing before is "
				 "rewritten",
				 (double)rs.pt.out / 1048576.0, tnd_slot_name(target));
	}
	snprintf(detail, sizeof(detail), "%s %s into slot %s (%s)", r.manifest.compatible,
		 r.manifest.version, tnd_slot_name(target), cfg->slot_dev[target]);
	tnd_progress_phase(o->progress, "install", detail);
	ret = tnd_pipeline_run(&r, &w,
			       &(struct tnd_pipeline_opts){
				   .threads = CONFIG_INSTALL_THREADS,
				   .base_fd = base_fd,
				   .progress = tnd_progress_update,
				   .progress_ctx = o->progress,
				   .cancel = o->cancel,
				   .checkpoint = tnd_resume_save,
				   .checkpoint_ctx = &rs,
				   .start_out = rs.active ? rs.pt.out : 0,
				   .start_crc = rs.active ? rs.pt.prefix_crc : 0,
			       });
	if (ret)
		goto out;
	/* The records before the checkpoint were not authenticated by this
	 * run: the whole image, as the slot holds it, must be the signed one. */
	if (rs.active) {
		uint8_t got[TND_SHA256_LEN];

		tnd_progress_phase(o->progress, "verify", NULL);
		if ((ret = tnd_slot_hash(cfg->slot_dev[target], r.manifest.image_size, got)))
			goto out;
		if (!tnd_memeq_ct(got, r.manifest.image_sha256, TND_SHA256_LEN)) {
			ret = tnd_err_set(TND_E_VERIFY,
					  "slot %s does not hold the signed image after resuming: "
					  "installing again starts over",
					  tnd_slot_name(target));
			goto out;
		}
	}

	si->state = TND_SLOT_INSTALLED;
	snprintf(si->version, sizeof(si->version), "%s", r.manifest.version);
	snprintf(si->compatible, sizeof(si->compatible), "%s", r.manifest.compatible);
	memcpy(si->sha256, r.manifest.image_sha256, TND_SHA256_LEN);
	si->has_sha256 = true;
	si->size = r.manifest.image_size;
	si->security_version = r.manifest.security_version;
	si->updated = tnd_time_now();
	/* A signed creation time is a lower bound for the clock from now on. */
	if (r.manifest.created > st.time_floor)
		st.time_floor = r.manifest.created;
	st.last_install_time = si->updated;
	snprintf(st.last_install_result, sizeof(st.last_install_result), "success");
	st.last_error_code[0] = st.last_error[0] = '\0';
	if ((ret = tnd_state_save(&st, cfg->state_dir)))
		goto out;
	tnd_resume_discard(&rs, NULL);

	if (!o->no_activate && (ret = tnd_bl_open(&bl, cfg)))
		goto out;
	if (bl && !o->no_activate) {
		tnd_progress_phase(o->progress, "activate", NULL);
		/* Pending first: if the cut comes after the environment write,
		 * confirm on the next boot still knows what was expected. */
		if ((ret = tnd_state_set_pending(&st, cfg, target)) ||
		    (ret = tnd_state_save(&st, cfg->state_dir)) ||
		    (ret = tnd_bl_activate(bl, target, cfg->boot_tries)))
			goto out;
		res->activated = true;
	}
	res->slot = target;
	snprintf(res->version, sizeof(res->version), "%s", r.manifest.version);
	memcpy(res->sha256, r.manifest.image_sha256, TND_SHA256_LEN);
	res->image_size = r.manifest.image_size;
	res->delta_format =
	    r.manifest.payload_type == TND_PAYLOAD_DELTA ? r.manifest.delta_format : 0;
	res->seconds = tnd_now_mono() - t0;
out:
	/* A resumed run that meets a record or an image it cannot trust must
	 * not lead the next one to the same place. */
	if (ret && rs.active &&
	    (ret == TND_E_INTEGRITY || ret == TND_E_FORMAT || ret == TND_E_VERIFY)) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		tnd_resume_discard(&rs, NULL);
		tnd_err_set(ret, "%s", msg);
	}
	if (ret && state_loaded)
		record_failure(cfg, &st, ret);
	tnd_slot_close(&w);
	if (base_fd >= 0)
		close(base_fd);
	tnd_bl_close(bl);
	if (src != o->src)
		tnd_source_close(src);
	tnd_keyring_free(&kr);
	return ret;
}
