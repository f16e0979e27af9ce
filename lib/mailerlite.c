/* The MailerLite client: requests built, paced and checked; answers never trusted. */
#include "mailerlite.h"
#include "exitcode.h"
#include "http.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* http_request.flags: what the hooks need to know about a request. */
#define REQ_IMPORT 0x01u

struct ml_client {
	struct http_client *http;
	struct ratelimit *rl; /* borrowed, may be NULL */
	int page_size;
	int page_cap;
	bool cap_logged;
};

/* What a 2xx body must look like; checked by the http validate hook so
 * that a malformed answer is retried. */
enum shape {
	SHAPE_ANY,	  /* any JSON object, or no body */
	SHAPE_LIST,	  /* {data:[subscriber…], meta:{next_cursor}} */
	SHAPE_COUNT,	  /* {total: N} */
	SHAPE_SUBSCRIBER, /* {data:{id, email}} */
	SHAPE_GROUP,	  /* {data:{id, name}} */
	SHAPE_GROUPS,	  /* {data:[group…]} */
	SHAPE_BATCH,	  /* {responses:[{code, body}…]} of n */
};

struct shape_ctx {
	enum shape shape;
	size_t n;     /* SHAPE_BATCH: the number of requests sent */
	json_t *root; /* the validated body of the last 2xx attempt */
};

/* The answer of one call: status and body (new reference or NULL). */
struct answer {
	long status;
	json_t *root;
};

/* ---- checks ---- */

bool ml_id_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9' || n >= ML_ID_MAX)
			return false;
	return n > 0;
}

static bool json_id_valid(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
	       ml_id_valid(json_string_value(v));
}

/* An object with a digit-string id and a string member `name`; why names
 * what is wrong, with `where` in front ("data[3]"). */
static bool check_item(const json_t *o, const char *name, const char *where, struct strbuf *why)
{
	if (!json_is_object(o)) {
		strbuf_addf(why, o ? "%s is not an object" : "%s is missing", where);
		return false;
	}
	if (!json_id_valid(json_object_get(o, "id"))) {
		strbuf_addf(why, "%s has no id of digits", where);
		return false;
	}
	if (!json_is_string(json_object_get(o, name))) {
		strbuf_addf(why, "%s has no string %s", where, name);
		return false;
	}
	return true;
}

static bool check_array(const json_t *a, const char *name, struct strbuf *why)
{
	char where[32];
	size_t i;
	const json_t *v;

	if (!json_is_array(a)) {
		strbuf_addstr(why, a ? "data is not an array" : "data is missing");
		return false;
	}
	json_array_foreach(a, i, v)
	{
		snprintf(where, sizeof where, "data[%zu]", i);
		if (!check_item(v, name, where, why))
			return false;
	}
	return true;
}

static bool check_shape(const json_t *root, const struct shape_ctx *ctx, struct strbuf *why)
{
	const json_t *meta, *v;
	size_t i;

	switch (ctx->shape) {
	case SHAPE_ANY:
		return true;
	case SHAPE_LIST:
		if (!check_array(json_object_get(root, "data"), "email", why))
			return false;
		meta = json_object_get(root, "meta");
		if (!json_is_object(meta)) {
			strbuf_addstr(why, "meta is missing");
			return false;
		}
		v = json_object_get(meta, "next_cursor");
		if (!json_is_string(v) && !json_is_null(v)) {
			strbuf_addstr(why, "meta.next_cursor is missing");
			return false;
		}
		if (json_is_string(v) && !json_string_value(v)[0]) {
			strbuf_addstr(why, "meta.next_cursor is empty");
			return false;
		}
		return true;
	case SHAPE_COUNT:
		v = json_object_get(root, "total");
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			strbuf_addstr(why, "total is missing");
			return false;
		}
		return true;
	case SHAPE_SUBSCRIBER:
		return check_item(json_object_get(root, "data"), "email", "data", why);
	case SHAPE_GROUP:
		return check_item(json_object_get(root, "data"), "name", "data", why);
	case SHAPE_GROUPS:
		return check_array(json_object_get(root, "data"), "name", why);
	case SHAPE_BATCH:
		v = json_object_get(root, "responses");
		if (!json_is_array(v)) {
			strbuf_addstr(why, "responses is missing");
			return false;
		}
		if (json_array_size(v) != ctx->n) {
			strbuf_addf(why, "responses has %zu items for %zu requests",
				    json_array_size(v), ctx->n);
			return false;
		}
		json_array_foreach(v, i, meta)
		{
			if (!json_is_object(meta) || !json_is_integer(json_object_get(meta, "code"))) {
				strbuf_addf(why, "responses[%zu] has no integer code", i);
				return false;
			}
		}
		return true;
	}
	return true;
}

/* The http validate hook: parse, check, keep the root for the caller. */
static int validate(void *arg, const struct http_response *resp, struct strbuf *why)
{
	struct shape_ctx *ctx = arg;
	json_error_t jerr;
	json_t *root;

	json_decref(ctx->root);
	ctx->root = NULL;
	if (resp->status == 204 || (ctx->shape == SHAPE_ANY && resp->body.len == 0))
		return 0;
	root = json_loadb(resp->body.buf, resp->body.len, 0, &jerr);
	if (!json_is_object(root)) {
		strbuf_addstr(why, root ? "the body is not a JSON object" : "the body is not JSON");
		json_decref(root);
		return 1;
	}
	if (!check_shape(root, ctx, why)) {
		json_decref(root);
		return 1;
	}
	ctx->root = root;
	return 0;
}

/* An error body, leniently: an object or NULL (anything else is dropped). */
static json_t *parse_lenient(const struct strbuf *body)
{
	json_t *root = body->len ? json_loadb(body->buf, body->len, 0, NULL) : NULL;

	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	return root;
}

static const char *message_of(const json_t *root)
{
	const json_t *m = json_is_object(root) ? json_object_get(root, "message") : NULL;

	return json_is_string(m) ? json_string_value(m) : NULL;
}

static const json_t *errors_of(const json_t *root)
{
	const json_t *e = json_is_object(root) ? json_object_get(root, "errors") : NULL;

	return json_is_object(e) ? e : NULL;
}

/* ---- the client and its hooks ---- */

static int before_hook(void *arg, const struct http_request *req, int attempt,
		       struct cw_error *err)
{
	struct ml_client *c = arg;

	/* The import token first: its wait is long (12 s at 5/min), and an
	 * API slot reserved before it would go unused meanwhile. */
	if ((req->flags & REQ_IMPORT) && ratelimit_take(c->rl, RATELIMIT_IMPORT, NULL, err) < 0)
		return -1;
	return ratelimit_take(c->rl, RATELIMIT_API, NULL, err);
}

static void after_hook(void *arg, const struct http_request *req, const struct http_response *r)
{
	struct ml_client *c = arg;
	struct ratelimit_seen seen = {
		.status = r->status,
		.limit = r->rate_limit,
		.remaining = r->rate_remaining,
		.retry_after = r->retry_after,
		.import = (req->flags & REQ_IMPORT) != 0,
	};
	struct cw_error err = { 0 };

	/* Pacing is advice: a failed update must not fail the request. */
	if (ratelimit_observe(c->rl, &seen, &err) < 0)
		log_warning("%s", err.msg);
}

struct ml_client *ml_client_new(const struct cw_config *cfg, struct ratelimit *rl,
				struct cw_error *err)
{
	struct ml_client *c;
	struct http_options opts = {
		.base_url = cfg->api_url,
		.token = cfg->api_key,
		.api_version = cfg->api_version,
		.connect_timeout = cfg->http_connect_timeout,
		.timeout = cfg->http_timeout,
		.max_response_bytes = cfg->max_response_bytes,
		.retries = cfg->http_retries,
	};

	if (!cfg->api_key || !*cfg->api_key) {
		cw_error_set(err, CW_EXIT_CONFIG, "no MailerLite API token");
		cw_error_hint(err, "Set MAILERLITE_API_KEY, or api_key_file in [mailerlite].");
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->http = http_client_new(&opts, err);
	if (!c->http) {
		free(c);
		return NULL;
	}
	c->rl = rl;
	c->page_size = cfg->page_size > 0 ? cfg->page_size : ML_SAFE_PAGE;
	if (rl) {
		struct http_hooks hooks = { before_hook, after_hook, c };
		http_client_set_hooks(c->http, &hooks);
	}
	return c;
}

void ml_client_free(struct ml_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c);
}

long ml_requests(const struct ml_client *c)
{
	return http_requests(c->http);
}

int ml_page_cap(const struct ml_client *c)
{
	return c->page_cap;
}

void ml_set_page_cap(struct ml_client *c, int cap)
{
	c->page_cap = cap > 0 ? cap : 0;
}

/* One request: 0 with the answer (a validated 2xx, or another final status
 * with its body parsed leniently), -1 with err. A 401 is an error here for
 * every caller: the token is wrong, and nothing else will work either. */
static int call(struct ml_client *c, const char *method, const char *path, const json_t *body,
		enum shape shape, size_t n, unsigned flags, struct answer *ans, struct cw_error *err)
{
	struct shape_ctx ctx = { shape, n, NULL };
	struct http_response resp;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct http_request req = {
		.method = method,
		.path = path,
		.body = text,
		.body_len = text ? strlen(text) : 0,
		.validate = validate,
		.validate_arg = &ctx,
		.flags = flags,
	};
	int rc;

	ans->status = 0;
	ans->root = NULL;
	if (body && !text) {
		json_decref(ctx.root);
		return cw_error_set(err, CW_EXIT_SOFTWARE, "could not encode the body of %s %s",
				    method, path);
	}
	http_response_init(&resp);
	rc = http_do(c->http, &req, &resp, err);
	free(text);
	if (rc < 0) {
		json_decref(ctx.root);
		if (err && err->code != CW_EXIT_PARTIAL)
			cw_error_prefix(err, "MailerLite API");
		http_response_release(&resp);
		return -1;
	}
	ans->status = resp.status;
	if (resp.status >= 200 && resp.status <= 299) {
		ans->root = ctx.root;
	} else {
		json_decref(ctx.root);
		ans->root = parse_lenient(&resp.body);
	}
	http_response_release(&resp);

	if (ans->status == 401) {
		const char *m = message_of(ans->root);

		cw_error_set(err, CW_EXIT_CONFIG, "the MailerLite API refused the token (HTTP 401)");
		if (m)
			cw_error_detail(err, "The server said: %s", m);
		cw_error_hint(err, "Check MAILERLITE_API_KEY or the api_key_file.");
		json_decref(ans->root);
		ans->root = NULL;
		return -1;
	}
	if ((ans->status >= 300 && ans->status <= 399) || ans->status < 200) {
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "MailerLite API: %s %.*s answered HTTP %ld",
			     method, (int)strcspn(path, "?"), path, ans->status);
		cw_error_detail(err, "Redirects are not followed; check mailerlite.api_url.");
		json_decref(ans->root);
		ans->root = NULL;
		return -1;
	}
	return 0;
}

/* An error for a read that got a 4xx: not a record-level outcome. */
static int refused(struct answer *ans, const char *method, const char *path, struct cw_error *err)
{
	const char *m = message_of(ans->root);

	cw_error_set(err, CW_EXIT_UNAVAILABLE, "MailerLite API refused %s %.*s (HTTP %ld)", method,
		     (int)strcspn(path, "?"), path, ans->status);
	if (m)
		cw_error_detail(err, "The server said: %s", m);
	json_decref(ans->root);
	ans->root = NULL;
	return -1;
}

/* ---- subscribers ---- */

void ml_page_release(struct ml_page *page)
{
	json_decref(page->root);
	free(page->next_cursor);
	memset(page, 0, sizeof *page);
}

static char *list_path(const char *cursor, int limit, bool include_groups, const char *status)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "/subscribers?limit=%d", limit);
	if (cursor) {
		char *e = http_escape(cursor);
		strbuf_addf(&sb, "&cursor=%s", e);
		free(e);
	}
	if (include_groups)
		strbuf_addstr(&sb, "&include=groups");
	if (status) {
		char *e = http_escape(status);
		strbuf_addf(&sb, "&filter%%5Bstatus%%5D=%s", e);
		free(e);
	}
	return strbuf_detach(&sb, NULL);
}

static void learn_cap(struct ml_client *c, int cap, const char *how)
{
	if (cap <= 0 || (c->page_cap && c->page_cap <= cap))
		return;
	c->page_cap = cap;
	if (!c->cap_logged)
		log_info("the API gives at most %d subscribers a page (%s); asking for that from "
			 "now on",
			 cap, how);
	c->cap_logged = true;
}

int ml_list_subscribers(struct ml_client *c, const char *cursor, int limit, bool include_groups,
			const char *filter_status, struct ml_page *page, struct cw_error *err)
{
	struct answer ans;
	char *path = NULL;

	memset(page, 0, sizeof *page);
	page->per_page = -1;
	if (limit <= 0)
		limit = c->page_size;
	/* At most twice: the second time after a 422 on limit. */
	for (int round = 0; round < 2; round++) {
		int asked = c->page_cap && c->page_cap < limit ? c->page_cap : limit;

		free(path);
		path = list_path(cursor, asked, include_groups, filter_status);
		if (call(c, "GET", path, NULL, SHAPE_LIST, 0, 0, &ans, err) < 0)
			goto fail;
		page->asked = asked;
		if (ans.status == 200)
			break;
		const json_t *errors = errors_of(ans.root);
		if (ans.status == 422 && errors && json_object_get(errors, "limit") &&
		    asked > ML_SAFE_PAGE && round == 0) {
			/* The server's own words name the cap, but in prose that
			 * may change: fall back to a size known to work. */
			json_decref(ans.root);
			learn_cap(c, ML_SAFE_PAGE, "it refused a larger limit");
			continue;
		}
		if (ans.status == 422 && errors && json_object_get(errors, "cursor")) {
			refused(&ans, "GET", path, err);
			if (err)
				err->code = CW_EXIT_DATAERR;
			cw_error_hint(err, "The saved cursor is no longer valid; start the walk "
					   "again from the beginning.");
			goto fail;
		}
		refused(&ans, "GET", path, err);
		goto fail;
	}
	if (ans.status != 200) {
		refused(&ans, "GET", path, err);
		goto fail;
	}

	const json_t *meta = json_object_get(ans.root, "meta");
	const json_t *next = json_object_get(meta, "next_cursor");
	const json_t *pp = json_object_get(meta, "per_page");
	page->root = ans.root;
	page->data = json_object_get(ans.root, "data");
	page->next_cursor = json_is_string(next) ? xstrdup(json_string_value(next)) : NULL;
	if (json_is_integer(pp) && json_integer_value(pp) > 0 && json_integer_value(pp) <= 1000000)
		page->per_page = (int)json_integer_value(pp);
	if (page->per_page > 0 && page->per_page < page->asked)
		learn_cap(c, page->per_page, "meta.per_page");
	free(path);
	return 0;
fail:
	free(path);
	return -1;
}

int ml_count_subscribers(struct ml_client *c, const char *filter_status, long long *total,
			 struct cw_error *err)
{
	struct answer ans;
	char *path = list_path(NULL, 0, false, filter_status);
	int rc = -1;

	*total = 0;
	if (call(c, "GET", path, NULL, SHAPE_COUNT, 0, 0, &ans, err) < 0)
		goto done;
	if (ans.status != 200) {
		refused(&ans, "GET", path, err);
		goto done;
	}
	*total = (long long)json_integer_value(json_object_get(ans.root, "total"));
	json_decref(ans.root);
	rc = 0;
done:
	free(path);
	return rc;
}

int ml_get_subscriber(struct ml_client *c, const char *id_or_email, json_t **subscriber,
		      struct cw_error *err)
{
	struct answer ans;
	char *e = http_escape(id_or_email);
	char *path = xasprintf("/subscribers/%s", e);
	int rc = -1;

	free(e);
	*subscriber = NULL;
	if (!*id_or_email) {
		cw_error_set(err, CW_EXIT_SOFTWARE, "no subscriber id or email to look up");
		goto done;
	}
	if (call(c, "GET", path, NULL, SHAPE_SUBSCRIBER, 0, 0, &ans, err) < 0)
		goto done;
	if (ans.status == 404) {
		json_decref(ans.root);
		rc = 1;
	} else if (ans.status != 200) {
		refused(&ans, "GET", "/subscribers/{id}", err);
	} else {
		*subscriber = json_incref(json_object_get(ans.root, "data"));
		json_decref(ans.root);
		rc = 0;
	}
done:
	free(path);
	return rc;
}

void ml_result_release(struct ml_result *res)
{
	json_decref(res->body);
	memset(res, 0, sizeof *res);
}

bool ml_result_ok(const struct ml_result *res)
{
	return res->status >= 200 && res->status <= 299;
}

/* A write: a 2xx must have `shape`; a 4xx is the record's outcome. */
static int write_call(struct ml_client *c, const char *method, const char *path,
		      const json_t *body, enum shape shape, struct ml_result *res,
		      struct cw_error *err)
{
	struct answer ans;

	memset(res, 0, sizeof *res);
	if (call(c, method, path, body, shape, 0, 0, &ans, err) < 0)
		return -1;
	res->status = ans.status;
	res->body = ans.root;
	if (json_is_object(json_object_get(ans.root, "data")))
		res->data = json_object_get(ans.root, "data");
	res->errors = errors_of(ans.root);
	res->message = message_of(ans.root);
	return 0;
}

static int need_id(const char *id, const char *what, struct cw_error *err)
{
	if (ml_id_valid(id))
		return 0;
	return cw_error_set(err, CW_EXIT_SOFTWARE, "%s id \"%.40s\" is not a MailerLite id", what,
			    id ? id : "");
}

int ml_upsert_subscriber(struct ml_client *c, const json_t *body, struct ml_result *res,
			 struct cw_error *err)
{
	memset(res, 0, sizeof *res);
	if (!json_is_object(body))
		return cw_error_set(err, CW_EXIT_SOFTWARE, "a subscriber body must be an object");
	if (write_call(c, "POST", "/subscribers", body, SHAPE_SUBSCRIBER, res, err) < 0)
		return -1;
	res->created = res->status == 201;
	return 0;
}

int ml_update_subscriber(struct ml_client *c, const char *id, const json_t *body,
			 struct ml_result *res, struct cw_error *err)
{
	memset(res, 0, sizeof *res);
	if (need_id(id, "subscriber", err) < 0)
		return -1;
	if (!json_is_object(body))
		return cw_error_set(err, CW_EXIT_SOFTWARE, "a subscriber body must be an object");
	char *path = xasprintf("/subscribers/%s", id);
	int rc = write_call(c, "PUT", path, body, SHAPE_SUBSCRIBER, res, err);
	free(path);
	return rc;
}

int ml_delete_subscriber(struct ml_client *c, const char *id, struct ml_result *res,
			 struct cw_error *err)
{
	memset(res, 0, sizeof *res);
	if (need_id(id, "subscriber", err) < 0)
		return -1;
	char *path = xasprintf("/subscribers/%s", id);
	int rc = write_call(c, "DELETE", path, NULL, SHAPE_ANY, res, err);
	free(path);
	return rc;
}

/* ---- groups ---- */

int ml_list_groups(struct ml_client *c, json_t **groups, struct cw_error *err)
{
	const int limit = ML_SAFE_PAGE;
	json_t *all = json_array();

	*groups = NULL;
	/* Page-based: walk until the last page the server names, or a short
	 * page when it names none. The bound only stops a server that never
	 * ends. */
	for (long page = 1; page <= 100000; page++) {
		struct answer ans;
		char *path = xasprintf("/groups?limit=%d&page=%ld", limit, page);

		if (call(c, "GET", path, NULL, SHAPE_GROUPS, 0, 0, &ans, err) < 0) {
			free(path);
			json_decref(all);
			return -1;
		}
		if (ans.status != 200) {
			refused(&ans, "GET", path, err);
			free(path);
			json_decref(all);
			return -1;
		}
		free(path);
		const json_t *data = json_object_get(ans.root, "data");
		const json_t *last = json_object_get(json_object_get(ans.root, "meta"), "last_page");
		/* Read before the page is dropped: last is borrowed from it. */
		const bool named = json_is_integer(last);
		const json_int_t last_page = named ? json_integer_value(last) : 0;
		size_t got = json_array_size(data);
		json_array_extend(all, (json_t *)data);
		json_decref(ans.root);
		if (got == 0 || (named && page >= last_page) || (!named && got < (size_t)limit)) {
			*groups = all;
			return 0;
		}
	}
	json_decref(all);
	return cw_error_set(err, CW_EXIT_UNAVAILABLE, "MailerLite API: GET /groups never ended");
}

int ml_create_group(struct ml_client *c, const char *name, struct ml_result *res,
		    struct cw_error *err)
{
	json_t *body = json_pack("{s:s}", "name", name ? name : "");
	int rc;

	memset(res, 0, sizeof *res);
	if (!body)
		return cw_error_set(err, CW_EXIT_DATAERR, "group name is not valid UTF-8");
	rc = write_call(c, "POST", "/groups", body, SHAPE_GROUP, res, err);
	json_decref(body);
	return rc;
}

static int group_call(struct ml_client *c, const char *method, const char *sid, const char *gid,
		      struct ml_result *res, struct cw_error *err)
{
	memset(res, 0, sizeof *res);
	if (need_id(sid, "subscriber", err) < 0 || need_id(gid, "group", err) < 0)
		return -1;
	char *path = xasprintf("/subscribers/%s/groups/%s", sid, gid);
	int rc = write_call(c, method, path, NULL, SHAPE_ANY, res, err);
	free(path);
	return rc;
}

int ml_assign_group(struct ml_client *c, const char *sid, const char *gid, struct ml_result *res,
		    struct cw_error *err)
{
	return group_call(c, "POST", sid, gid, res, err);
}

int ml_unassign_group(struct ml_client *c, const char *sid, const char *gid,
		      struct ml_result *res, struct cw_error *err)
{
	return group_call(c, "DELETE", sid, gid, res, err);
}

/* ---- batch ---- */

json_t *ml_batch_request(const char *method, const char *path, json_t *body)
{
	json_t *r = json_object();

	json_object_set_new(r, "method", json_string(method));
	json_object_set_new(r, "path", json_string(path));
	if (body)
		json_object_set_new(r, "body", body);
	return r;
}

void ml_batch_result_release(struct ml_batch_result *out)
{
	json_decref(out->root);
	free(out->items);
	memset(out, 0, sizeof *out);
}

/* Every request is POST api/subscribers: the API treats it as an import. */
static bool is_import(const json_t *requests)
{
	size_t i;
	const json_t *r;

	json_array_foreach(requests, i, r)
	{
		const json_t *m = json_object_get(r, "method"), *p = json_object_get(r, "path");
		if (!json_is_string(m) || strcasecmp(json_string_value(m), "POST") ||
		    !json_is_string(p) || strcmp(json_string_value(p), "api/subscribers"))
			return false;
	}
	return true;
}

int ml_batch(struct ml_client *c, const json_t *requests, struct ml_batch_result *out,
	     struct cw_error *err)
{
	size_t n = json_array_size(requests), i;
	struct answer ans;
	json_t *body;
	const json_t *v;

	memset(out, 0, sizeof *out);
	if (!json_is_array(requests) || n < 1 || n > ML_BATCH_MAX)
		return cw_error_set(err, CW_EXIT_SOFTWARE,
				    "a batch takes 1 to %d requests, not %zu", ML_BATCH_MAX, n);
	body = json_pack("{s:O}", "requests", (json_t *)requests);
	if (call(c, "POST", "/batch", body, SHAPE_BATCH, n, is_import(requests) ? REQ_IMPORT : 0,
		 &ans, err) < 0) {
		json_decref(body);
		return -1;
	}
	json_decref(body);
	out->status = ans.status;
	out->root = ans.root;
	if (ans.status < 200 || ans.status > 299) {
		/* The batch as a whole was refused (a 422 on its shape). */
		out->errors = errors_of(ans.root);
		out->message = message_of(ans.root);
		return 0;
	}
	out->n = n;
	out->items = xcalloc(n, sizeof *out->items);
	json_array_foreach(json_object_get(ans.root, "responses"), i, v)
	{
		struct ml_batch_item *it = &out->items[i];
		const json_t *b = json_object_get(v, "body");

		it->code = (long)json_integer_value(json_object_get(v, "code"));
		it->body = b;
		if (json_is_object(json_object_get(b, "data")))
			it->data = json_object_get(b, "data");
		it->errors = errors_of(b);
		it->message = message_of(b);
		if (it->code >= 200 && it->code <= 299)
			out->successful++;
		else
			out->failed++;
	}
	/* Counted from the codes, which are what the records get: the
	 * server's own totals are not needed and not trusted. */
	return 0;
}
