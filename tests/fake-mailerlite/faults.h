/* Injected faults: rules set through the control endpoint that spoil matching API requests. */
#ifndef FAKE_FAULTS_H
#define FAKE_FAULTS_H

#include <stddef.h>

#include <jansson.h>

#include "jsonw.h"

enum fault_kind {
	FAULT_NONE,
	FAULT_LATENCY,
	FAULT_STATUS,
	FAULT_RATE_LIMIT,
	FAULT_DROP,
	FAULT_TRUNCATE,
	FAULT_NOT_JSON,
	FAULT_MISSING_MEMBER
};

struct fault_rule {
	char method[16]; /* "" matches any */
	char *path_prefix;
	long long after;
	long long count; /* -1: forever */
	enum fault_kind kind;
	int ms;
	int status;
	int retry_after;
	int apply;    /* status, drop, not_json: carry the request out first */
	char *member; /* missing_member: dotted path to remove ("data") */
	char *body;   /* status: the body to send, or NULL for {"message":...} */
	long long seen;	   /* matching requests so far */
	long long applied; /* times it fired */
};

struct faults {
	struct fault_rule *rules;
	size_t n;
	size_t cap;
};

/* What to do to one request; strings are owned (fault_action_release). */
struct fault_action {
	enum fault_kind kind;
	int ms;
	int status;
	int retry_after;
	int apply; /* the request is carried out before the broken answer */
	char *member;
	char *body;
};

void fault_action_release(struct fault_action *a);

void faults_init(struct faults *f);
void faults_release(struct faults *f);
void faults_clear(struct faults *f);
/* "latency", ... or NULL for FAULT_NONE. */
const char *fault_kind_name(enum fault_kind k);
/*
 * Appends the rules of {"rules":[...]} (borrowed), all or none. Returns 0,
 * or -1 with a message in err.
 */
int faults_add(struct faults *f, const json_t *body, char *err, size_t errlen);
/*
 * Every rule matching method and path counts the request; the first one
 * due (past its `after`, within its `count`) fires and fills out.
 */
void faults_match(struct faults *f, const char *method, const char *path,
		  struct fault_action *out);
/*
 * Removes the member at a dotted path from v (borrowed): "data",
 * "meta.next_cursor", "data.0.id", "data.*.email" ("*": every element or
 * member). Returns 1 when something was removed.
 */
int fault_remove_member(json_t *v, const char *path);
/* {"rules":[... with "matched" and "remaining"]} */
void faults_render(const struct faults *f, struct jw *w);

#endif
