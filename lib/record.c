/* Normalizing emails and values so that A and B compare equal when they mean the same. */
#include "record.h"
#include "xalloc.h"

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

static regex_t email_re;
static bool email_re_ok;
static pthread_once_t email_re_once = PTHREAD_ONCE_INIT;

static void compile_email_re(void)
{
	email_re_ok = regcomp(&email_re, RECORD_EMAIL_PATTERN, REG_EXTENDED | REG_NOSUB) == 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

char *record_normalize_email(const char *raw)
{
	const char *start = raw, *end;
	char *out;

	while (*start && is_space(*start))
		start++;
	end = start + strlen(start);
	while (end > start && is_space(end[-1]))
		end--;
	out = xstrndup(start, (size_t)(end - start));
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return out;
}

const char *record_email_problem(const char *normalized)
{
	size_t len = strlen(normalized);

	if (len == 0)
		return "empty email";
	if (len > RECORD_EMAIL_MAX)
		return "email longer than 254 characters";
	pthread_once(&email_re_once, compile_email_re);
	if (!email_re_ok || regexec(&email_re, normalized, 0, NULL, 0) != 0)
		return "invalid email";
	return NULL;
}

bool record_email_valid(const char *normalized)
{
	return record_email_problem(normalized) == NULL;
}

json_t *record_value_normalize(const json_t *value)
{
	char buf[64];

	if (!value || json_is_null(value))
		return json_null();
	if (json_is_string(value))
		return json_stringn(json_string_value(value), json_string_length(value));
	if (json_is_integer(value)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(value));
		return json_string(buf);
	}
	if (json_is_real(value)) {
		/* The shortest decimal text that reads back as the same double: what
		 * PostgreSQL's float8 output gives with extra_float_digits > 0. */
		double d = json_real_value(value);
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, d);
			double back;
			if (sscanf(buf, "%lf", &back) == 1 && back == d)
				break;
		}
		return json_string(buf);
	}
	if (json_is_true(value))
		return json_string("true");
	if (json_is_false(value))
		return json_string("false");
	return NULL;
}

bool record_id_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 20 && strspn(s, "0123456789") == n;
}

int record_id_cmp(const char *a, const char *b)
{
	while (*a == '0' && a[1])
		a++;
	while (*b == '0' && b[1])
		b++;
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(a, b);
}
