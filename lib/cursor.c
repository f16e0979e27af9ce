/* Encoding and decoding the resumable positions of long jobs. */
#include "cursor.h"
#include "exitcode.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *base64url_encode(const unsigned char *data, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 5);
	size_t o = 0, i = 0;

	for (; i + 2 < len; i += 3) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8 | data[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)data[i] << 16;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)data[i] << 16 | (unsigned)data[i + 1] << 8;
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static int sextet(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

unsigned char *base64url_decode(const char *text, size_t *len)
{
	size_t n = strlen(text);

	/* Padding is not written; accept it anyway (some tools add it). */
	while (n > 0 && text[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return NULL;
	unsigned char *out = xmalloc(n / 4 * 3 + 3);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = sextet(text[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	/* Leftover bits must be zero, or the text was not produced by an encoder. */
	if (bits > 0 && (acc & ((1u << bits) - 1))) {
		free(out);
		return NULL;
	}
	*len = o;
	return out;
}

char *cursor_encode(const json_t *obj)
{
	char *json = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	char *out;

	if (!json)
		return xstrdup("");
	out = base64url_encode((const unsigned char *)json, strlen(json));
	free(json);
	return out;
}

static json_t *bad_cursor(struct cw_error *err, const char *why)
{
	cw_error_set(err, CW_EXIT_DATAERR, "invalid cursor: %s", why);
	cw_error_hint(err, "Use the nextCursor of an earlier run as it was printed, or start "
			   "over with --restart.");
	return NULL;
}

json_t *cursor_decode(const char *text, struct cw_error *err)
{
	size_t len;
	json_error_t jerr;

	if (!text || !*text)
		return bad_cursor(err, "it is empty");
	if (strlen(text) > CURSOR_MAX_TEXT)
		return bad_cursor(err, "it is longer than any cursor crosswalk writes");
	unsigned char *raw = base64url_decode(text, &len);
	if (!raw)
		return bad_cursor(err, "it is not base64url text");
	if (memchr(raw, '\0', len)) {
		free(raw);
		return bad_cursor(err, "it does not hold JSON");
	}
	json_t *obj = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &jerr);
	free(raw);
	if (!obj)
		return bad_cursor(err, "it does not hold JSON");
	if (!json_is_object(obj)) {
		json_decref(obj);
		return bad_cursor(err, "it does not hold a JSON object");
	}
	return obj;
}

int cursor_check(const json_t *cursor, const char *job, const char *namespace,
		 struct cw_error *err)
{
	json_t *v = json_object_get(cursor, "v");
	json_t *j = json_object_get(cursor, "job");
	json_t *ns = json_object_get(cursor, "ns");

	if (!json_is_integer(v) || json_integer_value(v) != CURSOR_VERSION) {
		bad_cursor(err, "it was written by another version of crosswalk");
		return -1;
	}
	if (!json_is_string(j) || strcmp(json_string_value(j), job)) {
		cw_error_set(err, CW_EXIT_DATAERR, "invalid cursor: it belongs to %.64s, not to %s",
			     json_is_string(j) ? json_string_value(j) : "an unknown job", job);
		cw_error_hint(err, "Start over with --restart.");
		return -1;
	}
	if (!json_is_string(ns) || strcmp(json_string_value(ns), namespace)) {
		cw_error_set(err, CW_EXIT_DATAERR,
			     "invalid cursor: it belongs to namespace \"%.64s\", not \"%s\"",
			     json_is_string(ns) ? json_string_value(ns) : "?", namespace);
		cw_error_hint(err, "Pass --namespace %.64s, or start over with --restart.",
			      json_is_string(ns) ? json_string_value(ns) : "NAME");
		return -1;
	}
	return 0;
}
