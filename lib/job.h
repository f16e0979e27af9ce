/*
 * The bookkeeping a long, resumable job shares with its siblings: one run
 * at a time (a session advisory lock named per job and namespace), an id per
 * run for the audit trail, and the liveness check on the job's section of
 * sync_status for runs whose lock cannot be seen (a crashed process, a
 * transaction-mode pooler).
 */
#ifndef CW_JOB_H
#define CW_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "db.h"
#include "error.h"

/* A run whose lastUpdatedAt is younger than this may still be alive. */
#define JOB_STALE_AFTER_S 90.0
/* How often a running job stamps lastUpdatedAt while it waits. */
#define JOB_HEARTBEAT_MS 30000LL

/* The lock name of a job in a namespace: "backfill:default". New string. */
char *job_lock_name(const char *job, const char *namespace);

/* Take the job's session lock, or fail with CW_EXIT_TEMPFAIL naming the
 * holder (pid, program, client, start time). */
int job_lock(struct db *db, const char *lock_name, struct cw_error *err);

/* The same, waiting up to wait_ms for the holder to finish (polled every
 * JOB_LOCK_POLL_MS); a signal ends the wait with CW_EXIT_PARTIAL. */
#define JOB_LOCK_POLL_MS 100LL
int job_lock_wait(struct db *db, const char *lock_name, long long wait_ms, struct cw_error *err);

/* A new run id from the database (a UUID as text). New string, or NULL
 * with err set. */
char *job_new_run_id(struct db *db, struct cw_error *err);

/* One sync_log row about the run as a whole (action "job_started",
 * "job_completed", ...; detail a JSON object or NULL, borrowed). */
int job_log(struct db *db, const char *program, const char *run_id, const char *namespace,
	    const char *level, const char *action, const json_t *detail, struct cw_error *err);

/* sync_log rows about records, in one statement: rows (borrowed) is a JSON
 * array of {"level", "action", "e": email, "a": A key, "b": B id,
 * "detail": object}, the last four optional. */
int job_log_records(struct db *db, const char *program, const char *run_id,
		    const char *namespace, const json_t *rows, struct cw_error *err);

/* Who this process is, for the status section: "pid 123 on host". New
 * string. */
char *job_runner(void);

/*
 * Refuse to start over a run the status section says is running: one whose
 * lastUpdatedAt is under JOB_STALE_AFTER_S seconds old may be alive (its
 * lock may sit behind a pooler, or its process on another machine); one
 * that stopped updating is taken over only when the operator says so
 * (take_over: --force-resume), since only a person can know it is dead.
 * doc (borrowed, may be NULL) is the document under status_key as the
 * caller read it; only the age of lastUpdatedAt is read again, by the
 * database's clock. Returns 0 when this run may start (*stale is set when
 * it takes one over), -1 with CW_EXIT_TEMPFAIL naming that run otherwise.
 */
int job_check_live(struct db *db, const char *status_key, const json_t *doc,
		   const char *section, bool take_over, bool *stale, struct cw_error *err);

#endif
