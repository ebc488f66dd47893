// SPDX-License-Identifier: MIT
/*
 * activate, confirm, rollback (bootctl.h). Every decision here that makes
 * a slot boot, or raises the floor, reads what the slot verifiably holds
 * from the boot environment (struct tnd_slot_id, written by the install
 * that verified the slot), never from state.json alone: the state
 * directory is on a partition an attacker may write (docs/security.md).
 */
#include "bootctl.h"

#include <stdio.h>
#include <string.h>

#include "bootloader.h"
#include "health.h"
#include "log.h"
#include "policy.h"
#include "state.h"
#include "timeutil.h"

/* Holds an image that was verified when written or proven by booting. */
static bool holds_image(const struct tnd_slot_info *si)
{
	return si->state == TND_SLOT_INSTALLED || si->state == TND_SLOT_GOOD;
}

/*
 * The backend, its state, and the floor in force: the state's, raised by
 * the boot environment's copy (which outlives a lost state directory).
 */
static int open_bl(const struct tnd_config *cfg, const struct tnd_state *st,
		   struct tnd_bootloader **bl, struct tnd_boot_state *bs, uint64_t *floor)
{
	int ret;

	*floor = st->security_floor;
	if ((ret = tnd_bl_open(bl, cfg)))
		return ret;
	if ((ret = tnd_bl_read(*bl, bs))) {
		tnd_bl_close(*bl);
		*bl = NULL;
		return ret;
	}
	if (bs->floor > *floor)
		*floor = bs->floor;
	return 0;
}

/*
 * Whether slot may be made to boot, by what the environment says it holds
 * (struct tnd_slot_id): a verified image not below the floor. A slot
 * erased for a write that never verified: never. A slot the environment
 * says nothing about (written by other means, or before Tandem kept
 * identities there) counts as security version 0: while the floor is 0
 * it may, as before identities; above, it is refused.
 */
static int may_boot(const struct tnd_config *cfg, const struct tnd_state *st,
		    const struct tnd_boot_state *bs, uint64_t floor, int slot)
{
	const struct tnd_slot_id *id = &bs->id[slot];

	switch (id->kind) {
	case TND_ID_ERASED:
		return tnd_err_set(TND_E_NOT_READY,
				   "slot %s was being written and never verified (boot "
				   "environment): install a release into it first",
				   tnd_slot_name(slot));
	case TND_ID_UNKNOWN:
		if (floor == 0)
			return 0;
		return tnd_err_set(
		    TND_E_DOWNGRADE,
		    "the boot environment does not say which release slot %s holds "
		    "(written by other means, or before Tandem kept identities "
		    "there), and this device's floor is %llu: install a release into "
		    "it first",
		    tnd_slot_name(slot), (unsigned long long)floor);
	case TND_ID_VALID:
		break;
	}
	return tnd_policy_may_boot(&(struct tnd_policy){.cfg = cfg, .st = st, .floor = floor}, slot,
				   id->security_version);
}

/*
 * slot first in the boot order, in the order that lets confirm tell a
 * cut activation from a failed one: the pending mark (`pending`, or -1
 * when the booted slot is activated, which cancels any), the environment
 * store, then the mark that the store landed.
 */
static int activate_pending(const struct tnd_config *cfg, struct tnd_state *st,
			    struct tnd_bootloader *bl, int pending, int slot)
{
	int ret;

	if ((ret = tnd_state_set_pending(st, cfg, pending)) ||
	    (ret = tnd_state_save(st, cfg->state_dir)) ||
	    (ret = tnd_bl_activate(bl, slot, cfg->boot_tries)))
		return ret;
	if (pending < 0)
		return 0;
	st->pending_activated = true;
	return tnd_state_save(st, cfg->state_dir);
}

/* Makes slot boot next, from a command. The booted slot runs anyway:
 * activating it only cancels a pending switch. */
static int switch_to(const struct tnd_config *cfg, struct tnd_state *st, int slot, int booted)
{
	struct tnd_bootloader *bl = NULL;
	struct tnd_boot_state bs;
	uint64_t floor;
	int ret;

	if ((ret = open_bl(cfg, st, &bl, &bs, &floor)))
		return ret;
	if (tnd_bl_switches(bl) && slot != booted)
		ret = may_boot(cfg, st, &bs, floor, slot);
	if (!ret)
		ret = activate_pending(cfg, st, bl, slot == booted ? -1 : slot, slot);
	tnd_bl_close(bl);
	return ret;
}

int tnd_activate(const struct tnd_config *cfg, int slot)
{
	struct tnd_state st;
	int ret, booted;

	if ((ret = tnd_booted_slot(cfg, &booted)) || (ret = tnd_state_load(&st, cfg->state_dir)))
		return ret;
	if (slot != booted && !holds_image(&st.slot[slot]))
		return tnd_err_set(TND_E_NOT_READY,
				   "slot %s holds no verified image (state: %s): install one first",
				   tnd_slot_name(slot), tnd_slot_state_name(st.slot[slot].state));
	return switch_to(cfg, &st, slot, booted);
}

int tnd_rollback(const struct tnd_config *cfg, int *to)
{
	struct tnd_state st;
	int ret, booted, other;

	if ((ret = tnd_booted_slot(cfg, &booted)) || (ret = tnd_state_load(&st, cfg->state_dir)))
		return ret;
	other = 1 - booted;
	/* Rolling back to anything not proven is how devices get bricked. */
	if (st.slot[other].state != TND_SLOT_GOOD)
		return tnd_err_set(
		    TND_E_NOT_READY,
		    "slot %s holds no known-good image (state: %s): refusing to roll back",
		    tnd_slot_name(other), tnd_slot_state_name(st.slot[other].state));
	if ((ret = switch_to(cfg, &st, other, booted)))
		return ret;
	*to = other;
	return 0;
}

/* The pending slot is not the one running: U-Boot fell back, or the
 * activation never happened. */
static int note_fallback(const struct tnd_config *cfg, struct tnd_bootloader *bl,
			 const struct tnd_boot_state *bs, struct tnd_state *st,
			 struct tnd_confirm_result *res)
{
	int p = st->pending_slot;
	int ret;

	/* The boot script only ever tries the order's first slot with tries
	 * left, and never reorders: a pending slot that is not first, and
	 * whose activating store never completed, was not tried, so it did
	 * not fail (a cut between the state's pending mark and that store).
	 * It is not activated here either: the mark lives in state_dir,
	 * which an attacker may write. It stays installed, noted as
	 * interrupted, for the next activation (a fleet's next poll, when it
	 * holds the channel's release, or `tandem activate`). One whose
	 * store completed and that is no longer first was tried: this
	 * confirm's own mark_bad landed before a cut took its state save. */
	if ((!bs->norder || bs->order[0] != p) && !st->pending_activated) {
		tnd_warn("slot %s was to boot next, but its activation never reached the boot "
			 "environment: it was not tried, and did not fail",
			 tnd_slot_name(p));
		st->pending_slot = -1;
		st->interrupted_slot = p;
		return tnd_state_save(st, cfg->state_dir);
	}
	if (bs->tries[p] == 0)
		snprintf(
		    res->reason, sizeof(res->reason),
		    "slot %s did not come up: it used all %u boot tries without being confirmed",
		    tnd_slot_name(p), cfg->boot_tries);
	else
		snprintf(res->reason, sizeof(res->reason),
			 "slot %s was activated but slot %s booted (%u tries of %s left)",
			 tnd_slot_name(p), tnd_slot_name(res->booted), bs->tries[p],
			 tnd_slot_name(p));
	tnd_warn("%s", res->reason);
	res->fallback_from = p;
	if ((ret = tnd_bl_mark_bad(bl, p)))
		return ret;
	st->slot[p].state = TND_SLOT_BAD;
	st->slot[p].updated = tnd_time_now();
	st->pending_slot = -1;
	tnd_outcome_set(&st->last_update, "failed", p, st->slot[p].version, res->reason);
	return tnd_state_save(st, cfg->state_dir);
}

int tnd_confirm(const struct tnd_config *cfg, struct tnd_confirm_result *res)
{
	struct tnd_bootloader *bl = NULL;
	struct tnd_boot_state bs;
	struct tnd_state st;
	struct tnd_slot_info *si;
	uint64_t floor, trusted;
	int ret, health, other;

	memset(res, 0, sizeof(*res));
	res->fallback_from = -1;
	if ((ret = tnd_booted_slot(cfg, &res->booted)) ||
	    (ret = tnd_state_load(&st, cfg->state_dir)) ||
	    (ret = open_bl(cfg, &st, &bl, &bs, &floor)))
		goto out;
	/* Another slot pending is a fallback only once the device has rebooted
	 * since the activation: before that, the update simply has not been
	 * tried yet, and confirm (run again, or by hand) must not cancel it. */
	if (st.pending_slot >= 0 && st.pending_slot != res->booted) {
		char now[64];

		if ((ret = tnd_boot_id(cfg, now)))
			goto out;
		if (strcmp(now, st.pending_boot_id) != 0 &&
		    (ret = note_fallback(cfg, bl, &bs, &st, res)))
			goto out;
	}

	si = &st.slot[res->booted];
	other = 1 - res->booted;
	for (int i = 0; i < TND_NSLOTS; i++)
		if (st.slot[i].identity_in_env && bs.id[i].kind == TND_ID_UNKNOWN &&
		    tnd_bl_switches(bl))
			tnd_warn(
			    "the boot environment lost TANDEM_%s_IMAGE, which the install stored: "
			    "the boot script does not carry it (build boot.scr with this "
			    "Tandem's mkbootscr.sh, docs/boot-protocol.md); until then the "
			    "floor rises in state.json only and slot %s cannot be switched to "
			    "above floor 0",
			    tnd_slot_name(i), tnd_slot_name(i));
	/* libubootenv holds a machine-wide lock while a context is open, and
	 * a health check may well read the environment (fw_printenv, tandem
	 * status): with the context open it would wait for this confirm until
	 * its timeout, and a good slot would be marked bad. So the checks run
	 * with the environment closed, and what they may have changed in it is
	 * read again after. */
	tnd_bl_close(bl);
	bl = NULL;
	health = tnd_health_run(cfg->health_dir, cfg->health_timeout, tnd_slot_name(res->booted),
				&res->checks);
	if (health)
		snprintf(res->reason, sizeof(res->reason), "%s", tnd_err_msg());
	if ((ret = open_bl(cfg, &st, &bl, &bs, &floor)))
		goto out;
	if (health) {
		/* Switch only to a slot the environment vouches for, at or above
		 * the floor; otherwise this slot, bad as it is, remains the best
		 * the device has (and the boot counter still falls back when it
		 * stops booting). */
		if (tnd_bl_switches(bl) && holds_image(&st.slot[other]) &&
		    may_boot(cfg, &st, &bs, floor, other) == 0) {
			if ((ret = tnd_bl_mark_bad(bl, res->booted)))
				goto out;
			res->switched = true;
		} else {
			tnd_warn("slot %s cannot take over (%s): keeping slot %s first",
				 tnd_slot_name(other),
				 holds_image(&st.slot[other]) ? tnd_err_msg() : "no verified image",
				 tnd_slot_name(res->booted));
		}
		si->state = TND_SLOT_BAD;
		si->updated = tnd_time_now();
		if (st.pending_slot == res->booted)
			tnd_outcome_set(&st.last_update, "failed", res->booted, si->version,
					res->reason);
		st.pending_slot = -1;
		tnd_outcome_set(&st.last_boot, "bad", res->booted, si->version, res->reason);
		if ((ret = tnd_state_save(&st, cfg->state_dir)))
			goto out;
		ret = tnd_err_set(TND_E_HEALTH, "%s", res->reason);
		goto out;
	}
	/* The floor rises to what the environment vouches the booted slot
	 * holds (a security version a release key signed), in the same store
	 * that marks it good, so that it outlives the state directory. A slot
	 * without an identity there (written before identities were kept)
	 * raises only the state's copy, from its record, as before: a record
	 * an attacker may write must not reach the environment. */
	trusted = bs.floor;
	if (bs.id[res->booted].kind == TND_ID_VALID &&
	    bs.id[res->booted].security_version > trusted)
		trusted = bs.id[res->booted].security_version;
	/* Environment first: a cut before the state write leaves the slot
	 * pending, and the next confirm finishes the job. */
	if ((ret = tnd_bl_mark_good(bl, res->booted, cfg->boot_tries, trusted)))
		goto out;
	res->healthy = true;
	si->state = TND_SLOT_GOOD;
	si->updated = tnd_time_now();
	if (trusted > st.security_floor)
		st.security_floor = trusted;
	if (bs.id[res->booted].kind != TND_ID_VALID && si->security_version > st.security_floor)
		st.security_floor = si->security_version;
	if (st.pending_slot == res->booted) {
		tnd_outcome_set(&st.last_update, "success", res->booted, si->version, NULL);
		st.pending_slot = -1;
	}
	tnd_outcome_set(&st.last_boot, "good", res->booted, si->version, NULL);
	ret = tnd_state_save(&st, cfg->state_dir);
out:
	tnd_bl_close(bl);
	return ret;
}
