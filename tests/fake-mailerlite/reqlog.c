/* The request log: every API request in arrival order, for tests to assert on. */
#include "reqlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void reqlog_init(struct reqlog *l)
{
	l->e = NULL;
	l->n = l->cap = 0;
	l->next_seq = 1;
	l->gen = 1;
}

void reqlog_clear(struct reqlog *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].path);
		free(l->e[i].query);
		free(l->e[i].body);
	}
	l->n = 0;
	l->next_seq = 1;
	l->gen++;
}

void reqlog_release(struct reqlog *l)
{
	reqlog_clear(l);
	free(l->e);
	l->e = NULL;
	l->cap = 0;
}

struct reqlog_ref reqlog_begin(struct reqlog *l, const char *method, const char *path,
			       const char *query, double t)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->e = xrealloc(l->e, l->cap * sizeof *l->e);
	}
	struct logent *e = &l->e[l->n];
	memset(e, 0, sizeof *e);
	e->seq = l->next_seq++;
	e->t = t;
	snprintf(e->method, sizeof e->method, "%s", method);
	e->path = xstrdup(path);
	e->query = xstrdup(query ? query : "");
	e->fault = FAULT_NONE;
	e->batch = -1;
	struct reqlog_ref ref = {l->gen, l->n};
	l->n++;
	return ref;
}

void reqlog_finish(struct reqlog *l, struct reqlog_ref ref, int status, enum fault_kind fault,
		   int batch, int import)
{
	if (ref.gen != l->gen || ref.idx >= l->n)
		return;
	struct logent *e = &l->e[ref.idx];
	e->status = status;
	e->fault = fault;
	e->batch = batch;
	e->import = import;
}

void reqlog_set_body(struct reqlog *l, struct reqlog_ref ref, const char *body, size_t len,
		     int is_json)
{
	if (ref.gen != l->gen || ref.idx >= l->n)
		return;
	struct logent *e = &l->e[ref.idx];
	free(e->body);
	e->body = xstrndup(body, len);
	e->body_len = len;
	e->body_json = is_json;
}

void reqlog_render(const struct reqlog *l, struct jw *w, uint64_t since)
{
	/* seq is the position + 1, so the first entry wanted is found at once. */
	size_t from = since < l->n ? (size_t)since : l->n;
	for (size_t i = from; i < l->n; i++) {
		const struct logent *e = &l->e[i];
		char t[32];
		int tn = snprintf(t, sizeof t, "%.6f", e->t);
		jw_obj(w);
		jw_key(w, "seq");
		jw_u64(w, e->seq);
		jw_key(w, "t");
		jw_raw(w, t, (size_t)tn);
		jw_key(w, "method");
		jw_str(w, e->method);
		jw_key(w, "path");
		jw_str(w, e->path);
		jw_key(w, "query");
		jw_str(w, e->query);
		jw_key(w, "status");
		if (e->status)
			jw_i64(w, e->status);
		else
			jw_null(w);
		jw_key(w, "fault");
		jw_str_or_null(w, fault_kind_name(e->fault));
		jw_key(w, "batch");
		if (e->batch >= 0)
			jw_i64(w, e->batch);
		else
			jw_null(w);
		jw_key(w, "import");
		jw_bool(w, e->import);
		if (e->body) {
			jw_key(w, "body");
			if (e->body_json)
				jw_raw(w, e->body, e->body_len);
			else
				jw_strn(w, e->body, e->body_len);
		}
		jw_obj_end(w);
		jw_newline(w);
	}
}
