/* The request log: every API request in arrival order, for tests to assert on. */
#ifndef FAKE_REQLOG_H
#define FAKE_REQLOG_H

#include <stddef.h>
#include <stdint.h>

#include "faults.h"
#include "jsonw.h"

struct logent {
	uint64_t seq;
	double t; /* wall clock, epoch seconds */
	char method[16];
	char *path;
	char *query;
	int status; /* 0 until answered; stays 0 (null) for a dropped connection */
	enum fault_kind fault;
	int batch; /* inner request count, -1 when not a batch */
	int import;
	char *body; /* the request body when bodies are logged, else NULL */
	size_t body_len;
	int body_json; /* body is one line of JSON, rendered as a value */
};

struct reqlog {
	struct logent *e;
	size_t n;
	size_t cap;
	uint64_t next_seq;
	uint64_t gen; /* bumped by clear, so stale references are ignored */
};

/* Where a request's entry is, to fill it in once answered. */
struct reqlog_ref {
	uint64_t gen;
	size_t idx;
};

void reqlog_init(struct reqlog *l);
void reqlog_release(struct reqlog *l);
/* Empties the log; seq starts again at 1. */
void reqlog_clear(struct reqlog *l);
struct reqlog_ref reqlog_begin(struct reqlog *l, const char *method, const char *path,
			       const char *query, double t);
void reqlog_finish(struct reqlog *l, struct reqlog_ref ref, int status, enum fault_kind fault,
		   int batch, int import);
/* Keeps a copy of the request body (JSON text when is_json, else any bytes). */
void reqlog_set_body(struct reqlog *l, struct reqlog_ref ref, const char *body, size_t len,
		     int is_json);
/* JSON lines, the entries with seq > since. */
void reqlog_render(const struct reqlog *l, struct jw *w, uint64_t since);

#endif
