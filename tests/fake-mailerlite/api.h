/* The MailerLite API under /api: routing and the handlers for subscribers, groups and batch. */
#ifndef FAKE_API_H
#define FAKE_API_H

#include <jansson.h>

#include "reply.h"
#include "server.h"
#include "util.h"

enum route_kind {
	R_SUBSCRIBERS,	      /* /api/subscribers */
	R_SUBSCRIBER,	      /* /api/subscribers/{id or email} */
	R_SUBSCRIBER_GROUP,   /* /api/subscribers/{sid}/groups/{gid} */
	R_GROUPS,	      /* /api/groups */
	R_GROUP,	      /* /api/groups/{id} */
	R_GROUP_SUBSCRIBERS, /* /api/groups/{id}/subscribers */
	R_BATCH		      /* /api/batch */
};

enum route_result { ROUTE_OK, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

struct route {
	enum route_kind kind;
	char *arg1; /* percent-decoded path arguments, owned */
	char *arg2;
	const char *allowed; /* "GET, POST" for the 405 message */
};

/* Resolves a raw (still percent-encoded) path such as "/api/subscribers/1". */
enum route_result api_route(const char *method, const char *path, struct route *rt);
void api_route_release(struct route *rt);
/* The 404 or 405 answer for a failed api_route. */
void api_route_reply(enum route_result rc, const char *method, const char *path,
		     const struct route *rt, struct reply *r);

/*
 * Answers one routed request (lock held). body is the parsed JSON object of
 * a POST or PUT, or NULL for none; source is SRC_API, or SRC_IMPORT inside
 * an import batch.
 */
void api_handle(struct server *srv, const struct route *rt, const char *method,
		const struct query *q, const json_t *body, int source, struct reply *r);

/*
 * Looks at a batch body before it is run: *count inner requests, *import
 * when 1..50 of them and all are POST api/subscribers. 0 if body is not a
 * batch at all.
 */
int api_batch_peek(const json_t *body, int *count, int *import);

#endif
