/* Validation and application of subscriber changes, shared by the API and the control endpoint. */
#ifndef FAKE_SUBEDIT_H
#define FAKE_SUBEDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "reply.h"
#include "store.h"

#define TEXT_FIELD_MAX 1024
#define EMAIL_MAX 254

/* 1 when a normalized email looks like one: one @, a dotted domain, no spaces. */
int email_valid(const char *email);

/*
 * Checks one field value (borrowed JSON: string, number or null) for field
 * fi. On success returns 0 and sets *val to a new string in stored form
 * (NULL for null or the empty string, which Laravel turns into null) with
 * *len; on error returns -1 with a message in err.
 */
int field_value(const struct store *s, int fi, const json_t *v, char **val, size_t *len,
		char *err, size_t errlen);
/* The same check for a value given as text (generated data). */
int field_text(const struct store *s, int fi, const char *text, char **val, size_t *len,
	       char *err, size_t errlen);

/*
 * Checks a "fields" member (borrowed, may be NULL): an object whose known
 * keys hold valid values; unknown keys are ignored. Errors go to v keyed
 * prefix + "fields.<name>".
 */
void fields_validate(const struct store *s, const json_t *fields, const char *prefix,
		     struct verrs *v);
/* Applies a validated "fields" object; null clears. Returns 1 if anything changed. */
int fields_apply(struct store *s, uint32_t slot, const json_t *fields);

/*
 * Moves a subscriber to status, keeping the timestamps consistent
 * (unsubscribed_at on leaving, subscribed_at on becoming active).
 * Returns 1 if the status changed.
 */
int status_apply(struct store *s, uint32_t slot, int status, int64_t now);
/* 1 for unsubscribed, bounced and junk: states the API cannot leave by itself. */
int status_is_inactive(int status);

/* Optional timestamp member: 0 ok (*out set, TIME_NULL for null, untouched if absent). */
int time_member(const json_t *obj, const char *key, int64_t *out, int *present);

#endif
