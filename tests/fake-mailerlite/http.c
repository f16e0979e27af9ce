/* The HTTP front end on libmicrohttpd: connections, bodies, the API's auth/rate/fault flow, replies. */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api.h"
#include "control.h"
#include "faults.h"
#include "ratelimit.h"
#include "reply.h"
#include "reqlog.h"
#include "util.h"

#define API_BODY_MAX	 (16u << 20)
#define CONTROL_BODY_MAX (1024u << 20)

/* One request: the raw URI (for the log and our own decoding) and its body. */
struct req {
	char *uri;
	int started;
	int answered;
	int control;
	int too_big;
	char *body;
	size_t len;
	size_t cap;
};

static size_t body_cap(const struct req *r)
{
	return r->control ? CONTROL_BODY_MAX : API_BODY_MAX;
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls;
	(void)c;
	struct req *r = xcalloc(1, sizeof *r);
	r->uri = xstrdup(uri ? uri : "/");
	return r;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req *r = *con_cls;
	if (r) {
		free(r->uri);
		free(r->body);
		free(r);
	}
	*con_cls = NULL;
}

/* Without TCP_NODELAY a keep-alive client can wait 40 ms for a delayed ACK. */
static void notify_cb(void *cls, struct MHD_Connection *c, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci) {
		int one = 1;
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
}

struct trunc {
	char *body;
	size_t len;
};

static ssize_t trunc_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct trunc *t = cls;
	size_t half = t->len / 2;
	if (pos >= half)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = half - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, t->body + pos, n);
	return (ssize_t)n;
}

static void trunc_free(void *cls)
{
	struct trunc *t = cls;
	free(t->body);
	free(t);
}

static void add_int_header(struct MHD_Response *resp, const char *name, long v)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%ld", v);
	MHD_add_response_header(resp, name, buf);
}

/* Sends rep in one buffer (headers and body leave together); releases it. */
static enum MHD_Result send_reply(struct MHD_Connection *c, struct reply *rep)
{
	struct MHD_Response *resp;
	if (rep->mode == REPLY_DROP) {
		reply_release(rep);
		return MHD_NO; /* MHD closes the connection without answering */
	}
	if (rep->mode == REPLY_TRUNCATE) {
		struct trunc *t = xmalloc(sizeof *t);
		t->body = rep->body;
		t->len = rep->len;
		rep->body = NULL;
		resp = MHD_create_response_from_callback(t->len, 64 * 1024, trunc_read, t,
							 trunc_free);
		if (!resp)
			trunc_free(t);
	} else if (rep->len) {
		resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
		if (resp)
			rep->body = NULL;
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	reply_release(rep);
	if (!resp)
		return MHD_NO;
	if (rep->status != 204)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
	if (rep->rate_headers) {
		add_int_header(resp, "x-ratelimit-limit", rep->rate_limit);
		add_int_header(resp, "x-ratelimit-remaining", rep->rate_remaining);
	}
	if (rep->retry_after >= 0)
		add_int_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, rep->retry_after);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int authorized(struct server *srv, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return strcmp(h, srv->cfg.token) == 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void rate_headers(struct server *srv, struct reply *rep, double now, int zero)
{
	if (srv->cfg.rate_limit <= 0)
		return;
	rep->rate_headers = 1;
	rep->rate_limit = (int)srv->cfg.rate_limit;
	rep->rate_remaining =
		zero ? 0 : ratewin_remaining(&srv->rate, (int)srv->cfg.rate_limit, now);
}

/* The normal answer to a routed, authorized request. */
static void answer(struct server *srv, const struct route *rt, const char *method,
		   const char *query, const json_t *body, int bad_body, struct reply *rep)
{
	if (bad_body) {
		reply_text(rep, 422, "application/json",
			   "{\"message\":\"The given data was invalid.\",\"errors\":"
			   "{\"body\":[\"The request body must be a JSON object.\"]}}");
		return;
	}
	struct query q;
	query_parse(&q, query);
	api_handle(srv, rt, method, &q, body, SRC_API, rep);
	query_release(&q);
}

/* The missing_member fault: the real answer without the member at path. */
static void drop_member(struct reply *rep, const char *path)
{
	json_t *v = rep->len ? json_loadb(rep->body, rep->len, 0, NULL) : NULL;
	if (!v)
		return;
	if (fault_remove_member(v, path)) {
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text) {
			free(rep->body);
			rep->body = text;
			rep->len = strlen(text);
		}
	}
	json_decref(v);
}

/* Keeps the request's body in its log entry, re-serialized on one line when it is JSON. */
static void log_body(struct server *srv, struct reqlog_ref ref, const struct req *r,
		     const json_t *parsed)
{
	json_t *v = parsed ? json_incref((json_t *)parsed) : json_loadb(r->body, r->len, 0, NULL);
	char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (text)
		reqlog_set_body(&srv->log, ref, text, strlen(text), 1);
	else
		reqlog_set_body(&srv->log, ref, r->body, r->len, 0);
	free(text);
	json_decref(v);
}

/*
 * The flow of one API request, in the order the real service seems to
 * apply it: route (404/405 before anything), token (401, not counted),
 * rate window (429, not counted), import window for import batches,
 * faults, then the request is counted and answered. A fault either
 * replaces the answer (status, drop, not_json: the request is not carried
 * out unless the rule says "apply") or spoils the real one (latency,
 * truncate, missing_member).
 */
static void serve_api(struct server *srv, struct MHD_Connection *c, struct req *r,
		      const char *method, const char *path, const char *query, struct reply *rep)
{
	struct route rt;
	json_t *body = NULL;
	int batch = -1, import = 0, bad_body = 0;
	enum fault_kind fault = FAULT_NONE;
	struct fault_action act;

	memset(&act, 0, sizeof act);
	pthread_mutex_lock(&srv->lock);
	srv->requests++;
	struct reqlog_ref ref = reqlog_begin(&srv->log, method, path, query, clock_wall());
	enum route_result rc = api_route(method, path, &rt);
	if (rc != ROUTE_OK) {
		api_route_reply(rc, method, path, &rt, rep);
		goto done;
	}
	if (!authorized(srv, c)) {
		reply_message(rep, 401, "Unauthenticated.");
		goto done;
	}
	double now = clock_mono();
	int wait = ratewin_check(&srv->rate, (int)srv->cfg.rate_limit, now);
	if (wait) {
		reply_message(rep, 429, "Too Many Attempts.");
		rep->retry_after = wait;
		rate_headers(srv, rep, now, 1);
		goto done;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		size_t i = 0;
		while (i < r->len && strchr(" \t\r\n", r->body[i]))
			i++;
		if (i < r->len) {
			body = json_loadb(r->body, r->len, 0, NULL);
			if (!json_is_object(body))
				bad_body = 1;
		}
	}
	if (rt.kind == R_BATCH && !bad_body && body && !api_batch_peek(body, &batch, &import))
		batch = 0;
	if (import) {
		wait = ratewin_check(&srv->import, (int)srv->cfg.import_limit, now);
		if (wait) {
			reply_message(rep, 429, "You're being rate limited on import creation.");
			rep->retry_after = wait;
			rate_headers(srv, rep, now, 0);
			goto done;
		}
	}
	faults_match(&srv->faults, method, path, &act);
	fault = act.kind;
	if (fault == FAULT_RATE_LIMIT) {
		reply_message(rep, 429, "Too Many Attempts.");
		rep->retry_after = act.retry_after;
		rate_headers(srv, rep, now, 1);
		goto done;
	}
	ratewin_add(&srv->rate, (int)srv->cfg.rate_limit, now);
	if (import)
		ratewin_add(&srv->import, (int)srv->cfg.import_limit, now);
	rate_headers(srv, rep, now, 0);
	if (fault == FAULT_LATENCY) {
		/* Sleep without the lock: other connections keep being served. */
		pthread_mutex_unlock(&srv->lock);
		sleep_ms(act.ms);
		pthread_mutex_lock(&srv->lock);
	}
	int replaced = fault == FAULT_STATUS || fault == FAULT_DROP || fault == FAULT_NOT_JSON;
	if (!replaced || act.apply)
		answer(srv, &rt, method, query, body, bad_body, rep);
	switch (fault) {
	case FAULT_STATUS:
		if (act.body) {
			json_t *probe = json_loads(act.body, JSON_DECODE_ANY, NULL);
			reply_text(rep, act.status,
				   probe ? "application/json" : "text/html; charset=UTF-8", act.body);
			json_decref(probe);
		} else {
			reply_message(rep, act.status, act.status >= 500 ? "Server Error" : "Error");
		}
		break;
	case FAULT_DROP:
		rep->mode = REPLY_DROP;
		rep->status = 0;
		break;
	case FAULT_NOT_JSON:
		reply_text(rep, 200, "text/html; charset=UTF-8",
			   "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
			   "<body><h1>Bad Gateway</h1><p>The upstream answered badly.</p>"
			   "</body></html>\n");
		break;
	case FAULT_MISSING_MEMBER:
		drop_member(rep, act.member);
		break;
	case FAULT_TRUNCATE:
		rep->mode = REPLY_TRUNCATE;
		break;
	default:
		break;
	}
done:
	if (srv->cfg.log_bodies && r->len)
		log_body(srv, ref, r, body);
	reqlog_finish(&srv->log, ref, rep->mode == REPLY_DROP ? 0 : rep->status, fault, batch,
		      import);
	pthread_mutex_unlock(&srv->lock);
	api_route_release(&rt);
	fault_action_release(&act);
	json_decref(body);
}

static enum MHD_Result too_big(struct server *srv, struct MHD_Connection *c, struct req *r,
			       const char *method)
{
	struct reply rep;
	reply_init(&rep);
	reply_message(&rep, 413, "The request body is too large.");
	if (!r->control) {
		char *path = xstrndup(r->uri, strcspn(r->uri, "?"));
		const char *qm = strchr(r->uri, '?');
		pthread_mutex_lock(&srv->lock);
		srv->requests++;
		struct reqlog_ref ref =
			reqlog_begin(&srv->log, method, path, qm ? qm + 1 : "", clock_wall());
		reqlog_finish(&srv->log, ref, 413, FAULT_NONE, -1, 0);
		pthread_mutex_unlock(&srv->lock);
		free(path);
	}
	r->answered = 1;
	return send_reply(c, &rep);
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct req *r = *con_cls;
	(void)version;
	if (!r) {
		r = uri_cb(NULL, url, c);
		*con_cls = r;
	}
	if (r->answered) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->started) {
		r->started = 1;
		r->control = strncmp(r->uri, "/_control", 9) == 0 &&
			     (r->uri[9] == '/' || r->uri[9] == '\0' || r->uri[9] == '?');
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;
		if (cl && parse_u64(cl, &n) == 0 && n > body_cap(r))
			return too_big(srv, c, r, method);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->too_big)
			return MHD_YES;
		if (r->len + n > body_cap(r)) {
			r->too_big = 1;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n + 1 > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			while (cap < r->len + n + 1)
				cap *= 2;
			r->body = xrealloc(r->body, cap);
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, n);
		r->len += n;
		r->body[r->len] = '\0';
		return MHD_YES;
	}
	if (r->too_big)
		return too_big(srv, c, r, method);

	r->answered = 1;
	size_t plen = strcspn(r->uri, "?#");
	char *path = xstrndup(r->uri, plen);
	const char *query = r->uri[plen] == '?' ? r->uri + plen + 1 : "";
	char *qcopy = xstrndup(query, strcspn(query, "#"));
	struct reply rep;
	reply_init(&rep);
	if (r->control) {
		struct query q;
		query_parse(&q, qcopy);
		const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								MHD_HTTP_HEADER_CONTENT_TYPE);
		pthread_mutex_lock(&srv->lock);
		control_handle(srv, method, path, &q, r->body, r->len, ctype, &rep);
		pthread_mutex_unlock(&srv->lock);
		query_release(&q);
	} else {
		serve_api(srv, c, r, method, path, qcopy, &rep);
	}
	free(path);
	free(qcopy);
	return send_reply(c, &rep);
}

struct MHD_Daemon *http_start(struct server *srv, int port)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_AUTO;
	if (!srv->quiet)
		flags |= MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, (uint16_t)port, NULL, NULL, access_cb, srv, MHD_OPTION_SOCK_ADDR, &sa,
		MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv, MHD_OPTION_NOTIFY_COMPLETED,
		completed_cb, srv, MHD_OPTION_NOTIFY_CONNECTION, notify_cb, srv,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "fake-mailerlite: error: could not listen on 127.0.0.1:%d\n", port);
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : port;
	snprintf(srv->base, sizeof srv->base, "http://127.0.0.1:%d", srv->port);
	return d;
}

void http_stop(struct MHD_Daemon *d)
{
	if (d)
		MHD_stop_daemon(d);
}
