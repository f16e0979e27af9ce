/*
 * A caller-owned error: lib/ functions fill it and return -1 (or NULL)
 * instead of printing or exiting; the program turns it into a message and
 * an exit status.
 */
#ifndef CW_ERROR_H
#define CW_ERROR_H

#include <stdarg.h>

#define CW_ERROR_MSG 512
#define CW_ERROR_DETAIL 1024
#define CW_ERROR_HINT 512

struct cw_error {
	int code;			/* an enum cw_exit value; 0 when no error is set */
	char msg[CW_ERROR_MSG];		/* "could not connect to ...": lowercase, no period */
	char detail[CW_ERROR_DETAIL];	/* optional full sentence(s) */
	char hint[CW_ERROR_HINT];	/* optional full sentence: what to do */
};

#if defined(__GNUC__)
#define CW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CW_PRINTF(f, a)
#endif

/* Empty the error. */
void cw_error_clear(struct cw_error *err);

/* Set code and message (detail and hint are emptied); returns -1 so that
 * `return cw_error_set(err, ...)` reads naturally. err may be NULL. */
int cw_error_set(struct cw_error *err, int code, const char *fmt, ...) CW_PRINTF(3, 4);
int cw_error_vset(struct cw_error *err, int code, const char *fmt, va_list ap) CW_PRINTF(3, 0);

/* Add the detail or hint line to an error already set. */
void cw_error_detail(struct cw_error *err, const char *fmt, ...) CW_PRINTF(2, 3);
void cw_error_hint(struct cw_error *err, const char *fmt, ...) CW_PRINTF(2, 3);

/* Put "what: " in front of the message, keeping code, detail and hint:
 * wraps a lower layer's error in the caller's context. */
void cw_error_prefix(struct cw_error *err, const char *fmt, ...) CW_PRINTF(2, 3);

#endif
