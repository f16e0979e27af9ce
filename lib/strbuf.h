/*
 * A growable, always NUL-terminated byte buffer: response bodies, JSON and
 * SQL text built from pieces. Initialize with STRBUF_INIT or strbuf_init();
 * strbuf_release() frees the memory; strbuf_detach() hands it to the caller.
 */
#ifndef CW_STRBUF_H
#define CW_STRBUF_H

#include <stddef.h>

#include "error.h"

struct strbuf {
	char *buf;	/* never NULL after init: "" when empty */
	size_t len;
	size_t alloc;
};

extern char strbuf_empty[];
#define STRBUF_INIT { strbuf_empty, 0, 0 }

void strbuf_init(struct strbuf *sb, size_t hint);
void strbuf_release(struct strbuf *sb);
/* The buffer, now owned by the caller (free()); sb is re-initialized. */
char *strbuf_detach(struct strbuf *sb, size_t *len);
void strbuf_reset(struct strbuf *sb);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) CW_PRINTF(2, 3);

#endif
