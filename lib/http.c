/* HTTP requests over one reused libcurl easy handle, with bounded bodies and retries. */
#include "http.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef CW_VERSION
#define CW_VERSION "0.0.0"
#endif

#define DEFAULT_MAX_RESPONSE (32L << 20)

/* What one transfer collects through libcurl's callbacks. */
struct xfer {
	struct http_response *resp;
	size_t cap;
	bool too_big;
	bool interrupted;
};

struct http_client {
	CURL *curl;
	char *base_url;			  /* without a trailing slash */
	struct curl_slist *headers;	  /* every request: Accept, auth, X-Version, Expect */
	struct curl_slist *body_headers;  /* the same plus Content-Type, for bodies */
	size_t max_response;
	int retries;
	long requests;
	uint64_t rng;			  /* jitter only: no need for a good generator */
	struct http_hooks hooks;
	struct xfer xfer;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init() is not safe to race with itself on every libcurl
 * build; run it once per process and never clean up (the process exits). */
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- pure helpers ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The digits of value (blanks around them allowed) as a number, capped at
 * max; -1 when there are no digits or anything else is there. */
static long parse_digits(const char *value, size_t len, long max)
{
	size_t i = 0, end = len;
	long n = 0;

	if (!value)
		return -1;
	while (i < end && is_blank(value[i]))
		i++;
	while (end > i && is_blank(value[end - 1]))
		end--;
	if (i == end)
		return -1;
	for (; i < end; i++) {
		int d = value[i] - '0';

		if (d < 0 || d > 9)
			return -1;
		/* Saturate before multiplying: n * 10 + d must not overflow. */
		n = n > (max - d) / 10 ? max : n * 10 + d;
	}
	return n;
}

long http_parse_retry_after(const char *value, size_t len)
{
	/* An HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT") has letters and is
	 * refused here: its meaning depends on our clock agreeing with the
	 * server's, which the pacing does not assume. The backoff covers it. */
	return parse_digits(value, len, HTTP_RETRY_AFTER_MAX);
}

long http_parse_count(const char *value, size_t len)
{
	return parse_digits(value, len, LONG_MAX / 2);
}

long http_backoff_ceiling_ms(int retry)
{
	long ceiling = HTTP_BACKOFF_BASE_MS;

	for (int i = 0; i < retry && ceiling < HTTP_BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	return ceiling < HTTP_BACKOFF_CAP_MS ? ceiling : HTTP_BACKOFF_CAP_MS;
}

long http_backoff_ms(int retry, double u)
{
	/* Full jitter (anywhere from 0 to the ceiling): processes that failed
	 * together do not come back together. */
	if (!(u >= 0.0))
		u = 0.0;
	if (u >= 1.0)
		u = 0.999999;
	return (long)(u * (double)http_backoff_ceiling_ms(retry));
}

long http_retry_delay_ms(int retry, long retry_after, double u)
{
	long delay = http_backoff_ms(retry, u);

	/* The same ceiling as the parser's, so that seconds * 1000 cannot
	 * overflow whatever a caller passes. */
	if (retry_after > HTTP_RETRY_AFTER_MAX)
		retry_after = HTTP_RETRY_AFTER_MAX;
	if (retry_after >= 0 && retry_after * 1000 > delay)
		delay = retry_after * 1000;
	return delay;
}

bool http_status_retryable(long status)
{
	return status == 429 || (status >= 500 && status <= 599);
}

bool http_curl_code_retryable(int code)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST: /* a resolver hiccup; a typo fails every time */
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING: /* a compressed body cut short */
		return true;
	default:
		return false;
	}
}

char *http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct strbuf sb = STRBUF_INIT;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			strbuf_addch(&sb, (char)*p);
		} else {
			strbuf_addch(&sb, '%');
			strbuf_addch(&sb, hex[*p >> 4]);
			strbuf_addch(&sb, hex[*p & 15]);
		}
	}
	return strbuf_detach(&sb, NULL);
}

/* ---- the client ---- */

static double next_unit(struct http_client *c)
{
	/* xorshift64*: enough to spread retries apart. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (double)((c->rng * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t seed(void)
{
	uint64_t s = 0;
	struct timespec ts;

	if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
		clock_gettime(CLOCK_REALTIME, &ts);
		s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
	}
	return s ? s : 0x9E3779B97F4A7C15ULL;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	if (x->resp->body.len + n > x->cap) {
		/* Returning short makes libcurl stop with CURLE_WRITE_ERROR. */
		x->too_big = true;
		return 0;
	}
	strbuf_add(&x->resp->body, data, n);
	return n;
}

/* "name:" at the start of a header line, case-insensitively: the value's
 * start, or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
		return NULL;
	*vlen = len - n - 1;
	return line + n + 1;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	struct http_response *r = x->resp;
	size_t len = size * nmemb, vlen;
	const char *v;

	/* A status line starts a new response (after a 100 Continue, say):
	 * only the last response's headers count. */
	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		r->rate_limit = r->rate_remaining = r->retry_after = -1;
		return len;
	}
	if ((v = header_value(line, len, "x-ratelimit-limit", &vlen)))
		r->rate_limit = http_parse_count(v, vlen);
	else if ((v = header_value(line, len, "x-ratelimit-remaining", &vlen)))
		r->rate_remaining = http_parse_count(v, vlen);
	else if ((v = header_value(line, len, "retry-after", &vlen)))
		r->retry_after = http_parse_retry_after(v, vlen);
	return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = arg;

	/* libcurl calls this at least once a second even on a silent
	 * connection: a signal ends the transfer within that time. */
	if (cli_interrupted()) {
		x->interrupted = true;
		return 1;
	}
	return 0;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (!l) {
		log_error("out of memory");
		exit(CW_EXIT_SOFTWARE);
	}
	return l;
}

/* Wipe the Authorization line libcurl copied before freeing the list. */
static void free_headers(struct curl_slist *list)
{
	for (struct curl_slist *l = list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static struct curl_slist *build_headers(const struct http_options *opts, bool with_body)
{
	struct curl_slist *list = NULL;

	list = add_header(list, "Accept: application/json");
	if (with_body)
		list = add_header(list, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before large bodies. */
	list = add_header(list, "Expect:");
	if (opts->api_version && *opts->api_version) {
		char *line = xasprintf("X-Version: %s", opts->api_version);
		list = add_header(list, line);
		free(line);
	}
	if (opts->token && *opts->token) {
		char *line = xasprintf("Authorization: Bearer %s", opts->token);
		list = add_header(list, line);
		explicit_bzero(line, strlen(line));
		free(line);
	}
	return list;
}

#define SETOPT(c, opt, val)                                                                        \
	do {                                                                                       \
		if (curl_easy_setopt((c), (opt), (val)) != CURLE_OK)                               \
			goto setopt_failed;                                                        \
	} while (0)

struct http_client *http_client_new(const struct http_options *opts, struct cw_error *err)
{
	struct http_client *c;
	size_t len;

	if (!opts->base_url ||
	    (strncmp(opts->base_url, "http://", 7) && strncmp(opts->base_url, "https://", 8))) {
		cw_error_set(err, CW_EXIT_CONFIG, "API base URL \"%s\" is not an http(s) URL",
			     opts->base_url ? opts->base_url : "");
		return NULL;
	}
	if (!header_safe(opts->base_url) ||
	    (opts->api_version && !header_safe(opts->api_version))) {
		cw_error_set(err, CW_EXIT_CONFIG, "API base URL or version has control characters");
		return NULL;
	}
	if (opts->token && !header_safe(opts->token)) {
		/* Never echo the token, not even in part. */
		cw_error_set(err, CW_EXIT_CONFIG, "the API token contains control characters");
		cw_error_hint(err, "Check for a trailing newline or carriage return in the key file.");
		return NULL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "could not initialize libcurl: %s",
			     curl_easy_strerror(curl_init_rc));
		return NULL;
	}

	c = xcalloc(1, sizeof *c);
	c->curl = curl_easy_init();
	if (!c->curl) {
		free(c);
		cw_error_set(err, CW_EXIT_SOFTWARE, "could not create a libcurl handle");
		return NULL;
	}
	c->base_url = xstrdup(opts->base_url);
	len = strlen(c->base_url);
	while (len > 0 && c->base_url[len - 1] == '/')
		c->base_url[--len] = '\0';
	c->headers = build_headers(opts, false);
	c->body_headers = build_headers(opts, true);
	c->max_response = opts->max_response_bytes > 0 ? (size_t)opts->max_response_bytes
						       : (size_t)DEFAULT_MAX_RESPONSE;
	c->retries = opts->retries > 0 ? opts->retries : 0;
	c->rng = seed();

	char *agent = xasprintf("crosswalk/%s", CW_VERSION);
	/* Verbose output would print the Authorization header: never on. */
	SETOPT(c->curl, CURLOPT_VERBOSE, 0L);
	SETOPT(c->curl, CURLOPT_NOSIGNAL, 1L);
	SETOPT(c->curl, CURLOPT_USERAGENT, agent);
	SETOPT(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	SETOPT(c->curl, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	/* A redirect could carry the token to another host: follow none. */
	SETOPT(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(c->curl, CURLOPT_ACCEPT_ENCODING, ""); /* what libcurl can decode */
	if (opts->connect_timeout > 0)
		SETOPT(c->curl, CURLOPT_CONNECTTIMEOUT, opts->connect_timeout);
	if (opts->timeout > 0)
		SETOPT(c->curl, CURLOPT_TIMEOUT, opts->timeout);
	/* Refuses a declared Content-Length over the cap before any body
	 * arrives; on_body() enforces the cap for the rest. */
	SETOPT(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
	SETOPT(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(c->curl, CURLOPT_WRITEDATA, &c->xfer);
	SETOPT(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(c->curl, CURLOPT_HEADERDATA, &c->xfer);
	SETOPT(c->curl, CURLOPT_NOPROGRESS, 0L);
	SETOPT(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(c->curl, CURLOPT_XFERINFODATA, &c->xfer);
	free(agent);
	return c;

setopt_failed:
	free(agent);
	http_client_free(c);
	cw_error_set(err, CW_EXIT_SOFTWARE, "could not configure libcurl (version %s)",
		     curl_version_info(CURLVERSION_NOW)->version);
	return NULL;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free_headers(c->headers);
	free_headers(c->body_headers);
	free(c->base_url);
	free(c);
}

void http_client_set_hooks(struct http_client *c, const struct http_hooks *hooks)
{
	if (hooks)
		c->hooks = *hooks;
	else
		memset(&c->hooks, 0, sizeof c->hooks);
}

long http_requests(const struct http_client *c)
{
	return c->requests;
}

void http_response_init(struct http_response *r)
{
	memset(r, 0, sizeof *r);
	strbuf_init(&r->body, 0);
	r->rate_limit = r->rate_remaining = r->retry_after = -1;
}

void http_response_release(struct http_response *r)
{
	strbuf_release(&r->body);
	http_response_init(r);
}

/* Set the method and body of the next transfer on the reused handle. */
static int prepare(struct http_client *c, const struct http_request *req, const char *url)
{
	bool body = req->body != NULL;
	const char *custom = NULL;

	SETOPT(c->curl, CURLOPT_URL, url);
	if (body || !strcmp(req->method, "POST")) {
		SETOPT(c->curl, CURLOPT_POSTFIELDS, body ? req->body : "");
		SETOPT(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? req->body_len : 0));
		if (strcmp(req->method, "POST"))
			custom = req->method;
	} else {
		SETOPT(c->curl, CURLOPT_HTTPGET, 1L);
		if (strcmp(req->method, "GET"))
			custom = req->method;
	}
	SETOPT(c->curl, CURLOPT_CUSTOMREQUEST, custom);
	SETOPT(c->curl, CURLOPT_HTTPHEADER, body ? c->body_headers : c->headers);
	return 0;
setopt_failed:
	return -1;
}

/* "GET /subscribers": the request named for messages, without its query
 * string (cursors make lines long and say nothing to an operator). */
static char *label(const struct http_request *req)
{
	return xasprintf("%s %.*s", req->method, (int)strcspn(req->path, "?"), req->path);
}

enum outcome {
	OUT_DONE,	/* a final answer: return it */
	OUT_RETRY,	/* transient: retry while the budget lasts */
	OUT_FATAL,	/* an error no retry can fix */
	OUT_INTERRUPT,
};

/* One attempt: perform, then classify. `what` receives a few words on a
 * failed attempt for the log and the final error. */
static enum outcome attempt(struct http_client *c, const struct http_request *req,
			    struct http_response *resp, struct strbuf *what)
{
	CURLcode rc;
	curl_off_t us = 0;

	strbuf_reset(&resp->body);
	resp->status = 0;
	resp->rate_limit = resp->rate_remaining = resp->retry_after = -1;
	c->xfer.resp = resp;
	c->xfer.cap = c->max_response;
	c->xfer.too_big = false;
	c->xfer.interrupted = false;
	c->errbuf[0] = '\0';

	c->requests++;
	rc = curl_easy_perform(c->curl);
	if (curl_easy_getinfo(c->curl, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
		resp->elapsed_ms = (double)us / 1000.0;
	if (rc != CURLE_OK) {
		const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);

		resp->status = 0;
		if (c->xfer.interrupted || (rc == CURLE_ABORTED_BY_CALLBACK && cli_interrupted())) {
			strbuf_addstr(what, "interrupted");
			return OUT_INTERRUPT;
		}
		if (c->xfer.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			c->xfer.too_big = true;
			strbuf_addf(what, "response larger than %zu bytes", c->max_response);
			return OUT_FATAL;
		}
		strbuf_addstr(what, why);
		return http_curl_code_retryable(rc) ? OUT_RETRY : OUT_FATAL;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (c->hooks.after)
		c->hooks.after(c->hooks.arg, req, resp);
	if (http_status_retryable(resp->status)) {
		strbuf_addf(what, "HTTP %ld", resp->status);
		if (resp->retry_after >= 0)
			strbuf_addf(what, " (Retry-After %ld s)", resp->retry_after);
		return OUT_RETRY;
	}
	if (resp->status >= 200 && resp->status <= 299 && req->validate) {
		struct strbuf why = STRBUF_INIT;

		if (req->validate(req->validate_arg, resp, &why)) {
			strbuf_addf(what, "malformed response (%s)",
				    why.len ? why.buf : "not what the API documents");
			strbuf_release(&why);
			return OUT_RETRY;
		}
		strbuf_release(&why);
	}
	return OUT_DONE;
}

/* Add one failed attempt to the history of a call, a run of the same
 * failure folded into one entry: "HTTP 503 (3 times); Empty reply". */
static void history_add(struct strbuf *history, struct strbuf *last, int *times,
			const char *what)
{
	if (what && last->len && !strcmp(last->buf, what)) {
		(*times)++;
		return;
	}
	if (last->len) {
		strbuf_addf(history, "%s%s", history->len ? "; " : "", last->buf);
		if (*times > 1)
			strbuf_addf(history, " (%d times)", *times);
	}
	strbuf_reset(last);
	if (what)
		strbuf_addstr(last, what);
	*times = 1;
}

int http_do(struct http_client *c, const struct http_request *req, struct http_response *resp,
	    struct cw_error *err)
{
	long long start = cli_now_ms();
	int max_attempts = c->retries + 1, rc = -1, times = 0;
	struct strbuf history = STRBUF_INIT, what = STRBUF_INIT, last = STRBUF_INIT;
	char *name = label(req), *url = xasprintf("%s%s", c->base_url, req->path);
	enum outcome out = OUT_FATAL;

	resp->attempts = 0;
	if (prepare(c, req, url) < 0) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "could not prepare request %s", name);
		goto done;
	}
	for (int n = 1; n <= max_attempts; n++) {
		if (cli_interrupted()) {
			out = OUT_INTERRUPT;
			break;
		}
		if (c->hooks.before && c->hooks.before(c->hooks.arg, req, n, err) < 0)
			goto done; /* the hook's error stands (interrupt included) */
		resp->attempts = n;
		strbuf_reset(&what);
		out = attempt(c, req, resp, &what);
		if (out == OUT_DONE) {
			rc = 0;
			goto done;
		}
		history_add(&history, &last, &times, what.buf);
		if (out != OUT_RETRY || n == max_attempts)
			break;
		long delay = http_retry_delay_ms(n - 1, resp->retry_after, next_unit(c));
		log_warning("%s: %s; retrying in %.1f s (attempt %d of %d)", name, what.buf,
			    (double)delay / 1000.0, n + 1, max_attempts);
		if (!cli_sleep_ms(delay)) {
			out = OUT_INTERRUPT;
			break;
		}
	}

	if (out == OUT_INTERRUPT) {
		cw_error_set(err, CW_EXIT_PARTIAL, "request %s interrupted by a signal", name);
	} else if (out == OUT_FATAL && c->xfer.too_big) {
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "response to %s is larger than %zu bytes",
			     name, c->max_response);
		cw_error_hint(err, "Raise max_response_bytes if responses this large are expected.");
	} else if (resp->attempts <= 1) {
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "request %s failed: %s", name, what.buf);
	} else {
		history_add(&history, &last, &times, NULL);
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "request %s failed after %d attempts: %s",
			     name, resp->attempts, what.buf);
		cw_error_detail(err, "The attempts over %.1f s: %s.",
				(double)(cli_now_ms() - start) / 1000.0, history.buf);
	}
done:
	resp->total_ms = (double)(cli_now_ms() - start);
	strbuf_release(&history);
	strbuf_release(&last);
	strbuf_release(&what);
	free(name);
	free(url);
	return rc;
}
