/* A response being built: status, body, and the headers the front end must add. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void reply_init(struct reply *r)
{
	memset(r, 0, sizeof *r);
	r->status = 500;
	r->content_type = "application/json";
	r->retry_after = -1;
	r->mode = REPLY_NORMAL;
}

void reply_release(struct reply *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

void reply_jw(struct reply *r, int status, struct jw *w)
{
	free(r->body);
	r->status = status;
	r->content_type = "application/json";
	r->body = jw_finish(w, &r->len);
}

void reply_message(struct reply *r, int status, const char *msg)
{
	struct jw w;
	jw_init(&w, 128);
	jw_obj(&w);
	jw_key(&w, "message");
	jw_str(&w, msg);
	jw_obj_end(&w);
	reply_jw(r, status, &w);
}

void reply_empty(struct reply *r, int status)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
	r->status = status;
}

void reply_text(struct reply *r, int status, const char *content_type, const char *text)
{
	free(r->body);
	r->status = status;
	r->content_type = content_type;
	r->len = strlen(text);
	r->body = xstrdup(text);
}

void verrs_init(struct verrs *v)
{
	memset(v, 0, sizeof *v);
}

void verrs_release(struct verrs *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->key[i]);
		free(v->msg[i]);
	}
	v->n = v->total = 0;
}

void verrs_add(struct verrs *v, const char *key, const char *fmt, ...)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->key[i], key) == 0)
			return;
	v->total++;
	if (v->n == VERRS_MAX)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	v->key[v->n] = xstrdup(key);
	v->msg[v->n] = xstrdup(buf);
	v->n++;
}

void reply_verrs(struct reply *r, const struct verrs *v)
{
	struct jw w;
	char msg[640];
	jw_init(&w, 256);
	if (v->total > 1)
		snprintf(msg, sizeof msg, "%s (and %zu more error%s)", v->msg[0], v->total - 1,
			 v->total > 2 ? "s" : "");
	else
		snprintf(msg, sizeof msg, "%s", v->n ? v->msg[0] : "The given data was invalid.");
	jw_obj(&w);
	jw_key(&w, "message");
	jw_str(&w, msg);
	jw_key(&w, "errors");
	jw_obj(&w);
	for (size_t i = 0; i < v->n; i++) {
		/* Keys may hold user text (field names are checked, indexes are numbers). */
		jw_str(&w, v->key[i]);
		jw_append(&w, ":", 1);
		w.first = 1;
		jw_arr(&w);
		jw_str(&w, v->msg[i]);
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
	reply_jw(r, 422, &w);
}

void reply_invalid(struct reply *r, const char *key, const char *msg)
{
	struct verrs v;
	verrs_init(&v);
	verrs_add(&v, key, "%s", msg);
	reply_verrs(r, &v);
	verrs_release(&v);
}
