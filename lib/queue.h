/*
 * The chunk queue from C: thin calls of the SQL functions of sql/002 and
 * sql/003 (QUEUE.md), each one short autocommit statement unless the
 * caller has a transaction open (a completion that commits with the
 * chunk's own writes). Statements are prepared once per connection.
 *
 * Outcomes: -1 with err set is a database error (CW_EXIT_UNAVAILABLE when
 * the connection was lost); the fenced calls return 1 when the lease held
 * and 0 when it was lost (rescued, taken over, cancelled): the worker then
 * discards its work and writes nothing more.
 */
#ifndef CW_QUEUE_H
#define CW_QUEUE_H

#include <jansson.h>
#include <stdbool.h>

#include "db.h"
#include "error.h"

/* The NOTIFY channel of new and re-queued work. */
#define QUEUE_CHANNEL "crosswalk_chunks"
/* last_error and webhook errors are cut to this many characters. */
#define QUEUE_ERROR_MAX 2000

/* A claimed chunk with its parent's kind and settings. Strings and params
 * are owned: queue_chunk_release(). */
struct queue_chunk {
	long long id, parent_id, lease_token;
	int chunk_index, total_chunks, attempts, max_attempts;
	long long start_offset, end_offset;
	bool ordered;
	char *kind, *namespace;
	json_t *params;	/* the parent's params object */
};
void queue_chunk_release(struct queue_chunk *c);

/* A job to enqueue; every string borrowed. Exactly one of chunk_size and
 * total_chunks is above 0. */
struct queue_job {
	const char *kind;
	long long total_items;
	long long chunk_size;
	int total_chunks;
	const json_t *params;	/* an object, or NULL for {} */
	int priority;		/* lower runs first */
	bool ordered;
	const char *namespace;
	int max_attempts;
	const char *webhook_url; /* NULL: none */
};

/* create_sync_chunks(): *id the parent, *chunks how many it got. A value
 * the function refuses (SQLSTATE 22023) comes back as CW_EXIT_DATAERR. */
int queue_enqueue(struct db *db, const struct queue_job *job, long long *id, int *chunks,
		  struct cw_error *err);

/* claim_next_chunk_job(): 1 with *c filled, 0 when nothing is due. kinds
 * is a PostgreSQL text[] literal ("{push,backfill}") or NULL for any. */
int queue_claim(struct db *db, const char *worker_id, double lease_s, const char *kinds,
		struct queue_chunk *c, struct cw_error *err);

/* The fenced calls: 1 the lease held, 0 lost. */
int queue_heartbeat(struct db *db, const struct queue_chunk *c, double lease_s,
		    struct cw_error *err);
/* result (borrowed, may be NULL); processing_ms < 0: measured by the
 * server from the claim. */
int queue_complete(struct db *db, const struct queue_chunk *c, const json_t *result,
		   long long processing_ms, struct cw_error *err);
/* *status (may be NULL) gets "pending" (a retry is due later) or
 * "failed" (for good). */
int queue_fail(struct db *db, const struct queue_chunk *c, const char *error, bool retry,
	       const char **status, struct cw_error *err);
/* Back to pending now, the attempt not counted (a worker shutting down). */
int queue_release(struct db *db, const struct queue_chunk *c, struct cw_error *err);

/* finish_sync_job(): *ended gets the parent's final status when it ended
 * now (a static string), else NULL. Run after the completion committed. */
int queue_finish(struct db *db, long long parent_id, const char **ended, struct cw_error *err);
/* roll_up_sync_job(): progress and ETA on the parent. */
int queue_roll_up(struct db *db, long long parent_id, struct cw_error *err);

/* rescue_chunk_jobs(): *rescued chunks re-queued or failed, -1 when
 * another session is rescuing now. */
int queue_rescue(struct db *db, int *rescued, struct cw_error *err);

/* sync_job_report(): 1 with *report (new reference), 0 when no such job. */
int queue_report(struct db *db, long long id, json_t **report, struct cw_error *err);
/* sync_job_totals(): the numbers of the completed chunks' results, summed
 * ({} when none), as a new object. */
int queue_totals(struct db *db, long long id, json_t **totals, struct cw_error *err);
/* Reports of the jobs not ended, and of those ended in the last day
 * (new array, newest first, at most limit). */
int queue_reports_recent(struct db *db, int limit, json_t **reports, struct cw_error *err);

/* cancel_sync_job(): *cancelled false when the job had ended already. */
int queue_cancel(struct db *db, long long id, bool *cancelled, struct cw_error *err);
/* retry_sync_job(): *requeued chunks back to pending. */
int queue_retry(struct db *db, long long id, int *requeued, struct cw_error *err);
/* prune_sync_jobs() until done: jobs ended over older_than_s seconds ago
 * deleted with their chunks, in batches. */
int queue_prune(struct db *db, long older_than_s, long long *deleted, struct cw_error *err);

/* Chunks pending or processing, of the given kinds (NULL: any). */
int queue_backlog(struct db *db, const char *kinds, long long *chunks, struct cw_error *err);

/* This process's worker id, host:pid:start-time:random (a static string:
 * unique per start, so that a restarted worker never passes for its
 * earlier self). */
const char *queue_worker_id(void);

#endif
