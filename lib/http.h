/*
 * An HTTP client for one JSON API: one keep-alive libcurl easy handle per
 * client, bounded response bodies, and retries with backoff folded into one
 * final error.
 *
 * Ownership: http_client_new() returns a client that http_client_free()
 * releases (the token's header is wiped first). A response is the caller's:
 * http_response_init() before use, http_response_release() after. A client
 * is used by one thread at a time.
 *
 * What is retried (up to options.retries times after the first attempt):
 * connection-level failures (refused, timed out, reset, empty reply,
 * truncated body), HTTP 429, HTTP 5xx, and a 2xx body the request's
 * validate hook calls malformed. Everything else is final: other 4xx, 3xx
 * (redirects are never followed), a body over the size cap, TLS
 * verification failures, an interrupt (cli_interrupted()).
 *
 * The token is never logged, never put in an error, and libcurl's verbose
 * output is never switched on.
 */
#ifndef CW_HTTP_H
#define CW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "strbuf.h"

struct http_client;

/* Backoff between retries: full jitter over base * 2^retry, capped. */
#define HTTP_BACKOFF_BASE_MS 500L
#define HTTP_BACKOFF_CAP_MS 30000L
/* A Retry-After beyond this many seconds is read as this many. */
#define HTTP_RETRY_AFTER_MAX 3600L

struct http_options {
	const char *base_url;	 /* "https://connect.mailerlite.com/api" (copied) */
	const char *token;	 /* bearer token (copied into a private header), or NULL */
	const char *api_version; /* X-Version header value, or NULL/"": none */
	long connect_timeout;	 /* seconds; 0: libcurl's default */
	long timeout;		 /* seconds for one whole attempt; 0: none */
	long max_response_bytes; /* body cap; 0: 32 MiB */
	int retries;		 /* retries after the first attempt */
};

struct http_response {
	long status;	     /* HTTP status of the last attempt; 0 when none arrived */
	struct strbuf body;  /* the last attempt's body (always NUL-terminated) */
	long rate_limit;     /* x-ratelimit-limit, or -1 when absent or garbage */
	long rate_remaining; /* x-ratelimit-remaining, or -1 */
	long retry_after;    /* Retry-After in seconds, or -1 (absent, garbage, HTTP-date) */
	double elapsed_ms;   /* the last attempt's transfer time */
	double total_ms;     /* the whole call: attempts, waits and backoff */
	int attempts;	     /* attempts made by the call */
};

struct http_request;

/*
 * Hooks of the layer above, called for every attempt of every request:
 * before() takes a rate-limit token (it may sleep); return 0 to go on, or -1
 * with err set to abort the call with that error. after() sees each HTTP
 * response that arrived (any status, before any retry decision), for
 * pacing. Either may be NULL. attempt counts from 1.
 */
struct http_hooks {
	int (*before)(void *arg, const struct http_request *req, int attempt,
		      struct cw_error *err);
	void (*after)(void *arg, const struct http_request *req, const struct http_response *resp);
	void *arg;
};

/*
 * Checks a 2xx body: return 0 when usable, or 1 when malformed with a short
 * reason in why ("data[3] has no string id"): the attempt is then retried
 * like a 5xx. Called once per 2xx attempt.
 */
typedef int (*http_validate_fn)(void *arg, const struct http_response *resp, struct strbuf *why);

struct http_request {
	const char *method;	   /* "GET", "POST", "PUT", "DELETE" */
	const char *path;	   /* "/subscribers?limit=100": appended to the base URL;
				    * the caller has percent-encoded it (http_escape) */
	const char *body;	   /* JSON text, or NULL for none */
	size_t body_len;
	http_validate_fn validate; /* optional */
	void *validate_arg;
	unsigned flags;		   /* not read by http: free for the hooks' use */
};

/* A new client, or NULL with err set (CW_EXIT_CONFIG for a bad URL or
 * token, CW_EXIT_SOFTWARE when libcurl fails to start). */
struct http_client *http_client_new(const struct http_options *opts, struct cw_error *err);
void http_client_free(struct http_client *client);

/* Hooks for every later request (copied); NULL removes them. */
void http_client_set_hooks(struct http_client *client, const struct http_hooks *hooks);

/* Requests sent so far (attempts, retries included): the programs'
 * apiRequests figure. */
long http_requests(const struct http_client *client);

void http_response_init(struct http_response *resp);
void http_response_release(struct http_response *resp);

/*
 * Run req, with retries. Returns 0 when a final HTTP answer arrived: a 2xx
 * (validated when req->validate is set) or a 1xx/3xx/4xx other than 429;
 * the caller reads resp->status. Returns -1 with err set otherwise:
 * CW_EXIT_UNAVAILABLE when the retries were used up or the body was over
 * the cap, CW_EXIT_PARTIAL when interrupted by a signal, or the error a
 * before() hook set. resp holds the last attempt either way.
 */
int http_do(struct http_client *client, const struct http_request *req,
	    struct http_response *resp, struct cw_error *err);

/* ---- Pure helpers (no I/O), exported for the unit tests ---- */

/* Retry-After as seconds: digits with optional surrounding blanks, capped
 * at HTTP_RETRY_AFTER_MAX; -1 for anything else (an HTTP-date included). */
long http_parse_retry_after(const char *value, size_t len);

/* A header value that must be a non-negative integer (x-ratelimit-*):
 * the number, or -1 when absent or garbage. Capped at LONG_MAX / 2. */
long http_parse_count(const char *value, size_t len);

/* Upper bound of the backoff before retry number `retry` (0 for the
 * first retry): min(cap, base * 2^retry). */
long http_backoff_ceiling_ms(int retry);

/* The backoff with full jitter: u in [0, 1) scales the ceiling. */
long http_backoff_ms(int retry, double u);

/* The wait before a retry: the backoff, but never less than a Retry-After
 * (seconds, -1 when none). */
long http_retry_delay_ms(int retry, long retry_after, double u);

/* Whether a status is retried (429, 5xx). */
bool http_status_retryable(long status);

/* Whether a libcurl result code (CURLcode) is a transient failure worth
 * retrying (connect, timeout, reset, empty or truncated reply). */
bool http_curl_code_retryable(int code);

/* s percent-encoded for a path segment or query value: only RFC 3986
 * unreserved characters stay as they are. New string. */
char *http_escape(const char *s);

#endif
