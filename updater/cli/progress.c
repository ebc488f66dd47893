// SPDX-License-Identifier: MIT
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util.h"

void tnd_progress_init(struct tnd_progress *p, enum tnd_progress_mode mode)
{
	memset(p, 0, sizeof(*p));
	if (mode == TND_PROGRESS_AUTO) {
#ifdef CONFIG_PROGRESS_TTY
		mode = isatty(STDERR_FILENO) ? TND_PROGRESS_TTY : TND_PROGRESS_NONE;
#else
		mode = TND_PROGRESS_NONE;
#endif
	}
	p->mode = mode;
	p->start = tnd_now_mono();
}

int tnd_progress_parse_mode(const char *s, enum tnd_progress_mode *mode)
{
	if (!strcmp(s, "json"))
		*mode = TND_PROGRESS_JSON;
	else if (!strcmp(s, "tty") || !strcmp(s, "bar"))
		*mode = TND_PROGRESS_TTY;
	else if (!strcmp(s, "none"))
		*mode = TND_PROGRESS_NONE;
	else if (!strcmp(s, "auto"))
		*mode = TND_PROGRESS_AUTO;
	else
		return tnd_err_set(TND_E_USAGE, "--progress must be auto, tty, json or none");
	return 0;
}

/* Strings in events come from errors and manifests: let cJSON escape them. */
static void print_json_event(cJSON *ev)
{
	char *s = cJSON_PrintUnformatted(ev);

	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	cJSON_free(s);
	cJSON_Delete(ev);
}

static cJSON *new_event(struct tnd_progress *p, const char *name)
{
	cJSON *ev = cJSON_CreateObject();

	cJSON_AddStringToObject(ev, "event", name);
	cJSON_AddNumberToObject(ev, "elapsed",
				(double)(long)((tnd_now_mono() - p->start) * 1000) / 1000);
	return ev;
}

static void clear_bar(struct tnd_progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		p->drawn = false;
	}
}

void tnd_progress_phase(struct tnd_progress *p, const char *phase, const char *detail)
{
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	if (p->mode == TND_PROGRESS_JSON) {
		cJSON *ev = new_event(p, "phase");

		cJSON_AddStringToObject(ev, "phase", phase);
		if (detail)
			cJSON_AddStringToObject(ev, "detail", detail);
		print_json_event(ev);
	} else if (p->mode == TND_PROGRESS_TTY && detail) {
		clear_bar(p);
		fprintf(stderr, "%s: %s\n", phase, detail);
	}
}

void tnd_progress_update(void *ctx, const struct tnd_pipeline_stats *st)
{
	struct tnd_progress *p = ctx;
	double now = tnd_now_mono(), secs = now - p->start;
	double rate = secs > 0 ? (double)st->written / secs : 0;
	bool last = st->chunk == st->chunks && st->written == st->image_size;

	if (p->mode == TND_PROGRESS_NONE || (now - p->last < 0.2 && !last))
		return;
	p->last = now;
	if (p->mode == TND_PROGRESS_JSON) {
		cJSON *ev = new_event(p, "progress");

		cJSON_AddStringToObject(ev, "phase", p->phase);
		cJSON_AddNumberToObject(ev, "received", (double)st->received);
		cJSON_AddNumberToObject(ev, "verified", (double)st->verified);
		cJSON_AddNumberToObject(ev, "written", (double)st->written);
		cJSON_AddNumberToObject(ev, "total", (double)st->image_size);
		cJSON_AddNumberToObject(ev, "chunk", (double)st->chunk);
		cJSON_AddNumberToObject(ev, "chunks", (double)st->chunks);
		cJSON_AddNumberToObject(ev, "rate", (double)(uint64_t)rate);
		print_json_event(ev);
	} else {
		double frac = st->image_size ? (double)st->written / (double)st->image_size : 1;
		int width = 30, fill = (int)(frac * width);
		char bar[32];

		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(width - fill));
		bar[width] = '\0';
		fprintf(stderr, "\r\033[K%s [%s] %3d%% %7.1f/%.1f MiB %6.1f MiB/s", p->phase, bar,
			(int)(frac * 100), (double)st->written / 1048576.0,
			(double)st->image_size / 1048576.0, rate / 1048576.0);
		p->drawn = true;
	}
}

void tnd_progress_error(struct tnd_progress *p, int code, const char *msg)
{
	if (p->mode == TND_PROGRESS_JSON) {
		cJSON *ev = new_event(p, "error");

		cJSON_AddStringToObject(ev, "phase", p->phase);
		cJSON_AddStringToObject(ev, "code", tnd_err_name(code));
		cJSON_AddStringToObject(ev, "message", msg);
		print_json_event(ev);
	} else {
		clear_bar(p);
	}
}

void tnd_progress_done(struct tnd_progress *p, const char *json_fields)
{
	if (p->mode == TND_PROGRESS_JSON) {
		cJSON *ev = new_event(p, "done");
		cJSON *extra = json_fields ? cJSON_Parse(json_fields) : NULL;

		for (cJSON *it = extra ? extra->child : NULL; it;) {
			cJSON *next = it->next;

			cJSON_AddItemToObject(ev, it->string,
					      cJSON_DetachItemViaPointer(extra, it));
			it = next;
		}
		cJSON_Delete(extra);
		print_json_event(ev);
	} else if (p->mode == TND_PROGRESS_TTY && p->drawn) {
		fputc('\n', stderr);
		p->drawn = false;
	}
}

static void on_phase(void *ctx, const char *phase, const char *detail)
{
	tnd_progress_phase(ctx, phase, detail);
}

struct tnd_events tnd_progress_events(struct tnd_progress *p)
{
	return (struct tnd_events){.phase = on_phase, .progress = tnd_progress_update, .ctx = p};
}
