/* A fast JSON text writer into a growable buffer, used for every response body. */
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

void jw_init(struct jw *w, size_t cap)
{
	w->cap = cap < 64 ? 64 : cap;
	w->buf = xmalloc(w->cap);
	w->len = 0;
	w->first = 1;
}

void jw_release(struct jw *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

void jw_reset(struct jw *w)
{
	w->len = 0;
	w->first = 1;
}

char *jw_finish(struct jw *w, size_t *len)
{
	jw_reserve(w, 1);
	w->buf[w->len] = '\0';
	char *b = w->buf;
	if (len)
		*len = w->len;
	w->buf = NULL;
	w->len = w->cap = 0;
	return b;
}

void jw_reserve(struct jw *w, size_t more)
{
	if (w->len + more + 1 <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 64;
	while (cap < w->len + more + 1)
		cap *= 2;
	w->buf = xrealloc(w->buf, cap);
	w->cap = cap;
}

void jw_append(struct jw *w, const char *s, size_t n)
{
	jw_reserve(w, n);
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static inline void put(struct jw *w, char c)
{
	jw_reserve(w, 1);
	w->buf[w->len++] = c;
}

static inline void sep(struct jw *w)
{
	if (!w->first)
		put(w, ',');
	w->first = 0;
}

void jw_obj(struct jw *w)
{
	sep(w);
	put(w, '{');
	w->first = 1;
}

void jw_obj_end(struct jw *w)
{
	put(w, '}');
	w->first = 0;
}

void jw_arr(struct jw *w)
{
	sep(w);
	put(w, '[');
	w->first = 1;
}

void jw_arr_end(struct jw *w)
{
	put(w, ']');
	w->first = 0;
}

void jw_keyn(struct jw *w, const char *k, size_t n)
{
	jw_reserve(w, n + 4);
	if (!w->first)
		w->buf[w->len++] = ',';
	w->buf[w->len++] = '"';
	memcpy(w->buf + w->len, k, n);
	w->len += n;
	w->buf[w->len++] = '"';
	w->buf[w->len++] = ':';
	w->first = 1; /* the value follows without a comma */
}

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	unsigned cp = c & (0x7F >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sep(w);
	/* Worst case every byte becomes \u00XX (6) or U+FFFD as \ufffd (6). */
	jw_reserve(w, n * 6 + 2);
	char *o = w->buf + w->len;
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	*o++ = '"';
	while (p < end) {
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p > run) {
			memcpy(o, run, (size_t)(p - run));
			o += p - run;
		}
		if (p >= end)
			break;
		unsigned char c = *p;
		if (c >= 0x80) {
			size_t l = utf8_seq(p, (size_t)(end - p));
			if (l) {
				memcpy(o, p, l);
				o += l;
				p += l;
			} else {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				p++;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
			*o++ = '"';
			break;
		case '\\':
			*o++ = '\\';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		p++;
	}
	*o++ = '"';
	w->len = (size_t)(o - w->buf);
}

void jw_str(struct jw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

void jw_str_or_null(struct jw *w, const char *s)
{
	if (s)
		jw_str(w, s);
	else
		jw_null(w);
}

void jw_null(struct jw *w)
{
	sep(w);
	jw_append(w, "null", 4);
}

void jw_bool(struct jw *w, int v)
{
	sep(w);
	if (v)
		jw_append(w, "true", 4);
	else
		jw_append(w, "false", 5);
}

static size_t u64_digits(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

void jw_u64(struct jw *w, uint64_t v)
{
	sep(w);
	jw_reserve(w, 24);
	w->len += u64_digits(w->buf + w->len, v);
}

void jw_i64(struct jw *w, int64_t v)
{
	sep(w);
	jw_reserve(w, 24);
	if (v < 0) {
		w->buf[w->len++] = '-';
		w->len += u64_digits(w->buf + w->len, (uint64_t)0 - (uint64_t)v);
	} else {
		w->len += u64_digits(w->buf + w->len, (uint64_t)v);
	}
}

void jw_u64_str(struct jw *w, uint64_t v)
{
	sep(w);
	jw_reserve(w, 26);
	w->buf[w->len++] = '"';
	w->len += u64_digits(w->buf + w->len, v);
	w->buf[w->len++] = '"';
}

void jw_double(struct jw *w, double v)
{
	char tmp[40];
	int n = snprintf(tmp, sizeof tmp, "%.17g", v);
	sep(w);
	jw_append(w, tmp, (size_t)n);
}

void jw_time(struct jw *w, int64_t t)
{
	if (t == TIME_NULL) {
		jw_null(w);
		return;
	}
	sep(w);
	jw_reserve(w, 22);
	w->buf[w->len++] = '"';
	time_format(w->buf + w->len, t);
	w->len += 19;
	w->buf[w->len++] = '"';
}

void jw_raw(struct jw *w, const char *s, size_t n)
{
	sep(w);
	jw_append(w, s, n);
}

void jw_json(struct jw *w, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s) {
		jw_null(w);
		return;
	}
	jw_raw(w, s, strlen(s));
	free(s);
}

void jw_newline(struct jw *w)
{
	put(w, '\n');
	w->first = 1;
}
