/* The HTTP client's pure helpers: header parsing, backoff, what is retried, escaping. */
#include "exitcode.h"
#include "http.h"
#include "tap.h"

#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* value fit for a TAP line: control characters as \xNN. */
static const char *shown(const char *value)
{
	static char buf[256];
	size_t o = 0;

	if (!value)
		return "(null)";
	for (const unsigned char *p = (const unsigned char *)value; *p && o + 5 < sizeof buf; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02X", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

static void retry_after(const char *value, long want)
{
	is_int(http_parse_retry_after(value, value ? strlen(value) : 0), want,
	       "Retry-After \"%s\" is %ld", shown(value), want);
}

static void count(const char *value, long want)
{
	is_int(http_parse_count(value, value ? strlen(value) : 0), want,
	       "count header \"%s\" is %ld", shown(value), want);
}

static void escapes(const char *in, const char *want)
{
	char *got = http_escape(in);
	is_str(got, want, "escape \"%s\"", shown(in));
	free(got);
}

static void parsing(void)
{
	retry_after("120", 120);
	retry_after("0", 0);
	retry_after("7", 7);
	retry_after(" 7 ", 7);
	retry_after("\t30\r\n", 30); /* a header line's own CR LF */
	retry_after("007", 7);
	retry_after("3600", HTTP_RETRY_AFTER_MAX);
	retry_after("3601", HTTP_RETRY_AFTER_MAX);
	retry_after("86400", HTTP_RETRY_AFTER_MAX);
	retry_after("99999999999999999999999999999999", HTTP_RETRY_AFTER_MAX);
	retry_after(NULL, -1);
	retry_after("", -1);
	retry_after("   ", -1);
	retry_after("abc", -1);
	retry_after("12a", -1);
	retry_after("1 2", -1);
	retry_after("-5", -1);
	retry_after("+5", -1);
	retry_after("1.5", -1);
	retry_after("0x10", -1);
	retry_after("Wed, 21 Oct 2015 07:28:00 GMT", -1);
	retry_after("Sun, 06 Nov 1994 08:49:37 GMT", -1);
	is_int(http_parse_retry_after("120abc", 3), 120, "only len bytes are read");
	is_int(http_parse_retry_after("1\0" "5", 3), -1, "an embedded NUL is garbage");

	count("100", 100);
	count("0", 0);
	count(" 119\r\n", 119);
	count("-1", -1);
	count("", -1);
	count(NULL, -1);
	count("lots", -1);
	count("1e3", -1);
	count("4611686018427387903", LONG_MAX / 2);
	count("4611686018427387904", LONG_MAX / 2);
	count("9223372036854775807", LONG_MAX / 2);
	count("9223372036854775808", LONG_MAX / 2);
	count("99999999999999999999999999999999999999", LONG_MAX / 2);
	count("922337203685477580", 922337203685477580L);
}

static void backoff(void)
{
	is_int(http_backoff_ceiling_ms(0), HTTP_BACKOFF_BASE_MS, "first retry: the base");
	is_int(http_backoff_ceiling_ms(1), 2 * HTTP_BACKOFF_BASE_MS, "second retry: doubled");
	is_int(http_backoff_ceiling_ms(2), 4 * HTTP_BACKOFF_BASE_MS, "third retry: doubled again");
	is_int(http_backoff_ceiling_ms(5), 32 * HTTP_BACKOFF_BASE_MS < HTTP_BACKOFF_CAP_MS
						   ? 32 * HTTP_BACKOFF_BASE_MS
						   : HTTP_BACKOFF_CAP_MS,
	       "retry 5");
	is_int(http_backoff_ceiling_ms(6), HTTP_BACKOFF_CAP_MS, "retry 6 reaches the cap");
	is_int(http_backoff_ceiling_ms(100), HTTP_BACKOFF_CAP_MS, "retry 100 stays at the cap");
	is_int(http_backoff_ceiling_ms(INT_MAX), HTTP_BACKOFF_CAP_MS, "retry INT_MAX stays at the cap");
	is_int(http_backoff_ceiling_ms(-1), HTTP_BACKOFF_BASE_MS, "a negative retry is the first");

	bool monotonic = true;
	for (int r = 1; r < 40; r++)
		monotonic &= http_backoff_ceiling_ms(r) >= http_backoff_ceiling_ms(r - 1) &&
			     http_backoff_ceiling_ms(r) <= HTTP_BACKOFF_CAP_MS;
	ok(monotonic, "the ceiling never shrinks and never passes the cap");

	is_int(http_backoff_ms(0, 0.0), 0, "full jitter starts at 0");
	is_int(http_backoff_ms(0, 0.5), HTTP_BACKOFF_BASE_MS / 2, "u 0.5 is half the ceiling");
	is_int(http_backoff_ms(3, 0.25), http_backoff_ceiling_ms(3) / 4, "u 0.25 is a quarter");
	ok(http_backoff_ms(0, 0.9999999) < HTTP_BACKOFF_BASE_MS, "u just below 1 stays below");
	ok(http_backoff_ms(10, 1.0) < HTTP_BACKOFF_CAP_MS, "u 1 is read as just below 1");
	ok(http_backoff_ms(10, 7.5) < HTTP_BACKOFF_CAP_MS, "u above 1 likewise");
	is_int(http_backoff_ms(4, -0.5), 0, "a negative u is 0");
	is_int(http_backoff_ms(4, NAN), 0, "a NaN u is 0");

	/* Every (retry, u) lands in [0, ceiling). */
	bool bounded = true;
	srand(7);
	for (int i = 0; i < 20000; i++) {
		int r = i % 12;
		double u = (double)rand() / ((double)RAND_MAX + 1.0);
		long b = http_backoff_ms(r, u);
		bounded &= b >= 0 && b < http_backoff_ceiling_ms(r);
	}
	ok(bounded, "20000 draws all lie in [0, ceiling)");

	is_int(http_retry_delay_ms(0, -1, 0.5), HTTP_BACKOFF_BASE_MS / 2,
	       "no Retry-After: the backoff");
	is_int(http_retry_delay_ms(0, 7, 0.0), 7000, "Retry-After 7 beats a short backoff");
	is_int(http_retry_delay_ms(0, 7, 0.99), 7000, "Retry-After 7 beats the whole first ceiling");
	is_int(http_retry_delay_ms(6, 1, 0.5), HTTP_BACKOFF_CAP_MS / 2,
	       "a longer backoff beats a short Retry-After");
	is_int(http_retry_delay_ms(0, 0, 0.5), HTTP_BACKOFF_BASE_MS / 2,
	       "Retry-After 0: the backoff still applies");
	is_int(http_retry_delay_ms(2, 120, 0.3), 120000, "Retry-After 120: two minutes");
	is_int(http_retry_delay_ms(0, HTTP_RETRY_AFTER_MAX, 0.0), HTTP_RETRY_AFTER_MAX * 1000L,
	       "the largest Retry-After");
	is_int(http_retry_delay_ms(0, LONG_MAX, 0.0), HTTP_RETRY_AFTER_MAX * 1000L,
	       "a huge Retry-After is capped, not overflowed");
	is_int(http_retry_delay_ms(0, LONG_MAX / 1000 + 1, 0.0), HTTP_RETRY_AFTER_MAX * 1000L,
	       "Retry-After just past LONG_MAX / 1000 likewise");
}

static void retryable(void)
{
	static const long yes[] = { 429, 500, 502, 503, 504, 599 };
	static const long no[] = { 0, 100, 200, 201, 204, 301, 302, 304, 400,
				   401, 403, 404, 405, 409, 413, 422, 600, -1 };

	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		ok(http_status_retryable(yes[i]), "HTTP %ld is retried", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		ok(!http_status_retryable(no[i]), "HTTP %ld is final", no[i]);

	static const int cyes[] = { CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT,
				    CURLE_SEND_ERROR,	   CURLE_RECV_ERROR,
				    CURLE_GOT_NOTHING,	   CURLE_PARTIAL_FILE,
				    CURLE_COULDNT_RESOLVE_HOST };
	static const int cno[] = { CURLE_OK,
				   CURLE_UNSUPPORTED_PROTOCOL,
				   CURLE_URL_MALFORMAT,
				   CURLE_PEER_FAILED_VERIFICATION,
				   CURLE_SSL_CACERT_BADFILE,
				   CURLE_WRITE_ERROR,
				   CURLE_FILESIZE_EXCEEDED,
				   CURLE_ABORTED_BY_CALLBACK,
				   CURLE_TOO_MANY_REDIRECTS,
				   CURLE_OUT_OF_MEMORY,
				   CURLE_LOGIN_DENIED };

	for (size_t i = 0; i < sizeof cyes / sizeof *cyes; i++)
		ok(http_curl_code_retryable(cyes[i]), "curl %d (%s) is retried", cyes[i],
		   curl_easy_strerror((CURLcode)cyes[i]));
	for (size_t i = 0; i < sizeof cno / sizeof *cno; i++)
		ok(!http_curl_code_retryable(cno[i]), "curl %d (%s) is final", cno[i],
		   curl_easy_strerror((CURLcode)cno[i]));
}

static void escaping(void)
{
	escapes("", "");
	escapes("abcXYZ019-._~", "abcXYZ019-._~");
	escapes("bob@example.com", "bob%40example.com");
	escapes("a b", "a%20b");
	escapes("a+b", "a%2Bb");
	escapes("a/b", "a%2Fb");
	escapes("?&=#%", "%3F%26%3D%23%25");
	escapes("[status]", "%5Bstatus%5D");
	escapes("eyJpZCI6MX0=", "eyJpZCI6MX0%3D");
	escapes("\xc3\xa9", "%C3%A9");
	escapes("\x01\x7f\xff", "%01%7F%FF");
}

static void client_new(void)
{
	struct http_options o = { 0 };
	struct cw_error err = { 0 };
	struct http_client *c;

	o.base_url = "ftp://example.com/api";
	c = http_client_new(&o, &err);
	ok(!c && err.code == CW_EXIT_CONFIG, "an ftp base URL is a configuration error");

	o.base_url = NULL;
	c = http_client_new(&o, &err);
	ok(!c && err.code == CW_EXIT_CONFIG, "no base URL is a configuration error");

	o.base_url = "http://127.0.0.1:1/api";
	o.token = "s3cret-token-value\n";
	c = http_client_new(&o, &err);
	ok(!c && err.code == CW_EXIT_CONFIG, "a token with a newline is refused");
	ok(!strstr(err.msg, "s3cret") && !strstr(err.detail, "s3cret") &&
		   !strstr(err.hint, "s3cret"),
	   "and the error does not show it");

	o.token = "s3cret-token-value";
	o.api_version = "2038-01-19\r\nX-Evil: 1";
	c = http_client_new(&o, &err);
	ok(!c && err.code == CW_EXIT_CONFIG, "a version with CR LF is refused");

	o.api_version = "2038-01-19";
	o.base_url = "http://127.0.0.1:1/api///";
	c = http_client_new(&o, &err);
	ok(c != NULL, "a good URL, token and version make a client");
	is_int(c ? http_requests(c) : -1, 0, "no request made yet");
	http_client_free(c);
	http_client_free(NULL);
	ok(true, "http_client_free(NULL) is harmless");

	struct http_response r;
	http_response_init(&r);
	ok(r.status == 0 && r.rate_limit == -1 && r.rate_remaining == -1 && r.retry_after == -1 &&
		   r.body.len == 0 && r.body.buf && !r.body.buf[0],
	   "a fresh response: no status, no headers, an empty body");
	http_response_release(&r);
}

int main(void)
{
	parsing();
	backoff();
	retryable();
	escaping();
	client_new();
	return done_testing();
}
