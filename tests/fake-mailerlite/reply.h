/* A response being built: status, body, and the headers the front end must add. */
#ifndef FAKE_REPLY_H
#define FAKE_REPLY_H

#include <stddef.h>

#include "jsonw.h"

enum reply_mode {
	REPLY_NORMAL,
	REPLY_TRUNCATE, /* full Content-Length, half the body, then close */
	REPLY_DROP	/* close the connection without answering */
};

struct reply {
	int status;
	char *body; /* malloc'd, or NULL for an empty body */
	size_t len;
	const char *content_type;
	int retry_after; /* < 0: no Retry-After header */
	int rate_headers;
	int rate_limit;
	int rate_remaining;
	enum reply_mode mode;
};

void reply_init(struct reply *r);
void reply_release(struct reply *r);
/* Takes w's buffer as the body (JSON). */
void reply_jw(struct reply *r, int status, struct jw *w);
/* {"message": msg} */
void reply_message(struct reply *r, int status, const char *msg);
/* No body (204). */
void reply_empty(struct reply *r, int status);
/* Any body with its content type; text is copied. */
void reply_text(struct reply *r, int status, const char *content_type, const char *text);

/*
 * Validation errors in Laravel's shape: 422
 * {"message": first message [+ " (and N more errors)"], "errors": {key: [msg]}}.
 * One message per key is kept.
 */
#define VERRS_MAX 32
struct verrs {
	size_t n;
	size_t total;
	char *key[VERRS_MAX];
	char *msg[VERRS_MAX];
};

void verrs_init(struct verrs *v);
void verrs_release(struct verrs *v);
void verrs_add(struct verrs *v, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Fills r with the 422 and releases nothing: call verrs_release after. */
void reply_verrs(struct reply *r, const struct verrs *v);
/* A single-error 422. */
void reply_invalid(struct reply *r, const char *key, const char *msg);

#endif
