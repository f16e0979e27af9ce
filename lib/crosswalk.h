/*
 * The identity map (integration_crosswalk): linking B subscribers to A rows
 * by normalized email, set-based, a batch per statement, together with their
 * shadows and the audit rows for what could not be linked.
 */
#ifndef CW_CROSSWALK_H
#define CW_CROSSWALK_H

#include <jansson.h>

#include "config.h"
#include "db.h"
#include "error.h"

/* Transaction-level advisory locks on each normalized email of the JSON
 * array (borrowed), the same for every program: two runs never work on one
 * contact at once. Held until the caller's transaction ends. */
int crosswalk_lock_emails(struct db *db, const json_t *emails, struct cw_error *err);

/* One B subscriber as the linker takes it: a small JSON object text
 *   {"i": id, "e": normalized email or null, "r": raw email when invalid,
 *    "why": the email's problem, "s": b_snapshot}
 * New string; *id_out (optional) gets a new copy of the id. Returns NULL
 * when the subscriber has no usable id (the caller counts it as skipped). */
char *crosswalk_b_row(const json_t *subscriber, const struct cw_config *cfg, char **id_out);

struct link_counts {
	long long crosswalk_created;	/* new crosswalk rows */
	long long shadows_written;	/* shadows created (an existing one is kept) */
	long long matched;		/* B subscribers linked to an A row (new or already) */
	long long only_in_b;		/* valid B subscribers with no A row */
	long long skipped;		/* invalid or duplicate emails, pins that disagree */
};

struct linker;

/* A linker for one job: program name and run id go into sync_log. The run
 * id is copied; the other arguments are borrowed and must outlive the
 * linker. */
struct linker *linker_new(struct db *db, const struct cw_config *cfg,
			  const char *program, const char *run_id);
void linker_free(struct linker *linker);

/* Link one batch: rows_json is a JSON array of crosswalk_b_row() objects.
 * Runs as one statement in the caller's transaction; counts are added to
 * *counts only when it succeeds. Needs store_build_lookup() on this
 * session. */
int linker_link_batch(struct linker *linker, const char *rows_json, struct link_counts *counts,
		      struct cw_error *err);

/* After the whole of B was walked: record in sync_log the A rows that no B
 * subscriber matched (only_in_a) and A rows with unusable emails (skipped),
 * once per job, and return their counts. B-side entries of this run_id tell
 * which emails B had. */
int linker_finish(struct linker *linker, long long *only_in_a, long long *skipped_in_a,
		  struct cw_error *err);

#endif
