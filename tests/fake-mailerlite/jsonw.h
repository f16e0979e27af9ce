/* A fast JSON text writer into a growable buffer, used for every response body. */
#ifndef FAKE_JSONW_H
#define FAKE_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

/*
 * Commas are placed automatically: a value or key written after another
 * value in the same container gets one. Keys passed to jw_key are written
 * verbatim (callers use plain ASCII names); string values are escaped and
 * invalid UTF-8 becomes U+FFFD.
 */
struct jw {
	char *buf;
	size_t len;
	size_t cap;
	int first; /* nothing written yet in the current container */
};

void jw_init(struct jw *w, size_t cap);
void jw_release(struct jw *w);
/* Hands the buffer (NUL-terminated, malloc'd) to the caller; w is empty after. */
char *jw_finish(struct jw *w, size_t *len);
void jw_reset(struct jw *w);

void jw_reserve(struct jw *w, size_t more);
void jw_append(struct jw *w, const char *s, size_t n);

void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_keyn(struct jw *w, const char *k, size_t n);
#define jw_key(w, k) jw_keyn((w), (k), strlen(k))

void jw_str(struct jw *w, const char *s);
void jw_strn(struct jw *w, const char *s, size_t n);
/* s or null when s is NULL. */
void jw_str_or_null(struct jw *w, const char *s);
void jw_null(struct jw *w);
void jw_bool(struct jw *w, int v);
void jw_i64(struct jw *w, int64_t v);
void jw_u64(struct jw *w, uint64_t v);
/* An unsigned integer rendered as a JSON string: ids. */
void jw_u64_str(struct jw *w, uint64_t v);
void jw_double(struct jw *w, double v);
/* A timestamp "YYYY-MM-DD HH:MM:SS" or null for TIME_NULL. */
void jw_time(struct jw *w, int64_t t);
/* A complete JSON value given as text. */
void jw_raw(struct jw *w, const char *s, size_t n);
/* A jansson value (borrowed). */
void jw_json(struct jw *w, const json_t *v);
/* Ends a JSON-lines record: a newline, and the next value starts fresh. */
void jw_newline(struct jw *w);

#endif
