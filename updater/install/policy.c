// SPDX-License-Identifier: MIT
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "delta.h"
#include "timeutil.h"
#include "util.h"

static int check_expected(const struct tnd_expect *e, const struct tnd_manifest *m)
{
	const char *what = NULL;
	char want[TND_SHA256_HEX_LEN], got[TND_SHA256_HEX_LEN];

	/* One line that says what differs: an operator reading a fleet
	 * report must see at once that the server sent another release. */
	if (strcmp(m->version, e->version) != 0)
		what = "version";
	else if (!tnd_memeq_ct(m->image_sha256, e->image_sha256, TND_SHA256_LEN) ||
		 m->image_size != e->image_size)
		what = "image";
	else if (m->security_version != e->security_version)
		what = "security version";
	else if ((m->payload_type == TND_PAYLOAD_DELTA) != e->delta)
		what = e->delta ? "payload (a full bundle where a delta was listed)"
				: "payload (a delta where a full bundle was listed)";
	else if (e->delta && (!tnd_memeq_ct(m->base_sha256, e->base_sha256, TND_SHA256_LEN) ||
			      m->base_size != e->base_size))
		what = "delta base";
	if (!what)
		return 0;
	tnd_hex_encode(want, e->image_sha256, 8);
	tnd_hex_encode(got, m->image_sha256, 8);
	return tnd_err_set(TND_E_WRONG_RELEASE,
			   "the server sent release %s (image %s..., security version %llu), "
			   "not release %s (image %s...), the %s the signed index lists for this "
			   "URL: the %s differs",
			   m->version, got, (unsigned long long)m->security_version, e->version,
			   want, e->delta ? "delta" : "full bundle", what);
}

int tnd_policy_check(const struct tnd_policy *p, const struct tnd_manifest *m)
{
	const struct tnd_config *cfg = p->cfg;
	const struct tnd_state *st = p->st;
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
	if (m->security_version < p->floor)
		return tnd_err_set(TND_E_DOWNGRADE,
				   "bundle has security version %llu, below this device's floor of "
				   "%llu (a release with known vulnerabilities)",
				   (unsigned long long)m->security_version,
				   (unsigned long long)p->floor);
	/* Plain downgrades are usually a mistake (an old bundle picked up by
	 * a script); deliberate ones say so. Versions compare as strverscmp
	 * does: digit runs by value, so 1.10 > 1.9 (docs/install.md). */
	if (p->mode == TND_POLICY_INSTALL && !p->allow_downgrade && p->booted >= 0 &&
	    st->slot[p->booted].version[0] &&
	    strverscmp(m->version, st->slot[p->booted].version) < 0)
		return tnd_err_set(TND_E_DOWNGRADE,
				   "bundle version %s is older than %s in booted slot %s "
				   "(--allow-downgrade to install it anyway)",
				   m->version, st->slot[p->booted].version,
				   tnd_slot_name(p->booted));
	if (m->payload_type == TND_PAYLOAD_DELTA) {
		if (p->mode == TND_POLICY_PROVISION)
			return tnd_err_set(TND_E_UNSUPPORTED,
					   "provisioning needs a full bundle: a delta has no base "
					   "on a new board");
#ifndef CONFIG_DELTA
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "delta bundles need a build with delta support (CONFIG_DELTA)");
#else
		if (!tnd_delta_version_supported(m->delta_format))
			return tnd_err_set(TND_E_UNSUPPORTED,
					   "delta format %u%s is not supported by this build",
					   m->delta_format,
					   tnd_delta_version_xz(m->delta_format)
					       ? " (xz streams rebuilt on the device, "
						 "CONFIG_DELTA_XZ)"
					       : "");
#endif
	}
	if (m->chunk_size > (uint32_t)CONFIG_MAX_CHUNK_SIZE_KIB * 1024)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "bundle chunk size %u exceeds this device's limit of %u KiB",
				   m->chunk_size, CONFIG_MAX_CHUNK_SIZE_KIB);
	return p->expect ? check_expected(p->expect, m) : 0;
}

int tnd_policy_may_boot(const struct tnd_policy *p, int slot, uint64_t sv)
{
	if (sv >= p->floor)
		return 0;
	return tnd_err_set(
	    TND_E_DOWNGRADE,
	    "slot %s holds security version %llu, below this device's floor of %llu: "
	    "it must not boot again (install a newer release into it)",
	    tnd_slot_name(slot), (unsigned long long)sv, (unsigned long long)p->floor);
}
