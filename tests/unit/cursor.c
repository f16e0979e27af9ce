/* Cursors: round trips, and hostile text that must be refused cleanly. */
#include "cursor.h"
#include "exitcode.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void refused(const char *text, const char *why_part)
{
	struct cw_error err;
	cw_error_clear(&err);
	json_t *obj = cursor_decode(text, &err);
	ok(obj == NULL && err.code == CW_EXIT_DATAERR && strstr(err.msg, why_part) &&
		   strstr(err.hint, "--restart"),
	   "refused (%s): \"%.40s\"", why_part, text ? text : "(null)");
	if (obj || !strstr(err.msg, why_part))
		diag("message: %s", err.msg);
	json_decref(obj);
}

static char *b64(const char *raw)
{
	return base64url_encode((const unsigned char *)raw, strlen(raw));
}

int main(void)
{
	/* base64url vectors (RFC 4648 without padding, URL alphabet) */
	const char *vec[][2] = { { "", "" },	     { "f", "Zg" },	    { "fo", "Zm8" },
				 { "foo", "Zm9v" },  { "foob", "Zm9vYg" },  { "fooba", "Zm9vYmE" },
				 { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" } };
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		char *enc = b64(vec[i][0]);
		is_str(enc, vec[i][1], "encode vector %zu", i);
		size_t len = 0;
		unsigned char *dec = base64url_decode(vec[i][1], &len);
		ok(dec && len == strlen(vec[i][0]) && !memcmp(dec, vec[i][0], len),
		   "decode vector %zu", i);
		free(enc);
		free(dec);
	}
	size_t len;
	unsigned char *padded = base64url_decode("Zm8=", &len);
	ok(padded && len == 2 && !memcmp(padded, "fo", 2), "padding is tolerated");
	free(padded);
	ok(base64url_decode("Zm9v+", &len) == NULL, "standard alphabet '+' is refused");
	ok(base64url_decode("Z", &len) == NULL, "a single sextet is refused");
	ok(base64url_decode("Zh", &len) == NULL, "non-zero leftover bits are refused");

	/* round trip of a real cursor */
	json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:n}", "v", CURSOR_VERSION, "job",
				"backfill", "ns", "default", "run", "bf-1", "c",
				"eyJpZCI6MTM2NDI5ODM3MTgyNzM0MzM3fQ", "last");
	char *text = cursor_encode(doc);
	ok(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
		   strlen(text),
	   "an encoded cursor is URL-safe text");
	struct cw_error err;
	json_t *back = cursor_decode(text, &err);
	ok(back && json_equal(back, doc), "a cursor decodes to what was encoded");
	ok(cursor_check(back, "backfill", "default", &err) == 0, "it belongs to its job");
	ok(cursor_check(back, "enterprise", "default", &err) < 0 && err.code == CW_EXIT_DATAERR &&
		   strstr(err.msg, "belongs to backfill"),
	   "another job's cursor is refused");
	ok(cursor_check(back, "backfill", "staging", &err) < 0 &&
		   strstr(err.msg, "namespace \"default\"") && strstr(err.hint, "--namespace"),
	   "another namespace's cursor is refused with a hint");
	json_object_set_new(back, "v", json_integer(99));
	ok(cursor_check(back, "backfill", "default", &err) < 0 && strstr(err.msg, "version"),
	   "a cursor of another format version is refused");
	json_object_set_new(back, "v", json_string("1"));
	ok(cursor_check(back, "backfill", "default", &err) < 0, "a version that is text is refused");
	json_decref(back);
	json_decref(doc);
	free(text);

	/* hostile input */
	refused(NULL, "empty");
	refused("", "empty");
	refused("not base64!", "not base64url");
	refused("Zm9v YmFy", "not base64url");
	char *s = b64("not json at all");
	refused(s, "does not hold JSON");
	free(s);
	s = b64("[1,2,3]");
	refused(s, "not hold a JSON object");
	free(s);
	s = b64("\"just a string\"");
	refused(s, "does not hold");
	free(s);
	s = b64("{\"v\":1,\"v\":2}");
	refused(s, "does not hold JSON");
	free(s);
	s = base64url_encode((const unsigned char *)"{\"a\":\0}", 7);
	refused(s, "does not hold JSON");
	free(s);
	s = b64("{\"v\":1");
	refused(s, "does not hold JSON");
	free(s);
	char *huge = malloc(CURSOR_MAX_TEXT + 2);
	memset(huge, 'A', CURSOR_MAX_TEXT + 1);
	huge[CURSOR_MAX_TEXT + 1] = '\0';
	refused(huge, "longer than");
	free(huge);
	/* deeply nested JSON must not crash the decoder */
	char nested[4000];
	size_t n = 0;
	for (; n < 1900; n++)
		nested[n] = '[';
	nested[n] = '\0';
	s = b64(nested);
	struct cw_error e2;
	json_t *deep = cursor_decode(s, &e2);
	ok(deep == NULL, "deeply nested input is refused without crashing");
	json_decref(deep);
	free(s);
	return done_testing();
}
