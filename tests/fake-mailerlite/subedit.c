/* Validation and application of subscriber changes, shared by the API and the control endpoint. */
#include "subedit.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int email_valid(const char *e)
{
	size_t len = strlen(e);
	if (len == 0 || len > EMAIL_MAX)
		return 0;
	const char *at = strchr(e, '@');
	if (!at || at == e || strchr(at + 1, '@'))
		return 0;
	for (const char *p = e; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7F || *p == ',' || *p == '(' ||
		    *p == ')' || *p == '<' || *p == '>' || *p == '[' || *p == ']' || *p == '\\' ||
		    *p == '"' || *p == ';' || *p == ':')
			return 0;
	const char *dom = at + 1, *dot = strrchr(dom, '.');
	size_t dl = strlen(dom);
	if (!dot || dom[0] == '.' || dom[dl - 1] == '.' || strstr(dom, ".."))
		return 0;
	if (e[0] == '.' || at[-1] == '.')
		return 0;
	return 1;
}

/* A number as stored: shortest text that reads back to the same double. */
static char *number_text(double d, size_t *len)
{
	char buf[40];
	if ((d < 0 ? -d : d) < 1e15 && d == (double)(long long)d) {
		snprintf(buf, sizeof buf, "%lld", (long long)d);
	} else {
		snprintf(buf, sizeof buf, "%.15g", d);
		if (strtod(buf, NULL) != d)
			snprintf(buf, sizeof buf, "%.17g", d);
	}
	*len = strlen(buf);
	return xstrdup(buf);
}

int field_text(const struct store *s, int fi, const char *text, char **val, size_t *len,
	       char *err, size_t errlen)
{
	const struct field_def *f = &s->fields[fi];
	size_t n = strlen(text);
	*val = NULL;
	*len = 0;
	if (n == 0)
		return 0;
	switch (f->type) {
	case FT_TEXT:
		if (utf8_chars(text, n) > TEXT_FIELD_MAX) {
			snprintf(err, errlen, "The fields.%s may not be greater than %d characters.",
				 f->name, TEXT_FIELD_MAX);
			return -1;
		}
		*val = xstrndup(text, n);
		*len = n;
		return 0;
	case FT_NUMBER: {
		char *end;
		errno = 0;
		double d = strtod(text, &end);
		/* Only plain decimal numbers: no hex, inf, nan, or surrounding space. */
		int plain = 1;
		for (const char *p = text; *p; p++)
			if (!strchr("0123456789+-.eE", *p))
				plain = 0;
		if (*end || errno == ERANGE || !plain || !isfinite(d)) {
			snprintf(err, errlen, "The fields.%s must be a number.", f->name);
			return -1;
		}
		*val = number_text(d, len);
		return 0;
	}
	case FT_DATE:
		if (date_check(text)) {
			snprintf(err, errlen, "The fields.%s is not a valid date (Y-m-d).", f->name);
			return -1;
		}
		*val = xstrndup(text, n);
		*len = n;
		return 0;
	}
	return -1;
}

int field_value(const struct store *s, int fi, const json_t *v, char **val, size_t *len,
		char *err, size_t errlen)
{
	const struct field_def *f = &s->fields[fi];
	*val = NULL;
	*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		const char *t = json_string_value(v);
		if (strlen(t) != json_string_length(v)) {
			snprintf(err, errlen, "The fields.%s must be a string.", f->name);
			return -1;
		}
		return field_text(s, fi, t, val, len, err, errlen);
	}
	if (json_is_number(v)) {
		if (f->type == FT_DATE) {
			snprintf(err, errlen, "The fields.%s is not a valid date (Y-m-d).", f->name);
			return -1;
		}
		if (json_is_integer(v)) {
			char buf[32];
			snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
			*len = strlen(buf);
			*val = xstrdup(buf);
		} else {
			*val = number_text(json_real_value(v), len);
		}
		return 0;
	}
	if (f->type == FT_NUMBER)
		snprintf(err, errlen, "The fields.%s must be a number.", f->name);
	else
		snprintf(err, errlen, "The fields.%s must be a string.", f->name);
	return -1;
}

void fields_validate(const struct store *s, const json_t *fields, const char *prefix,
		     struct verrs *v)
{
	char key[FIELD_NAME_MAX + 64], err[256];
	if (!fields || json_is_null(fields))
		return;
	if (!json_is_object(fields)) {
		snprintf(key, sizeof key, "%sfields", prefix);
		verrs_add(v, key, "The fields must be an array.");
		return;
	}
	const char *name;
	json_t *val;
	json_object_foreach((json_t *)fields, name, val)
	{
		int fi = store_field_find(s, name);
		if (fi < 0)
			continue;
		char *out;
		size_t len;
		if (field_value(s, fi, val, &out, &len, err, sizeof err)) {
			snprintf(key, sizeof key, "%sfields.%s", prefix, name);
			verrs_add(v, key, "%s", err);
		}
		free(out);
	}
}

int fields_apply(struct store *s, uint32_t slot, const json_t *fields)
{
	int changed = 0;
	char err[256];
	if (!json_is_object(fields))
		return 0;
	const char *name;
	json_t *val;
	json_object_foreach((json_t *)fields, name, val)
	{
		int fi = store_field_find(s, name);
		if (fi < 0)
			continue;
		char *out;
		size_t len;
		if (field_value(s, fi, val, &out, &len, err, sizeof err) == 0)
			changed |= store_field_set(&s->subs[slot], fi, out, len);
		free(out);
	}
	return changed;
}

int status_is_inactive(int status)
{
	return status == ST_UNSUBSCRIBED || status == ST_BOUNCED || status == ST_JUNK;
}

int status_apply(struct store *s, uint32_t slot, int status, int64_t now)
{
	struct subscriber *sub = &s->subs[slot];
	if (sub->status == status)
		return 0;
	store_set_status(s, slot, status);
	if (status == ST_UNSUBSCRIBED)
		sub->unsubscribed_at = now;
	if (status == ST_ACTIVE) {
		sub->unsubscribed_at = TIME_NULL;
		if (sub->subscribed_at == TIME_NULL)
			sub->subscribed_at = now;
	}
	return 1;
}

int time_member(const json_t *obj, const char *key, int64_t *out, int *present)
{
	json_t *v = json_object_get(obj, key);
	*present = v != NULL;
	if (!v)
		return 0;
	if (json_is_null(v)) {
		*out = TIME_NULL;
		return 0;
	}
	if (!json_is_string(v) || time_parse(json_string_value(v), out))
		return -1;
	return 0;
}
