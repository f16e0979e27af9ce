/* The /_control endpoint: seeding, inspection, settings and faults for tests (no auth). */
#include "control.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "faults.h"
#include "render.h"
#include "reqlog.h"
#include "store.h"
#include "subedit.h"

#define GENERATE_MAX 20000000LL

static void ok(struct reply *r)
{
	reply_text(r, 200, "application/json", "{\"ok\":true}");
}

/* The body as a JSON object (an empty body is {}); NULL after a 422 in r. */
static json_t *body_object(const char *body, size_t len, struct reply *r)
{
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
		i++;
	if (i == len)
		return json_object();
	json_error_t err;
	json_t *v = json_loadb(body, len, 0, &err);
	if (!json_is_object(v)) {
		char msg[300];
		snprintf(msg, sizeof msg, "The body must be a JSON object%s%s.", v ? "" : ": ",
			 v ? "" : err.text);
		json_decref(v);
		reply_message(r, 422, msg);
		return NULL;
	}
	return v;
}

/* ---- config ---- */

static void render_config(struct server *srv, struct reply *r)
{
	struct jw w;
	jw_init(&w, 256);
	jw_obj(&w);
	jw_key(&w, "page_cap");
	jw_i64(&w, srv->cfg.page_cap);
	jw_key(&w, "page_cap_mode");
	jw_str(&w, srv->cfg.page_cap_reject ? "reject" : "clamp");
	jw_key(&w, "rate_limit");
	jw_i64(&w, srv->cfg.rate_limit);
	jw_key(&w, "import_limit");
	jw_i64(&w, srv->cfg.import_limit);
	jw_key(&w, "log_bodies");
	jw_bool(&w, srv->cfg.log_bodies);
	jw_key(&w, "token");
	jw_str(&w, srv->cfg.token);
	jw_obj_end(&w);
	reply_jw(r, 200, &w);
}

static int int_member(const json_t *o, const char *key, long long min, long long max, long *out,
		      struct verrs *v)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < min || json_integer_value(j) > max) {
		verrs_add(v, key, "The %s must be an integer from %lld to %lld.", key, min, max);
		return -1;
	}
	*out = (long)json_integer_value(j);
	return 0;
}

static void post_config(struct server *srv, const json_t *b, struct reply *r)
{
	struct config c = srv->cfg;
	struct verrs v;
	verrs_init(&v);
	int_member(b, "page_cap", 1, 1000000, &c.page_cap, &v);
	int_member(b, "rate_limit", 0, 1000000, &c.rate_limit, &v);
	int_member(b, "import_limit", 0, 1000000, &c.import_limit, &v);
	json_t *m = json_object_get(b, "page_cap_mode");
	if (m) {
		const char *ms = json_is_string(m) ? json_string_value(m) : "";
		if (strcmp(ms, "clamp") == 0)
			c.page_cap_reject = 0;
		else if (strcmp(ms, "reject") == 0)
			c.page_cap_reject = 1;
		else
			verrs_add(&v, "page_cap_mode", "The page_cap_mode must be clamp or reject.");
	}
	json_t *lb = json_object_get(b, "log_bodies");
	if (lb) {
		if (!json_is_boolean(lb))
			verrs_add(&v, "log_bodies", "The log_bodies must be true or false.");
		else
			c.log_bodies = json_is_true(lb);
	}
	json_t *t = json_object_get(b, "token");
	if (t) {
		if (!json_is_string(t) || !json_string_value(t)[0] ||
		    json_string_length(t) >= TOKEN_MAX ||
		    strlen(json_string_value(t)) != json_string_length(t))
			verrs_add(&v, "token", "The token must be a non-empty string.");
		else
			snprintf(c.token, sizeof c.token, "%s", json_string_value(t));
	}
	if (v.n)
		reply_verrs(r, &v);
	else {
		server_set_config(srv, &c);
		render_config(srv, r);
	}
	verrs_release(&v);
}

/* ---- fields ---- */

static void render_fields(struct server *srv, struct reply *r, int status)
{
	struct jw w;
	jw_init(&w, 512);
	jw_obj(&w);
	jw_key(&w, "fields");
	jw_arr(&w);
	for (uint32_t i = 0; i < srv->store.nfields; i++) {
		jw_obj(&w);
		jw_key(&w, "name");
		jw_str(&w, srv->store.fields[i].name);
		jw_key(&w, "type");
		jw_str(&w, field_type_name(srv->store.fields[i].type));
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	reply_jw(r, status, &w);
}

static int field_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len >= FIELD_NAME_MAX)
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
			return 0;
	return 1;
}

static void post_field(struct server *srv, const json_t *b, struct reply *r)
{
	json_t *jn = json_object_get(b, "name"), *jt = json_object_get(b, "type");
	const char *name = json_is_string(jn) ? json_string_value(jn) : "";
	int type = json_is_string(jt) ? field_type_parse(json_string_value(jt)) : -1;
	if (!field_name_ok(name)) {
		reply_invalid(r, "name", "The name must be 1 to 63 characters of a-z, 0-9 and _.");
		return;
	}
	if (type < 0) {
		reply_invalid(r, "type", "The type must be text, number or date.");
		return;
	}
	int fi = store_field_find(&srv->store, name);
	if (fi >= 0) {
		if ((int)srv->store.fields[fi].type != type) {
			reply_invalid(r, "name", "The field already exists with another type.");
			return;
		}
		render_fields(srv, r, 200);
		return;
	}
	if (store_field_add(&srv->store, name, (enum field_type)type) < 0) {
		reply_invalid(r, "name", "Too many fields.");
		return;
	}
	render_fields(srv, r, 201);
}

/* ---- seeding ---- */

/* Group slot by name, created when missing. */
static uint32_t group_by_name(struct store *s, const char *name, int64_t now)
{
	long g = store_group_find_name(s, name);
	return g >= 0 ? (uint32_t)g : store_group_create(s, name, now);
}

/* Checks a member (prefix + name) that must be an array of group names. */
static void check_group_names(const json_t *groups, const char *prefix, const char *name,
			      struct verrs *v)
{
	char key[96];
	if (!groups || json_is_null(groups))
		return;
	if (!json_is_array(groups)) {
		snprintf(key, sizeof key, "%s%s", prefix, name);
		verrs_add(v, key, "The %s must be an array of group names.", name);
		return;
	}
	size_t i;
	json_t *g;
	json_array_foreach(groups, i, g)
	{
		if (!json_is_string(g) || !json_string_value(g)[0] ||
		    strlen(json_string_value(g)) != json_string_length(g) ||
		    utf8_chars(json_string_value(g), strlen(json_string_value(g))) > 255) {
			snprintf(key, sizeof key, "%s%s.%zu", prefix, name, i);
			verrs_add(v, key, "The %s%s.%zu must be a group name.", prefix, name, i);
		}
	}
}

/* Replaces a subscriber's groups by the named ones. Returns 1 if changed. */
static int set_groups_by_name(struct store *s, uint32_t slot, const json_t *names, int64_t now)
{
	size_t n = json_array_size(names);
	uint32_t *want = xcalloc(n + 1, sizeof(uint32_t));
	int changed = 0;
	for (size_t i = 0; i < n; i++)
		want[i] = group_by_name(s, json_string_value(json_array_get(names, i)), now);
	struct subscriber *sub = &s->subs[slot];
	for (uint16_t i = sub->ngroups; i > 0; i--) {
		uint32_t g = sub->groups[i - 1];
		int keep = 0;
		for (size_t j = 0; j < n; j++)
			keep |= want[j] == g;
		if (!keep)
			changed |= store_group_remove(s, slot, g);
	}
	for (size_t j = 0; j < n; j++)
		changed |= store_group_add(s, slot, want[j]);
	free(want);
	return changed;
}

static const char *const seed_times[] = {"created_at", "updated_at", "subscribed_at",
					 "unsubscribed_at"};

static void seed_validate(struct store *s, const json_t *it, size_t idx, struct verrs *v)
{
	char prefix[32], key[96];
	snprintf(prefix, sizeof prefix, "%zu.", idx);
	if (!json_is_object(it)) {
		snprintf(key, sizeof key, "%zu", idx);
		verrs_add(v, key, "Item %zu must be an object.", idx);
		return;
	}
	json_t *je = json_object_get(it, "email");
	if (!json_is_string(je) || strlen(json_string_value(je)) != json_string_length(je)) {
		snprintf(key, sizeof key, "%semail", prefix);
		verrs_add(v, key, "Item %zu needs an email.", idx);
	} else {
		char *e = email_normalize(json_string_value(je));
		if (!e[0] || strlen(e) > EMAIL_MAX) {
			snprintf(key, sizeof key, "%semail", prefix);
			verrs_add(v, key, "Item %zu needs an email of 1 to 254 characters.", idx);
		}
		free(e);
	}
	json_t *js = json_object_get(it, "status");
	if (js && !json_is_null(js) &&
	    (!json_is_string(js) || status_parse(json_string_value(js)) < 0)) {
		snprintf(key, sizeof key, "%sstatus", prefix);
		verrs_add(v, key, "The selected %sstatus is invalid.", prefix);
	}
	fields_validate(s, json_object_get(it, "fields"), prefix, v);
	check_group_names(json_object_get(it, "groups"), prefix, "groups", v);
	for (size_t i = 0; i < sizeof seed_times / sizeof *seed_times; i++) {
		int64_t t;
		int present;
		if (time_member(it, seed_times[i], &t, &present)) {
			snprintf(key, sizeof key, "%s%s", prefix, seed_times[i]);
			verrs_add(v, key, "The %s%s does not match the format Y-m-d H:i:s.", prefix,
				  seed_times[i]);
		}
	}
}

/* Applies one validated seed item; returns 1 when it was inserted. */
static int seed_apply(struct store *s, const json_t *it, int64_t now)
{
	char *email = email_normalize(json_string_value(json_object_get(it, "email")));
	long slot = store_find_email(s, email);
	int inserted = slot < 0 || s->subs[slot].deleted, revived;
	if (inserted)
		slot = store_create(s, email, now, SRC_MANUAL, &revived);
	free(email);
	json_t *js = json_object_get(it, "status");
	if (json_is_string(js))
		status_apply(s, (uint32_t)slot, status_parse(json_string_value(js)), now);
	fields_apply(s, (uint32_t)slot, json_object_get(it, "fields"));
	json_t *jg = json_object_get(it, "groups");
	if (json_is_array(jg))
		set_groups_by_name(s, (uint32_t)slot, jg, now);
	struct subscriber *sub = &s->subs[slot];
	int64_t t[4];
	int has[4];
	for (int i = 0; i < 4; i++)
		time_member(it, seed_times[i], &t[i], &has[i]);
	if (has[0])
		sub->created_at = t[0];
	sub->updated_at = has[1] ? t[1] : now;
	if (has[2])
		sub->subscribed_at = t[2];
	else if (inserted && sub->status == ST_ACTIVE)
		sub->subscribed_at = sub->created_at;
	if (has[3])
		sub->unsubscribed_at = t[3];
	else if (inserted && sub->status == ST_UNSUBSCRIBED)
		sub->unsubscribed_at = sub->updated_at;
	return inserted;
}

/* Parses an array body or JSON lines into a new array; NULL after a 422 in r. */
static json_t *seed_items(const char *body, size_t len, const char *ctype, struct reply *r)
{
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
		i++;
	int lines = (ctype && strncasecmp(ctype, "application/x-ndjson", 20) == 0) ||
		    (i < len && body[i] == '{');
	json_error_t err;
	if (!lines) {
		json_t *v = json_loadb(body, len, 0, &err);
		if (!json_is_array(v)) {
			json_decref(v);
			reply_message(r, 422,
				      "The body must be a JSON array or JSON lines of subscribers.");
			return NULL;
		}
		return v;
	}
	json_t *arr = json_array();
	size_t lineno = 0;
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		lineno++;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\r' || *q == '\t'))
			q++;
		if (q < le) {
			json_t *v = json_loadb(p, (size_t)(le - p), 0, &err);
			if (!v) {
				char msg[300];
				snprintf(msg, sizeof msg, "Line %zu is not JSON: %s", lineno,
					 err.text);
				reply_message(r, 422, msg);
				json_decref(arr);
				return NULL;
			}
			json_array_append_new(arr, v);
		}
		p = le + 1;
	}
	return arr;
}

static void post_subscribers(struct server *srv, const char *body, size_t len,
			     const char *ctype, struct reply *r)
{
	struct store *s = &srv->store;
	json_t *items = seed_items(body ? body : "", len, ctype, r);
	if (!items)
		return;
	struct verrs v;
	verrs_init(&v);
	size_t n = json_array_size(items);
	for (size_t i = 0; i < n && v.n < 10; i++)
		seed_validate(s, json_array_get(items, i), i, &v);
	if (v.n) {
		reply_verrs(r, &v);
	} else {
		int64_t now = clock_epoch();
		size_t ins = 0;
		store_reserve(s, (uint32_t)(n > UINT32_MAX / 2 ? UINT32_MAX / 2 : n));
		for (size_t i = 0; i < n; i++)
			ins += (size_t)seed_apply(s, json_array_get(items, i), now);
		struct jw w;
		jw_init(&w, 64);
		jw_obj(&w);
		jw_key(&w, "inserted");
		jw_u64(&w, ins);
		jw_key(&w, "updated");
		jw_u64(&w, n - ins);
		jw_obj_end(&w);
		reply_jw(r, 200, &w);
	}
	verrs_release(&v);
	json_decref(items);
}

/* ---- generate ---- */

/* 0 when fmt uses only %d and %%. */
static int fmt_check(const char *fmt, int *has_d)
{
	*has_d = 0;
	for (const char *p = fmt; *p; p++) {
		if (*p != '%')
			continue;
		if (p[1] == 'd')
			*has_d = 1;
		else if (p[1] != '%')
			return -1;
		p++;
	}
	return 0;
}

/* Expands fmt for index into buf; returns the length (truncated at size - 1). */
static size_t fmt_expand(const char *fmt, long long index, char *buf, size_t size)
{
	char num[24], rev[24];
	int nl = 0, rl = 0;
	unsigned long long v = (unsigned long long)index; /* index is never negative */
	do {
		rev[rl++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (rl > 0)
		num[nl++] = rev[--rl];
	size_t o = 0;
	for (const char *p = fmt; *p && o + 1 < size; p++) {
		if (*p == '%' && p[1] == 'd') {
			for (int i = 0; i < nl && o + 1 < size; i++)
				buf[o++] = num[i];
			p++;
		} else if (*p == '%' && p[1] == '%') {
			buf[o++] = '%';
			p++;
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return o;
}

struct gen_field {
	int fi;
	const char *fmt;
};

static void generate(struct server *srv, const json_t *b, struct reply *r)
{
	struct store *s = &srv->store;
	struct verrs v;
	verrs_init(&v);
	json_t *jc = json_object_get(b, "count"), *jf = json_object_get(b, "email_format"),
	       *jst = json_object_get(b, "start"), *jfl = json_object_get(b, "fields"),
	       *js = json_object_get(b, "status"), *jg = json_object_get(b, "groups");
	long long count = 0, start = 0;
	int status = ST_ACTIVE, has_d;
	if (!json_is_integer(jc) || json_integer_value(jc) < 0 ||
	    json_integer_value(jc) > GENERATE_MAX)
		verrs_add(&v, "count", "The count must be an integer from 0 to %lld.", GENERATE_MAX);
	else
		count = json_integer_value(jc);
	if (jst && (!json_is_integer(jst) || json_integer_value(jst) < 0 ||
		    json_integer_value(jst) > LLONG_MAX / 4))
		verrs_add(&v, "start", "The start must be a non-negative integer.");
	else if (jst)
		start = json_integer_value(jst);
	char *efmt = NULL;
	if (!json_is_string(jf) || fmt_check(json_string_value(jf), &has_d) || !has_d) {
		verrs_add(&v, "email_format",
			  "The email_format must contain %%d and no other %% sequence but %%%%.");
	} else {
		efmt = email_normalize(json_string_value(jf));
		char e[512];
		fmt_expand(efmt, start, e, sizeof e);
		char e2[512];
		fmt_expand(efmt, start + (count ? count - 1 : 0), e2, sizeof e2);
		if (!email_valid(e) || !email_valid(e2))
			verrs_add(&v, "email_format", "The email_format must make valid emails.");
	}
	if (js && (!json_is_string(js) || (status = status_parse(json_string_value(js))) < 0))
		verrs_add(&v, "status", "The selected status is invalid.");
	check_group_names(jg, "", "groups", &v);
	struct gen_field gf[FIELDS_MAX];
	size_t ngf = 0;
	if (jfl && !json_is_null(jfl)) {
		if (!json_is_object(jfl)) {
			verrs_add(&v, "fields", "The fields must be an object of formats.");
		} else {
			const char *name;
			json_t *fv;
			json_object_foreach(jfl, name, fv)
			{
				char key[FIELD_NAME_MAX + 16], err[256], tmp[4200];
				int fi = store_field_find(s, name), d;
				snprintf(key, sizeof key, "fields.%s", name);
				if (fi < 0) {
					verrs_add(&v, key, "The field %s is not defined.", name);
					continue;
				}
				if (!json_is_string(fv) || fmt_check(json_string_value(fv), &d)) {
					verrs_add(&v, key, "The %s format may only use %%d.", key);
					continue;
				}
				long long probe[2] = {start, start + (count ? count - 1 : 0)};
				for (int k = 0; k < 2; k++) {
					char *val;
					size_t len;
					fmt_expand(json_string_value(fv), probe[k], tmp, sizeof tmp);
					if (field_text(s, fi, tmp, &val, &len, err, sizeof err))
						verrs_add(&v, key, "%s", err);
					free(val);
				}
				if (ngf < FIELDS_MAX)
					gf[ngf++] = (struct gen_field){fi, json_string_value(fv)};
			}
		}
	}
	if (v.n) {
		reply_verrs(r, &v);
		verrs_release(&v);
		free(efmt);
		return;
	}
	verrs_release(&v);

	int64_t now = clock_epoch();
	size_t ng = json_array_size(jg);
	uint32_t *gs = xcalloc(ng + 1, sizeof(uint32_t));
	for (size_t i = 0; i < ng; i++)
		gs[i] = group_by_name(s, json_string_value(json_array_get(jg, i)), now);
	store_reserve(s, (uint32_t)count);
	size_t ins = 0;
	char email[512], tmp[4200], err[256];
	for (long long i = start; i < start + count; i++) {
		fmt_expand(efmt, i, email, sizeof email);
		long slot = store_find_email(s, email);
		int inserted = slot < 0 || s->subs[slot].deleted, revived;
		if (inserted) {
			slot = store_create(s, email, now, SRC_MANUAL, &revived);
			ins++;
			if (status == ST_ACTIVE)
				s->subs[slot].subscribed_at = now;
		} else {
			s->subs[slot].updated_at = now;
		}
		status_apply(s, (uint32_t)slot, status, now);
		for (size_t k = 0; k < ngf; k++) {
			char *val;
			size_t len;
			fmt_expand(gf[k].fmt, i, tmp, sizeof tmp);
			if (field_text(s, gf[k].fi, tmp, &val, &len, err, sizeof err) == 0)
				store_field_set(&s->subs[slot], gf[k].fi, val, len);
			free(val);
		}
		for (size_t k = 0; k < ng; k++)
			store_group_add(s, (uint32_t)slot, gs[k]);
	}
	free(gs);
	free(efmt);
	struct jw w;
	jw_init(&w, 64);
	jw_obj(&w);
	jw_key(&w, "inserted");
	jw_u64(&w, ins);
	jw_key(&w, "updated");
	jw_u64(&w, (uint64_t)count - ins);
	jw_obj_end(&w);
	reply_jw(r, 200, &w);
}

/* ---- edit and delete ---- */

/* Live subscriber named by "id" or "email"; -1 after a 404 or 422 in r. */
static long target(struct store *s, const json_t *b, struct reply *r)
{
	json_t *ji = json_object_get(b, "id"), *je = json_object_get(b, "email");
	long slot = -1;
	if (json_is_integer(ji) && json_integer_value(ji) > 0) {
		slot = store_find_id(s, (uint64_t)json_integer_value(ji));
	} else if (json_is_string(ji)) {
		uint64_t id;
		if (parse_u64(json_string_value(ji), &id) == 0)
			slot = store_find_id(s, id);
	} else if (json_is_string(je)) {
		char *e = email_normalize(json_string_value(je));
		slot = store_find_email(s, e);
		free(e);
	} else {
		reply_invalid(r, "id", "Give the subscriber's id or email.");
		return -1;
	}
	if (slot < 0 || s->subs[slot].deleted) {
		reply_message(r, 404, "No such subscriber.");
		return -1;
	}
	return slot;
}

static void edit(struct server *srv, const json_t *b, struct reply *r)
{
	struct store *s = &srv->store;
	long slot = target(s, b, r);
	if (slot < 0)
		return;
	struct verrs v;
	verrs_init(&v);
	json_t *js = json_object_get(b, "status"), *jg = json_object_get(b, "groups"),
	       *jn = json_object_get(b, "new_email"), *ja = json_object_get(b, "add_groups"),
	       *jr = json_object_get(b, "remove_groups");
	int status = -1;
	if (js && !json_is_null(js) &&
	    (!json_is_string(js) || (status = status_parse(json_string_value(js))) < 0))
		verrs_add(&v, "status", "The selected status is invalid.");
	fields_validate(s, json_object_get(b, "fields"), "", &v);
	check_group_names(jg, "", "groups", &v);
	check_group_names(ja, "", "add_groups", &v);
	check_group_names(jr, "", "remove_groups", &v);
	char *ne = NULL;
	if (jn && !json_is_null(jn)) {
		ne = json_is_string(jn) ? email_normalize(json_string_value(jn)) : NULL;
		long other = ne ? store_find_email(s, ne) : -1;
		if (!ne || !email_valid(ne))
			verrs_add(&v, "new_email", "The new_email must be a valid email address.");
		else if (other >= 0 && other != slot && !s->subs[other].deleted)
			verrs_add(&v, "new_email", "The new_email has already been taken.");
	}
	int64_t upd = TIME_NULL;
	int has_upd;
	if (time_member(b, "updated_at", &upd, &has_upd))
		verrs_add(&v, "updated_at", "The updated_at does not match the format Y-m-d H:i:s.");
	if (v.n) {
		reply_verrs(r, &v);
		verrs_release(&v);
		free(ne);
		return;
	}
	verrs_release(&v);
	int64_t now = clock_epoch();
	if (status >= 0)
		status_apply(s, (uint32_t)slot, status, now);
	fields_apply(s, (uint32_t)slot, json_object_get(b, "fields"));
	if (json_is_array(jg))
		set_groups_by_name(s, (uint32_t)slot, jg, now);
	size_t i;
	json_t *g;
	json_array_foreach(ja, i, g)
		store_group_add(s, (uint32_t)slot, group_by_name(s, json_string_value(g), now));
	json_array_foreach(jr, i, g)
	{
		long gs = store_group_find_name(s, json_string_value(g));
		if (gs >= 0)
			store_group_remove(s, (uint32_t)slot, (uint32_t)gs);
	}
	if (ne)
		store_set_email(s, (uint32_t)slot, ne);
	free(ne);
	s->subs[slot].updated_at = has_upd && upd != TIME_NULL ? upd : now;
	struct jw w;
	jw_init(&w, 2048);
	jw_obj(&w);
	jw_key(&w, "data");
	render_subscriber(&w, s, (uint32_t)slot, 1);
	jw_obj_end(&w);
	reply_jw(r, 200, &w);
}

static void delete_one(struct server *srv, const json_t *b, struct reply *r)
{
	long slot = target(&srv->store, b, r);
	if (slot < 0)
		return;
	store_delete(&srv->store, (uint32_t)slot);
	ok(r);
}

/* ---- inspection ---- */

static int by_email(const void *a, const void *b, void *arg)
{
	const struct store *s = arg;
	return strcmp(s->subs[*(const uint32_t *)a].email, s->subs[*(const uint32_t *)b].email);
}

static void dump_subscribers(struct server *srv, struct reply *r)
{
	struct store *s = &srv->store;
	uint32_t *slots = xmalloc(((size_t)s->live + 1) * sizeof(uint32_t));
	size_t n = 0;
	for (uint32_t i = 0; i < s->nsubs; i++)
		if (!s->subs[i].deleted)
			slots[n++] = i;
	qsort_r(slots, n, sizeof *slots, by_email, s);
	struct jw w;
	jw_init(&w, n < 65536 ? n * 900 + 64 : 64 << 20);
	for (size_t i = 0; i < n; i++) {
		render_subscriber(&w, s, slots[i], 1);
		jw_newline(&w);
	}
	free(slots);
	reply_jw(r, 200, &w);
	r->content_type = "application/x-ndjson";
}

static void stats(struct server *srv, struct reply *r)
{
	struct jw w;
	jw_init(&w, 128);
	jw_obj(&w);
	jw_key(&w, "subscribers");
	jw_u64(&w, srv->store.live);
	jw_key(&w, "groups");
	jw_u64(&w, srv->store.live_groups);
	jw_key(&w, "requests");
	jw_u64(&w, srv->requests);
	jw_obj_end(&w);
	reply_jw(r, 200, &w);
}

static void render_faults(struct server *srv, struct reply *r)
{
	struct jw w;
	jw_init(&w, 512);
	faults_render(&srv->faults, &w);
	reply_jw(r, 200, &w);
}

/* ---- dispatch ---- */

struct control_route {
	const char *name;
	const char *allowed;
};

static const struct control_route routes[] = {
	{"health", "GET"},	     {"reset", "POST"},	       {"config", "GET, POST"},
	{"fields", "GET, POST"},     {"subscribers", "GET, POST"}, {"generate", "POST"},
	{"edit", "POST"},	     {"delete", "POST"},	   {"stats", "GET"},
	{"faults", "GET, POST, DELETE"}, {"log", "GET, DELETE"},
};

void control_handle(struct server *srv, const char *method, const char *path,
		    const struct query *q, const char *body, size_t len, const char *content_type,
		    struct reply *r)
{
	const char *name = path + strlen("/_control");
	while (*name == '/')
		name++;
	size_t nl = strlen(name);
	while (nl > 0 && name[nl - 1] == '/')
		nl--;
	const struct control_route *rt = NULL;
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (strlen(routes[i].name) == nl && strncmp(routes[i].name, name, nl) == 0)
			rt = &routes[i];
	if (!rt) {
		reply_message(r, 404, "Unknown control endpoint.");
		return;
	}
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
	    del = strcmp(method, "DELETE") == 0;
	if (!((get && strstr(rt->allowed, "GET")) || (post && strstr(rt->allowed, "POST")) ||
	      (del && strstr(rt->allowed, "DELETE")))) {
		char msg[128];
		snprintf(msg, sizeof msg, "Method not allowed; use %s.", rt->allowed);
		reply_message(r, 405, msg);
		return;
	}
	const char *n = rt->name;
	if (strcmp(n, "health") == 0) {
		ok(r);
	} else if (strcmp(n, "stats") == 0) {
		stats(srv, r);
	} else if (strcmp(n, "reset") == 0) {
		server_reset(srv);
		ok(r);
	} else if (strcmp(n, "subscribers") == 0 && get) {
		dump_subscribers(srv, r);
	} else if (strcmp(n, "subscribers") == 0) {
		post_subscribers(srv, body, len, content_type, r);
	} else if (strcmp(n, "log") == 0 && get) {
		const char *ss = query_get(q, "since");
		uint64_t since = 0;
		if (ss && *ss && parse_u64(ss, &since)) {
			reply_invalid(r, "since", "The since must be a sequence number.");
			return;
		}
		struct jw w;
		jw_init(&w, srv->log.n < 65536 ? srv->log.n * 200 + 64 : 16 << 20);
		reqlog_render(&srv->log, &w, since);
		reply_jw(r, 200, &w);
		r->content_type = "application/x-ndjson";
	} else if (strcmp(n, "log") == 0) {
		reqlog_clear(&srv->log);
		ok(r);
	} else if (strcmp(n, "faults") == 0 && del) {
		faults_clear(&srv->faults);
		render_faults(srv, r);
	} else if (strcmp(n, "faults") == 0 && get) {
		render_faults(srv, r);
	} else if (strcmp(n, "config") == 0 && get) {
		render_config(srv, r);
	} else if (strcmp(n, "fields") == 0 && get) {
		render_fields(srv, r, 200);
	} else {
		json_t *b = body_object(body ? body : "", len, r);
		if (!b)
			return;
		if (strcmp(n, "config") == 0) {
			post_config(srv, b, r);
		} else if (strcmp(n, "fields") == 0) {
			post_field(srv, b, r);
		} else if (strcmp(n, "generate") == 0) {
			generate(srv, b, r);
		} else if (strcmp(n, "edit") == 0) {
			edit(srv, b, r);
		} else if (strcmp(n, "delete") == 0) {
			delete_one(srv, b, r);
		} else if (strcmp(n, "faults") == 0) {
			char err[256];
			if (faults_add(&srv->faults, b, err, sizeof err))
				reply_message(r, 422, err);
			else
				render_faults(srv, r);
		}
		json_decref(b);
	}
}
