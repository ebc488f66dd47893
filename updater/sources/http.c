// SPDX-License-Identifier: MIT
/*
 * HTTP(S) through libcurl (http.h). The bundle source drives a curl multi
 * handle from read(): libcurl pushes body bytes into a small buffer
 * through the write callback, which pauses the transfer when the buffer
 * is full, and read() hands them out and lets the transfer go on. So the
 * install path pulls at its own pace and memory stays at one buffer, as
 * for a file.
 */
#include "http.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Calls go through the table below: no compile-time type checks. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>

#include "log.h"
#include "util.h"

#define BUF_CAP	    (2 * CURL_MAX_WRITE_SIZE) /* curl writes at most 16 KiB at once */
#define BACKOFF_MAX 30			      /* seconds between reconnects, at most */

int tnd_is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/*
 * libcurl is loaded when a command first needs HTTP, not linked: a
 * distribution's libcurl brings its TLS library and, in Debian's build,
 * 30 more (LDAP, Kerberos, SSH, RTMP, IDN ...). Linked, they cost every
 * command, `tandem install FILE` and `tandem confirm` at boot included,
 * about 3 MiB of resident memory and their load time; loaded, only the
 * commands that talk to a server pay. The soname libcurl.so.4 has been
 * stable since 2006.
 */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_pause)(CURL *, int);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	const char *(*multi_strerror)(CURLMcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} cu;

static int load_curl(void)
{
	static const char *const sonames[] = {"libcurl.so.4", "libcurl-gnutls.so.4",
					      "libcurl-nss.so.4"};
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(f) {"curl_" #f, offsetof(__typeof__(cu), f)}
	    SYM(global_init),	      SYM(easy_init),	   SYM(easy_cleanup),
	    SYM(easy_reset),	      SYM(easy_setopt),	   SYM(easy_getinfo),
	    SYM(easy_perform),	      SYM(easy_pause),	   SYM(easy_strerror),
	    SYM(multi_init),	      SYM(multi_cleanup),  SYM(multi_add_handle),
	    SYM(multi_remove_handle), SYM(multi_perform),  SYM(multi_poll),
	    SYM(multi_info_read),     SYM(multi_strerror), SYM(slist_append),
	    SYM(slist_free_all),
#undef SYM
	};
	void *lib = NULL;

	for (size_t i = 0; !lib && i < sizeof(sonames) / sizeof(sonames[0]); i++)
		lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return tnd_err_set(TND_E_UNSUPPORTED, "HTTP needs libcurl (libcurl.so.4): %s",
				   dlerror());
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(lib, syms[i].name);

		if (!f)
			return tnd_err_set(TND_E_UNSUPPORTED,
					   "libcurl too old: no %s (7.66 or later)", syms[i].name);
		memcpy((char *)&cu + syms[i].off, &f, sizeof(f));
	}
	return 0; /* never unloaded: the process is short or a daemon */
}

static int curl_ready(void)
{
	static int done;
	int r;

	/* Once, before any thread exists: curl_global_init is not thread-safe
	 * in every libcurl build. */
	if (!done) {
		r = load_curl();
		if (r)
			return r;
		if (cu.global_init(CURL_GLOBAL_DEFAULT))
			return tnd_err_set(TND_E_NETWORK, "cannot initialise libcurl");
		done = 1;
	}
	return 0;
}

/* Options every request shares: protocols, TLS, proxy, timeouts. */
static int setup_easy(CURL *c, const char *url, const struct tnd_http_opts *o, char *errbuf)
{
	const struct tnd_server_config *s = o->server;
	CURLcode r = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (r == CURLE_OK)                                                                 \
			r = cu.easy_setopt(c, opt, val);                                           \
	} while (0)
	int ret = tnd_http_url_allowed(o, url);
	bool tls_only = o->policy == TND_URLS_HTTPS;

	if (ret)
		return ret;
	SET(CURLOPT_URL, url);
	SET(CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, tls_only ? "https" : "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, tls_only ? "https" : "http,https");
#else
	SET(CURLOPT_PROTOCOLS,
	    (long)(tls_only ? CURLPROTO_HTTPS : CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS,
	    (long)(tls_only ? CURLPROTO_HTTPS : CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* A CDN may redirect; same-origin follows none (libcurl cannot hold a
	 * redirect to one host: a 3xx answer is then an error). */
	SET(CURLOPT_FOLLOWLOCATION, o->policy == TND_URLS_SAME_ORIGIN ? 0L : 1L);
	SET(CURLOPT_MAXREDIRS, 5L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, "tandem/" TANDEM_VERSION);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (s && s->ca[0])
		SET(CURLOPT_CAINFO, s->ca);
	if (s && s->client_cert[0]) {
		SET(CURLOPT_SSLCERT, s->client_cert);
		SET(CURLOPT_SSLKEY, s->client_key);
	}
	if (s && s->proxy[0])
		SET(CURLOPT_PROXY, s->proxy);
	SET(CURLOPT_CONNECTTIMEOUT, (long)(s ? s->connect_timeout : 30));
	/* A stall (no byte for stall_timeout seconds) ends the request; the
	 * source then reconnects with a Range request. */
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, (long)(s ? s->stall_timeout : 60));
#undef SET
	if (r != CURLE_OK)
		return tnd_err_set(TND_E_NETWORK, "libcurl: %s", cu.easy_strerror(r));
	return 0;
}

/* Bytes of "scheme://host:port" at the start of url (0: none). */
static size_t origin_len(const char *url)
{
	const char *p = strstr(url, "://");

	if (!p)
		return 0;
	p += 3;
	return (size_t)(p - url) + strcspn(p, "/?#");
}

static const char *policy_name(enum tnd_url_policy p)
{
	return p == TND_URLS_HTTPS ? "https" : p == TND_URLS_SAME_ORIGIN ? "same-origin" : "any";
}

int tnd_http_url_allowed(const struct tnd_http_opts *o, const char *url)
{
	size_t n = origin_len(url);

	if (!tnd_is_url(url))
		return tnd_err_set(TND_E_NETWORK, "%s: only http:// and https:// URLs", url);
	if (o->policy == TND_URLS_HTTPS && strncmp(url, "https://", 8))
		return tnd_err_set(TND_E_NETWORK,
				   "%s: plain HTTP refused by server.url_policy \"%s\"", url,
				   policy_name(o->policy));
	if (o->policy == TND_URLS_SAME_ORIGIN && o->origin &&
	    (!n || n != origin_len(o->origin) || strncmp(url, o->origin, n)))
		return tnd_err_set(TND_E_NETWORK,
				   "%s: another origin than %.*s, refused by server.url_policy "
				   "\"same-origin\"",
				   url, (int)origin_len(o->origin), o->origin);
	return 0;
}

/* A one-line reason for a failed request. */
static int net_error(const char *what, const char *url, CURLcode cc, long status,
		     const char *errbuf)
{
	if (cc == CURLE_OK && (status == 404 || status == 410))
		return tnd_err_set(TND_E_NOT_FOUND, "%s %s: HTTP %ld (not on the server)", what,
				   url, status);
	if (cc == CURLE_OK)
		return tnd_err_set(TND_E_NETWORK, "%s %s: HTTP %ld", what, url, status);
	return tnd_err_set(TND_E_NETWORK, "%s %s: %s", what, url,
			   errbuf && errbuf[0] ? errbuf : cu.easy_strerror(cc));
}

/* Waits s seconds unless cancelled; returns TND_E_CANCELLED then. */
static int nap(double s, volatile sig_atomic_t *cancel)
{
	double end = tnd_now_mono() + s;

	while (tnd_now_mono() < end) {
		if (cancel && *cancel)
			return tnd_err_set(TND_E_CANCELLED, "interrupted");
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ------------------------------------------------------------ bundle source */

struct http_src {
	struct tnd_source src;
	struct tnd_http_opts o;
	char url[TND_URL_MAX];
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];

	uint8_t buf[BUF_CAP]; /* body bytes not yet handed out: [head, head+len) */
	size_t head, len;
	uint64_t off; /* bytes handed out (src.pos is the caller's to keep) */

	bool active;   /* a request is in the multi handle */
	bool finished; /* it ended; result and status below */
	bool paused;
	CURLcode result;
	long status;	     /* of the last response header block */
	uint64_t resp_start; /* first body byte of this response (Content-Range) */
	bool resp_checked;   /* status and range checked at the first body byte */
	uint64_t req_from;   /* offset this request asked for */
	uint64_t skip;	     /* bytes of this response to drop before ours */
	uint64_t total;	     /* the file's size when a response said it, else 0 */
	char etag[256];	     /* of the first response: If-Range for later ones */
	char resp_etag[256];
	char range_hdr[64];
	unsigned fails; /* failed requests in a row without progress */
	bool cut_short; /* a response ended before the file did */
	int cb_err;	/* error found in a callback, reported by read() */
	struct tnd_http_stats st;
};

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct http_src *h = ctx;
	size_t len = size * n;
	char line[512];
	unsigned long long a, b, t;

	if (len >= sizeof(line))
		return len; /* not a header we read */
	memcpy(line, p, len);
	line[len] = '\0';
	if (!strncmp(line, "HTTP/", 5)) {
		/* a new response (redirects and 100-continue make several) */
		h->status = 0;
		h->resp_start = 0;
		h->resp_etag[0] = '\0';
		sscanf(line, "HTTP/%*s %ld", &h->status);
	} else if (!strncasecmp(line, "Content-Range:", 14)) {
		if (sscanf(line + 14, " bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
			h->resp_start = a;
			h->total = t;
		}
	} else if (!strncasecmp(line, "Content-Length:", 15) && h->status == 200) {
		if (sscanf(line + 15, " %llu", &t) == 1)
			h->total = t;
	} else if (!strncasecmp(line, "ETag:", 5)) {
		char *v = line + 5;

		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		snprintf(h->resp_etag, sizeof(h->resp_etag), "%s", v);
	}
	return len;
}

/* First body byte of a response: is it the answer we asked for? */
static int check_response(struct http_src *h)
{
	h->resp_checked = true;
	if (h->status == 206) {
		if (h->resp_start != h->req_from)
			return tnd_err_set(TND_E_NETWORK,
					   "%s: asked for bytes from %" PRIu64 ", the server sent "
					   "them from %" PRIu64,
					   h->url, h->req_from, h->resp_start);
	} else if (h->status == 200) {
		/* The whole file again: the server ignored Range, or If-Range
		 * saw another file. Drop what was already handed out; the
		 * bundle's own hash chain still decides what gets written. */
		h->skip = h->req_from;
	} else {
		return -1; /* an HTTP error: decided when the request ends */
	}
	if (!h->etag[0])
		snprintf(h->etag, sizeof(h->etag), "%s", h->resp_etag);
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct http_src *h = ctx;
	size_t len = size * n, drop = 0, keep;
	int r;

	if (!h->resp_checked) {
		r = check_response(h);
		if (r == -1)
			return len; /* an error page: ignore its body */
		if (r) {
			h->cb_err = r;
			return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
		}
	}
	if (h->status != 200 && h->status != 206)
		return len;
	if (h->skip)
		drop = h->skip < len ? (size_t)h->skip : len;
	keep = len - drop;
	if (keep > BUF_CAP) { /* never: curl hands over at most 16 KiB at once */
		h->cb_err =
		    tnd_err_set(TND_E_INTERNAL, "libcurl delivered %zu bytes at once", keep);
		return 0;
	}
	if (keep > BUF_CAP - h->len) {
		h->paused = true;
		return CURL_WRITEFUNC_PAUSE; /* nothing taken; curl calls again */
	}
	if (keep > BUF_CAP - h->head - h->len) {
		memmove(h->buf, h->buf + h->head, h->len);
		h->head = 0;
	}
	memcpy(h->buf + h->head + h->len, p + drop, keep);
	h->len += keep;
	h->skip -= drop;
	h->st.received += len;
	h->st.discarded += drop;
	return len;
}

static void stop_request(struct http_src *h)
{
	if (h->active) {
		cu.multi_remove_handle(h->multi, h->easy);
		h->active = false;
	}
	h->paused = false;
}

/* Starts a request for the bytes from h->off on. */
static int start_request(struct http_src *h)
{
	CURLMcode mc;
	int r;

	stop_request(h);
	cu.easy_reset(h->easy);
	r = setup_easy(h->easy, h->url, &h->o, h->errbuf);
	if (r)
		return r;
	cu.slist_free_all(h->hdrs);
	h->hdrs = NULL;
	h->req_from = h->off;
	h->skip = 0;
	h->head = h->len = 0;
	h->finished = false;
	h->resp_checked = false;
	h->status = 0;
	h->cb_err = 0;
	h->errbuf[0] = '\0';
	cu.easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, on_header);
	cu.easy_setopt(h->easy, CURLOPT_HEADERDATA, h);
	cu.easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, on_body);
	cu.easy_setopt(h->easy, CURLOPT_WRITEDATA, h);
	if (h->req_from) {
		snprintf(h->range_hdr, sizeof(h->range_hdr), "%" PRIu64 "-", h->req_from);
		cu.easy_setopt(h->easy, CURLOPT_RANGE, h->range_hdr);
		/* Only the same file may continue; another one comes whole. */
		if (h->etag[0]) {
			char line[300];

			snprintf(line, sizeof(line), "If-Range: %s", h->etag);
			h->hdrs = cu.slist_append(NULL, line);
			if (!h->hdrs)
				return tnd_err_set(TND_E_NOMEM, "out of memory");
			cu.easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->hdrs);
		}
	}
	mc = cu.multi_add_handle(h->multi, h->easy);
	if (mc != CURLM_OK)
		return tnd_err_set(TND_E_NETWORK, "libcurl: %s", cu.multi_strerror(mc));
	h->active = true;
	h->st.requests++;
	if (h->req_from)
		tnd_info("%s: continuing from byte %" PRIu64 " (request %u)", h->url, h->req_from,
			 h->st.requests);
	return 0;
}

/* Whether a failed request is worth another try. */
static bool transient(CURLcode cc, long status)
{
	if (cc == CURLE_OK)
		return status >= 500 || status == 408 || status == 429;
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR: /* a handshake cut off; a bad certificate is
					 CURLE_PEER_FAILED_VERIFICATION */
		return true;
	default:
		return false;
	}
}

/* Runs the transfer until bytes are buffered, it ends, or it fails. */
static int pump(struct http_src *h)
{
	int running, nmsg;
	CURLMcode mc;
	CURLMsg *m;

	if (h->paused) {
		h->paused = false;
		cu.easy_pause(h->easy, CURLPAUSE_CONT);
	}
	mc = cu.multi_perform(h->multi, &running);
	if (mc != CURLM_OK)
		return tnd_err_set(TND_E_NETWORK, "libcurl: %s", cu.multi_strerror(mc));
	while ((m = cu.multi_info_read(h->multi, &nmsg)))
		if (m->msg == CURLMSG_DONE && m->easy_handle == h->easy) {
			h->finished = true;
			h->result = m->data.result;
		}
	if (!h->finished && !h->len && !h->paused) {
		mc = cu.multi_poll(h->multi, NULL, 0, 200, NULL);
		if (mc != CURLM_OK)
			return tnd_err_set(TND_E_NETWORK, "libcurl: %s", cu.multi_strerror(mc));
	}
	return 0;
}

/* The request ended. 1: start another from pos; 0: end of file; <0: error. */
static int request_ended(struct http_src *h)
{
	CURLcode cc = h->result;
	long status = h->status;
	int r;

	stop_request(h);
	if (h->cb_err)
		return h->cb_err;
	if (cc == CURLE_OK && (status == 200 || status == 206)) {
		if (!h->total || h->off >= h->total)
			return 0;
		/* a clean end before the file's end: cut short */
		h->cut_short = true;
	} else if (!transient(cc, status)) {
		return net_error("download", h->url, cc, status, h->errbuf);
	}
	if (h->fails >= h->o.server->retries)
		return tnd_err_prefix(net_error("download", h->url, cc, status, h->errbuf),
				      "gave up after %u attempts without progress", h->fails + 1);
	h->fails++;
	double wait = (double)(1u << (h->fails - 1 < 5 ? h->fails - 1 : 5));

	if (wait > BACKOFF_MAX)
		wait = BACKOFF_MAX;
	tnd_warn("%s: %s at byte %" PRIu64 "; retrying in %.0f s (%u of %u)", h->url,
		 cc != CURLE_OK ? (h->errbuf[0] ? h->errbuf : cu.easy_strerror(cc))
		 : status == 200 || status == 206 ? "connection closed early"
						  : "server error",
		 h->off, wait, h->fails, h->o.server->retries);
	r = nap(wait, h->o.cancel);
	return r ? r : 1;
}

static ssize_t http_read(struct tnd_source *src, void *out, size_t want)
{
	struct http_src *h = (struct http_src *)src;
	size_t n;
	int r;

	while (!h->len) {
		if (h->o.cancel && *h->o.cancel)
			return tnd_err_set(TND_E_CANCELLED, "interrupted");
		if (!h->active) {
			r = start_request(h);
			if (r)
				return r;
		}
		r = pump(h);
		if (r)
			return r;
		if (h->len)
			break;
		if (h->finished) {
			r = request_ended(h);
			if (r <= 0)
				return r;
		}
	}
	n = want < h->len ? want : h->len;
	memcpy(out, h->buf + h->head, n);
	h->head += n;
	h->len -= n;
	if (!h->len)
		h->head = 0;
	h->off += n;
	h->fails = 0; /* progress */
	return (ssize_t)n;
}

static int http_skip_to(struct tnd_source *src, uint64_t pos)
{
	struct http_src *h = (struct http_src *)src;
	uint64_t ahead = pos - h->off;

	if (ahead <= h->len) { /* already buffered */
		h->head += (size_t)ahead;
		h->len -= (size_t)ahead;
		h->off = pos;
		return 0;
	}
	stop_request(h);
	h->head = h->len = 0;
	h->off = pos;
	return 0; /* the next read asks from pos */
}

/* Releases libcurl's part; tnd_source_close frees the struct itself. */
static void http_close(struct tnd_source *src)
{
	struct http_src *h = (struct http_src *)src;

	stop_request(h);
	cu.slist_free_all(h->hdrs);
	h->hdrs = NULL;
	if (h->easy)
		cu.easy_cleanup(h->easy);
	if (h->multi)
		cu.multi_cleanup(h->multi);
	h->easy = NULL;
	h->multi = NULL;
}

int tnd_http_source_open(struct tnd_source **out, const char *url, const struct tnd_http_opts *o)
{
	struct http_src *h;
	int r;

	*out = NULL;
	if (strlen(url) >= TND_URL_MAX)
		return tnd_err_set(TND_E_USAGE, "URL too long");
	r = curl_ready();
	if (r)
		return r;
	h = calloc(1, sizeof(*h));
	if (!h)
		return tnd_err_set(TND_E_NOMEM, "out of memory");
	h->o = *o;
	snprintf(h->url, sizeof(h->url), "%s", url);
	snprintf(h->src.name, sizeof(h->src.name), "%s", url);
	h->src.read = http_read;
	h->src.skip_to = http_skip_to;
	h->src.close = http_close;
	h->src.fd = -1;
	h->multi = cu.multi_init();
	h->easy = cu.easy_init();
	if (!h->multi || !h->easy) {
		tnd_source_close(&h->src);
		return tnd_err_set(TND_E_NOMEM, "cannot initialise libcurl");
	}
	*out = &h->src;
	return 0;
}

void tnd_http_source_stats(const struct tnd_source *src, struct tnd_http_stats *st)
{
	*st = ((const struct http_src *)src)->st;
}

/* ------------------------------------------------------------ small requests */

/* A handle for one small request to url, set up as setup_easy does. */
static int new_easy(CURL **out, const char *url, const struct tnd_http_opts *o, char *errbuf)
{
	int ret = curl_ready();

	*out = NULL;
	if (ret)
		return ret;
	*out = cu.easy_init();
	if (!*out)
		return tnd_err_set(TND_E_NOMEM, "cannot initialise libcurl");
	ret = setup_easy(*out, url, o, errbuf);
	if (!ret)
		/* a whole small document: a stall is a failure, not a long wait */
		cu.easy_setopt(*out, CURLOPT_TIMEOUT,
			       (long)(o->server->connect_timeout + o->server->stall_timeout));
	return ret;
}

struct mem {
	char *p;
	size_t len, max;
	bool too_big;
	struct tnd_http_response *r;
};

static size_t mem_body(char *p, size_t size, size_t n, void *ctx)
{
	struct mem *m = ctx;
	size_t len = size * n;
	char *q;

	if (m->len + len > m->max) {
		m->too_big = true;
		return 0;
	}
	q = realloc(m->p, m->len + len + 1);
	if (!q)
		return 0;
	m->p = q;
	memcpy(m->p + m->len, p, len);
	m->len += len;
	m->p[m->len] = '\0';
	return len;
}

static size_t mem_header(char *p, size_t size, size_t n, void *ctx)
{
	struct mem *m = ctx;
	size_t len = size * n;

	if (len > 5 && !strncasecmp(p, "ETag:", 5) && len < sizeof(m->r->etag) + 5) {
		char *v = p + 5;
		size_t k = len - 5;

		while (k && (*v == ' ' || *v == '\t'))
			v++, k--;
		while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
			k--;
		memcpy(m->r->etag, v, k);
		m->r->etag[k] = '\0';
	} else if (len > 5 && !strncmp(p, "HTTP/", 5)) {
		m->r->etag[0] = '\0';
	}
	return len;
}

int tnd_http_get(const char *url, const char *etag, size_t max, const struct tnd_http_opts *o,
		 struct tnd_http_response *r)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct mem m = {.max = max, .r = r};
	struct curl_slist *hdrs = NULL;
	curl_off_t hb = 0, bb = 0;
	CURLcode cc;
	CURL *c;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = new_easy(&c, url, o, errbuf);
	if (ret)
		goto out;
	if (etag && etag[0]) {
		char line[300];

		snprintf(line, sizeof(line), "If-None-Match: %s", etag);
		hdrs = cu.slist_append(NULL, line);
		if (!hdrs) {
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
			goto out;
		}
		cu.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_body);
	cu.easy_setopt(c, CURLOPT_WRITEDATA, &m);
	cu.easy_setopt(c, CURLOPT_HEADERFUNCTION, mem_header);
	cu.easy_setopt(c, CURLOPT_HEADERDATA, &m);
	/* a whole small document: a stall is a failure, not a long wait */
	cc = cu.easy_perform(c);
	cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	cu.easy_getinfo(c, CURLINFO_HEADER_SIZE, &hb);
	cu.easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &bb);
	r->header_bytes = (uint64_t)hb;
	r->body_bytes = (uint64_t)bb;
	if (m.too_big) {
		ret = tnd_err_set(TND_E_FORMAT, "%s: larger than %zu bytes", url, max);
		goto out;
	}
	if (cc != CURLE_OK || (r->status != 200 && r->status != 304)) {
		ret = net_error("fetch", url, cc, r->status, errbuf);
		goto out;
	}
	if (r->status == 200) {
		r->body = m.p ? m.p : strdup("");
		r->len = m.len;
		m.p = NULL;
		if (!r->body)
			ret = tnd_err_set(TND_E_NOMEM, "out of memory");
	}
out:
	free(m.p);
	if (hdrs)
		cu.slist_free_all(hdrs);
	if (c)
		cu.easy_cleanup(c);
	return ret;
}

void tnd_http_response_free(struct tnd_http_response *r)
{
	free(r->body);
	r->body = NULL;
}

static size_t sink(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

int tnd_http_post_json(const char *url, const char *json, const struct tnd_http_opts *o)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	long status = 0;
	CURLcode cc;
	CURL *c;
	int ret;

	ret = new_easy(&c, url, o, errbuf);
	if (!ret)
		hdrs = cu.slist_append(NULL, "Content-Type: application/json");
	if (ret || !hdrs) {
		ret = ret ? ret : tnd_err_set(TND_E_NOMEM, "out of memory");
		goto out;
	}
	cu.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cu.easy_setopt(c, CURLOPT_POSTFIELDS, json);
	cu.easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	cc = cu.easy_perform(c);
	cu.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK || status < 200 || status > 299)
		ret = net_error("report to", url, cc, status, errbuf);
out:
	if (hdrs)
		cu.slist_free_all(hdrs);
	if (c)
		cu.easy_cleanup(c);
	return ret;
}
