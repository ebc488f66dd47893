// SPDX-License-Identifier: MIT
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "chunk.h"
#include "util.h"

/* ------------------------------------------------------------ frames */

size_t tnd_link_encode(uint8_t *out, const struct tnd_link_frame *f)
{
	out[0] = TND_LINK_SYNC0;
	out[1] = TND_LINK_SYNC1;
	out[2] = f->type;
	out[3] = f->flags;
	tnd_put_be32(out + 4, f->session);
	tnd_put_be64(out + 8, f->offset);
	tnd_put_be16(out + 16, f->len);
	tnd_put_be32(out + 18, tnd_crc32(out, 18));
	if (!f->len)
		return TND_LINK_HDR_SIZE;
	memcpy(out + TND_LINK_HDR_SIZE, f->payload, f->len);
	tnd_put_be32(out + TND_LINK_HDR_SIZE + f->len, tnd_crc32(f->payload, f->len));
	return TND_LINK_HDR_SIZE + f->len + TND_LINK_CRC_SIZE;
}

void tnd_link_parser_init(struct tnd_link_parser *p)
{
	memset(p, 0, sizeof(*p));
}

size_t tnd_link_parser_feed(struct tnd_link_parser *p, const uint8_t *data, size_t len)
{
	size_t room;

	if (p->start) {
		memmove(p->buf, p->buf + p->start, p->have - p->start);
		p->have -= p->start;
		p->start = 0;
	}
	room = sizeof(p->buf) - p->have;
	if (len > room)
		len = room;
	memcpy(p->buf + p->have, data, len);
	p->have += len;
	return len;
}

/* Skips to the next sync pair at or after start; keeps a trailing SYNC0,
 * which may be the first half of one. */
static void find_sync(struct tnd_link_parser *p)
{
	size_t i = p->start;

	while (i + 1 < p->have && !(p->buf[i] == TND_LINK_SYNC0 && p->buf[i + 1] == TND_LINK_SYNC1))
		i++;
	if (i + 1 >= p->have && !(i < p->have && p->buf[i] == TND_LINK_SYNC0))
		i = p->have;
	p->garbage += i - p->start;
	p->start = i;
}

static bool header_ok(const uint8_t *h)
{
	return tnd_get_be32(h + 18) == tnd_crc32(h, 18) &&
	       tnd_get_be16(h + 16) <= TND_LINK_MAX_PAYLOAD;
}

static void note_bad(struct tnd_link_parser *p, const uint8_t *h)
{
	p->bad = (struct tnd_link_frame){.type = h[2],
					 .flags = h[3],
					 .session = tnd_get_be32(h + 4),
					 .offset = tnd_get_be64(h + 8),
					 .len = tnd_get_be16(h + 16)};
	p->bad_pending = true;
}

bool tnd_link_parser_flush(struct tnd_link_parser *p)
{
	find_sync(p);
	if (p->start >= p->have)
		return false;
	if (p->have - p->start >= TND_LINK_HDR_SIZE && header_ok(p->buf + p->start)) {
		p->crc_errors++;
		note_bad(p, p->buf + p->start);
	}
	p->start++;
	return true;
}

int tnd_link_parser_next(struct tnd_link_parser *p, struct tnd_link_frame *f)
{
	for (;;) {
		const uint8_t *h;
		size_t len, total;

		find_sync(p);
		if (p->have - p->start < TND_LINK_HDR_SIZE)
			return 0;
		h = p->buf + p->start;
		len = tnd_get_be16(h + 16);
		/* A header is believed only with its CRC; a length beyond the
		 * limit would be a bug in the peer, treated like noise. */
		if (!header_ok(h)) {
			p->hdr_errors++;
			p->start++;
			continue;
		}
		total = TND_LINK_HDR_SIZE + (len ? len + TND_LINK_CRC_SIZE : 0);
		if (p->have - p->start < total)
			return 0;
		/* A bad payload may hide the start of the next frame (a byte
		 * was dropped): resume the scan just after this sync, not
		 * after the frame's declared end. */
		if (len && tnd_get_be32(h + TND_LINK_HDR_SIZE + len) !=
			       tnd_crc32(h + TND_LINK_HDR_SIZE, len)) {
			p->crc_errors++;
			note_bad(p, h);
			p->start++;
			continue;
		}
		f->type = h[2];
		f->flags = h[3];
		f->session = tnd_get_be32(h + 4);
		f->offset = tnd_get_be64(h + 8);
		f->len = (uint16_t)len;
		f->payload = h + TND_LINK_HDR_SIZE;
		p->start += total;
		p->frames++;
		return 1;
	}
}

/* ------------------------------------------------------------ receiver window */

static size_t frame_len(uint64_t total, uint64_t offset)
{
	return total - offset < TND_LINK_FRAME ? (size_t)(total - offset) : TND_LINK_FRAME;
}

static uint64_t frame_bit(uint64_t offset)
{
	return 1ull << ((offset / TND_LINK_FRAME) % TND_LINK_WINDOW);
}

void tnd_link_rxwin_init(struct tnd_link_rxwin *w, uint64_t total)
{
	w->total = total;
	w->taken = w->next = w->have = 0;
}

int tnd_link_rxwin_put(struct tnd_link_rxwin *w, uint64_t offset, const uint8_t *data, size_t len)
{
	if (offset % TND_LINK_FRAME || offset >= w->total || len != frame_len(w->total, offset))
		return -1;
	if (offset < w->next || (w->have & frame_bit(offset)))
		return 0;
	/* Never overwrite what the install path has not taken yet. */
	if (offset + len > w->taken + TND_LINK_WINDOW_SIZE)
		return -1;
	memcpy(w->ring + offset % TND_LINK_WINDOW_SIZE, data, len);
	w->have |= frame_bit(offset);
	while (w->next < w->total && (w->have & frame_bit(w->next))) {
		w->have &= ~frame_bit(w->next);
		w->next += frame_len(w->total, w->next);
	}
	return 1;
}

size_t tnd_link_rxwin_take(struct tnd_link_rxwin *w, uint8_t *buf, size_t len)
{
	size_t n = w->next - w->taken < len ? (size_t)(w->next - w->taken) : len;
	size_t pos = w->taken % TND_LINK_WINDOW_SIZE;
	size_t first = TND_LINK_WINDOW_SIZE - pos < n ? TND_LINK_WINDOW_SIZE - pos : n;

	memcpy(buf, w->ring + pos, first);
	memcpy(buf + first, w->ring, n - first);
	w->taken += n;
	return n;
}

uint64_t tnd_link_rxwin_sack(const struct tnd_link_rxwin *w)
{
	uint64_t sack = 0, off = w->next;

	for (unsigned i = 0; i < TND_LINK_WINDOW - 1; i++) {
		off += frame_len(w->total, off);
		if (off >= w->total)
			break;
		if (w->have & frame_bit(off))
			sack |= 1ull << i;
	}
	return sack;
}

/* ------------------------------------------------------------ sender window */

static struct tnd_link_txframe *txf(struct tnd_link_txwin *w, uint64_t offset)
{
	return &w->f[(offset / TND_LINK_FRAME) % TND_LINK_WINDOW];
}

void tnd_link_txwin_init(struct tnd_link_txwin *w, uint64_t total, uint64_t start, double slack)
{
	memset(w, 0, sizeof(*w));
	w->total = total;
	w->taken = w->next = w->sent = start;
	w->slack = slack;
	w->max_backoff = 4.0;
}

void tnd_link_txwin_ack(struct tnd_link_txwin *w, uint64_t taken, uint64_t next, uint64_t sack,
			double now)
{
	double newest = -1;
	uint64_t off;

	/* An ACK that moves backwards is older than one already seen, and
	 * one beyond what was sent is not about this transfer. */
	if (next < w->next || taken < w->taken || taken > next || next > w->sent)
		return;
	for (off = w->next; off < next; off += frame_len(w->total, off))
		memset(txf(w, off), 0, sizeof(struct tnd_link_txframe));
	w->next = next;
	w->taken = taken;
	if (next >= w->total)
		return;
	off = next;
	for (unsigned i = 0; i < TND_LINK_WINDOW - 1; i++) {
		off += frame_len(w->total, off);
		if (off >= w->sent)
			break;
		if (sack & (1ull << i))
			txf(w, off)->sacked = true;
		if (txf(w, off)->sacked && txf(w, off)->last_tx > newest)
			newest = txf(w, off)->last_tx;
	}
	/* The line keeps order: a frame sent before one that arrived, and
	 * missing, was lost. Resend it now rather than at its deadline. */
	for (off = next; off < w->sent; off += frame_len(w->total, off)) {
		struct tnd_link_txframe *fr = txf(w, off);

		if (!fr->sacked && fr->tries && fr->last_tx < newest && fr->due > now) {
			fr->due = now;
			w->fast_retransmits++;
		}
	}
}

void tnd_link_txwin_nak(struct tnd_link_txwin *w, uint64_t offset, double now)
{
	struct tnd_link_txframe *fr = txf(w, offset);

	if (offset % TND_LINK_FRAME || offset < w->next || offset >= w->sent)
		return;
	/* The NAK may be about an older copy: a newer one is still on the
	 * wire until `leaves`. */
	if (fr->sacked || !fr->tries || now < fr->leaves || fr->due <= now)
		return;
	fr->due = now;
	w->fast_retransmits++;
}

int tnd_link_txwin_next(const struct tnd_link_txwin *w, double now, bool probe_only,
			uint64_t *offset, size_t *len, double *wake)
{
	uint64_t off;

	*wake = 0;
	for (off = w->next; off < w->sent; off += frame_len(w->total, off)) {
		const struct tnd_link_txframe *fr = &w->f[(off / TND_LINK_FRAME) % TND_LINK_WINDOW];

		if (fr->sacked)
			continue;
		if (fr->due <= now) {
			*offset = off;
			*len = frame_len(w->total, off);
			return 1;
		}
		if (!*wake || fr->due < *wake)
			*wake = fr->due;
		if (probe_only)
			return 0;
	}
	if (probe_only || w->sent >= w->total)
		return 0;
	/* The receiver buffers a window beyond what its install path took. */
	if (w->sent + frame_len(w->total, w->sent) > w->taken + TND_LINK_WINDOW_SIZE)
		return 0;
	*offset = w->sent;
	*len = frame_len(w->total, w->sent);
	return 1;
}

void tnd_link_txwin_sent(struct tnd_link_txwin *w, uint64_t offset, double now, double leaves)
{
	struct tnd_link_txframe *fr = txf(w, offset);
	double backoff = w->slack;

	for (unsigned i = 0; i < fr->tries && backoff < w->max_backoff; i++)
		backoff *= 2;
	if (backoff > w->max_backoff)
		backoff = w->max_backoff;
	if (fr->tries)
		w->retransmits++;
	fr->tries++;
	fr->last_tx = now;
	fr->leaves = leaves;
	fr->due = leaves + backoff;
	fr->sacked = false;
	if (offset == w->sent)
		w->sent += frame_len(w->total, offset);
}

bool tnd_link_txwin_done(const struct tnd_link_txwin *w)
{
	return w->taken >= w->total;
}

/* ------------------------------------------------------------ termios */

static const struct {
	unsigned baud;
	speed_t code;
} bauds[] = {
    {1200, B1200},	 {2400, B2400},	      {4800, B4800},	   {9600, B9600},
    {19200, B19200},	 {38400, B38400},     {57600, B57600},	   {115200, B115200},
    {230400, B230400},	 {460800, B460800},   {500000, B500000},   {576000, B576000},
    {921600, B921600},	 {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
    {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000}, {3500000, B3500000},
    {4000000, B4000000},
};

bool tnd_link_baud_ok(unsigned baud)
{
	for (size_t i = 0; i < TND_ARRAY_SIZE(bauds); i++)
		if (bauds[i].baud == baud)
			return true;
	return false;
}

int tnd_link_open_tty(const char *path, unsigned baud, int *fd_out)
{
	struct termios t;
	speed_t code = 0;
	int fd;

	for (size_t i = 0; i < TND_ARRAY_SIZE(bauds); i++)
		if (bauds[i].baud == baud)
			code = bauds[i].code;
	if (!code)
		return tnd_err_set(
		    TND_E_USAGE, "unsupported baud rate %u (standard rates 1200 to 4000000)", baud);
	/* O_NOCTTY: a device whose console is this port must not make the
	 * updater its controlling process; O_NONBLOCK: everything is poll()ed. */
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return tnd_err_errno(errno == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, errno,
				     "cannot open serial device %s", path);
	if (tcgetattr(fd, &t)) {
		int e = errno;

		close(fd);
		return tnd_err_errno(TND_E_IO, e, "%s is not a serial device", path);
	}
	/* Raw 8N1: no echo, no line editing, no CR/LF or XON/XOFF handling
	 * (every byte value is data), no hardware flow control. CLOCAL:
	 * a missing carrier must not hang up the line. */
	cfmakeraw(&t);
	t.c_cflag &= ~(CSTOPB | PARENB | CRTSCTS | HUPCL);
	t.c_cflag |= CS8 | CLOCAL | CREAD;
	t.c_iflag &= ~(IXON | IXOFF | IXANY);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, code);
	cfsetospeed(&t, code);
	if (tcsetattr(fd, TCSANOW, &t)) {
		int e = errno;

		close(fd);
		return tnd_err_errno(TND_E_IO, e, "cannot set %s to %u baud raw mode", path, baud);
	}
	/* A second program on the same port would corrupt both transfers. */
	ioctl(fd, TIOCEXCL);
	tcflush(fd, TCIOFLUSH);
	*fd_out = fd;
	return 0;
}
