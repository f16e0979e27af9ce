/* The opaque pagination cursor: base64url of a small JSON naming an id, Laravel style. */
#ifndef FAKE_CURSOR_H
#define FAKE_CURSOR_H

#include <stdint.h>

/* New string for {"id":ID,"_pointsToNextItems":true|false}. */
char *cursor_encode(uint64_t id, int next);
/* 0 and *id, *next on success; -1 when the text is not such a cursor. */
int cursor_decode(const char *text, uint64_t *id, int *next);

#endif
