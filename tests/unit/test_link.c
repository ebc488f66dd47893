// SPDX-License-Identifier: MIT
/* The serial link protocol's pieces without a line: frame encoding, the
 * resynchronising parser, the receiver's and the sender's windows. */
#include "testutil.h"

#include "link.h"

/* Encodes a frame into buf at *len (appending). */
static void put_frame(uint8_t *buf, size_t *len, uint8_t type, uint32_t session, uint64_t off,
		      const uint8_t *payload, uint16_t plen)
{
	struct tnd_link_frame f = {
	    .type = type, .session = session, .offset = off, .len = plen, .payload = payload};

	*len += tnd_link_encode(buf + *len, &f);
}

/* Feeds everything (in pieces of `step`) and collects up to max frames. */
static size_t parse_all(struct tnd_link_parser *p, const uint8_t *data, size_t len, size_t step,
			struct tnd_link_frame *out, uint8_t (*payloads)[TND_LINK_MAX_PAYLOAD],
			size_t max)
{
	size_t n = 0, done = 0;
	struct tnd_link_frame f;

	while (done < len) {
		size_t chunk = len - done < step ? len - done : step;

		done += tnd_link_parser_feed(p, data + done, chunk);
		while (tnd_link_parser_next(p, &f)) {
			assert_true(n < max);
			memcpy(payloads[n], f.payload, f.len);
			out[n] = f;
			out[n].payload = payloads[n];
			n++;
		}
	}
	return n;
}

static uint8_t frames_buf[8 * TND_LINK_MAX_FRAME];
static uint8_t payloads[8][TND_LINK_MAX_PAYLOAD];

static void encode_layout(void **state)
{
	uint8_t out[TND_LINK_MAX_FRAME], pl[3] = {1, 2, 3};
	struct tnd_link_frame f = {.type = TND_LINK_DATA,
				   .session = 0x11223344,
				   .offset = 0x0102030405060708ull,
				   .len = 3,
				   .payload = pl};

	(void)state;
	assert_int_equal(tnd_link_encode(out, &f), TND_LINK_HDR_SIZE + 3 + TND_LINK_CRC_SIZE);
	assert_int_equal(out[0], 0x7e);
	assert_int_equal(out[1], 0xa5);
	assert_int_equal(out[2], TND_LINK_DATA);
	assert_int_equal(out[3], 0);
	assert_int_equal(out[4], 0x11); /* big-endian */
	assert_int_equal(out[15], 0x08);
	assert_int_equal(out[17], 3);
	assert_memory_equal(out + TND_LINK_HDR_SIZE, pl, 3);
	f.len = 0;
	assert_int_equal(tnd_link_encode(out, &f), TND_LINK_HDR_SIZE);
}

static void round_trip_in_pieces(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame got[8];
	uint8_t data[TND_LINK_MAX_PAYLOAD];
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	put_frame(frames_buf, &len, TND_LINK_HELLO, 9, 0, data, 44);
	put_frame(frames_buf, &len, TND_LINK_DATA, 9, 4096, data, TND_LINK_MAX_PAYLOAD);
	put_frame(frames_buf, &len, TND_LINK_FIN, 9, 0, NULL, 0);
	for (size_t step = 1; step <= 4096; step *= 8) {
		tnd_link_parser_init(&p);
		assert_int_equal(parse_all(&p, frames_buf, len, step, got, payloads, 8), 3);
		assert_int_equal(got[0].type, TND_LINK_HELLO);
		assert_int_equal(got[0].len, 44);
		assert_int_equal(got[1].type, TND_LINK_DATA);
		assert_int_equal(got[1].session, 9);
		assert_true(got[1].offset == 4096);
		assert_int_equal(got[1].len, TND_LINK_MAX_PAYLOAD);
		assert_memory_equal(got[1].payload, data, TND_LINK_MAX_PAYLOAD);
		assert_int_equal(got[2].type, TND_LINK_FIN);
		assert_int_equal(got[2].len, 0);
		assert_true(p.garbage == 0 && p.hdr_errors == 0 && p.crc_errors == 0);
	}
}

static void resync_after_garbage(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame got[8];
	uint8_t pl[100];
	size_t len = 0;

	(void)state;
	memset(pl, 0x5a, sizeof(pl));
	static const char noise[] = "login: \x7e\xa5\x03\x00 kernel: \x7e\xa5\x7e";

	/* console noise, fake sync pairs and a half header before the frame */
	memcpy(frames_buf, noise, sizeof(noise) - 1);
	len = sizeof(noise) - 1;
	put_frame(frames_buf, &len, TND_LINK_DATA, 1, 0, pl, sizeof(pl));
	memcpy(frames_buf + len, "\x7e", 1); /* a trailing half sync */
	len++;
	tnd_link_parser_init(&p);
	assert_int_equal(parse_all(&p, frames_buf, len, 5, got, payloads, 8), 1);
	assert_int_equal(got[0].len, sizeof(pl));
	assert_true(p.garbage >= 7);
	assert_true(p.hdr_errors >= 2); /* the fake sync pairs */
}

static void header_crc_failure_skips_frame(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame got[8];
	uint8_t pl[64] = {0};
	size_t len = 0;

	(void)state;
	put_frame(frames_buf, &len, TND_LINK_DATA, 1, 0, pl, sizeof(pl));
	put_frame(frames_buf, &len, TND_LINK_DATA, 1, 1024, pl, sizeof(pl));
	frames_buf[9] ^= 0x10; /* the first frame's offset */
	tnd_link_parser_init(&p);
	assert_int_equal(parse_all(&p, frames_buf, len, len, got, payloads, 8), 1);
	assert_true(got[0].offset == 1024);
	assert_true(p.hdr_errors >= 1);
	assert_false(p.bad_pending); /* nothing about it can be believed */
}

static void payload_crc_failure_is_reported(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame got[8];
	uint8_t pl[1024];
	size_t len = 0;

	(void)state;
	memset(pl, 0xee, sizeof(pl));
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 2048, pl, sizeof(pl));
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 3072, pl, sizeof(pl));
	frames_buf[TND_LINK_HDR_SIZE + 500] ^= 0x01;
	tnd_link_parser_init(&p);
	assert_int_equal(parse_all(&p, frames_buf, len, 700, got, payloads, 8), 1);
	assert_true(got[0].offset == 3072);
	assert_true(p.crc_errors == 1);
	assert_true(p.bad_pending);
	assert_int_equal(p.bad.type, TND_LINK_DATA);
	assert_true(p.bad.offset == 2048 && p.bad.session == 5);
}

static void dropped_byte_loses_one_frame_only(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame got[8];
	uint8_t pl[1024];
	size_t len = 0;

	(void)state;
	memset(pl, 0x7e, sizeof(pl)); /* payload full of sync bytes */
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 0, pl, sizeof(pl));
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 1024, pl, sizeof(pl));
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 2048, pl, sizeof(pl));
	/* drop one byte from the middle of the first frame */
	memmove(frames_buf + 300, frames_buf + 301, len - 301);
	len--;
	tnd_link_parser_init(&p);
	assert_int_equal(parse_all(&p, frames_buf, len, 333, got, payloads, 8), 2);
	assert_true(got[0].offset == 1024 && got[1].offset == 2048);
	assert_true(p.bad_pending && p.bad.offset == 0);
}

static void flush_after_silence(void **state)
{
	struct tnd_link_parser p;
	struct tnd_link_frame f;
	uint8_t pl[1024] = {0};
	size_t len = 0;

	(void)state;
	put_frame(frames_buf, &len, TND_LINK_DATA, 5, 7168, pl, sizeof(pl));
	tnd_link_parser_init(&p);
	/* the frame's last byte never comes */
	assert_int_equal(tnd_link_parser_feed(&p, frames_buf, len - 1), len - 1);
	assert_int_equal(tnd_link_parser_next(&p, &f), 0);
	assert_true(tnd_link_parser_flush(&p));
	assert_true(p.bad_pending && p.bad.offset == 7168);
	while (tnd_link_parser_flush(&p))
		assert_int_equal(tnd_link_parser_next(&p, &f), 0);
	/* the parser is usable again */
	len = 0;
	put_frame(frames_buf, &len, TND_LINK_ACK, 5, 1, pl, 24);
	tnd_link_parser_feed(&p, frames_buf, len);
	assert_int_equal(tnd_link_parser_next(&p, &f), 1);
	assert_int_equal(f.type, TND_LINK_ACK);
}

static struct tnd_link_rxwin rx;

static void fill(uint8_t *b, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((off + i) * 31 >> 3);
}

static void rxwin_in_order_and_refusals(void **state)
{
	uint8_t b[TND_LINK_FRAME], out[3000];
	uint64_t total = 5 * TND_LINK_FRAME + 100;

	(void)state;
	tnd_link_rxwin_init(&rx, total);
	fill(b, TND_LINK_FRAME, 0);
	assert_int_equal(tnd_link_rxwin_put(&rx, 0, b, TND_LINK_FRAME), 1);
	assert_int_equal(tnd_link_rxwin_put(&rx, 0, b, TND_LINK_FRAME), 0);	    /* duplicate */
	assert_int_equal(tnd_link_rxwin_put(&rx, 10, b, TND_LINK_FRAME), -1);	    /* misaligned */
	assert_int_equal(tnd_link_rxwin_put(&rx, 1024, b, 1000), -1);		    /* short */
	assert_int_equal(tnd_link_rxwin_put(&rx, 5 * 1024, b, TND_LINK_FRAME), -1); /* past end */
	assert_int_equal(tnd_link_rxwin_put(&rx, 6 * 1024, b, 100), -1); /* beyond total */
	assert_true(rx.next == TND_LINK_FRAME);
	assert_int_equal(tnd_link_rxwin_take(&rx, out, sizeof(out)), TND_LINK_FRAME);
	assert_memory_equal(out, b, TND_LINK_FRAME);
	assert_int_equal(tnd_link_rxwin_take(&rx, out, sizeof(out)), 0);
	fill(b, 100, 5 * 1024);
	assert_int_equal(tnd_link_rxwin_put(&rx, 5 * 1024, b, 100), 1); /* the short last one */
	assert_true(rx.next == TND_LINK_FRAME);				/* a hole before it */
}

static void rxwin_out_of_order_and_sack(void **state)
{
	uint8_t out[8 * TND_LINK_FRAME], want[8 * TND_LINK_FRAME];
	uint64_t total = 8 * TND_LINK_FRAME;

	(void)state;
	tnd_link_rxwin_init(&rx, total);
	fill(want, sizeof(want), 0);
	/* frames 2, 4 and 1 arrive; 0 and 3 were lost */
	assert_int_equal(tnd_link_rxwin_put(&rx, 2048, want + 2048, TND_LINK_FRAME), 1);
	assert_int_equal(tnd_link_rxwin_put(&rx, 4096, want + 4096, TND_LINK_FRAME), 1);
	assert_int_equal(tnd_link_rxwin_put(&rx, 1024, want + 1024, TND_LINK_FRAME), 1);
	assert_true(rx.next == 0);
	/* bit i: frame next/F + 1 + i */
	assert_true(tnd_link_rxwin_sack(&rx) == (1u << 0 | 1u << 1 | 1u << 3));
	assert_int_equal(tnd_link_rxwin_put(&rx, 0, want, TND_LINK_FRAME), 1);
	assert_true(rx.next == 3 * 1024);
	assert_true(tnd_link_rxwin_sack(&rx) == 1u << 0); /* frame 4 */
	assert_int_equal(tnd_link_rxwin_put(&rx, 3072, want + 3072, TND_LINK_FRAME), 1);
	assert_true(rx.next == 5 * 1024);
	for (uint64_t off = 5 * 1024; off < total; off += TND_LINK_FRAME)
		assert_int_equal(tnd_link_rxwin_put(&rx, off, want + off, TND_LINK_FRAME), 1);
	assert_int_equal(tnd_link_rxwin_take(&rx, out, sizeof(out)), total);
	assert_memory_equal(out, want, total);
}

static void rxwin_never_overwrites_untaken(void **state)
{
	static uint8_t want[3 * TND_LINK_WINDOW_SIZE], got[3 * TND_LINK_WINDOW_SIZE];
	uint64_t total = sizeof(want), off, taken = 0;

	(void)state;
	fill(want, sizeof(want), 0);
	tnd_link_rxwin_init(&rx, total);
	/* fill the window completely: one more frame does not fit */
	for (off = 0; off < TND_LINK_WINDOW_SIZE; off += TND_LINK_FRAME)
		assert_int_equal(tnd_link_rxwin_put(&rx, off, want + off, TND_LINK_FRAME), 1);
	assert_int_equal(tnd_link_rxwin_put(&rx, off, want + off, TND_LINK_FRAME), -1);
	/* take odd amounts, put more, around the ring several times */
	while (taken < total) {
		size_t n = tnd_link_rxwin_take(&rx, got + taken, 777);

		taken += n;
		while (off < total && tnd_link_rxwin_put(&rx, off, want + off, TND_LINK_FRAME) == 1)
			off += TND_LINK_FRAME;
		assert_true(n > 0 || taken == total);
	}
	assert_memory_equal(got, want, total);
}

static void txwin_window_and_cumulative_ack(void **state)
{
	struct tnd_link_txwin w;
	uint64_t off, total = 100 * TND_LINK_FRAME + 10;
	size_t len;
	double wake, t = 0;
	unsigned sent = 0;

	(void)state;
	tnd_link_txwin_init(&w, total, 0, 0.5);
	/* new frames until the receiver's buffer would be full */
	while (tnd_link_txwin_next(&w, t, false, &off, &len, &wake)) {
		assert_true(off == (uint64_t)sent * TND_LINK_FRAME && len == TND_LINK_FRAME);
		tnd_link_txwin_sent(&w, off, t, t + 0.01);
		sent++;
	}
	assert_int_equal(sent, TND_LINK_WINDOW);
	assert_true(wake > t && wake <= 0.01 + 0.5 + 1e-9); /* first deadline */
	/* all arrived, the install path took half */
	tnd_link_txwin_ack(&w, TND_LINK_WINDOW_SIZE / 2, TND_LINK_WINDOW_SIZE, 0, 0.1);
	assert_true(w.next == TND_LINK_WINDOW_SIZE && w.taken == TND_LINK_WINDOW_SIZE / 2);
	/* a stale ACK changes nothing */
	tnd_link_txwin_ack(&w, 0, 1024, 0, 0.1);
	assert_true(w.next == TND_LINK_WINDOW_SIZE);
	sent = 0;
	while (tnd_link_txwin_next(&w, 0.1, false, &off, &len, &wake)) {
		tnd_link_txwin_sent(&w, off, 0.1, 0.2);
		sent++;
	}
	assert_int_equal(sent, TND_LINK_WINDOW / 2);
	/* run to the end: the last frame is short */
	for (t = 1; !tnd_link_txwin_done(&w); t += 1) {
		tnd_link_txwin_ack(&w, w.sent, w.sent, 0, t);
		while (tnd_link_txwin_next(&w, t, false, &off, &len, &wake))
			tnd_link_txwin_sent(&w, off, t, t);
		if (w.sent == total)
			tnd_link_txwin_ack(&w, total, total, 0, t);
	}
	assert_true(len == 10);
	assert_true(w.retransmits == 0);
}

static void txwin_loss_fast_retransmit_and_timeout(void **state)
{
	struct tnd_link_txwin w;
	uint64_t off;
	size_t len;
	double wake;

	(void)state;
	tnd_link_txwin_init(&w, 10 * TND_LINK_FRAME, 0, 0.5);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(tnd_link_txwin_next(&w, i * 0.01, false, &off, &len, &wake), 1);
		tnd_link_txwin_sent(&w, off, i * 0.01, i * 0.01 + 0.01);
	}
	/* frame 1 was lost: next = 1024, frames 2 and 3 arrived (SACK bits 0, 1) */
	tnd_link_txwin_ack(&w, 1024, 1024, 0x3, 0.05);
	assert_true(w.fast_retransmits == 1);
	assert_int_equal(tnd_link_txwin_next(&w, 0.05, false, &off, &len, &wake), 1);
	assert_true(off == 1024); /* the hole first */
	tnd_link_txwin_sent(&w, off, 0.05, 0.06);
	assert_true(w.retransmits == 1);
	/* the same SACK again must not resend it: its copy is newer */
	tnd_link_txwin_ack(&w, 1024, 1024, 0x3, 0.055);
	assert_int_equal(tnd_link_txwin_next(&w, 0.055, false, &off, &len, &wake), 1);
	assert_true(off == 6 * 1024); /* new data, not frame 1 */
	tnd_link_txwin_sent(&w, off, 0.055, 0.07);
	/* a NAK for frame 1 while its new copy is still on the wire: ignored */
	tnd_link_txwin_nak(&w, 1024, 0.055);
	assert_true(w.fast_retransmits == 1);
	/* after it left the wire, a NAK means that copy was damaged too */
	tnd_link_txwin_nak(&w, 1024, 0.065);
	assert_true(w.fast_retransmits == 2);
	assert_int_equal(tnd_link_txwin_next(&w, 0.065, false, &off, &len, &wake), 1);
	assert_true(off == 1024);
	tnd_link_txwin_sent(&w, off, 0.065, 0.075);
	/* no ACK at all: frames fall due at their deadline plus backoff */
	assert_int_equal(tnd_link_txwin_next(&w, 0.07, true, &off, &len, &wake), 0);
	assert_true(wake > 0.07);
	/* dead line: only the first outstanding frame is probed */
	assert_int_equal(tnd_link_txwin_next(&w, 10.0, true, &off, &len, &wake), 1);
	assert_true(off == 1024);
	tnd_link_txwin_sent(&w, off, 10.0, 10.01);
	assert_int_equal(tnd_link_txwin_next(&w, 10.0, true, &off, &len, &wake), 0);
	/* its third retransmission waits longer than the first (backoff) */
	assert_true(wake - 10.01 > 0.5 * 3.9);
	/* frames 4, 5 (not SACKed) are due now without probe mode */
	assert_int_equal(tnd_link_txwin_next(&w, 10.0, false, &off, &len, &wake), 1);
	assert_true(off == 4 * 1024);
}

static void baud_rates(void **state)
{
	(void)state;
	assert_true(tnd_link_baud_ok(115200));
	assert_true(tnd_link_baud_ok(3000000));
	assert_false(tnd_link_baud_ok(115201));
	assert_false(tnd_link_baud_ok(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(encode_layout),
	    cmocka_unit_test(round_trip_in_pieces),
	    cmocka_unit_test(resync_after_garbage),
	    cmocka_unit_test(header_crc_failure_skips_frame),
	    cmocka_unit_test(payload_crc_failure_is_reported),
	    cmocka_unit_test(dropped_byte_loses_one_frame_only),
	    cmocka_unit_test(flush_after_silence),
	    cmocka_unit_test(rxwin_in_order_and_refusals),
	    cmocka_unit_test(rxwin_out_of_order_and_sack),
	    cmocka_unit_test(rxwin_never_overwrites_untaken),
	    cmocka_unit_test(txwin_window_and_cumulative_ack),
	    cmocka_unit_test(txwin_loss_fast_retransmit_and_timeout),
	    cmocka_unit_test(baud_rates),
	};
	return cmocka_run_group_tests_name("link", tests, NULL, NULL);
}
