/* SPDX-License-Identifier: MIT */
/*
 * HTTP(S) for fleet devices, on libcurl (CONFIG_HTTP; docs/fleet.md):
 *  - a struct tnd_source that streams a bundle URL in order with bounded
 *    buffers, and survives a dropped connection by asking again with a
 *    Range request from the first byte it has not handed out yet, so the
 *    install path never sees a byte twice nor re-writes what it wrote;
 *  - a small GET with If-None-Match for the channel index;
 *  - a small POST of a JSON status report.
 * TLS uses the configured CA bundle (or the system's), an optional client
 * certificate for mutual TLS, and an optional proxy. Only http and https
 * are allowed, redirects included.
 */
#ifndef TANDEM_HTTP_H
#define TANDEM_HTTP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "source.h"

#define TND_URL_MAX 1024

struct tnd_http_opts {
	const struct tnd_server_config *server; /* TLS, proxy, timeouts, retries */
	/* Which URLs and redirects may be followed (config.h): a fleet's
	 * traffic uses server->url_policy; `tandem install URL` never lets a
	 * redirect leave https. */
	enum tnd_url_policy policy;
	const char *origin;	       /* TND_URLS_SAME_ORIGIN: the URL whose origin rules */
	volatile sig_atomic_t *cancel; /* set by a signal: stop waiting */
};

/* Whether url may be fetched under o's policy (TND_E_NETWORK, naming the
 * policy, when not): its scheme, and for same-origin its host and port. */
int tnd_http_url_allowed(const struct tnd_http_opts *o, const char *url) TND_MUST_CHECK;

/* What a bundle download did, for logs, status and tests. */
struct tnd_http_stats {
	unsigned requests;  /* HTTP requests made (1 + reconnects) */
	uint64_t received;  /* body bytes received, discarded ones included */
	uint64_t discarded; /* bytes received again and dropped (server ignored Range) */
};

/*
 * Opens url as a bundle source. Nothing is requested before the first
 * read. A transport failure or a 5xx/408/429 answer mid-way is retried up
 * to server->retries times in a row without progress (1 s, 2 s, 4 s ...
 * up to 30 s apart), each time from the current position; a 4xx answer
 * (404: TND_E_NOT_FOUND) or a certificate the CA does not vouch for fails
 * at once (TND_E_NETWORK). skip_to() also asks with a Range request.
 */
int tnd_http_source_open(struct tnd_source **out, const char *url,
			 const struct tnd_http_opts *o) TND_MUST_CHECK;
/* Counters of a source opened by tnd_http_source_open. */
void tnd_http_source_stats(const struct tnd_source *src, struct tnd_http_stats *st);

/* Whether s names an http:// or https:// URL. */
int tnd_is_url(const char *s);

/* Result of a conditional GET. */
struct tnd_http_response {
	long status;			   /* 200, 304, ... */
	char *body;			   /* malloc'd, NUL-terminated; NULL on 304 */
	size_t len;			   /* body bytes */
	char etag[256];			   /* the response's ETag, "" if none */
	uint64_t header_bytes, body_bytes; /* as received, for the cost of a poll */
};

/*
 * GET url with If-None-Match: etag (when etag is non-empty). 200 and 304
 * are successes; other statuses are errors (404: TND_E_NOT_FOUND, else
 * TND_E_NETWORK). A body above max bytes is refused. Not retried: the
 * caller's poll schedule is the retry.
 */
int tnd_http_get(const char *url, const char *etag, size_t max, const struct tnd_http_opts *o,
		 struct tnd_http_response *r) TND_MUST_CHECK;
void tnd_http_response_free(struct tnd_http_response *r);

/* POSTs a JSON document; any 2xx is a success. */
int tnd_http_post_json(const char *url, const char *json,
		       const struct tnd_http_opts *o) TND_MUST_CHECK;

#endif
