// SPDX-License-Identifier: MIT
/*
 * tandem-image send: pushes a bundle over a serial line to `tandem
 * receive` on a device, with the link protocol of lib/link.h
 * (docs/serial.md). One thread, one poll() loop: the bundle is a regular
 * file, so any frame can be re-read for a retransmission.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "crypto.h"
#include "image_tools.h"
#include "digest.h"
#include "link.h"
#include "log.h"
#include "util.h"

#define HELLO_RETRY  0.5 /* first HELLO repeat; doubles up to 2 s */
#define DEAD_AFTER   1.0 /* silence that makes the line look dead (receiver ACKs every 0.25 s) */
#define REOPEN_EVERY 0.5 /* retry opening a device that went away */
#define REPORT_EVERY 0.5 /* progress events */
#define FIN_REPEAT   2

enum phase { PH_HELLO, PH_DATA, PH_RESULT, PH_END };

struct sender {
	const char *dev, *path;
	unsigned baud;
	double timeout;
	int json, progress_json, progress_tty;

	int fd, bfd;
	uint64_t total;
	uint8_t sha256[TND_SHA256_LEN];
	uint32_t session;
	enum phase phase;

	struct tnd_link_parser parser;
	struct tnd_link_txwin win;
	uint8_t out[TND_LINK_MAX_FRAME];
	size_t out_len, out_pos;

	double byte_time; /* seconds per byte on the wire: 10 bits (8N1) / baud */
	double wire;	  /* when the last byte written will have left the wire */
	double lead;	  /* how far ahead of the wire writes may run */
	double t0, t_data, t_acked, last_heard, next_hello, hello_gap, next_report, next_open;
	bool dead;
	double dead_since;

	uint64_t resume_offset, frames, data_bytes_on_wire, stalls;
	cJSON *resumes;
	cJSON *result; /* the device's DONE payload */
	int abort_code;
	char abort_msg[TND_ERR_MSG_MAX];
};

static void usage(FILE *f)
{
	fputs("Usage: tandem-image send --serial DEV [--baud B] [--json] [--progress=MODE]\n"
	      "                         [--timeout S] BUNDLE\n"
	      "\n"
	      "Sends BUNDLE over a serial line to `tandem receive` on a device, which\n"
	      "installs it as it arrives (nothing is stored on the device). Frames carry\n"
	      "CRC-32s, are acknowledged in a sliding window and retransmitted; a line\n"
	      "that goes dead (cable pulled) is probed until it comes back, and the\n"
	      "transfer resumes where the device stopped. Exits 0 once the device reports\n"
	      "the bundle installed; with the device's error and exit status otherwise.\n"
	      "\n"
	      "Options:\n"
	      "  --serial DEV      serial device, e.g. /dev/ttyUSB0\n"
	      "  --baud B          line rate (default 115200; standard rates up to 4000000)\n"
	      "  --json            print a summary (throughput, retransmissions, the\n"
	      "                    device's result) as one JSON object on stdout\n"
	      "  --progress=MODE   auto (a line on a terminal), tty, json (JSON lines on\n"
	      "                    stdout), none\n"
	      "  --timeout S       give up after S seconds without a word from the device\n"
	      "                    (default 300; 0 waits forever)\n",
	      f);
}

static void event(struct sender *s, cJSON *ev)
{
	char *txt;

	if (!ev)
		return;
	cJSON_AddNumberToObject(ev, "elapsed", tnd_now_mono() - s->t0);
	txt = cJSON_PrintUnformatted(ev);
	if (txt) {
		puts(txt);
		fflush(stdout);
	}
	free(txt);
	cJSON_Delete(ev);
}

static cJSON *new_event(const char *name)
{
	cJSON *ev = cJSON_CreateObject();

	if (ev)
		cJSON_AddStringToObject(ev, "event", name);
	return ev;
}

static void report(struct sender *s, double now, bool force)
{
	double secs = now - s->t_data, rate;

	if (!force && now < s->next_report)
		return;
	s->next_report = now + REPORT_EVERY;
	rate = secs > 0 ? (double)(s->win.taken - s->resume_offset) / secs : 0;
	if (s->progress_json) {
		cJSON *ev = new_event("progress");

		cJSON_AddNumberToObject(ev, "acked", (double)s->win.taken);
		cJSON_AddNumberToObject(ev, "received", (double)s->win.next);
		cJSON_AddNumberToObject(ev, "total", (double)s->total);
		cJSON_AddNumberToObject(ev, "rate", rate);
		cJSON_AddNumberToObject(ev, "retransmitted_frames", (double)s->win.retransmits);
		event(s, ev);
	} else if (s->progress_tty) {
		fprintf(stderr,
			"\r\033[Ksend %3d%% %7.1f/%.1f KiB %6.1f KiB/s (%.0f%% of the line)",
			s->total ? (int)(100 * s->win.taken / s->total) : 100,
			(double)s->win.taken / 1024, (double)s->total / 1024, rate / 1024,
			100 * rate * s->byte_time);
	}
}

static int open_dev(struct sender *s)
{
	int ret = tnd_link_open_tty(s->dev, s->baud, &s->fd);

	if (ret)
		return ret;
	tnd_link_parser_init(&s->parser);
	s->out_len = s->out_pos = 0;
	s->wire = tnd_now_mono();
	return 0;
}

/* The device node vanished or hung up (USB adapter unplugged): close it
 * and let the loop reopen it, as long as the timeout allows. */
static void lose_dev(struct sender *s, const char *why)
{
	if (s->fd < 0)
		return;
	tnd_warn("%s: %s; reopening", s->dev, why);
	close(s->fd);
	s->fd = -1;
	s->next_open = tnd_now_mono() + REOPEN_EVERY;
}

/* Queues one frame; the caller has checked that the output is empty. */
static void queue_frame(struct sender *s, uint8_t type, uint64_t offset, const uint8_t *payload,
			uint16_t len)
{
	struct tnd_link_frame f = {
	    .type = type, .session = s->session, .offset = offset, .len = len, .payload = payload};
	double now = tnd_now_mono();

	s->out_len = tnd_link_encode(s->out, &f);
	s->out_pos = 0;
	s->wire = (s->wire > now ? s->wire : now) + (double)s->out_len * s->byte_time;
	s->frames++;
}

static void queue_hello(struct sender *s)
{
	uint8_t p[TND_LINK_HELLO_SIZE] = {TND_LINK_VERSION, 0};

	tnd_put_be16(p + 2, TND_LINK_FRAME);
	tnd_put_be64(p + 4, s->total);
	memcpy(p + 12, s->sha256, TND_SHA256_LEN);
	queue_frame(s, TND_LINK_HELLO, 0, p, sizeof(p));
}

static int queue_data(struct sender *s, double now)
{
	uint8_t buf[TND_LINK_FRAME];
	uint64_t off;
	size_t len;
	double wake;
	int ret;

	if (!tnd_link_txwin_next(&s->win, now, s->dead, &off, &len, &wake))
		return 0;
	if ((ret = tnd_pread_full(s->bfd, buf, len, (off_t)off)))
		return tnd_err_errno(TND_E_IO, -ret, "cannot read %s", s->path);
	queue_frame(s, TND_LINK_DATA, off, buf, (uint16_t)len);
	s->data_bytes_on_wire += s->out_len;
	tnd_link_txwin_sent(&s->win, off, now, s->wire);
	return 0;
}

static int flush_out(struct sender *s)
{
	while (s->fd >= 0 && s->out_pos < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_pos, s->out_len - s->out_pos);

		if (n > 0) {
			s->out_pos += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			return 0;
		} else {
			lose_dev(s, n < 0 ? strerror(errno) : "write returned 0");
			return 0;
		}
	}
	if (s->out_pos >= s->out_len)
		s->out_len = s->out_pos = 0;
	return 0;
}

static void on_welcome(struct sender *s, const struct tnd_link_frame *f, double now)
{
	uint64_t next, taken;

	if (s->phase != PH_HELLO || f->len < TND_LINK_WELCOME_SIZE)
		return;
	next = tnd_get_be64(f->payload + 6);
	taken = tnd_get_be64(f->payload + 14);
	if (f->payload[0] != TND_LINK_VERSION || tnd_get_be16(f->payload + 2) != TND_LINK_FRAME ||
	    next > s->total || taken > next || (next % TND_LINK_FRAME && next != s->total))
		return;
	/* A receiver that already holds part of this bundle (an earlier
	 * `send` was interrupted) continues there, not from zero. */
	s->resume_offset = next;
	tnd_link_txwin_init(&s->win, s->total, next, 0.3 + 8 * TND_LINK_FRAME * s->byte_time);
	s->win.taken = taken;
	s->phase = PH_DATA;
	s->t_data = now;
	if (s->progress_json) {
		cJSON *ev = new_event("welcome");

		cJSON_AddNumberToObject(ev, "resume_offset", (double)next);
		event(s, ev);
	}
	if (next)
		tnd_info("device already has %llu of %llu bytes: resuming there",
			 (unsigned long long)next, (unsigned long long)s->total);
}

static void on_abort(struct sender *s, const struct tnd_link_frame *f)
{
	int32_t code = f->len >= 4 ? (int32_t)tnd_get_be32(f->payload) : TND_E_IO;
	size_t n = f->len > 4 ? f->len - 4u : 0;

	if (n >= sizeof(s->abort_msg))
		n = sizeof(s->abort_msg) - 1;
	/* The message is the device's: keep it one printable line. */
	for (size_t i = 0; i < n; i++) {
		uint8_t c = f->payload[4 + i];

		s->abort_msg[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	s->abort_msg[n] = '\0';
	s->abort_code = code < 0 && code >= TND_E_NOT_READY ? code : TND_E_IO;
	s->phase = PH_END;
}

static void on_frame(struct sender *s, const struct tnd_link_frame *f, double now)
{
	if (f->session != s->session)
		return; /* an answer to an earlier sender */
	if (s->dead) {
		s->dead = false;
		if (s->progress_json) {
			cJSON *ev = new_event("resume");

			cJSON_AddNumberToObject(ev, "acked", (double)s->win.taken);
			cJSON_AddNumberToObject(ev, "received", (double)s->win.next);
			cJSON_AddNumberToObject(ev, "stalled_seconds", now - s->dead_since);
			event(s, ev);
		}
		cJSON_AddItemToArray(s->resumes, cJSON_CreateNumber((double)s->win.next));
		tnd_info("line is back after %.1f s: continuing at byte %llu", now - s->dead_since,
			 (unsigned long long)s->win.next);
	}
	s->last_heard = now;
	switch (f->type) {
	case TND_LINK_WELCOME:
		on_welcome(s, f, now);
		break;
	case TND_LINK_ACK:
		if (s->phase == PH_DATA && f->len >= TND_LINK_ACK_SIZE) {
			tnd_link_txwin_ack(&s->win, f->offset, tnd_get_be64(f->payload),
					   tnd_get_be64(f->payload + 8), now);
			if (tnd_get_be64(f->payload + 16) != TND_LINK_NO_NAK)
				tnd_link_txwin_nak(&s->win, tnd_get_be64(f->payload + 16), now);
			if (tnd_link_txwin_done(&s->win)) {
				s->t_acked = now;
				s->phase = PH_RESULT;
				report(s, now, true);
			}
		}
		break;
	case TND_LINK_DONE:
		if (s->phase != PH_DATA && s->phase != PH_RESULT)
			break;
		cJSON_Delete(s->result);
		s->result = cJSON_ParseWithLength((const char *)f->payload, f->len);
		if (!s->t_acked)
			s->t_acked = now;
		s->phase = PH_END;
		break;
	case TND_LINK_ABORT:
		on_abort(s, f);
		break;
	default:
		break;
	}
}

static void read_dev(struct sender *s, double now)
{
	uint8_t buf[4096];
	struct tnd_link_frame f;

	while (s->fd >= 0 && s->phase != PH_END) {
		ssize_t n = read(s->fd, buf, sizeof(buf));
		size_t used = 0;

		/* Raw mode with VMIN 0: an empty queue reads as 0, not EAGAIN. */
		if (n == 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
			return;
		if (n < 0) {
			lose_dev(s, strerror(errno));
			return;
		}
		while (used < (size_t)n) {
			used += tnd_link_parser_feed(&s->parser, buf + used, (size_t)n - used);
			while (s->phase != PH_END && tnd_link_parser_next(&s->parser, &f))
				on_frame(s, &f, now);
		}
	}
}

/* Decides what to write next and how long poll() may sleep. */
static int plan(struct sender *s, double now, double *sleep)
{
	double wake = now + 0.1, w = 0;
	int ret;

	if (s->fd < 0) {
		*sleep = s->next_open - now;
		return 0;
	}
	if (s->phase == PH_HELLO && !s->out_len && now >= s->next_hello) {
		queue_hello(s);
		s->next_hello = now + s->hello_gap;
		s->hello_gap = s->hello_gap * 2 < 2.0 ? s->hello_gap * 2 : 2.0;
	}
	if (s->phase == PH_HELLO)
		wake = s->next_hello;
	if (s->phase == PH_DATA && !s->dead && now - s->last_heard > DEAD_AFTER) {
		s->dead = true;
		s->dead_since = s->last_heard;
		s->stalls++;
		if (s->progress_json) {
			cJSON *ev = new_event("stall");

			cJSON_AddNumberToObject(ev, "acked", (double)s->win.taken);
			cJSON_AddNumberToObject(ev, "received", (double)s->win.next);
			event(s, ev);
		}
		tnd_warn("no answer from the device for %.1f s: probing the line", DEAD_AFTER);
	}
	/* Keep no more than `lead` seconds of data queued ahead of the wire:
	 * a retransmission then goes out promptly, not behind the queue. */
	if (s->phase == PH_DATA && !s->out_len) {
		if (s->wire - now < s->lead) {
			if ((ret = queue_data(s, now)))
				return ret;
			if (!s->out_len) {
				double wk;
				uint64_t o;
				size_t l;

				tnd_link_txwin_next(&s->win, now, s->dead, &o, &l, &wk);
				w = wk;
			}
		} else {
			w = s->wire - s->lead;
		}
	}
	if (w > 0 && w < wake)
		wake = w;
	/* Something queued: write it, then come straight back for more. */
	*sleep = s->out_len ? 0 : wake - now;
	return 0;
}

static int run(struct sender *s)
{
	double now;
	int ret;

	s->t0 = s->last_heard = s->next_hello = tnd_now_mono();
	s->hello_gap = HELLO_RETRY;
	while (s->phase != PH_END) {
		struct pollfd pfd;
		double sleep;

		now = tnd_now_mono();
		if (s->timeout > 0 && now - s->last_heard > s->timeout)
			return tnd_err_set(
			    TND_E_IO, "no answer from the device on %s for %.0f s%s", s->dev,
			    s->timeout,
			    s->phase == PH_HELLO
				? " (is `tandem receive` running there, at this baud rate?)"
				: "");
		if (s->fd < 0 && now >= s->next_open) {
			if (open_dev(s))
				s->next_open = now + REOPEN_EVERY;
			else
				tnd_info("%s is back", s->dev);
		}
		if ((ret = plan(s, now, &sleep)))
			return ret;
		if (s->fd < 0) {
			usleep((useconds_t)(sleep > 0 ? sleep * 1e6 : 1000));
			continue;
		}
		flush_out(s);
		if (s->fd < 0)
			continue;
		if (s->phase == PH_DATA)
			report(s, now, false);
		pfd = (struct pollfd){.fd = s->fd, .events = POLLIN | (s->out_len ? POLLOUT : 0)};
		if (s->out_len) /* the line is full: wait until it takes more */
			sleep = 0.1;
		if (poll(&pfd, 1, sleep > 0 ? (int)(sleep * 1000) + 1 : 0) < 0 && errno != EINTR)
			return tnd_err_errno(TND_E_IO, errno, "poll on %s", s->dev);
		if (pfd.revents & (POLLIN | POLLERR))
			read_dev(s, tnd_now_mono());
		if (pfd.revents & POLLHUP)
			lose_dev(s, "hung up");
		if (pfd.revents & POLLOUT)
			flush_out(s);
	}
	if (s->progress_tty)
		fputc('\n', stderr);
	/* Tell the device its result arrived, so it stops repeating it. */
	for (int i = 0; i < FIN_REPEAT && s->fd >= 0; i++) {
		queue_frame(s, TND_LINK_FIN, 0, NULL, 0);
		for (int tries = 0; s->out_len && tries < 100 && s->fd >= 0; tries++) {
			flush_out(s);
			if (s->out_len)
				usleep(10000);
		}
	}
	if (s->fd >= 0)
		tcdrain(s->fd);
	return 0;
}

static cJSON *summary(struct sender *s)
{
	cJSON *o = cJSON_CreateObject();
	double secs = s->t_acked > s->t_data ? s->t_acked - s->t_data : 0;
	double rate = secs > 0 ? (double)(s->total - s->resume_offset) / secs : 0;

	cJSON_AddStringToObject(o, "device", s->dev);
	cJSON_AddNumberToObject(o, "baud", s->baud);
	cJSON_AddNumberToObject(o, "bytes", (double)s->total);
	cJSON_AddNumberToObject(o, "resume_offset", (double)s->resume_offset);
	cJSON_AddNumberToObject(o, "seconds", tnd_now_mono() - s->t0);
	cJSON_AddNumberToObject(o, "transfer_seconds", secs);
	cJSON_AddNumberToObject(o, "rate", rate);
	cJSON_AddNumberToObject(o, "line_rate", 1.0 / s->byte_time);
	cJSON_AddNumberToObject(o, "efficiency", rate * s->byte_time);
	cJSON_AddNumberToObject(o, "frames_sent", (double)s->frames);
	cJSON_AddNumberToObject(o, "data_bytes_on_wire", (double)s->data_bytes_on_wire);
	cJSON_AddNumberToObject(o, "retransmitted_frames", (double)s->win.retransmits);
	cJSON_AddNumberToObject(o, "fast_retransmits", (double)s->win.fast_retransmits);
	cJSON_AddNumberToObject(o, "bad_frames_received",
				(double)(s->parser.hdr_errors + s->parser.crc_errors));
	cJSON_AddNumberToObject(o, "stalls", (double)s->stalls);
	cJSON_AddItemToObject(o, "resumed_at", s->resumes);
	s->resumes = NULL;
	if (s->result) {
		cJSON_AddItemToObject(o, "result", s->result);
		s->result = NULL;
	}
	return o;
}

static int prepare_bundle(struct sender *s)
{
	struct tnd_sha256 h;
	struct stat st;
	int ret;

	s->bfd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->bfd < 0)
		return tnd_err_errno(errno == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, errno,
				     "cannot open %s", s->path);
	if (fstat(s->bfd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0)
		return tnd_err_set(TND_E_USAGE, "%s is not a non-empty regular file", s->path);
	s->total = (uint64_t)st.st_size;
	/* The hash names the bundle, so that a receiver holding part of it
	 * from an interrupted send can tell that this is the same one. */
	tnd_sha256_init(&h);
	ret = tnd_digest_fd(s->bfd, s->total, s->path, TND_E_IO, &h, NULL, NULL);
	tnd_sha256_final(&h, s->sha256);
	if (ret)
		return ret;
	while (!s->session && getrandom(&s->session, sizeof(s->session), 0) != sizeof(s->session))
		if (errno != EINTR)
			return tnd_err_errno(TND_E_CRYPTO, errno, "getrandom");
	return 0;
}

static int parse_args(struct sender *s, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"serial", required_argument, NULL, 'd'},
	    {"baud", required_argument, NULL, 'b'},
	    {"json", no_argument, NULL, 'j'},
	    {"progress", required_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *mode = "auto";
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			s->dev = optarg;
			break;
		case 'b':
			if (tnd_parse_u64(optarg, &v) || !tnd_link_baud_ok((unsigned)v) ||
			    v > 4000000)
				return tnd_err_set(TND_E_USAGE,
						   "--baud: '%s' is not a standard rate "
						   "(1200 to 4000000)",
						   optarg);
			s->baud = (unsigned)v;
			break;
		case 'j':
			s->json = 1;
			break;
		case 'p':
			mode = optarg;
			break;
		case 't':
			if (tnd_parse_u64(optarg, &v) || v > 86400)
				return tnd_err_set(TND_E_USAGE,
						   "--timeout takes seconds (0..86400)");
			s->timeout = (double)v;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (!strcmp(mode, "json"))
		s->progress_json = 1;
	else if (!strcmp(mode, "tty") || (!strcmp(mode, "auto") && isatty(STDERR_FILENO)))
		s->progress_tty = 1;
	else if (strcmp(mode, "none") && strcmp(mode, "auto"))
		return tnd_err_set(TND_E_USAGE, "--progress must be auto, tty, json or none");
	if (!s->dev)
		return tnd_err_set(TND_E_USAGE, "send needs --serial DEV");
	if (optind + 1 != argc)
		return tnd_err_set(TND_E_USAGE, "send takes one BUNDLE");
	s->path = argv[optind];
	return 0;
}

int cmd_send(int argc, char **argv)
{
	struct sender s = {.baud = 115200, .timeout = 300, .fd = -1, .bfd = -1};
	cJSON *sum;
	int ret;

	if ((ret = parse_args(&s, argc, argv)))
		return ret > 0 ? 0 : ret;
	s.byte_time = 10.0 / s.baud;
	/* Ahead of the wire by 4 frames or 20 ms, whichever is longer. */
	s.lead = 4 * (TND_LINK_FRAME + 26) * s.byte_time;
	if (s.lead < 0.02)
		s.lead = 0.02;
	s.resumes = cJSON_CreateArray();
	if ((ret = prepare_bundle(&s)) || (ret = open_dev(&s)))
		goto out;
	if (s.progress_json) {
		cJSON *ev = new_event("hello");

		cJSON_AddStringToObject(ev, "device", s.dev);
		cJSON_AddNumberToObject(ev, "baud", s.baud);
		cJSON_AddNumberToObject(ev, "size", (double)s.total);
		s.t0 = tnd_now_mono();
		event(&s, ev);
	}
	tnd_debug("session %08x, %llu bytes", s.session, (unsigned long long)s.total);
	if ((ret = run(&s)))
		goto out;
	if (s.abort_code) {
		ret = tnd_err_set(s.abort_code, "device: %s", s.abort_msg);
		goto out;
	}
	sum = summary(&s);
	if (s.progress_json) {
		cJSON_AddStringToObject(sum, "event", "done");
		event(&s, cJSON_Duplicate(sum, 1));
		cJSON_DeleteItemFromObject(sum, "event");
	}
	if (s.json) {
		char *txt = cJSON_Print(sum);

		if (txt)
			puts(txt);
		free(txt);
	}
	if (!s.json && !s.progress_json)
		tnd_info("sent %llu bytes in %.1f s (%.0f%% of the line rate); device installed it",
			 (unsigned long long)s.total,
			 cJSON_GetNumberValue(cJSON_GetObjectItem(sum, "transfer_seconds")),
			 100 * cJSON_GetNumberValue(cJSON_GetObjectItem(sum, "efficiency")));
	cJSON_Delete(sum);
out:
	if (ret && s.progress_json) {
		cJSON *ev = new_event("error");

		cJSON_AddStringToObject(ev, "code", tnd_err_name(ret));
		cJSON_AddStringToObject(ev, "message", tnd_err_msg());
		event(&s, ev);
	}
	if (s.fd >= 0)
		close(s.fd);
	if (s.bfd >= 0)
		close(s.bfd);
	cJSON_Delete(s.resumes);
	cJSON_Delete(s.result);
	return ret;
}
