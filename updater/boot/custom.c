// SPDX-License-Identifier: MIT
/*
 * "custom": a board's own program decides what boots, called with RAUC's
 * custom bootloader interface (docs/boot-protocol.md, "Custom"):
 *
 *   HANDLER get-primary            prints A or B
 *   HANDLER set-primary SLOT
 *   HANDLER get-state SLOT         prints good or bad
 *   HANDLER set-state SLOT good|bad
 *   HANDLER get-current            prints A or B (status and doctor only)
 *
 * and, unless "handler_env" is false, for Tandem's floor and slot
 * identities, which RAUC's interface has no place for:
 *
 *   HANDLER get-env NAME           prints the value, nothing when not set
 *   HANDLER set-env NAME VALUE     VALUE "" removes NAME
 *
 * for TANDEM_SECURITY_FLOOR, TANDEM_A_IMAGE and TANDEM_B_IMAGE. With
 * "handler_env": false slots are of unknown identity, switched to only
 * while the floor is 0 (docs/security.md).
 *
 * The state maps onto the backends' model as: order = the primary, then
 * the other; tries = boot_tries for a good slot, 0 for a bad one. A
 * store is several calls, ordered so that a failure part-way leaves
 * nothing half-switched: first every slot that becomes bad, then the
 * floor and identities, then the primary, last the slots that become
 * good; the first failure stops the store with one line. Every call is
 * bounded by "handler_timeout" (its process group is killed after), its
 * output by OUT_MAX, and anything but the expected words is an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootloader.h"
#include "util.h"

#define OUT_MAX 256 /* more output than an answer needs is garbage */

struct custom_bl {
	struct tnd_bootloader base; /* first: the ops see a struct tnd_bootloader */
};

static void drain_out(int fd, char *out, size_t *olen, bool *too_long)
{
	char buf[512];
	ssize_t k;

	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		size_t take = (size_t)k;

		if (*olen + take > OUT_MAX) {
			*too_long = true;
			take = OUT_MAX - *olen;
		}
		memcpy(out + *olen, buf, take);
		*olen += take;
	}
}

/*
 * Runs the handler with args, bounded in time and output. *status is its
 * exit status; out gets stdout (NUL-terminated), err the last line it
 * printed on stderr. Returns 0 when it ran and exited, else an error.
 */
static int call(struct custom_bl *c, const char *const *args, int *status, char out[OUT_MAX + 1],
		char err[160])
{
	const struct tnd_config *cfg = c->base.cfg;
	const char *argv[6] = {cfg->handler};
	char cmd[256];
	int ofd[2] = {-1, -1}, efd[2] = {-1, -1}, ret = 0, st = 0;
	size_t olen = 0, n = 1;
	bool too_long = false, open_fd[2] = {true, true};
	double deadline;
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "%.120s", cfg->handler); /* for messages */
	for (; args[n - 1] && n < TND_ARRAY_SIZE(argv) - 1; n++) {
		argv[n] = args[n - 1];
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %s",
			 args[n - 1][0] ? args[n - 1] : "\"\"");
	}
	argv[n] = NULL;
	out[0] = err[0] = '\0';
	if (pipe2(ofd, O_CLOEXEC | O_NONBLOCK) || pipe2(efd, O_CLOEXEC | O_NONBLOCK)) {
		ret = tnd_err_errno(TND_E_BOOTLOADER, errno, "cannot run %s", cmd);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		ret = tnd_err_errno(TND_E_BOOTLOADER, errno, "cannot run %s", cmd);
		goto out;
	}
	if (pid == 0) {
		/* Own process group, so a handler that forks is killed whole. */
		setpgid(0, 0);
		dup2(ofd[1], STDOUT_FILENO);
		dup2(efd[1], STDERR_FILENO);
		tnd_child_fds(); /* not the bundle's stream, not the mirror's socket */
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(pid, pid);
	close(ofd[1]);
	close(efd[1]);
	ofd[1] = efd[1] = -1;
	deadline = tnd_now_mono() + cfg->handler_timeout;
	for (;;) {
		/* a pipe the handler closed is left out (poll ignores a negative
		 * fd): else poll returns at once, and the loop would spin until
		 * the handler exits */
		struct pollfd p[2] = {{open_fd[0] ? ofd[0] : -1, POLLIN, 0},
				      {open_fd[1] ? efd[0] : -1, POLLIN, 0}};
		double left = deadline - tnd_now_mono();
		pid_t r;

		if (left <= 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			ret = tnd_err_set(TND_E_BOOTLOADER,
					  "%s did not finish within %u s (killed): nothing more is "
					  "changed",
					  cmd, cfg->handler_timeout);
			goto out;
		}
		poll(p, 2, left > 0.05 ? 50 : (int)(left * 1000) + 1);
		drain_out(ofd[0], out, &olen, &too_long);
		tnd_drain_last_line(efd[0], err, 160);
		for (int i = 0; i < 2; i++)
			if (p[i].revents & (POLLHUP | POLLERR | POLLNVAL))
				open_fd[i] = false; /* drained: nothing more comes */
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			/* what it wrote just before it exited */
			drain_out(ofd[0], out, &olen, &too_long);
			tnd_drain_last_line(efd[0], err, 160);
			break;
		}
		if (r < 0 && errno != EINTR) {
			ret = tnd_err_errno(TND_E_BOOTLOADER, errno, "%s", cmd);
			goto out;
		}
	}
	out[olen] = '\0';
	if (WIFSIGNALED(st))
		ret =
		    tnd_err_set(TND_E_BOOTLOADER, "%s was killed by signal %d", cmd, WTERMSIG(st));
	else if (WEXITSTATUS(st) == 127)
		ret = tnd_err_set(TND_E_BOOTLOADER, "%s could not be run (exit status 127)", cmd);
	else if (too_long || memchr(out, '\0', olen))
		ret =
		    tnd_err_set(TND_E_BOOTLOADER, "%s printed more than an answer (garbage)", cmd);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
out:
	for (int i = 0; i < 2; i++) {
		if (ofd[i] >= 0)
			close(ofd[i]);
		if (efd[i] >= 0)
			close(efd[i]);
	}
	return ret;
}

/* A call that must exit 0; its output, one line without its newline, in
 * out. */
static int call_ok(struct custom_bl *c, const char *const *args, char out[OUT_MAX + 1])
{
	char err[160];
	int status, ret;
	size_t n;

	if ((ret = call(c, args, &status, out, err)))
		return ret;
	if (status)
		return tnd_err_set(TND_E_BOOTLOADER, "%s %s%s%s exited with status %d%s%s",
				   c->base.cfg->handler, args[0], args[1] ? " " : "",
				   args[1] ? args[1] : "", status, err[0] ? ": " : "", err);
	n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[--n] = '\0';
	if (strchr(out, '\n'))
		return tnd_err_set(TND_E_BOOTLOADER, "%s %s printed more than one line (garbage)",
				   c->base.cfg->handler, args[0]);
	return 0;
}

static int answer_slot(struct custom_bl *c, const char *cmd, const char *out, int *slot)
{
	*slot = strlen(out) == 1 ? tnd_slot_from_name(out) : -1;
	if (*slot < 0 || (out[0] != 'A' && out[0] != 'B'))
		return tnd_err_set(TND_E_BOOTLOADER, "%s %s printed \"%.40s\", not A or B",
				   c->base.cfg->handler, cmd, out);
	return 0;
}

static int get_state(struct custom_bl *c, int slot, bool *good)
{
	char out[OUT_MAX + 1];
	const char *args[] = {"get-state", tnd_slot_name(slot), NULL};
	int ret;

	if ((ret = call_ok(c, args, out)))
		return ret;
	if (strcmp(out, "good") && strcmp(out, "bad"))
		return tnd_err_set(TND_E_BOOTLOADER,
				   "%s get-state %s printed \"%.40s\", not good or bad",
				   c->base.cfg->handler, tnd_slot_name(slot), out);
	*good = !strcmp(out, "good");
	return 0;
}

/* get-env NAME into v (empty: not set). */
static int get_env(struct custom_bl *c, const char *name, char *v, size_t size)
{
	const char *args[] = {"get-env", name, NULL};
	char out[OUT_MAX + 1], err[160];
	int status, ret;
	size_t n;

	v[0] = '\0';
	if (!c->base.cfg->handler_env)
		return 0;
	if ((ret = call(c, args, &status, out, err)))
		return ret;
	if (status)
		return tnd_err_set(TND_E_BOOTLOADER, "%s get-env %s exited with status %d%s%s",
				   c->base.cfg->handler, name, status, err[0] ? ": " : "", err);
	n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[--n] = '\0';
	if (strchr(out, '\n') || n >= size)
		return tnd_err_set(TND_E_BOOTLOADER, "%s get-env %s printed garbage",
				   c->base.cfg->handler, name);
	memcpy(v, out, n + 1);
	return 0;
}

static int set_env(struct custom_bl *c, const char *name, const char *value)
{
	const char *args[] = {"set-env", name, value, NULL};
	char out[OUT_MAX + 1];

	if (!c->base.cfg->handler_env)
		return 0;
	return call_ok(c, args, out);
}

static int custom_open(struct tnd_bootloader **out, const struct tnd_config *cfg)
{
	struct custom_bl *c;

	if (access(cfg->handler, X_OK))
		return tnd_err_errno(TND_E_BOOTLOADER, errno,
				     "the bootloader handler %s cannot be run", cfg->handler);
	if (!(c = calloc(1, sizeof(*c))))
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	c->base.ops = &tnd_bl_custom_ops;
	c->base.cfg = cfg;
	*out = &c->base;
	return 0;
}

static int custom_open_init(struct tnd_bootloader **out, const struct tnd_config *cfg,
			    const char *defaults, bool *blank)
{
	(void)defaults; /* the handler's own state: nothing to start from */
	*blank = false;
	return custom_open(out, cfg);
}

static void custom_close(struct tnd_bootloader *bl)
{
	free(bl);
}

static int read_identity(struct custom_bl *c, int slot, struct tnd_slot_id *id)
{
	char name[24], v[OUT_MAX + 1];
	int ret;

	snprintf(name, sizeof(name), "TANDEM_%s_IMAGE", tnd_slot_name(slot));
	memset(id, 0, sizeof(*id));
	if ((ret = get_env(c, name, v, sizeof(v))))
		return ret;
	return tnd_slot_id_parse(name, v, id);
}

static int custom_read(struct tnd_bootloader *bl, struct tnd_boot_state *bs)
{
	struct custom_bl *c = (struct custom_bl *)bl;
	const char *args[] = {"get-primary", NULL};
	char out[OUT_MAX + 1], v[OUT_MAX + 1];
	int ret, primary;

	memset(bs, 0, sizeof(*bs));
	if ((ret = call_ok(c, args, out)) || (ret = answer_slot(c, "get-primary", out, &primary)))
		return ret;
	bs->order[0] = primary;
	bs->order[1] = 1 - primary;
	bs->norder = 2;
	for (int i = 0; i < TND_NSLOTS; i++) {
		bool good = false;

		if ((ret = get_state(c, i, &good)))
			return ret;
		bs->tries[i] = good ? bl->cfg->boot_tries : 0;
	}
	if ((ret = get_env(c, "TANDEM_SECURITY_FLOOR", v, sizeof(v))))
		return ret;
	/* A damaged floor fails closed, as on the other backends. */
	if (v[0] && (tnd_parse_u64(v, &bs->floor) || bs->floor > UINT32_MAX))
		return tnd_err_set(TND_E_BOOTLOADER,
				   "TANDEM_SECURITY_FLOOR=\"%.40s\" is not a security version", v);
	for (int i = 0; i < TND_NSLOTS; i++)
		if ((ret = read_identity(c, i, &bs->id[i])))
			return ret;
	return 0;
}

static int set_state(struct custom_bl *c, int slot, bool good)
{
	const char *args[] = {"set-state", tnd_slot_name(slot), good ? "good" : "bad", NULL};
	char out[OUT_MAX + 1];

	return call_ok(c, args, out);
}

static bool same_id(const struct tnd_slot_id *a, const struct tnd_slot_id *b)
{
	return a->kind == b->kind &&
	       (a->kind != TND_ID_VALID || (a->security_version == b->security_version &&
					    !memcmp(a->sha256, b->sha256, TND_SHA256_LEN)));
}

static int custom_write(struct tnd_bootloader *bl, const struct tnd_boot_state *bs)
{
	struct custom_bl *c = (struct custom_bl *)bl;
	struct tnd_boot_state cur;
	char v[TND_ID_VAR_MAX], name[24];
	int ret;

	if (!bs->norder)
		return tnd_err_set(TND_E_INTERNAL, "custom: an empty boot order");
	if ((ret = custom_read(bl, &cur)))
		return ret;
	/* 1. Slots that become bad: before anything could make them boot. */
	for (int i = 0; i < TND_NSLOTS; i++)
		if (!bs->tries[i] && cur.tries[i] && (ret = set_state(c, i, false)))
			return ret;
	/* 2. The floor and what each slot holds. */
	if (bs->floor != cur.floor) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)bs->floor);
		if ((ret = set_env(c, "TANDEM_SECURITY_FLOOR", v)))
			return ret;
	}
	for (int i = 0; i < TND_NSLOTS; i++) {
		const struct tnd_slot_id *s = &bs->id[i];

		if (same_id(s, &cur.id[i]))
			continue;
		snprintf(name, sizeof(name), "TANDEM_%s_IMAGE", tnd_slot_name(i));
		tnd_slot_id_format(s, v);
		if ((ret = set_env(c, name, v)))
			return ret;
	}
	/* 3. The primary, then 4. the slots that become good. */
	if (bs->order[0] != cur.order[0]) {
		const char *args[] = {"set-primary", tnd_slot_name(bs->order[0]), NULL};
		char out[OUT_MAX + 1];

		if ((ret = call_ok(c, args, out)))
			return ret;
	}
	for (int i = 0; i < TND_NSLOTS; i++)
		if (bs->tries[i] && !cur.tries[i] && (ret = set_state(c, i, true)))
			return ret;
	return 0;
}

static int custom_raw(struct tnd_bootloader *bl, struct tnd_bl_var *vars, size_t max, size_t *n)
{
	struct custom_bl *c = (struct custom_bl *)bl;
	const char *args[] = {"get-current", NULL};
	struct tnd_boot_state bs;
	char out[OUT_MAX + 1];

	*n = 0;
	if (max < 4 || custom_read(bl, &bs))
		return 0;
	snprintf(vars[0].name, sizeof(vars[0].name), "primary");
	snprintf(vars[0].value, sizeof(vars[0].value), "%s", tnd_slot_name(bs.order[0]));
	for (int i = 0; i < TND_NSLOTS; i++) {
		snprintf(vars[1 + i].name, sizeof(vars[1 + i].name), "%s", tnd_slot_name(i));
		snprintf(vars[1 + i].value, sizeof(vars[1 + i].value), "%s",
			 bs.tries[i] ? "good" : "bad");
	}
	*n = 3;
	/* get-current is optional in RAUC's interface */
	if (!call_ok(c, args, out)) {
		snprintf(vars[3].name, sizeof(vars[3].name), "current");
		snprintf(vars[3].value, sizeof(vars[3].value), "%.40s", out);
		*n = 4;
	}
	tnd_err_clear();
	return 0;
}

const struct tnd_bootloader_ops tnd_bl_custom_ops = {
    .name = "custom",
    .switches = true,
    .open = custom_open,
    .open_init = custom_open_init,
    .close = custom_close,
    .read = custom_read,
    .write = custom_write,
    .raw = custom_raw,
};
