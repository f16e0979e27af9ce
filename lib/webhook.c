/* POSTs the final report of ended chunked jobs to their webhooks, one claimed parent at a time. */
#include "webhook.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CW_VERSION
#define CW_VERSION "0.0.0"
#endif

/* One claimed delivery. Texts are as the database printed them. */
struct delivery {
	char *id;	/* the parent's id */
	char *attempt;	/* webhook_attempts after the claim: this delivery's number */
	char *url;	/* with its credentials: for libcurl only */
	char *shown;	/* webhook_redact_url(url): for the log */
	char *report;	/* sync_job_report(id) as JSON text */
};

/* What one POST came to. */
struct outcome {
	long status;			  /* the final HTTP status, 0 when none arrived */
	bool delivered;			  /* a 2xx */
	bool interrupted;		  /* stopped by SIGINT/SIGTERM */
	char why[WEBHOOK_ERROR_MAX + 1];  /* for webhook_last_error; "" when delivered */
};

/* What libcurl's callbacks see of a transfer. */
struct xfer {
	size_t received; /* body bytes read */
	size_t cap;
	bool capped;	 /* more was on its way: reading stopped */
	bool interrupted;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* As in http.c: once per process, never cleaned up (the process exits). */
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void webhook_options_init(struct webhook_options *o)
{
	o->timeout_s = WEBHOOK_DEFAULT_TIMEOUT;
	o->max_attempts = WEBHOOK_DEFAULT_MAX_ATTEMPTS;
	o->max_response_bytes = WEBHOOK_DEFAULT_MAX_RESPONSE;
}

/* The caller's options, defaults where unset, bounds where beyond them. */
static struct webhook_options settle(const struct webhook_options *in)
{
	struct webhook_options o;

	webhook_options_init(&o);
	if (in) {
		if (in->timeout_s > 0)
			o.timeout_s = in->timeout_s > 3600 ? 3600 : in->timeout_s;
		if (in->max_attempts > 0)
			o.max_attempts = in->max_attempts > 1000 ? 1000 : in->max_attempts;
		if (in->max_response_bytes > 0)
			o.max_response_bytes = in->max_response_bytes;
	}
	return o;
}

/* ---- the URL as a log may show it ---- */

/*
 * Only the origin: scheme, host and port. Not the user information nor
 * the query, and not the path either: many services put the secret in the
 * path (https://hooks.example.com/services/T0/B0/<token>), so "/..." only
 * says that there was one. The URL is read by libcurl's own parser, the
 * one that sends it, so the log names the host the POST went to; what it
 * cannot parse is not shown at all.
 */
char *webhook_redact_url(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *out;

	if (!u)
		return xstrdup("(a URL)");
	if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		out = xstrdup("(an invalid URL)");
		goto done;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	out = xasprintf("%s://%s%s%s%s", scheme, host, port ? ":" : "", port ? port : "",
			path && strcmp(path, "/") && *path ? "/..." : "");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return out;
}

/* ---- one POST ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	/* The body is not needed, only bounded: the status has arrived by now.
	 * A short count makes libcurl stop with CURLE_WRITE_ERROR. */
	if (n > x->cap - x->received) {
		x->capped = true;
		return 0;
	}
	x->received += n;
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = arg;

	/* Called at least once a second, even on a silent connection. */
	if (cli_interrupted()) {
		x->interrupted = true;
		return 1;
	}
	return 0;
}

/* A failed transfer in a few words, never with the URL (libcurl's own
 * messages may name it): the text kept in webhook_last_error. */
static void describe_failure(CURL *curl, CURLcode rc, long timeout, long connect_timeout,
			     char *why, size_t len)
{
	long os_errno = 0;
	curl_off_t connected_us = 0;

	curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		snprintf(why, len, "%s",
			 os_errno == ECONNREFUSED   ? "connection refused"
			 : os_errno == EHOSTUNREACH ? "host unreachable"
			 : os_errno == ENETUNREACH  ? "network unreachable"
			 : os_errno == ETIMEDOUT    ? "connection timed out"
						    : "could not connect");
		break;
	case CURLE_OPERATION_TIMEDOUT:
		curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected_us);
		if (connected_us == 0)
			snprintf(why, len, "could not connect within %ld s", connect_timeout);
		else
			snprintf(why, len, "timed out after %ld s", timeout);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(why, len, "could not resolve the host name");
		break;
	case CURLE_COULDNT_RESOLVE_PROXY:
		snprintf(why, len, "could not resolve the proxy's host name");
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		snprintf(why, len, "TLS certificate verification failed");
		break;
	case CURLE_SSL_CONNECT_ERROR:
		snprintf(why, len, "TLS handshake failed");
		break;
	case CURLE_GOT_NOTHING:
		snprintf(why, len, "empty reply");
		break;
	case CURLE_SEND_ERROR:
		snprintf(why, len, "connection lost while sending");
		break;
	case CURLE_RECV_ERROR:
		snprintf(why, len, "connection lost while receiving");
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		snprintf(why, len, "not an HTTP reply");
		break;
	case CURLE_URL_MALFORMAT:
		snprintf(why, len, "malformed URL");
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		snprintf(why, len, "not an http or https URL");
		break;
	default:
		/* curl_easy_strerror() is a fixed text per code. */
		snprintf(why, len, "transfer failed: %s (curl error %d)", curl_easy_strerror(rc),
			 (int)rc);
		break;
	}
}

static struct curl_slist *add_header(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (!l) {
		curl_slist_free_all(list);
		return NULL;
	}
	return l;
}

#define SETOPT(c, opt, val)                                                                        \
	do {                                                                                       \
		if (curl_easy_setopt((c), (opt), (val)) != CURLE_OK)                               \
			goto setup_failed;                                                         \
	} while (0)

/* POST d's report to its URL, once. Fills *out; returns -1 (err set) only
 * when libcurl could not be set up at all. */
static int post(const struct delivery *d, const struct webhook_options *o, struct outcome *out,
		struct cw_error *err)
{
	long connect_timeout = o->timeout_s / 2 > 5 ? o->timeout_s / 2 : 5;
	struct xfer x = { 0, (size_t)o->max_response_bytes, false, false };
	struct curl_slist *headers = NULL;
	char *line;
	CURL *curl = NULL;
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	if (connect_timeout > o->timeout_s)
		connect_timeout = o->timeout_s;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return cw_error_set(err, CW_EXIT_SOFTWARE, "could not initialize libcurl: %s",
				    curl_easy_strerror(curl_init_rc));
	curl = curl_easy_init();
	if (!curl)
		return cw_error_set(err, CW_EXIT_SOFTWARE, "could not create a libcurl handle");

	headers = add_header(headers, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before a large report. */
	headers = headers ? add_header(headers, "Expect:") : NULL;
	line = xasprintf("X-Crosswalk-Job: %s", d->id);
	headers = headers ? add_header(headers, line) : NULL;
	free(line);
	line = xasprintf("X-Crosswalk-Delivery-Attempt: %s", d->attempt);
	headers = headers ? add_header(headers, line) : NULL;
	free(line);
	if (!headers)
		goto setup_failed;

	/* Verbose output would print the URL's credentials: never on. */
	SETOPT(curl, CURLOPT_VERBOSE, 0L);
	SETOPT(curl, CURLOPT_NOSIGNAL, 1L);
	SETOPT(curl, CURLOPT_URL, d->url);
	SETOPT(curl, CURLOPT_USERAGENT, "crosswalk/" CW_VERSION);
	SETOPT(curl, CURLOPT_HTTPHEADER, headers);
	SETOPT(curl, CURLOPT_POSTFIELDS, d->report);
	SETOPT(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->report));
	/* A redirect would carry the report, and any credentials, elsewhere. */
	SETOPT(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SETOPT(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SETOPT(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SETOPT(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(curl, CURLOPT_CONNECTTIMEOUT, connect_timeout);
	SETOPT(curl, CURLOPT_TIMEOUT, o->timeout_s);
	SETOPT(curl, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(curl, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(curl, CURLOPT_WRITEDATA, &x);
	SETOPT(curl, CURLOPT_NOPROGRESS, 0L);
	SETOPT(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	SETOPT(curl, CURLOPT_XFERINFODATA, &x);

	rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
	/*
	 * Once a final status has arrived it is the receiver's answer, whatever
	 * became of the body after it (over the cap, cut short, too slow): the
	 * report was taken, or refused, by then.
	 */
	if (out->status >= 200) {
		if (x.capped)
			log_debug("job %s: the webhook's answer is over %zu bytes; not read further",
				  d->id, x.cap);
		else if (rc != CURLE_OK)
			log_debug("job %s: the webhook's answer ended badly after its status line "
				  "(curl error %d)",
				  d->id, (int)rc);
		out->delivered = out->status <= 299;
		if (out->status >= 300 && out->status <= 399)
			snprintf(out->why, sizeof(out->why),
				 "HTTP %ld (redirects are not followed)", out->status);
		else if (!out->delivered)
			snprintf(out->why, sizeof(out->why), "HTTP %ld", out->status);
	} else if (x.interrupted || (rc == CURLE_ABORTED_BY_CALLBACK && cli_interrupted())) {
		out->status = 0;
		out->interrupted = true;
		snprintf(out->why, sizeof(out->why), "interrupted");
	} else {
		out->status = 0;
		describe_failure(curl, rc == CURLE_OK ? CURLE_GOT_NOTHING : rc, o->timeout_s,
				 connect_timeout, out->why, sizeof(out->why));
	}
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	return 0;

setup_failed:
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	return cw_error_set(err, CW_EXIT_SOFTWARE, "could not configure libcurl (version %s)",
			    curl_version_info(CURLVERSION_NOW)->version);
}

/* ---- the rows ---- */

static void delivery_release(struct delivery *d)
{
	free(d->id);
	free(d->attempt);
	free(d->url);
	free(d->shown);
	free(d->report);
	memset(d, 0, sizeof(*d));
}

/*
 * Claim the oldest due delivery and read its report, in one short
 * transaction. *found tells whether there was one. The claim counts the
 * attempt (a worker that dies mid-POST still uses one up) and pushes
 * webhook_next_at past the POST's end: the lease. SKIP LOCKED: a row
 * another worker is claiming, or a job being rolled up, is passed over,
 * never waited for.
 */
static int claim(struct db *db, const struct webhook_options *o, struct delivery *d, bool *found,
		 struct cw_error *err)
{
	const char *schema = db_schema(db);
	char lease[32];
	const char *params[1] = { lease };
	PGresult *res;
	char *sql;

	*found = false;
	snprintf(lease, sizeof(lease), "%ld", o->timeout_s + WEBHOOK_LEASE_MARGIN);
	if (db_begin(db, err) < 0)
		return -1;
	sql = xasprintf(
		"WITH due AS MATERIALIZED ("
		"    SELECT id FROM %s.sync_queue"
		"    WHERE webhook_status = 'pending' AND webhook_next_at <= now()"
		"      AND webhook_url IS NOT NULL"
		"      AND status IN ('completed', 'partial_success', 'failed', 'cancelled')"
		"    ORDER BY webhook_next_at, id"
		"    LIMIT 1"
		"    FOR UPDATE SKIP LOCKED)"
		" UPDATE %s.sync_queue q"
		" SET webhook_attempts = q.webhook_attempts + 1,"
		"     webhook_next_at = now() + make_interval(secs => $1::double precision)"
		" FROM due WHERE q.id = due.id"
		" RETURNING q.id, q.webhook_attempts, q.webhook_url",
		schema, schema);
	res = db_query(db, sql, 1, params, err);
	free(sql);
	if (!res)
		goto fail;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return db_commit(db, err);
	}
	d->id = xstrdup(PQgetvalue(res, 0, 0));
	d->attempt = xstrdup(PQgetvalue(res, 0, 1));
	d->url = xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);

	/* After the claim, so the report's webhook.attempts counts this one. */
	const char *id_param[1] = { d->id };
	sql = xasprintf("SELECT %s.sync_job_report($1::bigint)::text", schema);
	res = db_query(db, sql, 1, id_param, err);
	free(sql);
	if (!res)
		goto fail;
	d->report = xstrdup(PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0)
									     : "null");
	PQclear(res);
	if (db_commit(db, err) < 0)
		goto fail_released;
	d->shown = webhook_redact_url(d->url);
	*found = true;
	return 0;
fail:
	db_rollback(db);
fail_released:
	delivery_release(d);
	return -1;
}

/* Write what the POST came to, under the attempt number: a claim by
 * someone else since (our lease ran out) has changed it, and then theirs
 * is the outcome that counts. */
static int record(struct db *db, const struct webhook_options *o, const struct delivery *d,
		  const struct outcome *out, struct cw_error *err)
{
	const char *schema = db_schema(db);
	char max[16];
	const char *params[5] = { d->id, d->attempt, out->delivered ? "true" : "false",
				  out->delivered ? NULL : out->why, max };
	PGresult *res;
	char *sql;

	snprintf(max, sizeof(max), "%d", o->max_attempts);
	sql = xasprintf(
		"UPDATE %s.sync_queue"
		" SET webhook_status = CASE WHEN $3::boolean THEN 'sent'"
		"                           WHEN webhook_attempts >= $5::integer THEN 'failed'"
		"                           ELSE 'pending' END,"
		"     webhook_sent_at = CASE WHEN $3::boolean THEN now() ELSE webhook_sent_at END,"
		"     webhook_last_error = CASE WHEN $3::boolean THEN NULL ELSE left($4, %d) END,"
		"     webhook_next_at = CASE WHEN $3::boolean OR webhook_attempts >= $5::integer"
		"                            THEN NULL"
		"                            ELSE now() + %s.chunk_backoff(webhook_attempts) END"
		" WHERE id = $1::bigint AND webhook_attempts = $2::integer"
		"   AND webhook_status = 'pending'"
		" RETURNING webhook_status,"
		"     round(extract(epoch FROM webhook_next_at - now())::numeric, 1)",
		schema, WEBHOOK_ERROR_MAX, schema);
	res = db_query(db, sql, 5, params, err);
	free(sql);
	if (!res)
		return -1;
	if (PQntuples(res) == 0) {
		log_warning("job %s: the webhook's attempt %s outlived its lease; another worker "
			    "took the delivery over",
			    d->id, d->attempt);
	} else if (out->delivered) {
		log_info("job %s: webhook delivered to %s (HTTP %ld, attempt %s)", d->id, d->shown,
			 out->status, d->attempt);
	} else if (!strcmp(PQgetvalue(res, 0, 0), "failed")) {
		log_warning("job %s: webhook to %s failed: %s; giving up after %s attempts", d->id,
			    d->shown, out->why, d->attempt);
	} else {
		log_warning("job %s: webhook to %s failed: %s; retrying in %s s (attempt %s of %d)",
			    d->id, d->shown, out->why, PQgetvalue(res, 0, 1), d->attempt,
			    o->max_attempts);
	}
	PQclear(res);
	return 0;
}

/* Hand an interrupted delivery back: due now, the attempt not counted.
 * The receiver may have had it all the same; it may have it twice. */
static int hand_back(struct db *db, const struct delivery *d, struct cw_error *err)
{
	const char *params[2] = { d->id, d->attempt };
	char *sql = xasprintf("UPDATE %s.sync_queue"
			      " SET webhook_attempts = greatest(webhook_attempts - 1, 0),"
			      "     webhook_next_at = now()"
			      " WHERE id = $1::bigint AND webhook_attempts = $2::integer"
			      "   AND webhook_status = 'pending'",
			      db_schema(db));
	int rc = db_exec(db, sql, 2, params, err);

	free(sql);
	return rc;
}

int webhook_deliver_due(struct db *db, const struct webhook_options *opts, int limit,
			int *attempted, struct cw_error *err)
{
	struct webhook_options o = settle(opts);
	int n = 0, rc = 0;

	if (attempted)
		*attempted = 0;
	if (db_in_transaction(db))
		return cw_error_set(err, CW_EXIT_SOFTWARE,
				    "webhooks were delivered inside a transaction");
	while (n < limit && !cli_interrupted()) {
		struct delivery d = { 0 };
		struct outcome out;
		bool found;

		if (claim(db, &o, &d, &found, err) < 0) {
			rc = -1;
			break;
		}
		if (!found)
			break;
		log_debug("job %s: posting its report to %s (attempt %s)", d.id, d.shown,
			  d.attempt);
		if (post(&d, &o, &out, err) < 0) {
			/* libcurl is unusable here: give the delivery back for
			 * another worker rather than burn its attempts. */
			struct cw_error ignored = { 0 };
			hand_back(db, &d, &ignored);
			delivery_release(&d);
			rc = -1;
			break;
		}
		n++;
		if (out.interrupted) {
			rc = hand_back(db, &d, err);
			delivery_release(&d);
			break;
		}
		rc = record(db, &o, &d, &out, err);
		delivery_release(&d);
		if (rc < 0)
			break;
	}
	if (attempted)
		*attempted = n;
	return rc;
}
