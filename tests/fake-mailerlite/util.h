/* Small memory, number, text and time helpers shared by the emulator's modules. */
#ifndef FAKE_UTIL_H
#define FAKE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A timestamp that renders as JSON null. */
#define TIME_NULL INT64_MIN

/* Allocation that dies on out-of-memory: the emulator is a test tool. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Seconds on the monotonic clock (rate windows) and the wall clock (the log). */
double clock_mono(void);
double clock_wall(void);
/* Whole seconds since the epoch, for subscriber timestamps. */
int64_t clock_epoch(void);

/* Strict unsigned decimal: digits only, no sign, no overflow. 0 on success. */
int parse_u64(const char *s, uint64_t *out);
/*
 * Strict signed decimal with optional leading '-'. Returns 0 on success,
 * -1 when s is not an integer, 1 when it is an integer outside
 * [min, max] (*out is then clamped to the nearer bound).
 */
int parse_ll(const char *s, long long min, long long max, long long *out);

/*
 * Percent-decodes len bytes of src into dst (which must hold len + 1 bytes)
 * and NUL-terminates it; '+' becomes a space when plus_space. Returns the
 * decoded length. Malformed escapes, and %00, are kept as they are.
 */
size_t pct_decode(char *dst, const char *src, size_t len, int plus_space);

/* Number of UTF-8 code points in s (invalid bytes count as one each). */
size_t utf8_chars(const char *s, size_t len);

/* Renders t as "YYYY-MM-DD HH:MM:SS" into out (20 bytes with the NUL). */
void time_format(char out[20], int64_t t);
/*
 * Parses "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DDTHH:MM:SS[Z]" or "YYYY-MM-DD" as
 * UTC. 0 on success.
 */
int time_parse(const char *s, int64_t *out);
/* 0 when s is exactly a real calendar date "YYYY-MM-DD". */
int date_check(const char *s);

/* A decoded query string: keys and values percent-decoded, in order. */
struct query {
	size_t n;
	char **keys;
	char **vals;
};

/* Parses raw (may be NULL or empty). Release with query_release. */
void query_parse(struct query *q, const char *raw);
void query_release(struct query *q);
/* Borrowed value of the first parameter named key, or NULL. */
const char *query_get(const struct query *q, const char *key);

/* Base64url without padding; decode accepts padding and the standard alphabet. */
char *b64url_encode(const unsigned char *data, size_t len);
/* New buffer (NUL-terminated) or NULL when input is not base64. */
unsigned char *b64url_decode(const char *s, size_t *outlen);

#endif
