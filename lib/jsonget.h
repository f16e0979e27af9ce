/*
 * Reading members of JSON that came from outside (the API, sync_state,
 * a cursor): every getter checks the member's type and answers NULL when
 * it is missing or of another type, so no caller trusts a type unchecked.
 */
#ifndef CW_JSONGET_H
#define CW_JSONGET_H

#include <jansson.h>

/* obj's member name when it is a string: borrowed from obj; else NULL
 * (also when obj is not an object). */
const char *jsonget_string(const json_t *obj, const char *name);

#endif
