/*
 * enterprise-sync: the scheduled full reconciliation of both sides. It walks
 * every MailerLite subscriber page by page, then the A rows that changed
 * since their last sync or were never linked, and reconciles each set of
 * contacts with a field-level 3-way merge (lib/reconcile, lib/merge). Each
 * set commits together with the cursor, so a stop at any point resumes
 * where the last commit left off and converges.
 */
#include "cli.h"
#include "config.h"
#include "cursor.h"
#include "db.h"
#include "exitcode.h"
#include "job.h"
#include "jsonget.h"
#include "log.h"
#include "mailerlite.h"
#include "migrate.h"
#include "pagecap.h"
#include "progress.h"
#include "ratelimit.h"
#include "reconcile.h"
#include "record.h"
#include "result.h"
#include "state.h"
#include "store.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define JOB "enterprise"
/* A set that meets a deadlock or a serialization failure is done again. */
#define SET_ATTEMPTS 3

static char *opt_direction, *opt_cursor;
static long opt_max_duration = 120;
static int opt_max_records = 300;
static bool opt_restart, opt_resubscribe, opt_repair_missing, opt_force;
static char *opt_max_change_ratio;

static const struct cfg_option options[] = {
	{ NULL, NULL, "direction", 0, NULL, CFG_ENUM, 0, 0, "both",
	  "both|a-to-b|b-to-a|mailerlite-to-supabase|supabase-to-mailerlite", "DIR",
	  "which sides this run may write: both, a-to-b or b-to-a", 0, 0, &opt_direction },
	{ NULL, NULL, "max-records", 0, NULL, CFG_INT, 1, 100000000, "300", NULL, "N",
	  "stop after this many contacts (resume with the next run)", 0, 0, &opt_max_records },
	{ NULL, NULL, "max-duration", 0, NULL, CFG_DURATION, 0, 7 * 24 * 3600, "120", NULL, "TIME",
	  "stop after this long, e.g. 90s, 5m (0: no limit)", 0, 0, &opt_max_duration },
	{ NULL, NULL, "cursor", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "TEXT",
	  "resume from this nextCursor instead of the saved one", 0, 0, &opt_cursor },
	{ NULL, NULL, "restart", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "forget the saved cursor and start a new pass", 0, 0, &opt_restart },
	{ NULL, NULL, "resubscribe", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "let A revive unsubscribed, bounced or junk subscribers", 0, 0, &opt_resubscribe },
	{ NULL, NULL, "repair-missing", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "re-create linked subscribers MailerLite no longer has", 0, 0, &opt_repair_missing },
	{ NULL, NULL, "max-change-ratio", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "R",
	  "refuse a run that would change more than this share (0..1)", 0, 0,
	  &opt_max_change_ratio },
	{ NULL, NULL, "force", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "apply a run over --max-change-ratio all the same", 0, 0, &opt_force },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "enterprise-sync",
	.synopsis = "enterprise-sync [-nqv] [-c file] [-d conninfo] [--direction dir] "
		    "[--max-records n] [--max-duration time] [--cursor text | --restart] "
		    "[--resubscribe] [--repair-missing] [--max-change-ratio r [--force]]",
	.purpose = "reconciles the contacts table and MailerLite in both directions,\n"
		   "with a field-level 3-way merge against the last synced state.",
	.options = options,
	.takes = CFG_TAKES_DRY_RUN | CFG_TAKES_BATCH,
};

/* Where the pass stands: walking B (the page cursor and the last id done
 * in it), or walking A's changed rows (the last key done). */
struct position {
	bool in_a;
	char *page_cursor;
	char *last_id;
	char *last_key;
	char *pass_id;	/* the pass this position belongs to */
};

struct run {
	struct cw_config *cfg;
	enum cw_direction direction;
	double max_ratio;	/* 0: no guard */
	struct db *db, *bucket_db;
	struct ratelimit *bucket;
	struct ml_client *ml;
	struct store *store;
	struct reconcile *rec;
	struct progress *bar;
	char *status_key, *cursor_key, *lock_name, *runner, *run_id, *account;
	struct position pos;
	struct reconcile_counts counts;
	json_t *report;		/* errors and, in a dry run, the planned changes */
	long long records;	/* contacts taken by this run */
	long long started_ms, deadline_ms;
	bool done;
	const char *message;
};

static void position_clear(struct position *p)
{
	free(p->page_cursor);
	free(p->last_id);
	free(p->last_key);
	free(p->pass_id);
	memset(p, 0, sizeof(*p));
}

static void replace(char **slot, const char *value)
{
	char *copy = value ? xstrdup(value) : NULL;
	free(*slot);
	*slot = copy;
}

/* ---- options ---- */

static int parse_options(struct run *run, struct cw_error *err)
{
	if (!strcmp(opt_direction, "mailerlite-to-supabase"))
		run->direction = CW_DIR_B_TO_A;
	else if (!strcmp(opt_direction, "supabase-to-mailerlite"))
		run->direction = CW_DIR_A_TO_B;
	else
		run->direction = (enum cw_direction)config_parse_direction(opt_direction);
	if (opt_cursor && opt_restart)
		return cw_error_set(err, CW_EXIT_USAGE, "--cursor and --restart cannot be combined");
	if (opt_force && !opt_max_change_ratio)
		return cw_error_set(err, CW_EXIT_USAGE, "--force only applies with --max-change-ratio");
	if (opt_max_change_ratio) {
		char *end;
		run->max_ratio = strtod(opt_max_change_ratio, &end);
		if (end == opt_max_change_ratio || *end || !(run->max_ratio > 0) ||
		    run->max_ratio > 1)
			return cw_error_set(err, CW_EXIT_USAGE,
					    "--max-change-ratio must be a number above 0 and at "
					    "most 1, not \"%s\"",
					    opt_max_change_ratio);
	}
	return 0;
}

/* ---- setup ---- */

/* Which account a cursor belongs to, without keeping anything of the
 * token that could be turned back into it: 32 bits of FNV-1a over the
 * API URL and the token. */
static char *account_tag(const struct cw_config *cfg)
{
	unsigned int h = 2166136261u;
	const char *parts[] = { cfg->api_url ? cfg->api_url : "", "\n",
				cfg->api_key ? cfg->api_key : "" };

	for (size_t i = 0; i < 3; i++)
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
			h = (h ^ *p) * 16777619u;
	return xasprintf("%08x", h);
}

static int open_run(struct run *run, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;

	run->status_key = state_key("sync_status", cfg->namespace);
	run->cursor_key = state_key("cursor:" JOB, cfg->namespace);
	run->lock_name = job_lock_name(JOB, cfg->namespace);
	run->runner = job_runner();
	run->account = account_tag(cfg);
	run->report = json_object();

	if (!(run->db = db_connect(cfg, program.name, err)) || migrate_check(run->db, err) < 0 ||
	    !(run->store = store_open(run->db, cfg, err)))
		return -1;
	if (cfg->check_config)
		return (run->ml = ml_client_new(cfg, NULL, err)) ? 0 : -1;
	if (job_lock(run->db, run->lock_name, err) < 0)
		return -1;
	/* The bucket's row lock must never wait on this job's transactions. */
	if (cfg->rate_limit > 0 && !(run->bucket_db = db_connect(cfg, program.name, err)))
		return -1;
	if (!(run->bucket = ratelimit_new(run->bucket_db, cfg->rate_limit, cfg->import_rate_limit,
					  err)) ||
	    !(run->ml = ml_client_new(cfg, run->bucket, err)) ||
	    pagecap_restore(run->db, run->ml, err) < 0 ||
	    !(run->run_id = job_new_run_id(run->db, err)))
		return -1;
	return 0;
}

static void close_run(struct run *run)
{
	progress_free(run->bar);
	reconcile_free(run->rec);
	store_free(run->store);
	ml_client_free(run->ml);
	ratelimit_free(run->bucket);
	db_close(run->bucket_db);
	db_close(run->db);
	position_clear(&run->pos);
	json_decref(run->report);
	free(run->status_key);
	free(run->cursor_key);
	free(run->lock_name);
	free(run->runner);
	free(run->run_id);
	free(run->account);
}

/* ---- the cursor ---- */

static json_t *cursor_object(const struct run *run)
{
	const struct position *p = &run->pos;
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "v",
			 CURSOR_VERSION, "job", JOB, "ns", run->cfg->namespace, "acct",
			 run->account, "phase", p->in_a ? "a" : "b", "pass", p->pass_id, "c",
			 p->page_cursor, "last", p->last_id, "ak", p->last_key);
}

/* A cursor from --cursor or sync_state: hostile until checked. */
static int position_from(struct run *run, const json_t *saved, const char *where,
			 struct cw_error *err)
{
	const char *phase = jsonget_string(saved, "phase"), *acct = jsonget_string(saved, "acct");
	static const char *const optional[] = { "pass", "c", "last", "ak" };

	if (cursor_check(saved, JOB, run->cfg->namespace, err) < 0)
		goto bad;
	if (!acct || strcmp(acct, run->account)) {
		cw_error_set(err, CW_EXIT_DATAERR,
			     "invalid cursor: it belongs to another MailerLite account");
		cw_error_hint(err, "Run enterprise-sync --restart to start a new pass.");
		goto bad;
	}
	if (!phase || (strcmp(phase, "a") && strcmp(phase, "b")))
		goto missing;
	for (size_t i = 0; i < sizeof(optional) / sizeof(*optional); i++) {
		const json_t *v = json_object_get(saved, optional[i]);
		if (v && !json_is_null(v) && !json_is_string(v))
			goto missing;
	}
	position_clear(&run->pos);
	run->pos.in_a = !strcmp(phase, "a");
	replace(&run->pos.pass_id, jsonget_string(saved, "pass"));
	replace(&run->pos.page_cursor, jsonget_string(saved, "c"));
	replace(&run->pos.last_id, jsonget_string(saved, "last"));
	replace(&run->pos.last_key, jsonget_string(saved, "ak"));
	return 0;
missing:
	cw_error_set(err, CW_EXIT_DATAERR, "invalid cursor: a member is missing or malformed");
	cw_error_hint(err, "Run enterprise-sync --restart to start a new pass.");
bad:
	cw_error_prefix(err, "%s", where);
	return -1;
}

static int load_position(struct run *run, struct cw_error *err)
{
	json_t *saved = NULL;
	int rc = 0;

	if (opt_cursor) {
		if (!(saved = cursor_decode(opt_cursor, err))) {
			cw_error_prefix(err, "--cursor");
			return -1;
		}
		rc = position_from(run, saved, "--cursor", err);
	} else if (!opt_restart) {
		if (state_get(run->db, run->cursor_key, &saved, err) < 0)
			return -1;
		if (saved) {
			char where[300];
			snprintf(where, sizeof(where), "sync_state key \"%s\"", run->cursor_key);
			rc = position_from(run, saved, where, err);
		}
	}
	json_decref(saved);
	if (rc < 0)
		return -1;
	if (!run->pos.pass_id) {
		replace(&run->pos.pass_id, run->run_id);
	} else {
		log_info("resuming pass %s (%s phase)", run->pos.pass_id,
			 run->pos.in_a ? "A" : "MailerLite");
	}
	return 0;
}

static int save_position(struct run *run, bool finished, struct cw_error *err)
{
	if (run->cfg->dry_run)
		return 0;
	if (finished)
		return state_delete(run->db, run->cursor_key, err);
	json_t *c = cursor_object(run);
	int rc = state_put(run->db, run->cursor_key, c, err);
	json_decref(c);
	return rc;
}

/* ---- sync_status: fullSync while running ---- */

static int save_progress(struct run *run, const char *status, struct cw_error *err)
{
	static const char *const stamps[] = { "lastUpdatedAt", NULL };
	if (run->cfg->dry_run)
		return 0;
	const struct reconcile_counts *k = &run->counts;
	json_t *patch = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "status",
				  status, "phase", run->pos.in_a ? "a" : "b", "direction",
				  config_direction_name(run->direction), "runId", run->run_id,
				  "passId", run->pos.pass_id, "runner", run->runner,
				  "recordsProcessed", (json_int_t)k->processed, "conflictsDetected",
				  (json_int_t)k->conflicts, "updatesApplied",
				  (json_int_t)(k->to_a + k->to_b), "errors", (json_int_t)k->errors);
	int rc = state_merge_section(run->db, run->status_key, "fullSync", patch, stamps, err);
	json_decref(patch);
	return rc;
}

/* ---- one set of contacts, in one transaction ---- */

/* Reconcile the set and save the position after it, in one transaction.
 * after (owned by the caller) becomes run->pos on success, and the old
 * position is handed back in it to be freed. */
static int commit_set(struct run *run, const struct contact_ref *refs, size_t n,
		      struct position *after, struct cw_error *err)
{
	for (int attempt = 1;; attempt++) {
		const struct reconcile_counts saved = run->counts;
		const struct position before = run->pos;
		json_t *report = json_object();
		int rc = db_begin(run->db, err);

		if (rc == 0)
			rc = reconcile_contacts(run->rec, refs, n, &run->counts, report, NULL, err);
		if (rc == 0) {
			run->pos = *after;
			rc = save_position(run, false, err);
			if (rc == 0)
				rc = save_progress(run, "running", err);
			if (rc == 0 && run->cfg->dry_run)
				db_rollback(run->db);
			else if (rc == 0)
				rc = db_commit(run->db, err);
		}
		if (rc == 0) {
			*after = before;
			reconcile_report_merge(run->report, report);
			json_decref(report);
			run->records += (long long)n;
			progress_update(run->bar, run->records);
			return 0;
		}
		run->pos = before;
		run->counts = saved;
		json_decref(report);
		db_rollback(run->db);
		if (!db_concurrent_conflict(run->db) || attempt == SET_ATTEMPTS)
			return -1;
		log_info("a set met a concurrent writer (SQLSTATE %s); doing it again",
			 db_sqlstate(run->db));
	}
}

/* ---- the walk ---- */

static bool budget_left(struct run *run)
{
	if (cli_interrupted() || (run->deadline_ms && cli_now_ms() >= run->deadline_ms) ||
	    run->records >= opt_max_records)
		return false;
	return true;
}

static int remaining(const struct run *run)
{
	long long left = opt_max_records - run->records;
	return left > 1000000 ? 1000000 : (int)left;
}

static char *copy_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* A position of the run's pass (new strings; position_clear() frees). */
static struct position position_next(const struct run *run, bool in_a, const char *page_cursor,
				     const char *last_id, const char *last_key)
{
	struct position p = { in_a, copy_or_null(page_cursor), copy_or_null(last_id),
			      copy_or_null(last_key), copy_or_null(run->pos.pass_id) };
	return p;
}

/* Where to start in a page: just after the last id done in it (newest
 * first, so the first id below it). */
static size_t resume_index(const json_t *data, const char *last_id)
{
	size_t i, n = json_array_size(data);

	for (i = 0; last_id && i < n; i++) {
		const char *id = jsonget_string(json_array_get(data, i), "id");
		if (id && record_id_cmp(id, last_id) < 0)
			break;
	}
	return last_id ? i : 0;
}

/* B, page by page, up to the record budget; the position saved with a set
 * is that of its last contact. */
static int walk_b(struct run *run, struct cw_error *err)
{
	while (!run->pos.in_a && budget_left(run)) {
		struct ml_page page;
		int want = remaining(run);
		int cap = ml_page_cap(run->ml) > 0 ? ml_page_cap(run->ml) : run->cfg->page_size;
		/* Resuming inside a page needs the page whole, to find the id. */
		int limit = run->pos.last_id || want >= cap ? 0 : want;

		if (ml_list_subscribers(run->ml, run->pos.page_cursor, limit, true, NULL, &page,
					err) < 0)
			return -1;
		size_t total = json_array_size(page.data);
		size_t start = resume_index(page.data, run->pos.last_id);
		size_t n = total - start;
		if ((long long)n > want)
			n = (size_t)want;
		struct contact_ref *refs = xcalloc(n ? n : 1, sizeof(*refs));
		for (size_t i = 0; i < n; i++)
			refs[i].subscriber = json_array_get(page.data, start + i);

		struct position after;
		if (start + n < total)
			after = position_next(run, false, run->pos.page_cursor,
					      jsonget_string(json_array_get(page.data, start + n - 1), "id"),
					      NULL);
		else if (page.next_cursor)
			after = position_next(run, false, page.next_cursor, NULL, NULL);
		else /* B is walked: A's changes are next */
			after = position_next(run, run->direction != CW_DIR_B_TO_A, NULL, NULL, NULL);
		bool walked = !page.next_cursor && start + n >= total;
		int rc = commit_set(run, refs, n, &after, err);
		free(refs);
		ml_page_release(&page);
		position_clear(&after);
		if (rc < 0)
			return -1;
		/* A b-to-a run writes nothing to B, so A's changes wait. */
		if (walked && run->direction == CW_DIR_B_TO_A) {
			run->done = true;
			return 0;
		}
	}
	return 0;
}

/* A's rows that changed or were never linked, in key order, a /batch of
 * reads at a time. */
static int walk_a(struct run *run, struct cw_error *err)
{
	int per = run->cfg->batch_size < ML_BATCH_MAX ? run->cfg->batch_size : ML_BATCH_MAX;

	while (budget_left(run)) {
		json_t *rows = NULL, *subscribers = NULL;
		int want = remaining(run) < per ? remaining(run) : per;

		if (reconcile_a_changes(run->rec, run->pos.last_key, want, &rows, err) < 0)
			return -1;
		size_t n = json_array_size(rows);
		if (n == 0) {
			json_decref(rows);
			run->done = true;
			return 0;
		}
		if (reconcile_fetch_b(run->rec, rows, &subscribers, err) < 0) {
			json_decref(rows);
			return -1;
		}
		struct contact_ref *refs = xcalloc(n, sizeof(*refs));
		for (size_t i = 0; i < n; i++) {
			json_t *row = json_array_get(rows, i), *sub = json_array_get(subscribers, i);
			refs[i].subscriber = json_is_object(sub) ? sub : NULL;
			refs[i].a_key = jsonget_string(row, "k");
			refs[i].email = jsonget_string(row, "e");
		}
		struct position after =
			position_next(run, true, NULL, NULL, jsonget_string(json_array_get(rows, n - 1), "k"));
		int rc = commit_set(run, refs, n, &after, err);
		free(refs);
		json_decref(rows);
		json_decref(subscribers);
		position_clear(&after);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- the end ---- */

static int finish_pass(struct run *run, struct cw_error *err)
{
	static const char *const stamps[] = { "lastUpdatedAt", "completedAt", NULL };
	if (run->cfg->dry_run)
		return 0;
	if (db_begin(run->db, err) < 0 || save_position(run, true, err) < 0 ||
	    save_progress(run, "completed", err) < 0)
		return -1;
	json_t *patch = json_pack("{s:s}", "passId", run->pos.pass_id);
	int rc = state_merge_section(run->db, run->status_key, "fullSync", patch, stamps, err);
	json_decref(patch);
	return rc < 0 ? -1 : db_commit(run->db, err);
}

/* lastSync and statistics, as the legacy dashboards read them. Best
 * effort: the run's own outcome is already committed. */
static void record_run(struct run *run, const json_t *result)
{
	static const char *const now[] = { "at", NULL };
	static const char *const stat_now[] = { "lastUpdatedAt", NULL };
	const struct reconcile_counts *k = &run->counts;
	struct cw_error err;
	json_t *doc = NULL;

	if (run->cfg->dry_run || !run->db || db_connection_lost(run->db))
		return;
	json_t *last = json_deep_copy(result);
	json_object_set_new(last, "program", json_string(program.name));
	json_object_set_new(last, "runId", json_string(run->run_id));
	json_object_del(last, "changes");
	json_object_del(last, "failures");
	if (state_merge_section(run->db, run->status_key, "lastSync", last, now, &err) < 0 ||
	    state_get(run->db, run->status_key, &doc, &err) < 0) {
		log_debug("could not record the run: %s", err.msg);
		json_decref(last);
		return;
	}
	json_decref(last);
	const json_t *st = json_object_get(doc, "statistics");
#define TOTAL(name, add)                                                                   \
	(json_int_t)((json_is_integer(json_object_get(st, name))                          \
			      ? json_integer_value(json_object_get(st, name))             \
			      : 0) +                                                      \
		     (add))
	json_t *stats = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "totalSyncs", TOTAL("totalSyncs", 1),
		"totalRecordsProcessed", TOTAL("totalRecordsProcessed", k->processed),
		"totalConflicts", TOTAL("totalConflicts", k->conflicts), "totalUpdatesToA",
		TOTAL("totalUpdatesToA", k->to_a), "totalUpdatesToB", TOTAL("totalUpdatesToB", k->to_b),
		"totalCreatedInA", TOTAL("totalCreatedInA", k->created_in_a), "totalCreatedInB",
		TOTAL("totalCreatedInB", k->created_in_b), "totalErrors",
		TOTAL("totalErrors", k->errors));
#undef TOTAL
	if (state_merge_section(run->db, run->status_key, "statistics", stats, stat_now, &err) < 0)
		log_debug("could not record the statistics: %s", err.msg);
	json_decref(stats);
	json_decref(doc);
}

static json_t *result_json(const struct run *run)
{
	const struct reconcile_counts *k = &run->counts;
	json_t *r = json_object();
	char *next = NULL;

	result_set_count(r, "recordsProcessed", k->processed);
	result_set_count(r, "conflictsDetected", k->conflicts);
	result_set_count(r, "updatesApplied", k->to_a + k->to_b);
	json_object_set_new(r, "updated", json_pack("{s:I, s:I}", "toA", (json_int_t)k->to_a,
						    "toB", (json_int_t)k->to_b));
	json_object_set_new(r, "created",
			    json_pack("{s:I, s:I}", "inA", (json_int_t)k->created_in_a, "inB",
				      (json_int_t)k->created_in_b));
	result_set_count(r, "linked", k->linked);
	result_set_count(r, "unchanged", k->unchanged);
	result_set_count(r, "onlyInB", k->only_in_b);
	result_set_count(r, "skipped", k->skipped);
	result_set_count(r, "deferred", k->deferred);
	result_set_count(r, "errors", k->errors);
	json_object_set_new(r, "done", json_boolean(run->done));
	if (!run->done && run->pos.pass_id) {
		json_t *c = cursor_object(run);
		next = cursor_encode(c);
		json_decref(c);
	}
	json_object_set_new(r, "nextCursor", next ? json_string(next) : json_null());
	free(next);
	json_object_set_new(r, "direction", json_string(config_direction_name(run->direction)));
	result_set_count(r, "apiRequests", run->ml ? ml_requests(run->ml) : 0);
	result_set_count(r, "durationMs", cli_now_ms() - run->started_ms);
	if (run->message)
		json_object_set_new(r, "message", json_string(run->message));
	if (json_object_get(run->report, "errors"))
		json_object_set(r, "failures", json_object_get(run->report, "errors"));
	if (run->cfg->dry_run) {
		json_object_set_new(r, "dryRun", json_true());
		json_t *changes = json_object_get(run->report, "changes");
		json_object_set_new(r, "changes", changes ? json_incref(changes) : json_array());
	}
	return r;
}

/* ---- the pass ---- */

static int begin(struct run *run, bool dry, struct cw_error *err)
{
	struct reconcile_options ro = {
		.direction = run->direction,
		.resubscribe = opt_resubscribe,
		.repair_missing = opt_repair_missing,
		.dry_run = dry,
		.use_lookup = true,
		.import_new = run->cfg->import_new,
	};

	reconcile_free(run->rec);
	run->rec = reconcile_new(run->db, run->ml, run->cfg, run->store, program.name, run->run_id,
				 &ro);
	return reconcile_resolve_groups(run->rec, err);
}

/* A's rows by email, once per run: the walk of B looks them up per page. */
static int build_lookup(struct run *run, struct cw_error *err)
{
	long long a_rows = 0;

	if (store_build_lookup(run->store, run->db, &a_rows, err) < 0)
		return -1;
	log_debug("%lld rows in %s", a_rows, run->cfg->a_table);
	return 0;
}

static int sync_pass(struct run *run, struct cw_error *err)
{
	if (walk_b(run, err) < 0)
		return -1;
	if (run->pos.in_a && walk_a(run, err) < 0)
		return -1;
	return 0;
}

/* --max-change-ratio: the same range planned first, nothing written; the
 * share of contacts it would change decides whether the real run goes on. */
static int check_change_ratio(struct run *run, struct cw_error *err)
{
	struct position start = position_next(run, run->pos.in_a, run->pos.page_cursor,
					      run->pos.last_id, run->pos.last_key);
	bool dry = run->cfg->dry_run;
	int rc;

	run->cfg->dry_run = true;
	rc = begin(run, true, err);
	if (rc == 0)
		rc = sync_pass(run, err);
	run->cfg->dry_run = dry;
	const struct reconcile_counts *k = &run->counts;
	long long changed = k->to_a + k->to_b + k->created_in_a + k->created_in_b;
	double ratio = k->processed ? (double)changed / (double)k->processed : 0;
	if (rc == 0 && ratio > run->max_ratio) {
		cw_error_set(err, CW_EXIT_DATAERR,
			     "refusing to change %lld of %lld contacts (%.0f%%), over "
			     "--max-change-ratio %s",
			     changed, k->processed, ratio * 100, opt_max_change_ratio);
		cw_error_hint(err, "Check both sides (enterprise-sync --dry-run lists the "
				   "changes); --force applies them.");
		rc = -1;
	}
	position_clear(&run->pos);
	run->pos = start;
	memset(&run->counts, 0, sizeof(run->counts));
	json_object_clear(run->report);
	run->records = 0;
	run->done = false;
	return rc;
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err;
	struct run run = { .cfg = &cfg };
	int exit_status;

	cli_init(argc, argv);
	config_init(&cfg);
	exit_status = cli_start(&cfg, &program, argc, argv, false);
	if (exit_status >= 0)
		goto out;
	run.started_ms = cli_now_ms();
	if (opt_max_duration > 0)
		run.deadline_ms = run.started_ms + opt_max_duration * 1000;

	if (parse_options(&run, &err) < 0 || open_run(&run, &err) < 0)
		goto refused;
	if (cfg.check_config) {
		json_t *ok = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "table", cfg.a_table,
				       "schema", cfg.schema, "namespace", cfg.namespace);
		exit_status = result_emit(ok, CW_EXIT_OK, cfg.quiet);
		json_decref(ok);
		goto out;
	}
	if (load_position(&run, &err) < 0)
		goto refused;
	if (build_lookup(&run, &err) < 0)
		goto failed;
	if (run.max_ratio > 0 && !opt_force && !cfg.dry_run && check_change_ratio(&run, &err) < 0)
		goto refused;
	if (begin(&run, cfg.dry_run, &err) < 0)
		goto failed;
	if (!cfg.dry_run &&
	    job_log(run.db, program.name, run.run_id, cfg.namespace, "info", "job_started", NULL,
		    &err) < 0)
		goto failed;
	run.bar = progress_new("enterprise-sync", opt_max_records,
			       log_stderr_is_tty() && !cfg.quiet);

	if (sync_pass(&run, &err) < 0)
		goto failed;
	if (run.done) {
		if (finish_pass(&run, &err) < 0)
			goto failed;
		run.message = "the pass is complete: both sides are reconciled";
		exit_status = run.counts.errors ? CW_EXIT_RECORDS : CW_EXIT_OK;
	} else {
		if (save_progress(&run, "paused", &err) < 0)
			goto failed;
		run.message = cli_interrupted()	     ? "stopped by a signal; run again to resume"
			      : run.records >= opt_max_records ? "stopped by --max-records; run again to resume"
							       : "stopped by --max-duration; run again to resume";
		exit_status = CW_EXIT_PARTIAL;
	}
	goto report;

failed:
	if (run.db && !db_connection_lost(run.db)) {
		struct cw_error ignored;
		db_rollback(run.db);
		if (save_progress(&run, err.code == CW_EXIT_PARTIAL ? "paused" : "failed", &ignored) < 0)
			log_debug("could not record the run's end: %s", ignored.msg);
	}
	log_cw_error(&err);
	exit_status = err.code ? err.code : CW_EXIT_SOFTWARE;
	run.message = err.msg;
	goto report;

refused:
	log_cw_error(&err);
	exit_status = err.code;
	goto out;

report:
	progress_finish(run.bar);
	{
		json_t *result = result_json(&run);
		if (!cfg.dry_run && run.db && !db_connection_lost(run.db)) {
			struct cw_error ignored;
			char action[32];
			snprintf(action, sizeof(action), "job_%s",
				 exit_status == CW_EXIT_OK || exit_status == CW_EXIT_RECORDS ? "completed"
				 : exit_status == CW_EXIT_PARTIAL			     ? "paused"
											     : "failed");
			job_log(run.db, program.name, run.run_id, cfg.namespace,
				exit_status > CW_EXIT_PARTIAL ? "error" : "info", action, result,
				&ignored);
			record_run(&run, result);
			pagecap_save(run.db, run.ml);
		}
		exit_status = result_emit(result, exit_status, cfg.quiet) == CW_EXIT_IOERR
				      ? CW_EXIT_IOERR
				      : exit_status;
		json_decref(result);
	}
out:
	close_run(&run);
	config_release(&cfg);
	return cli_exit(exit_status);
}
