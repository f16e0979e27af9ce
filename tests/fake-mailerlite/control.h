/* The /_control endpoint: seeding, inspection, settings and faults for tests (no auth). */
#ifndef FAKE_CONTROL_H
#define FAKE_CONTROL_H

#include <stddef.h>

#include "reply.h"
#include "server.h"
#include "util.h"

/*
 * Answers a request under /_control (lock held). path is the raw path,
 * body the raw request body (may be NULL), content_type the request's
 * Content-Type header or NULL.
 */
void control_handle(struct server *srv, const char *method, const char *path,
		    const struct query *q, const char *body, size_t len, const char *content_type,
		    struct reply *r);

#endif
