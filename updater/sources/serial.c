// SPDX-License-Identifier: MIT
/*
 * The device side of the serial link. Two threads meet here:
 *  - the link thread owns the serial port: it parses frames, stores data
 *    in the receive window, acknowledges, and at the end repeats the
 *    install's result until the sender confirms it (FIN);
 *  - the install thread (tnd_install's reader) pulls bytes out of the
 *    window through struct tnd_source's read().
 * Acknowledgements carry `taken`, the bytes read() has handed to the
 * install path, so the sender's window is the receiver's free buffer and
 * the sender learns that the install consumed everything before it waits
 * for the result.
 */
#include "serial.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "slot.h"
#include "util.h"

#define ACK_MIN_GAP   0.02 /* ACK for read() progress at most this often */
#define KEEPALIVE     0.25 /* ACK at least this often: the sender's sign of life */
#define RESULT_REPEAT 0.5  /* repeat DONE/ABORT until FIN ... */
#define RESULT_LINGER 5.0  /* ... for at most this long */
#define RESULT_MAX    2048

struct receiver {
	struct tnd_source src; /* handed to tnd_install; read() below */
	const char *dev;
	unsigned baud;
	double timeout;
	int fd;
	volatile sig_atomic_t *cancel;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* under mu */
	bool in_session;
	uint32_t session;
	uint8_t sha256[TND_SHA256_LEN];
	struct tnd_link_rxwin *win;
	int err; /* the link failed: read() returns it */
	char errmsg[TND_ERR_MSG_MAX];
	bool finishing, stop, fin;
	int result_code; /* 0: DONE with result; else ABORT */
	char result[RESULT_MAX];

	/* link thread only */
	struct tnd_link_parser parser;
	double started, last_heard, last_ack, last_result, finish_start;
	uint64_t acked, data_frames, duplicates, refused, sessions;
};

#define RECEIVER(s) ((struct receiver *)((char *)(s)-offsetof(struct receiver, src)))

/* Writes one whole frame; a frame cut short is only noise to the peer,
 * so after 100 ms of a full output queue the rest is dropped. */
static void send_frame(struct receiver *r, uint8_t type, uint64_t offset, const uint8_t *payload,
		       uint16_t len, uint32_t session)
{
	uint8_t buf[TND_LINK_MAX_FRAME];
	struct tnd_link_frame f = {
	    .type = type, .session = session, .offset = offset, .len = len, .payload = payload};
	size_t n = tnd_link_encode(buf, &f), done = 0;
	int waits = 0;

	while (done < n) {
		ssize_t w = write(r->fd, buf + done, n - done);

		if (w > 0) {
			done += (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EINTR) && waits++ < 10) {
			struct pollfd p = {.fd = r->fd, .events = POLLOUT};

			poll(&p, 1, 10);
		} else {
			return;
		}
	}
}

/* Called with mu held. nak: a frame that arrived damaged, or
 * TND_LINK_NO_NAK. */
static void send_ack(struct receiver *r, double now, uint64_t nak)
{
	uint8_t p[TND_LINK_ACK_SIZE];

	tnd_put_be64(p, r->win->next);
	tnd_put_be64(p + 8, tnd_link_rxwin_sack(r->win));
	tnd_put_be64(p + 16, nak);
	send_frame(r, TND_LINK_ACK, r->win->taken, p, sizeof(p), r->session);
	r->acked = r->win->taken;
	r->last_ack = now;
}

static void send_welcome(struct receiver *r, uint32_t session)
{
	uint8_t p[TND_LINK_WELCOME_SIZE] = {TND_LINK_VERSION, 0};

	tnd_put_be16(p + 2, TND_LINK_FRAME);
	tnd_put_be16(p + 4, TND_LINK_WINDOW);
	tnd_put_be64(p + 6, r->win->next);
	tnd_put_be64(p + 14, r->win->taken);
	send_frame(r, TND_LINK_WELCOME, 0, p, sizeof(p), session);
}

static void send_abort(struct receiver *r, uint32_t session, int code, const char *msg)
{
	uint8_t p[4 + TND_ERR_MSG_MAX];
	size_t n = strlen(msg);

	if (n > TND_ERR_MSG_MAX)
		n = TND_ERR_MSG_MAX;
	tnd_put_be32(p, (uint32_t)code);
	memcpy(p + 4, msg, n);
	send_frame(r, TND_LINK_ABORT, 0, p, (uint16_t)(4 + n), session);
}

/* Called with mu held. */
static void send_result(struct receiver *r, uint32_t session, double now)
{
	if (r->result_code)
		send_abort(r, session, r->result_code, r->result);
	else
		send_frame(r, TND_LINK_DONE, r->win->total, (const uint8_t *)r->result,
			   (uint16_t)strlen(r->result), session);
	r->last_result = now;
}

static void link_fail(struct receiver *r, int code, const char *msg)
{
	if (r->err)
		return;
	r->err = code;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", msg);
	pthread_cond_broadcast(&r->cv);
}

/* Called with mu held. */
static void on_hello(struct receiver *r, const struct tnd_link_frame *f)
{
	const uint8_t *p = f->payload;
	uint64_t total;
	char msg[160];

	if (f->len < TND_LINK_HELLO_SIZE)
		return;
	total = tnd_get_be64(p + 4);
	if (p[0] != TND_LINK_VERSION || tnd_get_be16(p + 2) != TND_LINK_FRAME || !total) {
		send_abort(r, f->session, TND_E_UNSUPPORTED,
			   "link protocol version or frame size not supported by this receiver");
		return;
	}
	if (!r->in_session && !r->finishing) {
		r->in_session = true;
		r->session = f->session;
		r->sessions++;
		memcpy(r->sha256, p + 12, TND_SHA256_LEN);
		tnd_link_rxwin_init(r->win, total);
		/* The bundle reader refuses a bundle whose header disagrees
		 * with this size before it reads any payload. */
		r->src.size = total;
		tnd_debug("session %08x: %llu bytes", f->session, (unsigned long long)total);
		send_welcome(r, f->session);
		return;
	}
	if (r->in_session && f->session == r->session) {
		if (r->finishing)
			send_result(r, f->session, tnd_now_mono());
		else
			send_welcome(r, f->session); /* our WELCOME was lost */
		return;
	}
	/* A new sender. The same bundle (size and hash) continues where the
	 * previous one stopped; anything else would mix two bundles. */
	if (r->in_session && total == r->win->total && !memcmp(r->sha256, p + 12, TND_SHA256_LEN)) {
		if (r->finishing) {
			send_result(r, f->session, tnd_now_mono());
			return;
		}
		tnd_info("sender restarted: resuming at byte %llu of %llu",
			 (unsigned long long)r->win->next, (unsigned long long)total);
		r->session = f->session;
		r->sessions++;
		send_welcome(r, f->session);
		return;
	}
	if (r->finishing)
		snprintf(msg, sizeof(msg), "this receive has ended: restart `tandem receive`");
	else
		snprintf(msg, sizeof(msg),
			 "busy receiving another bundle (%llu of %llu bytes): stop that sender "
			 "or restart `tandem receive`",
			 (unsigned long long)r->win->taken, (unsigned long long)r->win->total);
	send_abort(r, f->session, TND_E_NOT_READY, msg);
}

/* Called with mu held. */
static void on_frame(struct receiver *r, const struct tnd_link_frame *f, double now)
{
	char msg[TND_ERR_MSG_MAX];
	int ret;

	if (f->type == TND_LINK_HELLO) {
		r->last_heard = now;
		on_hello(r, f);
		return;
	}
	if (!r->in_session || f->session != r->session)
		return; /* a stale sender's frames, still in some buffer */
	r->last_heard = now;
	switch (f->type) {
	case TND_LINK_DATA:
		if (r->finishing) {
			if (now - r->last_result > 0.2)
				send_result(r, r->session, now);
			break;
		}
		ret = tnd_link_rxwin_put(r->win, f->offset, f->payload, f->len);
		r->data_frames++;
		if (ret == 0)
			r->duplicates++;
		else if (ret < 0)
			r->refused++;
		else
			pthread_cond_broadcast(&r->cv);
		send_ack(r, now, TND_LINK_NO_NAK);
		break;
	case TND_LINK_FIN:
		if (r->finishing)
			r->fin = true;
		break;
	case TND_LINK_ABORT:
		if (r->finishing)
			break;
		snprintf(msg, sizeof(msg), "the sender aborted the transfer: %.*s",
			 f->len > 4 ? (int)(f->len - 4) : 0, (const char *)f->payload + 4);
		link_fail(r, TND_E_CANCELLED, msg);
		break;
	default:
		break;
	}
}

/* Called with mu held: acknowledgements that no data frame triggered,
 * the result's repetition, and the silence timeout. */
static void on_timer(struct receiver *r, double now)
{
	char msg[160];

	if (r->finishing) {
		if (!r->in_session || r->fin || now - r->finish_start > RESULT_LINGER)
			r->stop = true;
		else if (now - r->last_result >= RESULT_REPEAT)
			send_result(r, r->session, now);
		return;
	}
	if (r->in_session && ((r->win->taken != r->acked && now - r->last_ack >= ACK_MIN_GAP) ||
			      now - r->last_ack >= KEEPALIVE))
		send_ack(r, now, TND_LINK_NO_NAK);
	if (r->timeout > 0 && now - r->last_heard > r->timeout) {
		snprintf(msg, sizeof(msg), "%s on %s for %.0f s",
			 r->in_session ? "the sender went silent" : "no sender appeared", r->dev,
			 r->timeout);
		link_fail(r, TND_E_IO, msg);
	}
}

/* Called with mu held: frames complete in the parser, and a damaged
 * data frame asked for again at once. */
static void drain(struct receiver *r, double now)
{
	struct tnd_link_frame f;

	while (tnd_link_parser_next(&r->parser, &f))
		on_frame(r, &f, now);
	if (!r->parser.bad_pending)
		return;
	r->parser.bad_pending = false;
	if (r->in_session && !r->finishing && r->parser.bad.type == TND_LINK_DATA &&
	    r->parser.bad.session == r->session && r->parser.bad.offset >= r->win->next)
		send_ack(r, now, r->parser.bad.offset);
}

static void *link_main(void *arg)
{
	struct receiver *r = arg;
	/* Part of a frame and then silence: bytes of it were lost. Waiting
	 * for the next frame to complete it would delay the NAK until the
	 * sender's timeout, at the end of a burst. */
	double stall = 0.03 + 3.0 * TND_LINK_MAX_FRAME * 10.0 / r->baud, last_rx = 0;
	uint8_t buf[4096];

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct pollfd p = {.fd = r->fd, .events = POLLIN};
		double now;
		ssize_t n = 0;

		pthread_mutex_unlock(&r->mu);
		if (poll(&p, 1, 20) > 0)
			n = read(r->fd, buf, sizeof(buf));
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			/* A UART does not go away; a pty whose other end
			 * closed does. Keep serving timers, slowly. */
			usleep(100000);
			n = 0;
		}
		now = tnd_now_mono();
		pthread_mutex_lock(&r->mu);
		if (n > 0)
			last_rx = now;
		for (size_t used = 0; used < (size_t)(n > 0 ? n : 0);) {
			used += tnd_link_parser_feed(&r->parser, buf + used, (size_t)n - used);
			drain(r, now);
		}
		if (n <= 0 && now - last_rx > stall)
			while (tnd_link_parser_flush(&r->parser))
				drain(r, now);
		on_timer(r, now);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static ssize_t link_read(struct tnd_source *src, void *buf, size_t len)
{
	struct receiver *r = RECEIVER(src);
	ssize_t n = 0;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct timespec ts;

		if (r->err) {
			n = tnd_err_set(r->err, "%s", r->errmsg);
			break;
		}
		if (r->cancel && *r->cancel) {
			n = tnd_err_set(TND_E_CANCELLED, "interrupted");
			break;
		}
		if (r->in_session && r->win->taken == r->win->total)
			break; /* end of the bundle */
		if (r->in_session && r->win->next > r->win->taken) {
			n = (ssize_t)tnd_link_rxwin_take(r->win, buf, len);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

static int receiver_start(struct receiver *r)
{
	int ret;

	r->win = malloc(sizeof(*r->win));
	if (!r->win)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	tnd_link_rxwin_init(r->win, 0);
	tnd_link_parser_init(&r->parser);
	r->src.read = link_read;
	r->src.fd = -1;
	snprintf(r->src.name, sizeof(r->src.name), "serial %s", r->dev);
	if ((ret = tnd_link_open_tty(r->dev, r->baud, &r->fd)))
		return ret;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->started = r->last_heard = r->last_ack = tnd_now_mono();
	if (pthread_create(&r->thread, NULL, link_main, r)) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		return tnd_err_set(TND_E_NOMEM, "cannot start the link thread");
	}
	r->thread_started = true;
	return 0;
}

/* Hands the install's result to the link thread and waits until the
 * sender confirmed it (or RESULT_LINGER passed). */
static void receiver_finish(struct receiver *r, int code, const char *result)
{
	if (!r->thread_started)
		return;
	pthread_mutex_lock(&r->mu);
	r->finishing = true;
	r->finish_start = tnd_now_mono();
	r->result_code = code;
	snprintf(r->result, sizeof(r->result), "%s", result);
	if (r->in_session)
		send_result(r, r->session, r->finish_start);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	r->thread_started = false;
	if (r->in_session && !r->fin)
		tnd_warn("the sender did not confirm the result within %.0f s", RESULT_LINGER);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
}

static void receiver_close(struct receiver *r)
{
	if (r->thread_started)
		receiver_finish(r, TND_E_INTERNAL, "receiver closed");
	if (r->fd >= 0)
		close(r->fd);
	free(r->win);
}

int tnd_receive(const struct tnd_config *cfg, const struct tnd_receive_opts *o,
		struct tnd_receive_result *res)
{
	struct receiver r = {.dev = o->device,
			     .baud = o->baud ? o->baud : 115200,
			     .timeout = o->timeout,
			     .fd = -1,
			     .cancel = o->install.cancel};
	struct tnd_install_opts io = o->install;
	char hex[TND_SHA256_HEX_LEN];
	int ret;

	memset(res, 0, sizeof(*res));
	if ((ret = receiver_start(&r)))
		goto out;
	if (o->waiting)
		o->waiting(o->waiting_ctx, r.dev, r.baud);
	io.src = &r.src;
	io.source = r.src.name;
	ret = tnd_install(cfg, &io, &res->install);
	if (ret) {
		char msg[TND_ERR_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", tnd_err_msg());
		receiver_finish(&r, ret, msg);
		tnd_err_set(ret, "%s", msg);
		goto out;
	}
	/* The sender's copy of the result (docs/serial.md, "DONE"). */
	tnd_hex_encode(hex, res->install.sha256, TND_SHA256_LEN);
	res->link.bytes = r.win->total;
	res->link.data_frames = r.data_frames;
	res->link.duplicates = r.duplicates;
	res->link.bad_frames = r.parser.hdr_errors + r.parser.crc_errors;
	res->link.sessions = r.sessions;
	snprintf(res->json, sizeof(res->json),
		 "{\"slot\":\"%s\",\"version\":\"%s\",\"sha256\":\"%s\",\"size\":%llu,"
		 "\"activated\":%s,\"seconds\":%.3f,\"link\":{\"bytes\":%llu,\"data_frames\":%llu,"
		 "\"duplicates\":%llu,\"bad_frames\":%llu,\"sessions\":%llu}}",
		 tnd_slot_name(res->install.slot), res->install.version, hex,
		 (unsigned long long)res->install.image_size,
		 res->install.activated ? "true" : "false", res->install.seconds,
		 (unsigned long long)res->link.bytes, (unsigned long long)res->link.data_frames,
		 (unsigned long long)res->link.duplicates, (unsigned long long)res->link.bad_frames,
		 (unsigned long long)res->link.sessions);
	receiver_finish(&r, 0, res->json);
out:
	receiver_close(&r);
	return ret;
}
