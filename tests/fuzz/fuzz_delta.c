// SPDX-License-Identifier: MIT
/*
 * The streaming delta decoder (tnd_delta_dec_*) on arbitrary op streams.
 * On the device its input is authenticated, but its bounds checks are
 * what stand between a bad delta and a write outside the target or a
 * read outside the base: they must hold for any bytes.
 *
 * Input: one flag byte, then the op stream.
 *   flags & 3:  how the stream is cut into feed() calls: whole, 1 byte,
 *               7 bytes, 4099 bytes (the decoder accepts any split);
 *   flags & 4:  emit() fails after the first piece (abort path);
 *   flags & 8:  the caller's base size is 4 KiB larger than the base file,
 *               so reads near its end fail (a shrunken base device);
 *   flags & 16: versions 5 and 6 with the decoder's helper thread, as on
 *               the device (else tnd_delta_dec_inline(): one thread);
 *   flags >> 5: a resume: the decoder skips to that many 64 KiB pieces
 *               (tnd_delta_dec_skip_to), which must then be what emit()
 *               does not get.
 * The base is a fixed 80 KiB pattern (base_byte(), also used by
 * tests/fuzz/mkcorpus.sh) in a memfd, larger than the decoder's 64 KiB
 * read cache. The sizes handed to tnd_delta_dec_new come from the
 * stream's own header (bytes 12..27), bounded, because the decoder refuses
 * any other pair at once: taking them from anywhere else would only
 * teach the fuzzer to copy them.
 *
 * Properties: emit() never gets more than 64 KiB at once nor more than
 * target_size bytes in all, always with their CRC-32; a stream that
 * finishes produced exactly target_size bytes, less the skipped pieces.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "chunk.h"
#include "delta.h"
#include "fuzz_common.h"
#include "util.h"

#define BASE_LEN   (80u * 1024)
#define TARGET_MAX (1u << 20) /* keeps each run fast */

static int base_fd = -1;

/* Also in mkcorpus.sh: a mix of varied bytes and zero blocks. */
static uint8_t base_byte(uint32_t i)
{
	if ((i / 4096) % 5 == 3)
		return 0;
	return (uint8_t)((i * 131u + (i >> 8) * 7u) ^ (i >> 3));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static uint8_t base[BASE_LEN];

	(void)argc;
	(void)argv;
	for (uint32_t i = 0; i < BASE_LEN; i++)
		base[i] = base_byte(i);
	base_fd = memfd_create("tandem-fuzz-base", MFD_CLOEXEC);
	if (base_fd < 0 || tnd_pwrite_full(base_fd, base, BASE_LEN, 0))
		abort();
	return 0;
}

struct sink {
	uint64_t total, target;
	unsigned calls;
	int fail_after_first;
};

static int emit(void *ctx, const uint8_t *buf, size_t len, uint32_t crc)
{
	struct sink *s = ctx;

	FUZZ_ASSERT(len > 0 && len <= TND_DELTA_OUT_MAX);
	FUZZ_ASSERT(crc == tnd_crc32(buf, len));
	s->total += len;
	FUZZ_ASSERT(s->total <= s->target);
	/* Touch every byte so ASan checks the whole piece is readable. */
	volatile uint8_t x = 0;
	for (size_t i = 0; i < len; i++)
		x ^= buf[i];
	(void)x;
	if (s->fail_after_first && s->calls++)
		return tnd_err_set(TND_E_SLOT_IO, "fuzz: emit fails");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[4] = {0, 1, 7, 4099};
	struct tnd_delta_dec *d;
	struct sink s = {0};
	uint64_t bsz = BASE_LEN, tsz = 0, skip;
	size_t piece, off;
	uint8_t flags;
	int r = 0;

	if (base_fd < 0)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (size >= TND_DELTA_HDR_LEN) {
		bsz = tnd_get_be64(data + 12);
		tsz = tnd_get_be64(data + 20);
	}
	if (bsz > BASE_LEN + 4096)
		bsz = BASE_LEN;
	if (!(flags & 8) && bsz > BASE_LEN)
		bsz = BASE_LEN;
	if (tsz > TARGET_MAX)
		tsz = TARGET_MAX;
	s.target = tsz;
	s.fail_after_first = flags & 4;
	if (tnd_delta_dec_new(&d, base_fd, bsz, tsz))
		abort();
	if (!(flags & 16))
		tnd_delta_dec_inline(d);
	skip = (uint64_t)(flags >> 5) * TND_DELTA_OUT_MAX;
	if (skip > tsz)
		skip = tsz - tsz % TND_DELTA_OUT_MAX;
	tnd_delta_dec_skip_to(d, skip);
	piece = pieces[flags & 3] ? pieces[flags & 3] : size;
	for (off = 0; off < size && !r; off += piece) {
		size_t n = size - off < piece ? size - off : piece;

		r = tnd_delta_dec_feed(d, data + off, n, emit, &s);
		FUZZ_ASSERT(r <= 0);
	}
	if (!r) {
		r = tnd_delta_dec_finish(d);
		if (!r)
			FUZZ_ASSERT(s.total == tsz - skip);
	} else {
		/* A failed decoder refuses everything after. */
		FUZZ_ASSERT(tnd_delta_dec_feed(d, (const uint8_t *)"", 1, emit, &s) < 0);
		FUZZ_ASSERT(tnd_delta_dec_finish(d) < 0);
	}
	tnd_delta_dec_free(d);
	return 0;
}
