/*
 * Reconciling a set of contacts on both sides: the unit of work that
 * enterprise-sync runs per page of B (and per slice of changed A rows) and
 * smart-sync per run. For the set, in the caller's open transaction:
 *
 *   1. per-email transaction advisory locks (the same for every program);
 *   2. one query loads the A rows, crosswalk rows and shadows; a contact
 *      whose B record, read before the locks, is older than its shadow (a
 *      concurrent run wrote it meanwhile) is read again;
 *   3. lib/merge plans each contact;
 *   4. B's changes go through /batch (PUT for existing subscribers, group
 *      assign/unassign, POST to create); B's answer to the last write, or
 *      a read-back in the same batch, gives the shadow; a contact B refuses
 *      is a record-level error and is not advanced;
 *   5. A's changes are written in one statement (one more for inserts),
 *      never over a row that changed in A since it was loaded;
 *   6. crosswalk rows, shadows, sync_conflicts and sync_log are written.
 *
 * The caller commits (together with its cursor) or rolls back. A crash
 * anywhere re-derives the same plan: B writes are idempotent updates, and
 * the shadow only moves with the A changes.
 */
#ifndef CW_RECONCILE_H
#define CW_RECONCILE_H

#include <jansson.h>
#include <stdbool.h>

#include "config.h"
#include "db.h"
#include "error.h"
#include "mailerlite.h"
#include "store.h"

struct reconcile_options {
	enum cw_direction direction; /* which sides this run may write */
	bool resubscribe;	     /* a push may revive unsubscribed, bounced, junk */
	bool repair_missing;	     /* a linked subscriber B no longer has: unlink and
				      * create it again (else reported as an error) */
	bool dry_run;		     /* plan and report; write nothing anywhere */
	bool use_lookup;	     /* find A rows by email through the session's
				      * pg_temp.cw_a_lookup (store_build_lookup) */
	bool import_new;	     /* create in A the contacts only B has (when the
				      * direction lets this run write A) */
	bool incremental;	     /* leave alone, unwritten, a linked contact neither
				      * side touched since its last sync: A's updated_at
				      * not after the shadow's synced_at, B's updated_at
				      * the one in b_snapshot, and both sides' values
				      * those of the shadow */
	/* Asked before each /batch (may be NULL): true stops the work with
	 * CW_EXIT_PARTIAL, so that a chunk whose lease is lost sends no
	 * more writes. */
	bool (*should_stop)(void *arg);
	void *stop_arg;
};

/* One contact to reconcile, borrowed: B's subscriber object when B has it
 * (a list item or a GET answer), else NULL; and/or A's key as text with its
 * normalized email (from reconcile_a_changes). A ref without a subscriber
 * is one B does not have (the caller asked: a 404). */
struct contact_ref {
	const json_t *subscriber;
	const char *a_key;
	const char *email;
};

struct reconcile_counts {
	long long processed;	/* contacts looked at */
	long long unchanged;	/* nothing to do */
	long long to_a, to_b;	/* contacts updated on that side */
	long long created_in_a, created_in_b;
	long long linked;	/* new crosswalk rows */
	long long conflicts;	/* field conflicts detected */
	long long only_in_b;	/* B subscribers left alone (no A row, no import) */
	long long skipped;	/* unusable or ambiguous contacts, see sync_log */
	long long errors;	/* record-level failures */
	long long deferred;	/* changed in A while planned: next run */
};

/* What became of one contact (smart-sync reports it per email). */
enum reconcile_result {
	RECONCILE_UNCHANGED,	/* compared; nothing to write (the shadow may move) */
	RECONCILE_CHANGED,	/* written (linked, created, updated); in a dry run:
				 * would be */
	RECONCILE_SKIPPED,	/* left alone: see reason */
	RECONCILE_FAILED,	/* a record-level failure: see error */
};

struct reconcile_outcome {
	enum reconcile_result result;
	const char *reason;	/* SKIPPED: why, static text */
	char *error;		/* FAILED: owned */
	char *b_id;		/* the subscriber's id when there is one: owned */
};

void reconcile_outcome_release(struct reconcile_outcome *o);

/* The reason given for a contact the incremental check left alone. */
#define RECONCILE_NO_CHANGES "no changes detected"

struct reconcile;

/* db, ml, cfg and store are borrowed and must outlive it; program and
 * run_id are copied. */
struct reconcile *reconcile_new(struct db *db, struct ml_client *ml, const struct cw_config *cfg,
				struct store *store, const char *program, const char *run_id,
				const struct reconcile_options *opts);
void reconcile_free(struct reconcile *r);

/* Resolve the managed groups' ids in B, once per run (GET /groups), creating
 * the missing ones when the config allows; else CW_EXIT_CONFIG naming them.
 * Without this call, reconcile_contacts resolves them the first time a
 * write to B needs a group id, so a run that changes no group asks nothing. */
int reconcile_resolve_groups(struct reconcile *r, struct cw_error *err);

/* The managed groups' ids ({name: id}, borrowed) once resolved, else NULL;
 * and the same handed to another reconcile of the same run (copied), so
 * that a run split over several reconciles asks B for them once. */
const json_t *reconcile_group_ids(const struct reconcile *r);
void reconcile_use_group_ids(struct reconcile *r, const json_t *ids);

/*
 * Reconcile n contacts inside the caller's transaction. Counts are added to
 * *counts. report (borrowed, may be NULL) is a JSON object whose arrays
 * "errors" (record-level failures) and, in a dry run, "changes" (the
 * planned changes) get one entry per contact, up to RECONCILE_REPORT_MAX
 * each. outcomes (may be NULL) has n zeroed entries, filled one per ref;
 * the caller releases them (also after a failure). Returns -1 with err set
 * when the set could not be done (database error, API unavailable): the
 * caller rolls back; B may hold some of the writes, which the next run
 * finds already made.
 */
#define RECONCILE_REPORT_MAX 100
int reconcile_contacts(struct reconcile *r, const struct contact_ref *refs, size_t n,
		       struct reconcile_counts *counts, json_t *report,
		       struct reconcile_outcome *outcomes, struct cw_error *err);

/*
 * The A rows that need B's attention, in key order after after_key (NULL:
 * from the start), at most limit: rows with no crosswalk entry, and linked
 * rows whose snapshot moved from their shadow. Rows with an unusable or
 * repeated email are left out (the walk of B reports them), and so are
 * the rows this reconcile has already looked at without settling them
 * (a skip conflict, a record-level error, a dry run), so that a run takes
 * each contact once. (A pass split over several runs may look at such a
 * contact once more in its A phase: the list is the process's.) The rows
 * are gathered in one pass over the table on the first call, as they
 * stand then. *rows gets a new reference to an array of {"k": key text,
 * "e": email, "b": B id or null}.
 */
int reconcile_a_changes(struct reconcile *r, const char *after_key, int limit, json_t **rows,
			struct cw_error *err);

/* The same rows as reconcile_a_changes, for keys from from_key (included)
 * to to_key (excluded), either NULL for no bound, read now in one query
 * (nothing is remembered between calls): a key range of a chunked push. */
int reconcile_a_range(struct reconcile *r, const char *from_key, const char *to_key,
		      json_t **rows, struct cw_error *err);

/* The contacts of normalized emails (a JSON array of strings, borrowed),
 * as reconcile_fetch_b takes them, in one query: *rows gets a new array
 * with one {"e": email, "k": A key or null, "b": B id or null} per email,
 * in order. A contact is found through the crosswalk by its email, else
 * by the A row holding the email (and that row's link, if any); an email
 * two A rows share gets no key. */
int reconcile_find(struct reconcile *r, const json_t *emails, json_t **rows, struct cw_error *err);

/* Read the B records of A rows from reconcile_a_changes (borrowed array)
 * through a /batch of GETs per ML_BATCH_MAX rows, by B id when linked,
 * else by email. *subscribers gets a new array, one element per row: the
 * subscriber object, or null when B has none (404). */
int reconcile_fetch_b(struct reconcile *r, const json_t *rows, json_t **subscribers,
		      struct cw_error *err);

void reconcile_counts_add(struct reconcile_counts *to, const struct reconcile_counts *c);

/* Add the entries of report from (borrowed) to report into, each list up
 * to RECONCILE_REPORT_MAX: a run's report gathered from its sets. */
void reconcile_report_merge(json_t *into, const json_t *from);

#endif
