/*
 * The opaque, resumable position of a long job: a small JSON object carried
 * as base64url text (no padding) in results and options, and stored as JSON
 * in sync_state. Decoding treats its input as hostile: size cap, alphabet,
 * JSON, and the members a job expects are all checked.
 */
#ifndef CW_CURSOR_H
#define CW_CURSOR_H

#include <jansson.h>

#include "error.h"

#define CURSOR_MAX_TEXT 4096

/* base64url of the object's compact JSON: a new string (free()). */
char *cursor_encode(const json_t *obj);

/* The object a cursor text holds (new reference), or NULL with err set to
 * CW_EXIT_DATAERR naming what is wrong and hinting at --restart. */
json_t *cursor_decode(const char *text, struct cw_error *err);

/* Check that a decoded cursor belongs to this job and namespace and has the
 * format version this build writes; err CW_EXIT_DATAERR otherwise. */
int cursor_check(const json_t *cursor, const char *job, const char *namespace,
		 struct cw_error *err);

/* Raw base64url without padding, exposed for tests. Both return new
 * strings/buffers (free()); decode returns NULL on a bad alphabet or length. */
char *base64url_encode(const unsigned char *data, size_t len);
unsigned char *base64url_decode(const char *text, size_t *len);

#define CURSOR_VERSION 1

#endif
