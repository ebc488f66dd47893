// SPDX-License-Identifier: MIT
/*
 * tandem-image publish: maintains a channel directory that any static web
 * server can serve (docs/publishing.md, docs/channel-format.md):
 *
 *   DIR/index.json                          the signed index devices poll
 *   DIR/<compatible>/<version>.tnd          full bundles, never rewritten
 *   DIR/<compatible>/<version>-from-<base>.tnd   deltas from earlier releases
 *   DIR/<compatible>/plain/<version>-from-<base>.tnd   with --delta-kinds both:
 *                                           the same without xz rebuilding
 *
 * Order of writes, so that a server (or a mirror copying the directory)
 * never hands out an index naming a file it does not have: every bundle is
 * written to a temporary name, verified, fsynced and renamed into place,
 * the directories are fsynced, and only then is index.json replaced
 * atomically. A publish cut at any point leaves the old index, still
 * valid, and at worst unreferenced bundle files that the next publish
 * reuses or overwrites.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atomicfile.h"
#include "bundle.h"
#include "channel.h"
#include "digest.h"
#include "image_tools.h"
#include "log.h"
#include "timeutil.h"
#include "util.h"

#define MAX_KEYS	16
#define EXPIRES_MAX	(3650ll * 86400) /* ten years */
#define TMP_DIR		".publish-tmp"
#define DEFAULT_EXPIRES (7 * 86400)

/* Which deltas a publish makes from each base (--delta-kinds). */
enum delta_kinds {
	KINDS_SMALLEST, /* one: rebuilding xz streams on the device where that is smaller */
	KINDS_PLAIN,	/* one: never rebuilding (build --no-delta-xz) */
	KINDS_BOTH,	/* the smallest and, when it rebuilds, the plain one too: the
			   device chooses (index format 2) */
};

struct pub_opts {
	const char *dir;
	const char *key_paths[MAX_KEYS];
	unsigned nkeys;
	unsigned deltas;
	int rollout; /* -1: not given */
	int64_t expires_in;
	double max_ratio;
	enum delta_kinds kinds;
	unsigned delta_format; /* build --delta-format; 0: the newest */
	unsigned threshold;
	const char *compatible; /* no-bundle form: the release --rollout changes */
	bool json;
};

/* A full bundle already in the channel. */
struct release_file {
	char version[TND_NAME_MAX];
	uint64_t security_version;
	char path[PATH_MAX];
};

struct publisher {
	const struct pub_opts *o;
	struct tnd_signer *signers[MAX_KEYS];
	struct tnd_keyring kr;
	struct tnd_channel ch; /* the index being written */
	size_t cap;	       /* of ch.releases */
	char tmp[PATH_MAX];    /* DIR/.publish-tmp */
	int lock_fd;
	cJSON *report; /* array: one object per bundle */
};

/* ---------------------------------------------------------------- helpers */

/* A path of at most PATH_MAX bytes; TND_E_USAGE when it would not fit. */
TND_PRINTF(2, 3) static int pathf(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		return tnd_err_set(TND_E_USAGE, "path too long");
	return 0;
}

/* Names become file names and URL path segments: a conservative set, so
 * no escaping is ever needed and no name can climb out of the channel. */
static int check_file_name(const char *what, const char *s)
{
	if (s[0] == '.' || strstr(s, ".."))
		return tnd_err_set(TND_E_USAGE, "%s \"%s\" cannot start with '.' or hold \"..\"",
				   what, s);
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._,+-", *p)))
			return tnd_err_set(TND_E_USAGE,
					   "%s \"%s\" may hold only letters, digits and . _ , + - "
					   "to be published",
					   what, s);
	return 0;
}

/* Copies a bundle into the channel and hashes the copy: what the index
 * will name is what is on the disk the server serves. */
static int copy_and_hash(const char *from, const char *to, uint64_t *size,
			 uint8_t hash[TND_SHA256_LEN])
{
	static uint8_t buf[1 << 20];
	int in, out, r = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return tnd_err_errno(errno == ENOENT ? TND_E_NOT_FOUND : TND_E_IO, errno,
				     "cannot open %s", from);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s", to);
	}
	while ((n = tnd_read_full(in, buf, sizeof(buf))) > 0)
		if ((r = tnd_write_full(out, buf, (size_t)n)))
			break;
	if (n < 0)
		r = tnd_err_errno(TND_E_IO, (int)-n, "cannot read %s", from);
	else if (r)
		r = tnd_err_errno(TND_E_IO, -r, "cannot write %s", to);
	else if (fsync(out) < 0)
		r = tnd_err_errno(TND_E_IO, errno, "cannot sync %s", to);
	close(in);
	if (close(out) < 0 && !r)
		r = tnd_err_errno(TND_E_IO, errno, "cannot close %s", to);
	return r ? r : tnd_sha256_path(to, hash, size);
}

/*
 * Opens a bundle and reads it to the end, checking everything a device
 * checks; with image_path the image is written there too. kr NULL: the
 * bundle is one this channel published before (its manifest is read, not
 * re-authenticated: the keys may have rotated since).
 */
static int read_bundle(const char *path, const struct tnd_keyring *kr, unsigned threshold,
		       const char *image_path, struct tnd_manifest *m, unsigned *valid_sigs)
{
	struct tnd_verify_opts vo = {.keyring = kr, .threshold = threshold};
	struct tnd_bundle_reader r;
	struct tnd_source *src;
	bool checked;
	int fd = -1, ret;

	if ((ret = tnd_source_open_file(&src, path)))
		return ret;
	ret = tnd_bundle_open(&r, src, &vo);
	if (!ret && r.manifest.payload_type != TND_PAYLOAD_FULL)
		ret = tnd_err_set(TND_E_USAGE,
				  "is a delta bundle: publish takes full bundles and makes the "
				  "deltas itself");
	if (!ret && image_path) {
		fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			ret = tnd_err_errno(TND_E_IO, errno, "cannot create %s", image_path);
	}
	if (!ret)
		ret = tnd_bundle_decode(&r, NULL, fd, &checked);
	if (fd >= 0 && close(fd) < 0 && !ret)
		ret = tnd_err_errno(TND_E_IO, errno, "cannot write %s", image_path);
	if (!ret) {
		*m = r.manifest;
		if (valid_sigs)
			*valid_sigs = r.valid_sigs;
	}
	tnd_source_close(src);
	return ret;
}

static int cmp_release(const void *a, const void *b)
{
	return strverscmp(((const struct release_file *)a)->version,
			  ((const struct release_file *)b)->version);
}

/* The full bundles of one board already in the channel, oldest first. */
static int list_releases(const char *cdir, const char *compatible, struct release_file **out,
			 size_t *n)
{
	struct release_file *list = NULL, *grown;
	size_t count = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int ret = 0;

	*out = NULL;
	*n = 0;
	d = opendir(cdir);
	if (!d)
		return errno == ENOENT ? 0 : tnd_err_errno(TND_E_IO, errno, "cannot read %s", cdir);
	while (!ret && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct tnd_manifest m;
		char path[PATH_MAX];

		if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".tnd") ||
		    strstr(e->d_name, "-from-"))
			continue;
		if ((ret = pathf(path, "%s/%s", cdir, e->d_name)))
			break;
		{
			struct tnd_bundle_reader r;
			struct tnd_source *src;

			ret = tnd_source_open_file(&src, path);
			if (!ret) {
				ret = tnd_bundle_open(&r, src, NULL);
				m = r.manifest;
				tnd_source_close(src);
			}
		}
		if (ret) {
			ret = tnd_err_prefix(ret, "%s", path);
			break;
		}
		if (strcmp(m.compatible, compatible) || len - 4 != strlen(m.version) ||
		    strncmp(e->d_name, m.version, len - 4)) {
			ret = tnd_err_set(TND_E_FORMAT,
					  "%s holds %s %s: not the bundle its name says; move it "
					  "out of the channel",
					  path, m.compatible, m.version);
			break;
		}
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				ret = tnd_err_set(TND_E_NOMEM, "out of memory");
				break;
			}
			list = grown;
		}
		strcpy(list[count].version, m.version);
		list[count].security_version = m.security_version;
		strcpy(list[count].path, path);
		count++;
	}
	closedir(d);
	if (ret) {
		free(list);
		return ret;
	}
	if (count)
		qsort(list, count, sizeof(*list), cmp_release);
	*out = list;
	*n = count;
	return 0;
}

/* The channel's release entry for a board: the existing one, or a new one. */
static struct tnd_channel_release *release_slot(struct publisher *p, const char *compatible)
{
	struct tnd_channel *c = &p->ch;

	for (size_t i = 0; i < c->nreleases; i++)
		if (strcmp(c->releases[i].compatible, compatible) == 0)
			return &c->releases[i];
	if (c->nreleases == TND_CHANNEL_MAX_RELEASES) {
		tnd_err_set(TND_E_USAGE, "a channel holds at most %u boards",
			    TND_CHANNEL_MAX_RELEASES);
		return NULL;
	}
	if (c->nreleases == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct tnd_channel_release *r = realloc(c->releases, cap * sizeof(*r));

		if (!r) {
			tnd_err_set(TND_E_NOMEM, "out of memory");
			return NULL;
		}
		c->releases = r;
		p->cap = cap;
	}
	memset(&c->releases[c->nreleases], 0, sizeof(c->releases[0]));
	return &c->releases[c->nreleases++];
}

/* ---------------------------------------------------------------- deltas */

struct delta_result {
	bool kept;
	uint64_t size;
	uint64_t xz_rebuild; /* xz stream content the device compresses again */
};

/*
 * One delta from an earlier release: its image is extracted from its full
 * bundle, the delta bundle built (image-tools/build.c, the same code as
 * `build --base`), checked by applying it, and kept only when it is
 * smaller than max_ratio times the full bundle.
 */
static int make_delta(struct publisher *p, const struct release_file *base,
		      const struct tnd_manifest *m, const char *image, const char *cdir,
		      uint64_t full_size, bool plain, struct tnd_channel_release *rel,
		      struct delta_result *res)
{
	struct tnd_build_opts bo = {0};
	struct tnd_manifest bm, dm;
	struct tnd_channel_delta *d;
	/* the plain kind beside the smallest one goes into a subdirectory: no
	 * file name made of versions can collide with it */
	const char *sub = plain && p->o->kinds == KINDS_BOTH ? "plain/" : "";
	char base_img[PATH_MAX], out[PATH_MAX], name[2 * TND_NAME_MAX + 24];
	uint8_t sha[TND_SHA256_LEN];
	struct tnd_verify_opts vo = {.keyring = &p->kr, .threshold = p->o->threshold};
	struct tnd_bundle_reader r;
	struct tnd_source *src;
	bool checked;
	int ret;

	memset(res, 0, sizeof(*res));
	if ((ret = pathf(base_img, "%s/base.img", p->tmp)))
		return ret;
	if ((ret = read_bundle(base->path, NULL, 0, base_img, &bm, NULL)))
		return tnd_err_prefix(ret, "base %s", base->version);
	snprintf(name, sizeof(name), "%s%s-from-%s.tnd", sub, m->version, bm.version);
	if ((ret = pathf(out, "%s/%s", cdir, name)))
		return ret;
	if (sub[0]) {
		char dir[PATH_MAX];

		if ((ret = pathf(dir, "%s/plain", cdir)))
			return ret;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return tnd_err_errno(TND_E_IO, errno, "cannot create %s", dir);
	}
	bo.image_path = image;
	bo.base_path = base_img;
	bo.out_path = out;
	for (unsigned i = 0; i < p->o->nkeys; i++)
		bo.key_paths[i] = p->o->key_paths[i];
	bo.nkeys = p->o->nkeys;
	bo.compatible = m->compatible;
	bo.version = m->version;
	bo.description = m->description[0] ? m->description : NULL;
	bo.security_version = m->security_version;
	bo.created = m->created;
	bo.expires = m->expires;
	bo.chunk_size = m->chunk_size;
	bo.level = 6;
	bo.no_delta_xz = plain;
	bo.delta_format = p->o->delta_format;
	bo.xz_rebuild = &res->xz_rebuild;
	if ((ret = tnd_build_bundle(&bo)))
		return tnd_err_prefix(ret, "delta from %s", bm.version);
	/* Apply it, as a device would, before anything points at it. */
	ret = tnd_source_open_file(&src, out);
	if (!ret) {
		ret = tnd_bundle_open(&r, src, &vo);
		if (!ret)
			ret = tnd_bundle_decode(&r, base_img, -1, &checked);
		dm = r.manifest;
		tnd_source_close(src);
	}
	if (!ret)
		ret = tnd_sha256_path(out, sha, &res->size);
	unlink(base_img);
	if (ret) {
		unlink(out);
		return tnd_err_prefix(ret, "delta from %s does not verify", bm.version);
	}
	if ((double)res->size >= p->o->max_ratio * (double)full_size) {
		tnd_info("%s %s: delta from %s left out: %llu bytes, full bundle %llu",
			 m->compatible, m->version, bm.version, (unsigned long long)res->size,
			 (unsigned long long)full_size);
		unlink(out);
		return 0;
	}
	d = &rel->deltas[rel->ndeltas++];
	memset(d, 0, sizeof(*d));
	/* recorded (index format 2) only when the device has a choice */
	if (p->o->kinds == KINDS_BOTH)
		d->xz_rebuild = res->xz_rebuild;
	memcpy(d->base_sha256, dm.base_sha256, TND_SHA256_LEN);
	d->base_size = dm.base_size;
	strcpy(d->base_version, bm.version);
	snprintf(d->file.url, sizeof(d->file.url), "%s/%s", m->compatible, name);
	d->file.size = res->size;
	memcpy(d->file.sha256, sha, TND_SHA256_LEN);
	res->kept = true;
	return 0;
}

/* ---------------------------------------------------------------- bundles */

static cJSON *report_add(struct publisher *p, const struct tnd_manifest *m, const char *status)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddItemToArray(p->report, o);
	cJSON_AddStringToObject(o, "compatible", m->compatible);
	cJSON_AddStringToObject(o, "version", m->version);
	cJSON_AddStringToObject(o, "status", status);
	return o;
}

/* Whether the index lists this very release. */
static bool indexed(const struct publisher *p, const struct tnd_manifest *m)
{
	const struct tnd_channel_release *r = tnd_channel_find(&p->ch, m->compatible);

	return r && strcmp(r->version, m->version) == 0 &&
	       memcmp(r->image_sha256, m->image_sha256, TND_SHA256_LEN) == 0;
}

/* The release already published under this version: same bytes are a
 * no-op, other bytes are refused (a version names one image forever). */
static int check_existing(const char *dest, const char *copy_path, const uint8_t hash[32],
			  bool *same)
{
	uint8_t old[TND_SHA256_LEN];
	uint64_t size;
	struct stat st;

	*same = false;
	if (stat(dest, &st) < 0)
		return errno == ENOENT ? 0 : tnd_err_errno(TND_E_IO, errno, "%s", dest);
	if (tnd_sha256_path(dest, old, &size))
		return TND_E_IO;
	if (memcmp(old, hash, TND_SHA256_LEN)) {
		unlink(copy_path);
		return tnd_err_set(TND_E_USAGE,
				   "%s is already published with different content; a new build "
				   "needs a new version",
				   dest);
	}
	*same = true;
	return 0;
}

static int publish_deltas(struct publisher *p, const struct release_file *list, size_t n,
			  const struct tnd_manifest *m, const char *image, const char *cdir,
			  struct tnd_channel_release *rel, cJSON *rep)
{
	cJSON *deltas = cJSON_AddArrayToObject(rep, "deltas");
	size_t first = n > p->o->deltas ? n - p->o->deltas : 0;
	int ret;

	/* Newest bases first: the most devices run them. */
	for (size_t i = n; i-- > first;) {
		bool plain = p->o->kinds == KINDS_PLAIN;

		for (;;) {
			struct delta_result res;
			cJSON *o;

			if ((ret = make_delta(p, &list[i], m, image, cdir, rel->full.size, plain,
					      rel, &res)))
				return ret;
			o = cJSON_CreateObject();
			cJSON_AddItemToArray(deltas, o);
			cJSON_AddStringToObject(o, "base_version", list[i].version);
			cJSON_AddNumberToObject(o, "size", (double)res.size);
			cJSON_AddNumberToObject(o, "xz_rebuild", (double)res.xz_rebuild);
			cJSON_AddBoolToObject(o, "kept", res.kept);
			/* the second kind only where the first rebuilt xz streams:
			 * otherwise the two are the same file */
			if (p->o->kinds != KINDS_BOTH || plain || !res.xz_rebuild)
				break;
			plain = true;
		}
	}
	return 0;
}

static int publish_bundle(struct publisher *p, const char *path)
{
	char copy[PATH_MAX], image[PATH_MAX], cdir[PATH_MAX], dest[PATH_MAX];
	struct release_file *list = NULL;
	struct tnd_channel_release *rel, fresh;
	struct tnd_manifest m;
	uint8_t hash[TND_SHA256_LEN];
	unsigned valid;
	uint64_t size = 0;
	size_t n = 0;
	bool same;
	cJSON *rep;
	int ret;

	/* Copy first, then check the copy: what is verified is exactly what
	 * is served, whatever happens to the original meanwhile. */
	if ((ret = pathf(copy, "%s/bundle.tnd", p->tmp)) ||
	    (ret = pathf(image, "%s/image.img", p->tmp)) ||
	    (ret = copy_and_hash(path, copy, &size, hash)))
		return tnd_err_prefix(ret, "%s", path);
	ret = read_bundle(copy, &p->kr, p->o->threshold, p->o->deltas ? image : NULL, &m, &valid);
	if (ret)
		goto out;
	if ((ret = check_file_name("compatible", m.compatible)) ||
	    (ret = check_file_name("version", m.version)))
		goto out;
	if (strstr(m.version, "-from-")) {
		ret = tnd_err_set(TND_E_USAGE,
				  "version \"%s\" holds \"-from-\", which names deltas", m.version);
		goto out;
	}
	if ((ret = pathf(cdir, "%s/%s", p->o->dir, m.compatible)) ||
	    (ret = pathf(dest, "%s/%s.tnd", cdir, m.version)))
		goto out;
	if ((ret = check_existing(dest, copy, hash, &same)))
		goto out;
	if (same && indexed(p, &m)) {
		tnd_info("%s %s is already published", m.compatible, m.version);
		report_add(p, &m, "already published");
		goto out;
	}
	/* Same bytes but not in the index: a publish was cut before its
	 * index write. Finish it (deltas are made again). */
	if ((ret = list_releases(cdir, m.compatible, &list, &n)))
		goto out;
	if (same && n && strcmp(list[n - 1].version, m.version) == 0)
		n--;
	if (n && strverscmp(m.version, list[n - 1].version) <= 0) {
		ret = tnd_err_set(TND_E_DOWNGRADE,
				  "%s %s is not newer than the published %s; publish a higher "
				  "version",
				  m.compatible, m.version, list[n - 1].version);
		goto out;
	}
	if (n && m.security_version < list[n - 1].security_version) {
		ret = tnd_err_set(TND_E_DOWNGRADE,
				  "%s %s has security version %llu, below the published %llu",
				  m.compatible, m.version, (unsigned long long)m.security_version,
				  (unsigned long long)list[n - 1].security_version);
		goto out;
	}
	if (mkdir(cdir, 0755) < 0 && errno != EEXIST) {
		ret = tnd_err_errno(TND_E_IO, errno, "cannot create %s", cdir);
		goto out;
	}
	/* The full bundle goes into place first: deltas are made from it and
	 * it is the fallback for every device. */
	if (!same && rename(copy, dest) < 0) {
		ret = tnd_err_errno(TND_E_IO, errno, "cannot move the bundle to %s", dest);
		goto out;
	}
	memset(&fresh, 0, sizeof(fresh));
	strcpy(fresh.compatible, m.compatible);
	strcpy(fresh.version, m.version);
	fresh.security_version = m.security_version;
	fresh.image_size = m.image_size;
	memcpy(fresh.image_sha256, m.image_sha256, TND_SHA256_LEN);
	fresh.rollout_percent = p->o->rollout >= 0 ? (unsigned)p->o->rollout : 100;
	snprintf(fresh.full.url, sizeof(fresh.full.url), "%s/%s.tnd", m.compatible, m.version);
	fresh.full.size = size;
	memcpy(fresh.full.sha256, hash, TND_SHA256_LEN);
	rep = report_add(p, &m, "published");
	cJSON_AddStringToObject(rep, "full", fresh.full.url);
	cJSON_AddNumberToObject(rep, "size", (double)size);
	cJSON_AddNumberToObject(rep, "valid_signatures", valid);
	tnd_info("%s %s: full bundle %llu bytes", m.compatible, m.version,
		 (unsigned long long)size);
	if (p->o->deltas && n && (ret = publish_deltas(p, list, n, &m, image, cdir, &fresh, rep)))
		goto out;
	if ((ret = tnd_fsync_dir(cdir)))
		goto out;
	rel = release_slot(p, m.compatible);
	if (!rel) {
		ret = tnd_err_code();
		goto out;
	}
	*rel = fresh;
out:
	unlink(copy);
	unlink(image);
	free(list);
	if (ret)
		ret = tnd_err_prefix(ret, "%s", path);
	return ret;
}

/* ---------------------------------------------------------------- index */

static int load_index(struct publisher *p, uint64_t *sequence)
{
	char path[PATH_MAX], *text = NULL;
	struct tnd_channel old;
	size_t len;
	int ret;

	*sequence = 0;
	if ((ret = pathf(path, "%s/index.json", p->o->dir)))
		return ret;
	ret = tnd_read_small_file(path, TND_CHANNEL_MAX, &text, &len);
	if (ret == TND_E_NOT_FOUND) {
		tnd_err_clear();
		return 0;
	}
	if (ret)
		return ret;
	/* Read, not re-authenticated: it is this tool's own output, and the
	 * keys may be rotating (the new index is signed with --key). */
	ret = tnd_channel_parse(&old, text, len, NULL);
	free(text);
	if (ret)
		return tnd_err_prefix(ret, "%s", path);
	p->ch.releases = old.releases;
	p->ch.nreleases = old.nreleases;
	p->cap = old.nreleases;
	*sequence = old.sequence;
	return 0;
}

/*
 * Web servers derive an index's ETag and Last-Modified from its mtime,
 * in seconds, and its size (nginx: both in hex). Two publishes within one
 * second can write indexes of the same size: the same ETag, and devices
 * polling with If-None-Match would be told nothing changed. The new
 * index's mtime is therefore made later than the old one's. Failing that
 * costs only a poll's freshness: it is not an error.
 */
static void newer_mtime(const char *path, const struct stat *old)
{
	struct stat now;

	if (stat(path, &now) == 0 && now.st_mtim.tv_sec <= old->st_mtim.tv_sec) {
		struct timespec t[2] = {{.tv_nsec = UTIME_OMIT},
					{.tv_sec = old->st_mtim.tv_sec + 1}};

		if (utimensat(AT_FDCWD, path, t, 0) < 0)
			tnd_warn("%s: cannot set its modification time: %s", path, strerror(errno));
	}
}

static int write_index(struct publisher *p, uint64_t old_seq)
{
	char path[PATH_MAX], *text = NULL;
	size_t len;
	int ret;

	if (old_seq >= (uint64_t)9007199254740991ull)
		return tnd_err_set(TND_E_USAGE, "the index sequence number is exhausted");
	p->ch.sequence = old_seq + 1;
	p->ch.created = tnd_time_now();
	p->ch.expires = p->ch.created + p->o->expires_in;
	if ((ret = tnd_channel_encode(&p->ch, p->signers, p->o->nkeys, &text, &len)))
		return ret;
	/* Every file the index names is durable by now (each bundle fsynced,
	 * each board directory fsynced); the channel directory too, for new
	 * board directories. Only then the index. */
	ret = pathf(path, "%s/index.json", p->o->dir);
	if (!ret)
		ret = tnd_fsync_dir(p->o->dir);
	if (!ret) {
		struct stat old;
		bool had_old = stat(path, &old) == 0;

		text[len] = '\n'; /* the NUL: files end with a newline */
		ret = tnd_atomic_write(path, text, len + 1, 0644);
		if (!ret && had_old)
			newer_mtime(path, &old);
	}
	free(text);
	return ret;
}

/* ---------------------------------------------------------------- setup */

static int lock_channel(struct publisher *p)
{
	char path[PATH_MAX];

	if (pathf(path, "%s/.publish.lock", p->o->dir))
		return TND_E_USAGE;
	p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (p->lock_fd < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s", path);
	if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return tnd_err_errno(TND_E_IO, errno,
				     "%s: another publish is running on this channel", p->o->dir);
	return 0;
}

/* The scratch directory for copies and extracted images. We hold the
 * lock, so whatever is in it is left over from a killed run. */
static int make_tmp(struct publisher *p)
{
	DIR *d;
	struct dirent *e;

	if (pathf(p->tmp, "%s/%s", p->o->dir, TMP_DIR)) {
		p->tmp[0] = '\0';
		return TND_E_USAGE;
	}
	d = opendir(p->tmp);
	if (d) {
		while ((e = readdir(d))) {
			char path[PATH_MAX];

			if (e->d_name[0] == '.')
				continue;
			if (!pathf(path, "%s/%s", p->tmp, e->d_name))
				unlink(path);
		}
		closedir(d);
		return 0;
	}
	if (mkdir(p->tmp, 0700) < 0)
		return tnd_err_errno(TND_E_IO, errno, "cannot create %s", p->tmp);
	return 0;
}

static int load_keys(struct publisher *p)
{
	int ret;

	for (unsigned i = 0; i < p->o->nkeys; i++) {
		if ((ret = tnd_signer_load(&p->signers[i], p->o->key_paths[i])) ||
		    (ret = tnd_keyring_add_signer(&p->kr, p->signers[i])))
			return ret;
	}
	if (p->o->threshold > p->kr.n)
		return tnd_err_set(TND_E_USAGE, "--threshold %u needs as many distinct --key files",
				   p->o->threshold);
	return 0;
}

static void print_result(struct publisher *p)
{
	char t[TND_TIME_STR_LEN];
	cJSON *root;
	char *s;

	tnd_time_format(t, p->ch.expires);
	if (!p->o->json) {
		printf("%s/index.json: sequence %llu, %zu board(s), expires %s\n", p->o->dir,
		       (unsigned long long)p->ch.sequence, p->ch.nreleases, t);
		return;
	}
	root = cJSON_CreateObject();
	if (!root)
		return;
	cJSON_AddNumberToObject(root, "sequence", (double)p->ch.sequence);
	cJSON_AddStringToObject(root, "expires", t);
	cJSON_AddNumberToObject(root, "boards", (double)p->ch.nreleases);
	cJSON_AddItemToObject(root, "bundles", p->report);
	p->report = NULL;
	s = cJSON_Print(root);
	if (s)
		puts(s);
	free(s);
	cJSON_Delete(root);
}

static int set_rollout(struct publisher *p)
{
	for (size_t i = 0; i < p->ch.nreleases; i++) {
		if (strcmp(p->ch.releases[i].compatible, p->o->compatible) == 0) {
			p->ch.releases[i].rollout_percent = (unsigned)p->o->rollout;
			return 0;
		}
	}
	return tnd_err_set(TND_E_NOT_FOUND, "the channel has no release for \"%s\"",
			   p->o->compatible);
}

static int publish(const struct pub_opts *o, char **bundles, int nbundles)
{
	struct publisher p = {.o = o, .lock_fd = -1};
	uint64_t seq;
	int ret;

	p.report = cJSON_CreateArray();
	if (!p.report)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
		ret = tnd_err_errno(TND_E_IO, errno, "cannot create %s", o->dir);
		goto out;
	}
	if ((ret = lock_channel(&p)) || (ret = load_keys(&p)) || (ret = make_tmp(&p)) ||
	    (ret = load_index(&p, &seq)))
		goto out;
	if (!nbundles && !seq) {
		ret = tnd_err_set(TND_E_NOT_FOUND,
				  "%s has no index.json yet: give bundles to publish", o->dir);
		goto out;
	}
	for (int i = 0; i < nbundles && !ret; i++)
		ret = publish_bundle(&p, bundles[i]);
	if (!ret && o->compatible)
		ret = set_rollout(&p);
	if (!ret)
		ret = write_index(&p, seq);
	if (!ret)
		print_result(&p);
out:
	if (p.tmp[0])
		rmdir(p.tmp);
	cJSON_Delete(p.report);
	tnd_channel_free(&p.ch);
	tnd_keyring_free(&p.kr);
	for (unsigned i = 0; i < o->nkeys; i++)
		tnd_signer_free(p.signers[i]);
	if (p.lock_fd >= 0)
		close(p.lock_fd);
	return ret;
}

/* ---------------------------------------------------------------- options */

/* "7d", "12h", "30m", "90s" or plain seconds. */
static int parse_duration(const char *s, int64_t *out)
{
	static const struct {
		char unit;
		int64_t secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	char num[24];
	size_t len = strlen(s);
	int64_t mult = 1;
	uint64_t v;

	if (len == 0 || len >= sizeof(num))
		return tnd_err_set(TND_E_USAGE, "bad duration '%s'", s);
	strcpy(num, s);
	for (size_t i = 0; i < TND_ARRAY_SIZE(units); i++)
		if (num[len - 1] == units[i].unit) {
			mult = units[i].secs;
			num[len - 1] = '\0';
		}
	if (tnd_parse_u64(num, &v) || v == 0 || v > (uint64_t)(EXPIRES_MAX / mult) ||
	    (int64_t)v * mult < 60)
		return tnd_err_set(TND_E_USAGE,
				   "duration '%s' must be from one minute to 3650 days (e.g. 7d, "
				   "12h)",
				   s);
	*out = (int64_t)v * mult;
	return 0;
}

static void usage(FILE *f)
{
	fputs("Usage: tandem-image publish --channel DIR --key KEY.pem [--key KEY2.pem ...]\n"
	      "         [options] [BUNDLE...]\n"
	      "\n"
	      "Adds full bundles to a channel directory served as static files, makes\n"
	      "deltas from the last releases of the same board, and writes a new signed\n"
	      "DIR/index.json (sequence + 1) after every file it names is on disk.\n"
	      "Without bundles it re-signs the index with a fresh expiry: run it before\n"
	      "the index goes stale (see docs/publishing.md).\n"
	      "\n"
	      "Options:\n"
	      "  --channel DIR            the channel directory (created if missing)\n"
	      "  --key FILE               signing key (PEM): signs the index and the deltas;\n"
	      "                           bundles must verify against these keys\n"
	      "  --threshold N            valid signatures a bundle needs (default 1)\n"
	      "  --deltas N               deltas from the last N releases (default 3, 0: none)\n"
	      "  --delta-max-ratio R      keep a delta only below R x the full bundle\n"
	      "                           (default 0.8)\n"
	      "  --delta-kinds KINDS      smallest (default): deltas rebuild the xz streams\n"
	      "                           of a squashfs root on the device where that\n"
	      "                           makes them smaller; plain: never (for devices\n"
	      "                           built without CONFIG_DELTA_XZ, see build\n"
	      "                           --no-delta-xz); both: each rebuilding delta\n"
	      "                           also without rebuilding, and each device takes\n"
	      "                           the one its configuration asks for (index\n"
	      "                           format 2: every device must read it)\n"
	      "  --no-delta-xz            the same as --delta-kinds plain\n"
	      "  --delta-format N         delta op stream format 1 to 6, as for build (default\n"
	      "                           6; 3 or 4 for devices whose build reads no later)\n"
	      "  --rollout PCT            share of devices (0-100) that take the new\n"
	      "                           release (default 100); without bundles, with\n"
	      "                           --compatible, changes a published release's share\n"
	      "  --compatible BOARD       the release --rollout changes (no-bundle form)\n"
	      "  --expires-in DURATION    index lifetime: 30m, 12h, 7d, 2w (default 7d)\n"
	      "  --json                   print the result as JSON\n",
	      f);
}

int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"channel", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"threshold", required_argument, NULL, 't'},
	    {"deltas", required_argument, NULL, 'd'},
	    {"delta-max-ratio", required_argument, NULL, 'r'},
	    {"no-delta-xz", no_argument, NULL, 'X'},
	    {"delta-kinds", required_argument, NULL, 'K'},
	    {"delta-format", required_argument, NULL, 'F'},
	    {"rollout", required_argument, NULL, 'R'},
	    {"compatible", required_argument, NULL, 'C'},
	    {"expires-in", required_argument, NULL, 'e'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct pub_opts o = {.deltas = 3,
			     .rollout = -1,
			     .expires_in = DEFAULT_EXPIRES,
			     .max_ratio = 0.8,
			     .threshold = 1};
	uint64_t v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.dir = optarg;
			break;
		case 'k':
			if (o.nkeys == MAX_KEYS)
				return tnd_err_set(TND_E_USAGE, "too many --key options");
			o.key_paths[o.nkeys++] = optarg;
			break;
		case 't':
			if (tnd_parse_u64(optarg, &v) || v < 1 || v > MAX_KEYS)
				return tnd_err_set(TND_E_USAGE, "--threshold must be 1 to %d",
						   MAX_KEYS);
			o.threshold = (unsigned)v;
			break;
		case 'd':
			if (tnd_parse_u64(optarg, &v) || v > TND_CHANNEL_MAX_DELTAS)
				return tnd_err_set(TND_E_USAGE, "--deltas must be 0 to %u",
						   TND_CHANNEL_MAX_DELTAS);
			o.deltas = (unsigned)v;
			break;
		case 'r':
			errno = 0;
			o.max_ratio = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o.max_ratio > 0) || o.max_ratio > 1)
				return tnd_err_set(
				    TND_E_USAGE, "--delta-max-ratio must be above 0 and at most 1");
			break;
		case 'X':
			o.kinds = KINDS_PLAIN;
			break;
		case 'K':
			if (!strcmp(optarg, "smallest"))
				o.kinds = KINDS_SMALLEST;
			else if (!strcmp(optarg, "plain"))
				o.kinds = KINDS_PLAIN;
			else if (!strcmp(optarg, "both"))
				o.kinds = KINDS_BOTH;
			else
				return tnd_err_set(TND_E_USAGE,
						   "--delta-kinds must be smallest, plain or both");
			break;
		case 'F':
			if (tnd_parse_delta_format(optarg, &o.delta_format))
				return TND_E_USAGE;
			break;
		case 'R':
			if (tnd_parse_u64(optarg, &v) || v > 100)
				return tnd_err_set(TND_E_USAGE, "--rollout must be 0 to 100");
			o.rollout = (int)v;
			break;
		case 'C':
			o.compatible = optarg;
			break;
		case 'e':
			if (parse_duration(optarg, &o.expires_in))
				return tnd_err_prefix(TND_E_USAGE, "--expires-in");
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return tnd_err_bad_option(argv[optind - 1]);
		}
	}
	if (!o.dir || !o.nkeys)
		return tnd_err_set(TND_E_USAGE, "publish needs --channel and --key");
	if (o.kinds == KINDS_BOTH && o.deltas > TND_CHANNEL_MAX_DELTAS / 2)
		return tnd_err_set(TND_E_USAGE,
				   "--delta-kinds both makes two deltas per base: --deltas must "
				   "be 0 to %u",
				   TND_CHANNEL_MAX_DELTAS / 2);
	if (o.compatible && (optind != argc || o.rollout < 0))
		return tnd_err_set(TND_E_USAGE,
				   "--compatible goes with --rollout and no bundles (it changes "
				   "a published release's rollout)");
	if (optind == argc && o.rollout >= 0 && !o.compatible)
		return tnd_err_set(TND_E_USAGE, "--rollout without bundles needs --compatible");
	return publish(&o, argv + optind, argc - optind);
}
