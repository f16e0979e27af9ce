/*
 * The worker loop of QUEUE.md, for one process: claim a chunk, work it
 * under a fenced lease that a thread of its own heartbeats on its own
 * connection (the same connection LISTENs for new work), complete it
 * together with the chunk's writes, finish the parent after the commit,
 * rescue expired leases every interval (with jitter, one worker per tick),
 * deliver due completion webhooks between chunks, and on SIGTERM/SIGINT
 * stop claiming, let the chunk in hand finish within the grace period,
 * then hand it back.
 *
 * Connections: the work one, the watch one (LISTEN, heartbeats) and, when
 * a kind needs the API and a rate limit is set, the shared bucket's.
 */
#ifndef CW_WORKER_H
#define CW_WORKER_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "queue.h"

struct worker_options {
	const char *kinds;	/* PostgreSQL text[] literal of the kinds to claim */
	double lease_s;		/* lease length; heartbeats every third of it */
	bool until_empty;	/* stop once no chunk of these kinds is left */
	long long deadline_ms;	/* cli_now_ms() at which to stop claiming; 0: none */
	long grace_ms;		/* after a stop request, the chunk in hand may go on this long */
	long poll_ms;		/* the polling fallback behind LISTEN */
	long rescue_ms;		/* rescue every rescue_ms to 2 * rescue_ms */
	/* Called after each chunk (may be NULL): what became of it, one of
	 * "completed", "failed", "retry", "released", "lost". */
	void (*on_chunk)(void *arg, const char *what, const struct queue_chunk *c);
	void *arg;
};

/* What one worker did. */
struct worker_stats {
	long long claimed, completed, failed, retried, released, lost;
	long long items;	  /* items of the chunks it completed */
	long long record_errors;  /* record-level errors in their results ("errors") */
	long long rescued;	  /* chunks its rescue passes re-queued or failed */
	long long jobs_ended;	  /* parents it finished */
	long long webhooks;	  /* webhook deliveries it attempted */
};

/* The figures as a JSON object (new reference), named as `chunk-worker
 * run` prints them: claimed, completed, failed, retried, released, lost,
 * items, recordErrors, rescued, jobsEnded, webhooks. */
json_t *worker_stats_json(const struct worker_stats *s);
/* Back from such an object (its integer members; others are left 0). */
void worker_stats_from_json(const json_t *obj, struct worker_stats *s);
/* to += s, figure by figure. */
void worker_stats_add(struct worker_stats *to, const struct worker_stats *s);

enum worker_end {
	WORKER_EMPTY,	 /* --until-empty and nothing left */
	WORKER_STOPPED,	 /* a signal */
	WORKER_DEADLINE, /* --max-duration */
};

/* The kinds this configuration can work (a text[] literal, new string):
 * those named in requested (comma-separated; NULL or "": all), each known
 * (else CW_EXIT_USAGE) and with what it needs configured (an API key, the
 * A table: else CW_EXIT_CONFIG when named; left out with a log line when
 * not). NULL with err when none is left. */
char *worker_kinds(const struct cw_config *cfg, const char *requested, struct cw_error *err);

/* Whether name is among the kinds of a literal from worker_kinds(). */
bool worker_kind_listed(const char *kinds, const char *name);

/* Work chunks until *end. Returns 0, or -1 with err when the worker could
 * not start or lost its database for good. */
int worker_run(const struct cw_config *cfg, const struct worker_options *o,
	       struct worker_stats *stats, enum worker_end *end, struct cw_error *err);

#endif
