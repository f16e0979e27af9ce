/* Injected faults: rules set through the control endpoint that spoil matching API requests. */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char *const kind_names[] = {NULL,	     "latency",  "status",	"rate_limit",
					 "drop",     "truncate", "not_json", "missing_member"};

void faults_init(struct faults *f)
{
	f->rules = NULL;
	f->n = f->cap = 0;
}

static void rule_release(struct fault_rule *r)
{
	free(r->path_prefix);
	free(r->member);
	free(r->body);
	r->path_prefix = r->member = r->body = NULL;
}

void faults_clear(struct faults *f)
{
	for (size_t i = 0; i < f->n; i++)
		rule_release(&f->rules[i]);
	f->n = 0;
}

void fault_action_release(struct fault_action *a)
{
	free(a->member);
	free(a->body);
	a->member = a->body = NULL;
}

void faults_release(struct faults *f)
{
	faults_clear(f);
	free(f->rules);
	faults_init(f);
}

const char *fault_kind_name(enum fault_kind k)
{
	if ((size_t)k < sizeof kind_names / sizeof *kind_names)
		return kind_names[k];
	return NULL;
}

static int kind_parse(const char *s)
{
	for (size_t i = 1; i < sizeof kind_names / sizeof *kind_names; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Optional integer member within [min, max]; 0 ok, -1 error. */
static int get_int(const json_t *rule, const char *key, long long min, long long max,
		   long long *out, size_t idx, char *err, size_t errlen)
{
	json_t *v = json_object_get(rule, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, errlen, "rules.%zu.%s must be an integer from %lld to %lld", idx,
			 key, min, max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int parse_rule(const json_t *r, size_t idx, struct fault_rule *out, char *err,
		      size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!json_is_object(r)) {
		snprintf(err, errlen, "rules.%zu must be an object", idx);
		return -1;
	}
	json_t *kind = json_object_get(r, "kind");
	int k = json_is_string(kind) ? kind_parse(json_string_value(kind)) : -1;
	if (k < 0) {
		snprintf(err, errlen,
			 "rules.%zu.kind must be one of latency, status, rate_limit, drop, "
			 "truncate, not_json, missing_member",
			 idx);
		return -1;
	}
	out->kind = (enum fault_kind)k;
	json_t *m = json_object_get(r, "method");
	if (m && !json_is_null(m)) {
		const char *ms = json_is_string(m) ? json_string_value(m) : NULL;
		if (!ms || strlen(ms) >= sizeof out->method) {
			snprintf(err, errlen, "rules.%zu.method must be a method name", idx);
			return -1;
		}
		if (strcmp(ms, "*") != 0)
			memcpy(out->method, ms, strlen(ms) + 1);
	}
	json_t *p = json_object_get(r, "path_prefix");
	if (p && !json_is_null(p) && !json_is_string(p)) {
		snprintf(err, errlen, "rules.%zu.path_prefix must be a string", idx);
		return -1;
	}
	long long after = 0, count = 1, ms = 1000, status = 500, retry = 1;
	if (get_int(r, "after", 0, 1000000000LL, &after, idx, err, errlen) ||
	    get_int(r, "count", -1, 1000000000LL, &count, idx, err, errlen) ||
	    get_int(r, "ms", 0, 600000, &ms, idx, err, errlen) ||
	    get_int(r, "status", 100, 599, &status, idx, err, errlen) ||
	    get_int(r, "retry_after", 0, 86400, &retry, idx, err, errlen))
		return -1;
	json_t *ap = json_object_get(r, "apply"), *mb = json_object_get(r, "member"),
	       *bd = json_object_get(r, "body");
	if (ap && !json_is_null(ap) && !json_is_boolean(ap)) {
		snprintf(err, errlen, "rules.%zu.apply must be true or false", idx);
		return -1;
	}
	if (mb && !json_is_null(mb) &&
	    (!json_is_string(mb) || !json_string_value(mb)[0] ||
	     strlen(json_string_value(mb)) != json_string_length(mb))) {
		snprintf(err, errlen, "rules.%zu.member must be a dotted path such as data.*.id",
			 idx);
		return -1;
	}
	if (bd && !json_is_null(bd) &&
	    (!json_is_string(bd) || strlen(json_string_value(bd)) != json_string_length(bd))) {
		snprintf(err, errlen, "rules.%zu.body must be a string", idx);
		return -1;
	}
	out->after = after;
	out->count = count;
	out->ms = (int)ms;
	out->status = (int)status;
	out->retry_after = (int)retry;
	out->apply = json_is_true(ap);
	out->path_prefix = xstrdup(json_is_string(p) ? json_string_value(p) : "");
	if (out->kind == FAULT_MISSING_MEMBER)
		out->member = xstrdup(json_is_string(mb) ? json_string_value(mb) : "data");
	if (out->kind == FAULT_STATUS && json_is_string(bd))
		out->body = xstrdup(json_string_value(bd));
	return 0;
}

int faults_add(struct faults *f, const json_t *body, char *err, size_t errlen)
{
	json_t *rules = json_is_object(body) ? json_object_get(body, "rules") : NULL;
	if (!json_is_array(rules)) {
		snprintf(err, errlen, "the body must be {\"rules\":[...]}");
		return -1;
	}
	size_t n = json_array_size(rules);
	struct fault_rule *tmp = xcalloc(n ? n : 1, sizeof *tmp);
	for (size_t i = 0; i < n; i++) {
		if (parse_rule(json_array_get(rules, i), i, &tmp[i], err, errlen)) {
			for (size_t j = 0; j < i; j++)
				rule_release(&tmp[j]);
			free(tmp);
			return -1;
		}
	}
	if (f->n + n > f->cap) {
		f->cap = (f->n + n) * 2;
		f->rules = xrealloc(f->rules, f->cap * sizeof *f->rules);
	}
	memcpy(f->rules + f->n, tmp, n * sizeof *tmp);
	f->n += n;
	free(tmp);
	return 0;
}

void faults_match(struct faults *f, const char *method, const char *path,
		  struct fault_action *out)
{
	memset(out, 0, sizeof *out);
	out->kind = FAULT_NONE;
	for (size_t i = 0; i < f->n; i++) {
		struct fault_rule *r = &f->rules[i];
		if (r->method[0] && strcasecmp(r->method, method) != 0)
			continue;
		if (strncmp(path, r->path_prefix, strlen(r->path_prefix)) != 0)
			continue;
		r->seen++;
		if (out->kind != FAULT_NONE || r->seen <= r->after)
			continue;
		if (r->count >= 0 && r->applied >= r->count)
			continue;
		r->applied++;
		out->kind = r->kind;
		out->ms = r->ms;
		out->status = r->status;
		out->retry_after = r->retry_after;
		out->apply = r->apply;
		out->member = r->member ? xstrdup(r->member) : NULL;
		out->body = r->body ? xstrdup(r->body) : NULL;
	}
}

int fault_remove_member(json_t *v, const char *path)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);
	const char *rest = dot ? dot + 1 : NULL;
	char key[256];
	int removed = 0;
	if (n >= sizeof key || (rest && !*rest))
		return 0;
	memcpy(key, path, n);
	key[n] = '\0';
	int all = strcmp(key, "*") == 0;
	if (json_is_object(v)) {
		if (all && rest) {
			const char *k;
			json_t *m;
			json_object_foreach(v, k, m)
				removed |= fault_remove_member(m, rest);
		} else if (all) {
			removed = json_object_size(v) > 0;
			json_object_clear(v);
		} else if (rest) {
			json_t *m = json_object_get(v, key);
			removed = m ? fault_remove_member(m, rest) : 0;
		} else {
			removed = json_object_del(v, key) == 0;
		}
	} else if (json_is_array(v)) {
		uint64_t idx = 0;
		if (all && rest) {
			for (size_t i = 0; i < json_array_size(v); i++)
				removed |= fault_remove_member(json_array_get(v, i), rest);
		} else if (all) {
			removed = json_array_size(v) > 0;
			json_array_clear(v);
		} else if (parse_u64(key, &idx) == 0 && idx < json_array_size(v)) {
			if (rest)
				removed = fault_remove_member(json_array_get(v, (size_t)idx), rest);
			else
				removed = json_array_remove(v, (size_t)idx) == 0;
		}
	}
	return removed;
}

void faults_render(const struct faults *f, struct jw *w)
{
	jw_obj(w);
	jw_key(w, "rules");
	jw_arr(w);
	for (size_t i = 0; i < f->n; i++) {
		const struct fault_rule *r = &f->rules[i];
		jw_obj(w);
		jw_key(w, "method");
		jw_str(w, r->method[0] ? r->method : "*");
		jw_key(w, "path_prefix");
		jw_str(w, r->path_prefix);
		jw_key(w, "after");
		jw_i64(w, r->after);
		jw_key(w, "count");
		jw_i64(w, r->count);
		jw_key(w, "kind");
		jw_str(w, fault_kind_name(r->kind));
		switch (r->kind) {
		case FAULT_LATENCY:
			jw_key(w, "ms");
			jw_i64(w, r->ms);
			break;
		case FAULT_STATUS:
			jw_key(w, "status");
			jw_i64(w, r->status);
			jw_key(w, "body");
			jw_str_or_null(w, r->body);
			break;
		case FAULT_RATE_LIMIT:
			jw_key(w, "retry_after");
			jw_i64(w, r->retry_after);
			break;
		case FAULT_MISSING_MEMBER:
			jw_key(w, "member");
			jw_str(w, r->member);
			break;
		default:
			break;
		}
		if (r->kind == FAULT_STATUS || r->kind == FAULT_DROP || r->kind == FAULT_NOT_JSON) {
			jw_key(w, "apply");
			jw_bool(w, r->apply);
		}
		jw_key(w, "matched");
		jw_i64(w, r->seen);
		jw_key(w, "applied");
		jw_i64(w, r->applied);
		jw_key(w, "remaining");
		if (r->count < 0)
			jw_i64(w, -1);
		else if (r->seen <= r->after)
			jw_i64(w, r->count);
		else
			jw_i64(w, r->count - r->applied);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}
