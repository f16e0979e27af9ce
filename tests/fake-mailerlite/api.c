/* The MailerLite API under /api: routing and the handlers for subscribers, groups and batch. */
#include "api.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cursor.h"
#include "render.h"
#include "store.h"
#include "subedit.h"

#define DEFAULT_LIMIT 25
#define BATCH_MAX     50
#define GROUP_NAME_MAX 255

/* ---- routing ---- */

#define MAX_SEGS 8

/* Splits a raw path on '/', dropping empty segments, and decodes each one. */
static size_t split_path(const char *path, char **segs)
{
	size_t n = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (n == MAX_SEGS) {
			n++;
			break;
		}
		segs[n] = xmalloc(len + 1);
		pct_decode(segs[n], p, len, 0);
		n++;
		p += len;
	}
	return n;
}

static int method_in(const char *method, const char *allowed)
{
	/* allowed is like "GET, POST"; match whole words. */
	size_t ml = strlen(method);
	for (const char *p = allowed; (p = strstr(p, method)) != NULL; p += ml) {
		int start = p == allowed || p[-1] == ' ';
		int end = p[ml] == '\0' || p[ml] == ',';
		if (start && end)
			return 1;
	}
	return 0;
}

enum route_result api_route(const char *method, const char *path, struct route *rt)
{
	char *segs[MAX_SEGS + 1] = {0};
	size_t n = split_path(path, segs);
	enum route_result rc = ROUTE_NOT_FOUND;
	memset(rt, 0, sizeof *rt);
	if (n < 2 || n > MAX_SEGS || strcmp(segs[0], "api") != 0)
		goto out;
	if (strcmp(segs[1], "subscribers") == 0) {
		if (n == 2) {
			rt->kind = R_SUBSCRIBERS;
			rt->allowed = "GET, POST";
		} else if (n == 3) {
			rt->kind = R_SUBSCRIBER;
			rt->allowed = "GET, PUT, DELETE";
		} else if (n == 5 && strcmp(segs[3], "groups") == 0) {
			rt->kind = R_SUBSCRIBER_GROUP;
			rt->allowed = "POST, DELETE";
		} else {
			goto out;
		}
	} else if (strcmp(segs[1], "groups") == 0) {
		if (n == 2) {
			rt->kind = R_GROUPS;
			rt->allowed = "GET, POST";
		} else if (n == 3) {
			rt->kind = R_GROUP;
			rt->allowed = "PUT, DELETE";
		} else if (n == 4 && strcmp(segs[3], "subscribers") == 0) {
			rt->kind = R_GROUP_SUBSCRIBERS;
			rt->allowed = "GET";
		} else {
			goto out;
		}
	} else if (strcmp(segs[1], "batch") == 0 && n == 2) {
		rt->kind = R_BATCH;
		rt->allowed = "POST";
	} else {
		goto out;
	}
	if (n >= 3)
		rt->arg1 = xstrdup(segs[2]);
	if (n == 5)
		rt->arg2 = xstrdup(segs[4]);
	rc = method_in(method, rt->allowed) ? ROUTE_OK : ROUTE_BAD_METHOD;
out:
	for (size_t i = 0; i < n && i < MAX_SEGS; i++)
		free(segs[i]);
	if (rc == ROUTE_NOT_FOUND)
		api_route_release(rt);
	return rc;
}

void api_route_release(struct route *rt)
{
	free(rt->arg1);
	free(rt->arg2);
	rt->arg1 = rt->arg2 = NULL;
}

void api_route_reply(enum route_result rc, const char *method, const char *path,
		     const struct route *rt, struct reply *r)
{
	char msg[1024];
	while (*path == '/')
		path++;
	if (rc == ROUTE_BAD_METHOD)
		snprintf(msg, sizeof msg,
			 "The %.16s method is not supported for route %.900s. Supported methods: "
			 "%s.",
			 method, path, rt->allowed);
	else
		snprintf(msg, sizeof msg, "The route %.900s could not be found.", path);
	reply_message(r, rc == ROUTE_BAD_METHOD ? 405 : 404, msg);
}

/* ---- shared pieces ---- */

static void not_found(struct reply *r, const char *model, const char *what)
{
	char msg[1200];
	snprintf(msg, sizeof msg, "No query results for model [App\\Models\\%s] %.1000s", model,
		 what ? what : "");
	reply_message(r, 404, msg);
}

static long find_group_arg(const struct store *s, const char *arg)
{
	uint64_t id;
	if (!arg || parse_u64(arg, &id))
		return -1;
	return store_group_find_id(s, id);
}

static void data_subscriber(struct store *s, uint32_t slot, int status, struct reply *r)
{
	struct jw w;
	jw_init(&w, 2048);
	jw_obj(&w);
	jw_key(&w, "data");
	render_subscriber(&w, s, slot, 1);
	jw_obj_end(&w);
	reply_jw(r, status, &w);
}

static void data_group(struct store *s, uint32_t gslot, int status, struct reply *r)
{
	struct jw w;
	jw_init(&w, 512);
	jw_obj(&w);
	jw_key(&w, "data");
	render_group(&w, s, gslot);
	jw_obj_end(&w);
	reply_jw(r, status, &w);
}

static int has_token(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = list;
	while (p && *p) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == tl && strncmp(p, tok, tl) == 0)
			return 1;
		p = c ? c + 1 : NULL;
	}
	return 0;
}

/*
 * limit from the query: DEFAULT_LIMIT when absent or empty. Returns 0 and
 * *limit, or -1 after filling r with the 422.
 */
static int query_limit(const struct query *q, long long *limit, struct reply *r)
{
	const char *ls = query_get(q, "limit");
	*limit = DEFAULT_LIMIT;
	if (!ls || !*ls)
		return 0;
	long long v;
	int rc = parse_ll(ls, LLONG_MIN, LLONG_MAX, &v);
	if (rc < 0) {
		reply_invalid(r, "limit", "The limit must be an integer.");
		return -1;
	}
	if (v < 0) {
		reply_invalid(r, "limit", "The limit must be at least 0.");
		return -1;
	}
	*limit = v;
	return 0;
}

/* ---- GET /api/subscribers and GET /api/groups/{id}/subscribers ---- */

static void list_subscribers(struct server *srv, const struct query *q, long gslot,
			     struct reply *r)
{
	struct store *s = &srv->store;
	long long limit;
	if (query_limit(q, &limit, r))
		return;
	int status = gslot >= 0 ? ST_ACTIVE : -1;
	const char *fs = query_get(q, "filter[status]");
	if (fs && *fs) {
		status = status_parse(fs);
		if (status < 0) {
			reply_invalid(r, "filter.status", "The selected filter.status is invalid.");
			return;
		}
	}
	if (limit == 0) {
		uint64_t total = 0;
		const uint32_t *counts = gslot >= 0 ? s->groups[gslot].counts : s->counts;
		for (int i = 0; i < ST_COUNT; i++)
			if (status < 0 || status == i)
				total += counts[i];
		struct jw w;
		jw_init(&w, 64);
		jw_obj(&w);
		jw_key(&w, "total");
		jw_u64(&w, total);
		jw_obj_end(&w);
		reply_jw(r, 200, &w);
		return;
	}
	if (limit > srv->cfg.page_cap) {
		if (srv->cfg.page_cap_reject) {
			char msg[128];
			snprintf(msg, sizeof msg, "The limit may not be greater than %ld.",
				 srv->cfg.page_cap);
			reply_invalid(r, "limit", msg);
			return;
		}
		limit = srv->cfg.page_cap;
	}
	uint64_t pivot = 0;
	int has_pivot = 0, forward = 1;
	const char *cs = query_get(q, "cursor");
	if (cs && *cs) {
		if (cursor_decode(cs, &pivot, &forward)) {
			reply_invalid(r, "cursor", "The cursor is invalid.");
			return;
		}
		has_pivot = 1;
	}
	const char *inc = query_get(q, "include");
	int with_groups = inc && has_token(inc, "groups");

	uint32_t *slots = xmalloc((size_t)limit * sizeof(uint32_t));
	int more;
	const uint32_t *seq = gslot >= 0 ? s->groups[gslot].members : NULL;
	size_t seqlen = gslot >= 0 ? s->groups[gslot].nmembers : 0;
	size_t n = store_walk(s, seq, seqlen, status, !forward, has_pivot, pivot, (size_t)limit,
			      slots, &more);
	char *next = NULL, *prev = NULL;
	if (n > 0) {
		uint64_t first = s->subs[slots[0]].id, last = s->subs[slots[n - 1]].id;
		if (forward ? more : 1)
			next = cursor_encode(last, 1);
		if (forward ? has_pivot : more)
			prev = cursor_encode(first, 0);
	}
	char path[160];
	if (gslot >= 0)
		snprintf(path, sizeof path, "%s/api/groups/%llu/subscribers", srv->base,
			 (unsigned long long)s->groups[gslot].id);
	else
		snprintf(path, sizeof path, "%s/api/subscribers", srv->base);
	struct cursor_page page = {slots, n, (size_t)limit, with_groups, path, next, prev};
	struct jw w;
	jw_init(&w, 1024);
	render_cursor_page(&w, s, &page);
	reply_jw(r, 200, &w);
	free(slots);
	free(next);
	free(prev);
}

/* ---- POST and PUT /api/subscribers ---- */

/* The validated members of a subscriber write. */
struct sub_body {
	char *email; /* normalized, NULL when absent */
	const json_t *fields;
	int has_groups;
	uint32_t *gslots;
	size_t ngroups;
	int status; /* -1: not given */
	int has_sub_at, has_unsub_at, has_optin_at;
	int64_t sub_at, unsub_at, optin_at;
	int has_ip, has_optin_ip;
	const char *ip, *optin_ip;
	int resubscribe;
};

static void sub_body_release(struct sub_body *b)
{
	free(b->email);
	free(b->gslots);
}

static int ip_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 45)
		return 0;
	for (const char *p = s; *p; p++)
		if (!strchr("0123456789abcdefABCDEF:.", *p))
			return 0;
	return 1;
}

static void string_member(const json_t *body, const char *key, int *has, const char **out,
			  struct verrs *v)
{
	json_t *j = json_object_get(body, key);
	*has = j != NULL;
	*out = NULL;
	if (!j || json_is_null(j))
		return;
	if (!json_is_string(j) || !ip_ok(json_string_value(j))) {
		verrs_add(v, key, "The %s must be a valid IP address.", key);
		return;
	}
	*out = json_string_value(j);
}

static void sub_body_parse(struct store *s, const json_t *body, int email_required,
			   struct sub_body *b, struct verrs *v)
{
	memset(b, 0, sizeof *b);
	b->status = -1;
	json_t *je = json_object_get(body, "email");
	if (je && !json_is_null(je)) {
		if (!json_is_string(je)) {
			verrs_add(v, "email", "The email must be a valid email address.");
		} else {
			b->email = email_normalize(json_string_value(je));
			if (!b->email[0]) {
				free(b->email);
				b->email = NULL;
			} else if (!email_valid(b->email) ||
				   strlen(json_string_value(je)) != json_string_length(je)) {
				verrs_add(v, "email", "The email must be a valid email address.");
			}
		}
	}
	if (!b->email && email_required && !v->n)
		verrs_add(v, "email", "The email field is required.");

	b->fields = json_object_get(body, "fields");
	fields_validate(s, b->fields, "", v);

	json_t *jg = json_object_get(body, "groups");
	if (jg && !json_is_null(jg)) {
		if (!json_is_array(jg)) {
			verrs_add(v, "groups", "The groups must be an array.");
		} else {
			b->has_groups = 1;
			b->gslots = xcalloc(json_array_size(jg) + 1, sizeof(uint32_t));
			size_t i;
			json_t *g;
			json_array_foreach(jg, i, g)
			{
				uint64_t id = 0;
				long gs = -1;
				if (json_is_integer(g) && json_integer_value(g) > 0)
					id = (uint64_t)json_integer_value(g);
				else if (json_is_string(g))
					parse_u64(json_string_value(g), &id);
				if (id)
					gs = store_group_find_id(s, id);
				if (gs < 0) {
					char key[48];
					snprintf(key, sizeof key, "groups.%zu", i);
					verrs_add(v, key, "The selected groups.%zu is invalid.", i);
					continue;
				}
				b->gslots[b->ngroups++] = (uint32_t)gs;
			}
		}
	}

	json_t *js = json_object_get(body, "status");
	if (js && !json_is_null(js)) {
		b->status = json_is_string(js) ? status_parse(json_string_value(js)) : -1;
		if (b->status < 0)
			verrs_add(v, "status", "The selected status is invalid.");
	}

	static const char *const tkeys[] = {"subscribed_at", "unsubscribed_at", "opted_in_at"};
	int64_t *tvals[] = {&b->sub_at, &b->unsub_at, &b->optin_at};
	int *thas[] = {&b->has_sub_at, &b->has_unsub_at, &b->has_optin_at};
	for (int i = 0; i < 3; i++)
		if (time_member(body, tkeys[i], tvals[i], thas[i]))
			verrs_add(v, tkeys[i], "The %s does not match the format Y-m-d H:i:s.",
				  tkeys[i]);

	string_member(body, "ip_address", &b->has_ip, &b->ip, v);
	string_member(body, "optin_ip", &b->has_optin_ip, &b->optin_ip, v);

	json_t *jr = json_object_get(body, "resubscribe");
	if (jr && !json_is_null(jr)) {
		if (!json_is_boolean(jr))
			verrs_add(v, "resubscribe", "The resubscribe field must be true or false.");
		else
			b->resubscribe = json_is_true(jr);
	}
}

static int set_time(int64_t *member, int64_t v)
{
	if (*member == v)
		return 0;
	*member = v;
	return 1;
}

static int set_str(char **member, const char *v)
{
	if ((!*member && !v) || (*member && v && strcmp(*member, v) == 0))
		return 0;
	store_set_string(member, v);
	return 1;
}

/* The members every write applies the same way; returns 1 if anything changed. */
static int apply_common(struct store *s, uint32_t slot, const struct sub_body *b)
{
	struct subscriber *sub = &s->subs[slot];
	int changed = fields_apply(s, slot, b->fields);
	sub = &s->subs[slot];
	if (b->has_sub_at)
		changed |= set_time(&sub->subscribed_at, b->sub_at);
	if (b->has_unsub_at)
		changed |= set_time(&sub->unsubscribed_at, b->unsub_at);
	if (b->has_optin_at)
		changed |= set_time(&sub->opted_in_at, b->optin_at);
	if (b->has_ip)
		changed |= set_str(&sub->ip_address, b->ip);
	if (b->has_optin_ip)
		changed |= set_str(&sub->optin_ip, b->optin_ip);
	return changed;
}

static void post_subscriber(struct server *srv, const json_t *body, int source, struct reply *r)
{
	struct store *s = &srv->store;
	struct verrs v;
	struct sub_body b;
	verrs_init(&v);
	sub_body_parse(s, body, 1, &b, &v);
	if (v.n) {
		reply_verrs(r, &v);
		goto out;
	}
	int64_t now = clock_epoch();
	long slot = store_find_email(s, b.email);
	int created = slot < 0 || s->subs[slot].deleted, changed = 0;
	if (created) {
		int revived;
		slot = store_create(s, b.email, now, source, &revived);
		int st = b.status >= 0 ? b.status : ST_ACTIVE;
		if (st == ST_ACTIVE)
			s->subs[slot].subscribed_at = now;
		status_apply(s, (uint32_t)slot, st, now);
	} else {
		int cur = s->subs[slot].status;
		if (status_is_inactive(cur)) {
			if (b.resubscribe)
				changed |= status_apply(s, (uint32_t)slot,
							b.status >= 0 ? b.status : ST_ACTIVE, now);
		} else if (b.status >= 0) {
			changed |= status_apply(s, (uint32_t)slot, b.status, now);
		}
	}
	changed |= apply_common(s, (uint32_t)slot, &b);
	for (size_t i = 0; i < b.ngroups; i++)
		changed |= store_group_add(s, (uint32_t)slot, b.gslots[i]);
	if (changed && !created)
		s->subs[slot].updated_at = now;
	data_subscriber(s, (uint32_t)slot, created ? 201 : 200, r);
out:
	sub_body_release(&b);
	verrs_release(&v);
}

static void put_subscriber(struct server *srv, const char *arg, const json_t *body,
			   struct reply *r)
{
	struct store *s = &srv->store;
	long slot = store_lookup(s, arg);
	if (slot < 0) {
		not_found(r, "Subscriber", arg);
		return;
	}
	struct verrs v;
	struct sub_body b;
	verrs_init(&v);
	sub_body_parse(s, body, 0, &b, &v);
	if (!v.n && b.email) {
		long other = store_find_email(s, b.email);
		if (other >= 0 && other != slot && !s->subs[other].deleted)
			verrs_add(&v, "email", "The email has already been taken.");
	}
	if (v.n) {
		reply_verrs(r, &v);
		goto out;
	}
	int64_t now = clock_epoch();
	int changed = 0;
	if (b.email && strcmp(b.email, s->subs[slot].email) != 0) {
		store_set_email(s, (uint32_t)slot, b.email);
		changed = 1;
	}
	if (b.status >= 0) {
		int cur = s->subs[slot].status;
		/* The API cannot bring back unsubscribed, bounced or junk subscribers. */
		int reactivating = status_is_inactive(cur) && !status_is_inactive(b.status);
		if (!reactivating)
			changed |= status_apply(s, (uint32_t)slot, b.status, now);
	}
	changed |= apply_common(s, (uint32_t)slot, &b);
	if (b.has_groups) {
		struct subscriber *sub = &s->subs[slot];
		for (uint16_t i = sub->ngroups; i > 0; i--) {
			uint32_t g = sub->groups[i - 1];
			int keep = 0;
			for (size_t j = 0; j < b.ngroups; j++)
				keep |= b.gslots[j] == g;
			if (!keep)
				changed |= store_group_remove(s, (uint32_t)slot, g);
		}
		for (size_t j = 0; j < b.ngroups; j++)
			changed |= store_group_add(s, (uint32_t)slot, b.gslots[j]);
	}
	if (changed)
		s->subs[slot].updated_at = now;
	data_subscriber(s, (uint32_t)slot, 200, r);
out:
	sub_body_release(&b);
	verrs_release(&v);
}

static void subscriber_one(struct server *srv, const struct route *rt, const char *method,
			   const json_t *body, struct reply *r)
{
	struct store *s = &srv->store;
	if (strcmp(method, "PUT") == 0) {
		put_subscriber(srv, rt->arg1, body, r);
		return;
	}
	long slot = store_lookup(s, rt->arg1);
	if (slot < 0) {
		not_found(r, "Subscriber", rt->arg1);
		return;
	}
	if (strcmp(method, "DELETE") == 0) {
		store_delete(s, (uint32_t)slot);
		reply_empty(r, 204);
		return;
	}
	data_subscriber(s, (uint32_t)slot, 200, r);
}

static void subscriber_group(struct server *srv, const struct route *rt, const char *method,
			     struct reply *r)
{
	struct store *s = &srv->store;
	long slot = store_lookup(s, rt->arg1);
	if (slot < 0) {
		not_found(r, "Subscriber", rt->arg1);
		return;
	}
	long g = find_group_arg(s, rt->arg2);
	if (g < 0) {
		not_found(r, "Group", rt->arg2);
		return;
	}
	int changed;
	if (strcmp(method, "DELETE") == 0)
		changed = store_group_remove(s, (uint32_t)slot, (uint32_t)g);
	else
		changed = store_group_add(s, (uint32_t)slot, (uint32_t)g);
	if (changed)
		s->subs[slot].updated_at = clock_epoch();
	if (strcmp(method, "DELETE") == 0)
		reply_empty(r, 204);
	else
		data_group(s, (uint32_t)g, 200, r);
}

/* ---- groups ---- */

/* Name from {"name": ...}: trimmed, 1..255 characters. NULL after a 422. */
static char *group_name(const json_t *body, struct reply *r)
{
	json_t *jn = json_object_get(body, "name");
	if (jn && !json_is_null(jn) && !json_is_string(jn)) {
		reply_invalid(r, "name", "The name must be a string.");
		return NULL;
	}
	const char *raw = json_is_string(jn) ? json_string_value(jn) : "";
	while (*raw == ' ' || *raw == '\t' || *raw == '\n' || *raw == '\r')
		raw++;
	size_t n = strlen(raw);
	while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t' || raw[n - 1] == '\n' ||
			 raw[n - 1] == '\r'))
		n--;
	if (n == 0) {
		reply_invalid(r, "name", "The name field is required.");
		return NULL;
	}
	if (utf8_chars(raw, n) > GROUP_NAME_MAX) {
		reply_invalid(r, "name", "The name may not be greater than 255 characters.");
		return NULL;
	}
	return xstrndup(raw, n);
}

static int contains_ci(const char *hay, const char *needle)
{
	size_t nl = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, nl) == 0)
			return 1;
	return nl == 0;
}

static void page_link(struct jw *w, const char *path, long long page, long long limit)
{
	char u[256];
	snprintf(u, sizeof u, "%s?page=%lld&limit=%lld", path, page, limit);
	jw_str(w, u);
}

static void list_groups(struct server *srv, const struct query *q, struct reply *r)
{
	struct store *s = &srv->store;
	long long limit, page = 1;
	if (query_limit(q, &limit, r))
		return;
	if (limit < 1) {
		reply_invalid(r, "limit", "The limit must be at least 1.");
		return;
	}
	if (limit > 1000)
		limit = 1000;
	const char *ps = query_get(q, "page");
	if (ps && *ps) {
		int rc = parse_ll(ps, 1, LLONG_MAX / 2000, &page);
		if (rc < 0 || page < 1) {
			reply_invalid(r, "page", "The page must be an integer of at least 1.");
			return;
		}
	}
	const char *name = query_get(q, "filter[name]");
	uint32_t *match = xmalloc((s->ngroups + 1) * sizeof(uint32_t));
	size_t total = 0;
	for (uint32_t i = 0; i < s->ngroups; i++)
		if (!s->groups[i].deleted && (!name || contains_ci(s->groups[i].name, name)))
			match[total++] = i;
	long long last = total ? ((long long)total + limit - 1) / limit : 1;
	long long from = (page - 1) * limit;
	char path[128];
	snprintf(path, sizeof path, "%s/api/groups", srv->base);
	struct jw w;
	jw_init(&w, 1024);
	jw_obj(&w);
	jw_key(&w, "data");
	jw_arr(&w);
	long long shown = 0;
	for (long long i = from; i < (long long)total && i < from + limit; i++, shown++)
		render_group(&w, s, match[i]);
	jw_arr_end(&w);
	jw_key(&w, "links");
	jw_obj(&w);
	jw_key(&w, "first");
	page_link(&w, path, 1, limit);
	jw_key(&w, "last");
	page_link(&w, path, last, limit);
	jw_key(&w, "prev");
	if (page > 1)
		page_link(&w, path, page - 1, limit);
	else
		jw_null(&w);
	jw_key(&w, "next");
	if (page < last)
		page_link(&w, path, page + 1, limit);
	else
		jw_null(&w);
	jw_obj_end(&w);
	jw_key(&w, "meta");
	jw_obj(&w);
	jw_key(&w, "current_page");
	jw_i64(&w, page);
	jw_key(&w, "from");
	if (shown)
		jw_i64(&w, from + 1);
	else
		jw_null(&w);
	jw_key(&w, "last_page");
	jw_i64(&w, last);
	jw_key(&w, "per_page");
	jw_i64(&w, limit);
	jw_key(&w, "to");
	if (shown)
		jw_i64(&w, from + shown);
	else
		jw_null(&w);
	jw_key(&w, "total");
	jw_u64(&w, total);
	jw_key(&w, "path");
	jw_str(&w, path);
	jw_obj_end(&w);
	jw_obj_end(&w);
	reply_jw(r, 200, &w);
	free(match);
}

static void groups(struct server *srv, const struct route *rt, const char *method,
		   const struct query *q, const json_t *body, struct reply *r)
{
	struct store *s = &srv->store;
	if (rt->kind == R_GROUPS && strcmp(method, "GET") == 0) {
		list_groups(srv, q, r);
		return;
	}
	if (rt->kind == R_GROUPS) {
		char *name = group_name(body, r);
		if (name)
			data_group(s, store_group_create(s, name, clock_epoch()), 201, r);
		free(name);
		return;
	}
	long g = find_group_arg(s, rt->arg1);
	if (g < 0) {
		not_found(r, "Group", rt->arg1);
		return;
	}
	if (rt->kind == R_GROUP_SUBSCRIBERS) {
		list_subscribers(srv, q, g, r);
	} else if (strcmp(method, "DELETE") == 0) {
		store_group_delete(s, (uint32_t)g);
		reply_empty(r, 204);
	} else {
		char *name = group_name(body, r);
		if (name) {
			free(s->groups[g].name);
			s->groups[g].name = name;
			data_group(s, (uint32_t)g, 200, r);
		}
	}
}

/* ---- batch ---- */

/* "api/subscribers?x" → "/api/subscribers" and the query after '?'. */
static char *inner_path(const char *p, const char **query)
{
	while (*p == '/')
		p++;
	const char *qm = strchr(p, '?');
	size_t len = qm ? (size_t)(qm - p) : strlen(p);
	char *out = xmalloc(len + 2);
	out[0] = '/';
	memcpy(out + 1, p, len);
	out[len + 1] = '\0';
	*query = qm ? qm + 1 : "";
	return out;
}

static int is_import_item(const json_t *item)
{
	json_t *m = json_object_get(item, "method"), *p = json_object_get(item, "path");
	if (!json_is_string(m) || !json_is_string(p) ||
	    strcasecmp(json_string_value(m), "POST") != 0)
		return 0;
	const char *path = json_string_value(p);
	while (*path == '/')
		path++;
	return strcmp(path, "api/subscribers") == 0;
}

int api_batch_peek(const json_t *body, int *count, int *import)
{
	json_t *reqs = json_is_object(body) ? json_object_get(body, "requests") : NULL;
	*count = 0;
	*import = 0;
	if (!json_is_array(reqs))
		return 0;
	size_t n = json_array_size(reqs);
	*count = (int)(n > INT_MAX ? INT_MAX : n);
	if (n < 1 || n > BATCH_MAX)
		return 1;
	*import = 1;
	for (size_t i = 0; i < n; i++)
		if (!is_import_item(json_array_get(reqs, i)))
			*import = 0;
	return 1;
}

static void batch(struct server *srv, const json_t *body, struct reply *r)
{
	json_t *reqs = json_object_get(body, "requests");
	struct verrs v;
	verrs_init(&v);
	if (!reqs || json_is_null(reqs) || (json_is_array(reqs) && json_array_size(reqs) == 0))
		verrs_add(&v, "requests", "The requests field is required.");
	else if (!json_is_array(reqs))
		verrs_add(&v, "requests", "The requests must be an array.");
	else if (json_array_size(reqs) > BATCH_MAX)
		verrs_add(&v, "requests", "The requests must not have more than %d items.",
			  BATCH_MAX);
	for (size_t i = 0; !v.n && i < json_array_size(reqs); i++) {
		json_t *it = json_array_get(reqs, i), *m = json_object_get(it, "method"),
		       *p = json_object_get(it, "path"), *b = json_object_get(it, "body");
		char key[64];
		const char *ms = json_is_string(m) ? json_string_value(m) : "";
		if (strcasecmp(ms, "GET") && strcasecmp(ms, "POST") && strcasecmp(ms, "PUT") &&
		    strcasecmp(ms, "DELETE")) {
			snprintf(key, sizeof key, "requests.%zu.method", i);
			verrs_add(&v, key, "The selected requests.%zu.method is invalid.", i);
		}
		if (!json_is_string(p) || !json_string_value(p)[0]) {
			snprintf(key, sizeof key, "requests.%zu.path", i);
			verrs_add(&v, key, "The requests.%zu.path field is required.", i);
		}
		if (b && !json_is_null(b) && !json_is_object(b)) {
			snprintf(key, sizeof key, "requests.%zu.body", i);
			verrs_add(&v, key, "The requests.%zu.body must be an array.", i);
		}
	}
	if (v.n) {
		reply_verrs(r, &v);
		verrs_release(&v);
		return;
	}
	verrs_release(&v);

	int count, import;
	api_batch_peek(body, &count, &import);
	size_t n = json_array_size(reqs), ok = 0;
	struct jw w;
	jw_init(&w, 4096);
	jw_arr(&w);
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(reqs, i), *b = json_object_get(it, "body");
		char method[8];
		snprintf(method, sizeof method, "%s", json_string_value(json_object_get(it, "method")));
		for (char *c = method; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		const char *qs;
		char *path = inner_path(json_string_value(json_object_get(it, "path")), &qs);
		struct reply ir;
		struct route rt;
		reply_init(&ir);
		enum route_result rc = api_route(method, path, &rt);
		if (rc != ROUTE_OK) {
			api_route_reply(rc, method, path, &rt, &ir);
		} else if (rt.kind == R_BATCH) {
			reply_message(&ir, 422, "Batch requests cannot be nested.");
		} else {
			struct query q;
			query_parse(&q, qs);
			json_t *empty = json_object();
			const json_t *ib = json_is_object(b) ? b : empty;
			api_handle(srv, &rt, method, &q, ib, import ? SRC_IMPORT : SRC_API, &ir);
			json_decref(empty);
			query_release(&q);
		}
		api_route_release(&rt);
		if (ir.status >= 200 && ir.status < 300)
			ok++;
		jw_obj(&w);
		jw_key(&w, "code");
		jw_i64(&w, ir.status);
		jw_key(&w, "body");
		if (ir.len)
			jw_raw(&w, ir.body, ir.len);
		else
			jw_null(&w);
		jw_obj_end(&w);
		reply_release(&ir);
		free(path);
	}
	jw_arr_end(&w);
	struct jw out;
	jw_init(&out, w.len + 128);
	jw_obj(&out);
	jw_key(&out, "total");
	jw_u64(&out, n);
	jw_key(&out, "successful");
	jw_u64(&out, ok);
	jw_key(&out, "failed");
	jw_u64(&out, n - ok);
	jw_key(&out, "responses");
	jw_raw(&out, w.buf, w.len);
	jw_obj_end(&out);
	jw_release(&w);
	reply_jw(r, 200, &out);
}

/* ---- dispatch ---- */

void api_handle(struct server *srv, const struct route *rt, const char *method,
		const struct query *q, const json_t *body, int source, struct reply *r)
{
	json_t *empty = NULL;
	if (!body)
		body = empty = json_object();
	switch (rt->kind) {
	case R_SUBSCRIBERS:
		if (strcmp(method, "GET") == 0)
			list_subscribers(srv, q, -1, r);
		else
			post_subscriber(srv, body, source, r);
		break;
	case R_SUBSCRIBER:
		subscriber_one(srv, rt, method, body, r);
		break;
	case R_SUBSCRIBER_GROUP:
		subscriber_group(srv, rt, method, r);
		break;
	case R_GROUPS:
	case R_GROUP:
	case R_GROUP_SUBSCRIBERS:
		groups(srv, rt, method, q, body, r);
		break;
	case R_BATCH:
		batch(srv, body, r);
		break;
	}
	json_decref(empty);
}
