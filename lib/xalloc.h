/*
 * Allocation that cannot fail: on out-of-memory the process prints one line
 * and exits 70. The only place in lib/ that may end the process, as in git.
 */
#ifndef CW_XALLOC_H
#define CW_XALLOC_H

#include <stddef.h>

#include "error.h"

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* nmemb * size with an overflow check. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A new string from a format; the caller frees it. */
char *xasprintf(const char *fmt, ...) CW_PRINTF(1, 2);

#endif
