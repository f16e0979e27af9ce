/* Filling and wrapping the caller-owned struct cw_error. */
#include "error.h"
#include "exitcode.h"

#include <stdio.h>
#include <string.h>

void cw_error_clear(struct cw_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = err->detail[0] = err->hint[0] = '\0';
}

int cw_error_vset(struct cw_error *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	cw_error_clear(err);
	err->code = code ? code : CW_EXIT_SOFTWARE;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return -1;
}

int cw_error_set(struct cw_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cw_error_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

void cw_error_detail(struct cw_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

void cw_error_hint(struct cw_error *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
	va_end(ap);
}

void cw_error_prefix(struct cw_error *err, const char *fmt, ...)
{
	char prefix[CW_ERROR_MSG], old[CW_ERROR_MSG];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) >= (int)sizeof(err->msg))
		memcpy(err->msg + sizeof(err->msg) - 4, "...", 4); /* say it was cut */
}
