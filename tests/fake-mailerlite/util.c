/* Small memory, number, text and time helpers shared by the emulator's modules. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
	fputs("fake-mailerlite: error: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

double clock_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t clock_epoch(void)
{
	return (int64_t)time(NULL);
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int parse_ll(const char *s, long long min, long long max, long long *out)
{
	const char *p = s;
	char *end;
	if (!s || !*s)
		return -1;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end)
		return -1;
	if (errno == ERANGE || v < min || v > max) {
		*out = (*s == '-') ? min : max;
		return 1;
	}
	*out = v;
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t pct_decode(char *dst, const char *src, size_t len, int plus_space)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%' && i + 2 < len) {
			int h = hexval((unsigned char)src[i + 1]);
			int l = hexval((unsigned char)src[i + 2]);
			/* %00 stays as it is: decoded text never holds a NUL. */
			if (h >= 0 && l >= 0 && (h | l) != 0) {
				dst[o++] = (char)(h * 16 + l);
				i += 2;
				continue;
			}
		}
		if (c == '+' && plus_space)
			c = ' ';
		dst[o++] = c;
	}
	dst[o] = '\0';
	return o;
}

size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic). */
static int64_t days_from_date(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void date_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
	p[0] = (char)('0' + v / 10 % 10);
	p[1] = (char)('0' + v % 10);
}

void time_format(char out[20], int64_t t)
{
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	int64_t y;
	unsigned m, d;
	date_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999)
		y = y < 0 ? 0 : 9999;
	put2(out, (unsigned)(y / 100));
	put2(out + 2, (unsigned)(y % 100));
	out[4] = '-';
	put2(out + 5, m);
	out[7] = '-';
	put2(out + 8, d);
	out[10] = ' ';
	put2(out + 11, (unsigned)(secs / 3600));
	out[13] = ':';
	put2(out + 14, (unsigned)(secs / 60 % 60));
	out[16] = ':';
	put2(out + 17, (unsigned)(secs % 60));
	out[19] = '\0';
}

static int digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int days_in_month(unsigned y, unsigned m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

static int date_parse(const char *s, unsigned *y, unsigned *m, unsigned *d)
{
	if (digits(s, 4, y) || s[4] != '-' || digits(s + 5, 2, m) || s[7] != '-' ||
	    digits(s + 8, 2, d))
		return -1;
	if (*m < 1 || *m > 12 || *d < 1 || (int)*d > days_in_month(*y, *m))
		return -1;
	return 0;
}

int date_check(const char *s)
{
	unsigned y, m, d;
	if (strlen(s) != 10)
		return -1;
	return date_parse(s, &y, &m, &d);
}

int time_parse(const char *s, int64_t *out)
{
	unsigned y, mo, d, h = 0, mi = 0, se = 0;
	size_t len = strlen(s);
	if (len < 10 || date_parse(s, &y, &mo, &d))
		return -1;
	if (len > 10) {
		if ((s[10] != ' ' && s[10] != 'T') || len < 19)
			return -1;
		if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
		    s[16] != ':' || digits(s + 17, 2, &se))
			return -1;
		if (h > 23 || mi > 59 || se > 59)
			return -1;
		if (len > 19 && !(len == 20 && s[19] == 'Z') &&
		    !(len == 25 && strcmp(s + 19, "+00:00") == 0))
			return -1;
	}
	*out = days_from_date(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	return 0;
}

void query_parse(struct query *q, const char *raw)
{
	q->n = 0;
	q->keys = NULL;
	q->vals = NULL;
	if (!raw || !*raw)
		return;
	size_t cap = 1;
	for (const char *p = raw; *p; p++)
		if (*p == '&')
			cap++;
	q->keys = xcalloc(cap, sizeof(char *));
	q->vals = xcalloc(cap, sizeof(char *));
	const char *p = raw;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		if (plen > 0) {
			const char *eq = memchr(p, '=', plen);
			size_t klen = eq ? (size_t)(eq - p) : plen;
			size_t vlen = eq ? plen - klen - 1 : 0;
			char *k = xmalloc(klen + 1), *v = xmalloc(vlen + 1);
			pct_decode(k, p, klen, 1);
			pct_decode(v, eq ? eq + 1 : "", vlen, 1);
			q->keys[q->n] = k;
			q->vals[q->n] = v;
			q->n++;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
}

void query_release(struct query *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->keys[i]);
		free(q->vals[i]);
	}
	free(q->keys);
	free(q->vals);
	q->n = 0;
	q->keys = q->vals = NULL;
}

const char *query_get(const struct query *q, const char *key)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->keys[i], key) == 0)
			return q->vals[i];
	return NULL;
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *b64url_encode(const unsigned char *data, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 5), *o = out;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
		*o++ = b64chars[v >> 18 & 63];
		*o++ = b64chars[v >> 12 & 63];
		*o++ = b64chars[v >> 6 & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		*o++ = b64chars[v >> 18 & 63];
		*o++ = b64chars[v >> 12 & 63];
		if (i + 1 < len)
			*o++ = b64chars[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

unsigned char *b64url_decode(const char *s, size_t *outlen)
{
	size_t len = strlen(s);
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return NULL;
	unsigned char *out = xmalloc(len / 4 * 3 + 4);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits & 0xFF);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}
