/* SPDX-License-Identifier: MIT */
/*
 * The serial link protocol (docs/serial.md): carries one bundle from the
 * host (tandem-image send) to the device (tandem receive) over a raw,
 * full-duplex serial line, with CRC32-checked frames, a sliding window,
 * selective acknowledgements, retransmission and resumption after the
 * line went dead. This module has no threads and no policy of its own:
 * frame encoding, a resynchronising frame parser, the receiver's window
 * (reassembly buffer) and the sender's window (what to send next), and
 * the termios set-up. The send and receive commands drive it.
 *
 * Frame (all integers big-endian, as in the bundle format):
 *   0  2  sync 0x7E 0xA5
 *   2  1  type (enum tnd_link_type)
 *   3  1  flags (0)
 *   4  4  session ID
 *   8  8  offset (meaning by type)
 *  16  2  payload length (0..TND_LINK_MAX_PAYLOAD)
 *  18  4  CRC-32 of bytes 0..17
 *  22  n  payload
 *  22+n 4 CRC-32 of the payload (only when n > 0)
 * No byte stuffing: a receiver that loses its place scans for the sync
 * bytes and accepts a header only when its CRC matches.
 */
#ifndef TANDEM_LINK_H
#define TANDEM_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define TND_LINK_VERSION     1
#define TND_LINK_SYNC0	     0x7e
#define TND_LINK_SYNC1	     0xa5
#define TND_LINK_HDR_SIZE    22
#define TND_LINK_CRC_SIZE    4
#define TND_LINK_MAX_PAYLOAD 4096
#define TND_LINK_MAX_FRAME   (TND_LINK_HDR_SIZE + TND_LINK_MAX_PAYLOAD + TND_LINK_CRC_SIZE)
/* Data frames carry TND_LINK_FRAME bytes (the last one fewer), at offsets
 * that are multiples of it: a frame is identified by its offset alone. */
#define TND_LINK_FRAME 1024
/* The receiver buffers at most this many frames beyond what the install
 * path has taken: the sender's window, and the width of the SACK map. */
#define TND_LINK_WINDOW	     64
#define TND_LINK_WINDOW_SIZE (TND_LINK_FRAME * TND_LINK_WINDOW)

enum tnd_link_type {
	TND_LINK_HELLO = 1,   /* S->R: start or resume a session */
	TND_LINK_WELCOME = 2, /* R->S: session accepted, where to continue */
	TND_LINK_DATA = 3,    /* S->R: bundle bytes at `offset` */
	TND_LINK_ACK = 4,     /* R->S: offset = bytes taken by the install path */
	TND_LINK_DONE = 5,    /* R->S: installed; payload = result JSON */
	TND_LINK_ABORT = 6,   /* either way: i32 error code + message */
	TND_LINK_FIN = 7,     /* S->R: DONE or ABORT received */
};

#define TND_LINK_HELLO_SIZE   44 /* version, 0, frame u16, total u64, sha256 */
#define TND_LINK_WELCOME_SIZE 22 /* version, 0, frame u16, window u16, next u64, taken u64 */
#define TND_LINK_ACK_SIZE     24 /* next u64, sack u64, nak u64 */
#define TND_LINK_NO_NAK	      UINT64_MAX

struct tnd_link_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t session;
	uint64_t offset;
	uint16_t len;
	const uint8_t *payload; /* borrowed */
};

/* Writes the frame into out (at least TND_LINK_MAX_FRAME bytes); returns
 * its length. f->len must be <= TND_LINK_MAX_PAYLOAD. */
size_t tnd_link_encode(uint8_t *out, const struct tnd_link_frame *f);

/* A byte stream in, whole CRC-checked frames out. */
struct tnd_link_parser {
	uint8_t buf[2 * TND_LINK_MAX_FRAME];
	size_t start, have;
	/* counters for progress reports and tests */
	uint64_t frames, garbage, hdr_errors, crc_errors;
	/* A frame whose header was good but whose payload was not (bad CRC,
	 * or cut short): the receiver asks for it again at once. */
	bool bad_pending;
	struct tnd_link_frame bad; /* header fields only */
};

void tnd_link_parser_init(struct tnd_link_parser *p);
/* Takes up to len bytes; returns how many it took (fewer when its buffer
 * is full: call tnd_link_parser_next until it returns 0, then feed the
 * rest). */
size_t tnd_link_parser_feed(struct tnd_link_parser *p, const uint8_t *data, size_t len);
/* 1 and *f filled (payload valid until the next feed or next call), or 0
 * when more bytes are needed. Bytes that are not part of a valid frame
 * (noise, console output, a frame with a bad CRC) are skipped. */
int tnd_link_parser_next(struct tnd_link_parser *p, struct tnd_link_frame *f);
/* The line went quiet with part of a frame buffered: bytes of it were
 * lost, and no more are coming to complete it. Drops it (recording it in
 * bad when its header was good) so the scan moves on; returns whether
 * anything was dropped. */
bool tnd_link_parser_flush(struct tnd_link_parser *p);

/*
 * Receiver window: a ring of TND_LINK_WINDOW_SIZE bytes holding what
 * arrived beyond `taken` (handed to the install path). Frames may arrive
 * out of order (after a loss); `next` is the end of the contiguous part.
 */
struct tnd_link_rxwin {
	uint8_t ring[TND_LINK_WINDOW_SIZE];
	uint64_t total; /* bundle size */
	uint64_t taken; /* bytes handed out by tnd_link_rxwin_take */
	uint64_t next;	/* every byte below it has arrived */
	uint64_t have;	/* bit k % TND_LINK_WINDOW: frame k (>= next) arrived */
};

void tnd_link_rxwin_init(struct tnd_link_rxwin *w, uint64_t total);
/* Stores a data frame: 1 new, 0 duplicate, -1 refused (misaligned, wrong
 * length, beyond the total or the window). */
int tnd_link_rxwin_put(struct tnd_link_rxwin *w, uint64_t offset, const uint8_t *data, size_t len);
/* Copies up to len contiguous bytes at `taken` into buf; returns the count. */
size_t tnd_link_rxwin_take(struct tnd_link_rxwin *w, uint8_t *buf, size_t len);
/* Bit i: the frame i + 1 frames after `next` has arrived. */
uint64_t tnd_link_rxwin_sack(const struct tnd_link_rxwin *w);

/*
 * Sender window: which frame to send next. Times are seconds on any
 * monotonic clock; the caller says when each frame will have left the
 * wire (it knows the line rate) and the window derives retransmission
 * deadlines from that.
 */
struct tnd_link_txframe {
	double last_tx; /* when it was last written */
	double leaves;	/* when that copy will have left the wire */
	double due;	/* retransmit at this time unless acknowledged */
	unsigned tries;
	bool sacked;
};

struct tnd_link_txwin {
	uint64_t total;
	uint64_t taken; /* receiver's install path has these (cumulative ACK) */
	uint64_t next;	/* receiver has every byte below this */
	uint64_t sent;	/* end of the highest frame sent so far */
	double slack;	/* added to the wire time before a retransmission */
	double max_backoff;
	uint64_t retransmits, fast_retransmits;
	struct tnd_link_txframe f[TND_LINK_WINDOW];
};

void tnd_link_txwin_init(struct tnd_link_txwin *w, uint64_t total, uint64_t start, double slack);
/* An ACK (or WELCOME: sack 0) from the receiver; stale ones (taken or
 * next going backwards) are ignored. Frames that the SACK map shows were
 * overtaken by a later transmission are due at once: a serial line does
 * not reorder, so they were lost. */
void tnd_link_txwin_ack(struct tnd_link_txwin *w, uint64_t taken, uint64_t next, uint64_t sack,
			double now);
/* The receiver saw the frame at offset arrive damaged. Resent at once,
 * unless a newer copy of it is still on its way. */
void tnd_link_txwin_nak(struct tnd_link_txwin *w, uint64_t offset, double now);
/* The frame to send now: 1 with *offset and *len set, 0 if none (then
 * *wake is the earliest time something becomes due, or 0 for none).
 * With probe_only (the line seems dead) only the first outstanding frame
 * is retransmitted, so a dead line is probed, not flooded. */
int tnd_link_txwin_next(const struct tnd_link_txwin *w, double now, bool probe_only,
			uint64_t *offset, size_t *len, double *wake);
/* Records that the frame at offset was written at `now` and will have
 * left the wire at `leaves`. */
void tnd_link_txwin_sent(struct tnd_link_txwin *w, uint64_t offset, double now, double leaves);
/* Every byte was taken by the receiver's install path. */
bool tnd_link_txwin_done(const struct tnd_link_txwin *w);

/* Opens a serial device in raw 8N1 mode at baud (no flow control,
 * non-blocking, exclusive); *fd_out on success. Rates are the standard
 * termios ones, 1200 to 4000000. */
int tnd_link_open_tty(const char *path, unsigned baud, int *fd_out) TND_MUST_CHECK;
/* Whether baud is one tnd_link_open_tty accepts. */
bool tnd_link_baud_ok(unsigned baud);

#endif
