// SPDX-License-Identifier: MIT
#include "bootloader.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const struct {
	enum tnd_bl_type type;
	const struct tnd_bootloader_ops *ops;
} backends[] = {
    {TND_BL_NONE, &tnd_bl_none_ops},
#ifdef CONFIG_BOOTLOADER_UBOOT
    {TND_BL_UBOOT, &tnd_bl_uboot_ops},
#endif
#ifdef CONFIG_BOOTLOADER_GRUB
    {TND_BL_GRUB, &tnd_bl_grub_ops},
#endif
#ifdef CONFIG_BOOTLOADER_CUSTOM
    {TND_BL_CUSTOM, &tnd_bl_custom_ops},
#endif
};

static const struct tnd_bootloader_ops *find_backend(const struct tnd_config *cfg)
{
	for (size_t i = 0; i < TND_ARRAY_SIZE(backends); i++)
		if (backends[i].type == cfg->bootloader)
			return backends[i].ops;
	tnd_err_set(TND_E_UNSUPPORTED, "this build has no backend for the configured bootloader");
	return NULL;
}

int tnd_bl_open(struct tnd_bootloader **out, const struct tnd_config *cfg)
{
	const struct tnd_bootloader_ops *ops = find_backend(cfg);

	*out = NULL;
	return ops ? ops->open(out, cfg) : TND_E_UNSUPPORTED;
}

int tnd_bl_open_init(struct tnd_bootloader **out, const struct tnd_config *cfg,
		     const char *defaults, bool *blank)
{
	const struct tnd_bootloader_ops *ops = find_backend(cfg);

	*out = NULL;
	*blank = false;
	return ops ? ops->open_init(out, cfg, defaults, blank) : TND_E_UNSUPPORTED;
}

void tnd_bl_close(struct tnd_bootloader *bl)
{
	if (bl)
		bl->ops->close(bl);
}

bool tnd_bl_switches(const struct tnd_bootloader *bl)
{
	return bl->ops->switches;
}

int tnd_bl_floor(const struct tnd_config *cfg, uint64_t state_floor, uint64_t *floor,
		 struct tnd_boot_state *bs)
{
	struct tnd_bootloader *bl;
	struct tnd_boot_state local;
	int ret;

	if (!bs)
		bs = &local;
	*floor = state_floor;
	if ((ret = tnd_bl_open(&bl, cfg)))
		return ret;
	ret = tnd_bl_read(bl, bs);
	tnd_bl_close(bl);
	if (!ret && bs->floor > *floor)
		*floor = bs->floor;
	return ret;
}

int tnd_bl_read(struct tnd_bootloader *bl, struct tnd_boot_state *bs)
{
	int ret = bl->ops->read(bl, bs);

	return ret ? tnd_err_prefix(TND_E_BOOTLOADER, "%s", bl->ops->name) : 0;
}

int tnd_bl_raw(struct tnd_bootloader *bl, struct tnd_bl_var *vars, size_t max, size_t *n)
{
	*n = 0;
	return bl->ops->raw ? bl->ops->raw(bl, vars, max, n) : 0;
}

static int bl_write(struct tnd_bootloader *bl, const struct tnd_boot_state *bs)
{
	char order[16];
	int ret;

	if (!bl->ops->switches)
		return tnd_err_set(TND_E_UNSUPPORTED,
				   "no bootloader is configured (\"type\": \"none\"): nothing "
				   "decides what boots");
	ret = bl->ops->write(bl, bs);

	if (ret)
		return tnd_err_prefix(TND_E_BOOTLOADER, "%s", bl->ops->name);
	tnd_boot_order_str(bs, order, sizeof(order));
	tnd_debug("boot state: order \"%s\", tries A=%u B=%u, floor %llu", order, bs->tries[0],
		  bs->tries[1], (unsigned long long)bs->floor);
	return 0;
}

int tnd_bl_write(struct tnd_bootloader *bl, const struct tnd_boot_state *bs)
{
	return bl_write(bl, bs);
}

/*
 * No tries and out of the order's reach (and, with erase, its identity
 * erased), in one store, only when something changes. Out of reach is the
 * other slot in the order and this one last or not in it at all: RAUC's
 * mark-bad removes a slot from BOOT_ORDER, and neither boot script ever
 * boots a slot the order does not name, so such a slot stays out, as RAUC
 * left it. A slot alone in the order is not out of reach: when no counter
 * is left, both scripts reset them and boot the first slot of the order.
 * So the other slot goes first, named there if it was not: every caller
 * takes a slot out for the other's sake (the booted one, or one the
 * caller found fit to take over).
 */
static int take_out(struct tnd_bootloader *bl, int slot, bool erase)
{
	struct tnd_boot_state bs;
	int ret, other = 1 - slot;
	bool listed = false, other_listed = false;

	if ((ret = tnd_bl_read(bl, &bs)))
		return ret;
	for (int i = 0; i < bs.norder; i++) {
		listed |= bs.order[i] == slot;
		other_listed |= bs.order[i] == other;
	}
	if (bs.tries[slot] == 0 && other_listed && (!listed || bs.order[bs.norder - 1] == slot) &&
	    !(erase && bs.id[slot].kind != TND_ID_ERASED))
		return 0; /* already so: spare the flash a write */
	bs.order[0] = other;
	bs.order[1] = slot;
	bs.norder = listed ? 2 : 1;
	bs.tries[slot] = 0;
	bs.tries_set[slot] = true;
	if (erase) {
		memset(&bs.id[slot], 0, sizeof(bs.id[slot]));
		bs.id[slot].kind = TND_ID_ERASED;
	}
	return bl_write(bl, &bs);
}

int tnd_bl_disable(struct tnd_bootloader *bl, int slot)
{
	if (!bl->ops->switches)
		return 0;
	/* Last as well as no tries: when every counter is spent the boot script
	 * resets them and boots the first slot of the order, which must never be
	 * a half-written one. */
	return take_out(bl, slot, true);
}

int tnd_bl_set_identity(struct tnd_bootloader *bl, int slot, const struct tnd_slot_id *id)
{
	struct tnd_boot_state bs;
	int ret;

	if (!bl->ops->switches)
		return 0;
	if ((ret = tnd_bl_read(bl, &bs)))
		return ret;
	bs.id[slot] = *id;
	return bl_write(bl, &bs);
}

int tnd_bl_activate(struct tnd_bootloader *bl, int slot, unsigned tries)
{
	struct tnd_boot_state bs;
	int ret, n = 1;

	if (!bl->ops->switches)
		return bl_write(bl, NULL); /* the error that says why */
	if ((ret = tnd_bl_read(bl, &bs)))
		return ret;
	int old[TND_NSLOTS];
	int nold = bs.norder;

	memcpy(old, bs.order, sizeof(old));
	bs.order[0] = slot;
	for (int i = 0; i < nold; i++)
		if (old[i] != slot)
			bs.order[n++] = old[i];
	bs.norder = n;
	bs.tries[slot] = tries;
	bs.tries_set[slot] = true;
	return bl_write(bl, &bs);
}

int tnd_bl_mark_good(struct tnd_bootloader *bl, int slot, unsigned tries, uint64_t floor)
{
	struct tnd_boot_state bs;
	int ret;

	if (!bl->ops->switches)
		return 0;
	if ((ret = tnd_bl_read(bl, &bs)))
		return ret;
	if (bs.tries[slot] == tries && bs.tries_set[slot] && bs.floor >= floor)
		return 0; /* nothing to write: spare the flash */
	bs.tries[slot] = tries;
	bs.tries_set[slot] = true;
	if (floor > bs.floor)
		bs.floor = floor;
	return bl_write(bl, &bs);
}

int tnd_bl_mark_bad(struct tnd_bootloader *bl, int slot)
{
	if (!bl->ops->switches)
		return 0;
	/* Its identity stays: a failed slot still holds what it holds. */
	return take_out(bl, slot, false);
}

void tnd_boot_order_str(const struct tnd_boot_state *bs, char *buf, size_t size)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (int i = 0; i < bs->norder && pos + 3 <= size; i++)
		pos += (size_t)snprintf(buf + pos, size - pos, "%s%s", i ? " " : "",
					tnd_slot_name(bs->order[i]));
}

int tnd_boot_order_parse(struct tnd_boot_state *bs, const char *s)
{
	char copy[64], *tok, *save = NULL;

	/* never cut: what the boot script reads whole must be read whole */
	if (strlen(s) >= sizeof(copy))
		return tnd_err_set(TND_E_BOOTLOADER, "BOOT_ORDER \"%.70s...\" is not valid", s);
	snprintf(copy, sizeof(copy), "%s", s);
	bs->norder = 0;
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		int slot = tnd_slot_from_name(tok);

		if (slot < 0 || bs->norder == TND_NSLOTS ||
		    (bs->norder == 1 && bs->order[0] == slot))
			return tnd_err_set(TND_E_BOOTLOADER, "BOOT_ORDER \"%s\" is not valid", s);
		bs->order[bs->norder++] = slot;
	}
	return 0;
}

int tnd_slot_id_parse(const char *name, const char *value, struct tnd_slot_id *id)
{
	char v[TND_ID_VAR_MAX], *colon;

	memset(id, 0, sizeof(*id));
	if (!value || !*value)
		return 0;
	if (!strcmp(value, "erased")) {
		id->kind = TND_ID_ERASED;
		return 0;
	}
	if (strlen(value) >= sizeof(v))
		goto bad;
	snprintf(v, sizeof(v), "%s", value);
	if (!(colon = strchr(v, ':')))
		goto bad;
	*colon = '\0';
	if (tnd_parse_u64(v, &id->security_version) || id->security_version > UINT32_MAX ||
	    strlen(colon + 1) != 2 * TND_SHA256_LEN ||
	    tnd_hex_decode(id->sha256, TND_SHA256_LEN, colon + 1))
		goto bad;
	id->kind = TND_ID_VALID;
	return 0;
bad:
	memset(id, 0, sizeof(*id));
	return tnd_err_set(TND_E_BOOTLOADER,
			   "%s is not \"<security version>:<SHA-256>\" or \"erased\"", name);
}

void tnd_slot_id_format(const struct tnd_slot_id *id, char out[TND_ID_VAR_MAX])
{
	int n;

	out[0] = '\0';
	if (id->kind == TND_ID_ERASED) {
		snprintf(out, TND_ID_VAR_MAX, "erased");
	} else if (id->kind == TND_ID_VALID) {
		n = snprintf(out, TND_ID_VAR_MAX,
			     "%llu:", (unsigned long long)id->security_version);
		tnd_hex_encode(out + n, id->sha256, TND_SHA256_LEN);
	}
}
