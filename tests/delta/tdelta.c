// SPDX-License-Identifier: MIT
/*
 * tdelta: measures the delta codec outside the product CLI.
 *
 *   tdelta diff [-l LEVEL] [-j THREADS] [-X] [-F FORMAT] BASE TARGET OUT
 *   tdelta patch [-n] BASE PATCH OUT
 *
 * -X: no xz streams rebuilt from their contents (an odd format version).
 * -F: the format version, 1 to 6 (default 6; see tnd_delta_enc_opts).
 *
 * patch streams the op stream from the file in 64 KiB pieces (as the
 * device gets it from the bundle reader) and then, unless -n, reports the
 * "in-container" size: the op stream cut into independent 256 KiB chunks,
 * each raw-deflated (or stored when that is not smaller), as the bundle
 * builder does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "delta.h"
#include "delta_encode.h"
#include "util.h"

#define PIECE	   65536
#define CHUNK_SIZE (256 * 1024)

static int usage(void)
{
	fprintf(stderr, "usage: tdelta diff [-l LEVEL] [-j THREADS] [-X] [-F FORMAT] BASE TARGET OUT\n"
			"       tdelta patch [-n] BASE PATCH OUT\n");
	return 2;
}

static int cmd_diff(int argc, char **argv)
{
	struct tnd_delta_enc_opts o = {.level = 9, .verbose = 1};
	struct tnd_delta_stats st;
	int opt, fd, r;

	while ((opt = getopt(argc, argv, "l:j:XF:")) != -1) {
		if (opt == 'X')
			o.no_xz = 1;
		else if (opt == 'F')
			o.format = (unsigned)atoi(optarg);
		else if (opt == 'l')
			o.level = atoi(optarg);
		else if (opt == 'j')
			o.threads = (unsigned)atoi(optarg);
		else
			return usage();
	}
	if (argc - optind != 3)
		return usage();
	fd = open(argv[optind + 2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[optind + 2]);
		return 1;
	}
	r = tnd_delta_encode(argv[optind], argv[optind + 1], fd, &o, &st);
	if (!r && fsync(fd) < 0)
		r = tnd_err_errno(TND_E_IO, errno, "cannot sync %s", argv[optind + 2]);
	close(fd);
	if (r) {
		fprintf(stderr, "tdelta: %s\n", tnd_err_msg());
		return 1;
	}
	printf("op stream %llu bytes; %llu ops, %llu frames\n", (unsigned long long)st.out_size,
	       (unsigned long long)st.n_ops, (unsigned long long)st.n_frames);
	printf("target bytes: copy %llu (blocks %llu), add %llu, extra %llu, fill %llu\n",
	       (unsigned long long)st.copy_bytes, (unsigned long long)st.block_bytes,
	       (unsigned long long)st.add_bytes, (unsigned long long)st.extra_bytes,
	       (unsigned long long)st.fill_bytes);
	printf("streams raw/compressed: ctrl %llu/%llu, diff %llu/%llu, extra %llu/%llu\n",
	       (unsigned long long)st.raw[0], (unsigned long long)st.comp[0],
	       (unsigned long long)st.raw[1], (unsigned long long)st.comp[1],
	       (unsigned long long)st.raw[2], (unsigned long long)st.comp[2]);
	printf("format version %d; xz streams: base %llu, target %llu, rebuilt %llu "
	       "(%llu -> %llu bytes), %llu base stream decodes\n",
	       st.version, (unsigned long long)st.xz_base_streams,
	       (unsigned long long)st.xz_target_streams, (unsigned long long)st.xz_streams,
	       (unsigned long long)st.xz_clen, (unsigned long long)st.xz_ulen,
	       (unsigned long long)st.xz_loads);
	printf("time: xz scan %.2f s, index %.2f s, match %.2f s, compress %.2f s, total %.2f s\n",
	       st.t_xz, st.t_index, st.t_match, st.t_compress, st.t_total);
	return 0;
}

static int emit_fd(void *ctx, const uint8_t *buf, size_t len, uint32_t crc)
{
	int r = tnd_write_full(*(int *)ctx, buf, len);

	(void)crc;

	return r ? tnd_err_errno(TND_E_IO, -r, "cannot write the output") : 0;
}

/* The size the op stream takes inside a bundle's records (payload only). */
static int container_size(int fd, uint64_t *out)
{
	struct tnd_deflater def;
	uint8_t *in = malloc(CHUNK_SIZE), *cb = malloc(CHUNK_SIZE);
	ssize_t n;
	int r = tnd_deflater_init(&def, 9);

	*out = 0;
	if (r || !in || !cb) {
		free(in);
		free(cb);
		return r ? r : TND_E_NOMEM;
	}
	while ((n = tnd_read_full(fd, in, CHUNK_SIZE)) > 0) {
		size_t c = tnd_deflate_chunk(&def, in, (size_t)n, cb, CHUNK_SIZE);

		*out += c ? c : (size_t)n;
	}
	tnd_deflater_free(&def);
	free(in);
	free(cb);
	return n < 0 ? TND_E_IO : 0;
}

static int cmd_patch(int argc, char **argv)
{
	struct tnd_delta_dec *d = NULL;
	uint8_t *buf = malloc(PIECE);
	uint64_t total = 0, csize;
	struct stat sb;
	int opt, bfd = -1, pfd = -1, ofd = -1, r = 1, size = 1;
	ssize_t n;
	double t0 = tnd_now_mono();

	while ((opt = getopt(argc, argv, "n")) != -1) {
		if (opt == 'n')
			size = 0;
		else
			return usage();
	}
	if (argc - optind != 3 || !buf)
		return usage();
	bfd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	pfd = open(argv[optind + 1], O_RDONLY | O_CLOEXEC);
	ofd = open(argv[optind + 2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (bfd < 0 || pfd < 0 || ofd < 0 || fstat(bfd, &sb) < 0) {
		perror("tdelta: open");
		goto out;
	}
	/* The device takes the sizes from the signed manifest; here the
	 * target size comes from the op-stream header. */
	n = tnd_read_full(pfd, buf, TND_DELTA_HDR_LEN);
	if (n != TND_DELTA_HDR_LEN) {
		fprintf(stderr, "tdelta: patch too short\n");
		goto out;
	}
	if (tnd_delta_dec_new(&d, bfd, (uint64_t)sb.st_size, tnd_get_be64(buf + 20)))
		goto err;
	if (tnd_delta_dec_feed(d, buf, (size_t)n, emit_fd, &ofd))
		goto err;
	total = (uint64_t)n;
	while ((n = tnd_read_full(pfd, buf, PIECE)) > 0) {
		if (tnd_delta_dec_feed(d, buf, (size_t)n, emit_fd, &ofd))
			goto err;
		total += (uint64_t)n;
	}
	if (n < 0 || tnd_delta_dec_finish(d))
		goto err;
	if (fsync(ofd) < 0) {
		perror("tdelta: fsync");
		goto out;
	}
	printf("applied %llu-byte op stream in %.2f s\n", (unsigned long long)total,
	       tnd_now_mono() - t0);
	if (size) {
		if (lseek(pfd, 0, SEEK_SET) < 0 || container_size(pfd, &csize))
			goto err;
		printf("in-container size (256 KiB zlib chunks) %llu bytes\n",
		       (unsigned long long)csize);
	}
	r = 0;
	goto out;
err:
	fprintf(stderr, "tdelta: %s\n", tnd_err_msg());
out:
	tnd_delta_dec_free(d);
	free(buf);
	if (bfd >= 0)
		close(bfd);
	if (pfd >= 0)
		close(pfd);
	if (ofd >= 0)
		close(ofd);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "diff") == 0)
		return cmd_diff(argc - 1, argv + 1);
	if (strcmp(argv[1], "patch") == 0)
		return cmd_patch(argc - 1, argv + 1);
	return usage();
}
