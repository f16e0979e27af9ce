/*
 * backfill-sync: link every MailerLite subscriber to its row of the A table
 * by normalized email, writing the crosswalk and a shadow for each matched
 * contact. B is walked through list pages on a thread ahead of the job; each
 * batch of rows is linked in one statement and committed together with the
 * saved cursor and the progress in sync_status.backfill, so a stop at any
 * point resumes where the last commit left off.
 */
#include "cli.h"
#include "config.h"
#include "crosswalk.h"
#include "cursor.h"
#include "db.h"
#include "exitcode.h"
#include "job.h"
#include "jsonget.h"
#include "log.h"
#include "mailerlite.h"
#include "migrate.h"
#include "pagecap.h"
#include "pagefeed.h"
#include "progress.h"
#include "ratelimit.h"
#include "result.h"
#include "state.h"
#include "store.h"
#include "strbuf.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define JOB "backfill"
#define NOTHING_TO_DO "the backfill has completed already; --restart runs it again"
/* A batch that fails on a deadlock, a serialization failure or a
 * concurrent insert of the same link is tried again this many times. */
#define BATCH_ATTEMPTS 3
/* How long to wait for the next page before looking at the clock. */
#define FEED_POLL_MS 1000L

static bool opt_restart, opt_force_resume;

static const struct cfg_option options[] = {
	{ NULL, NULL, "restart", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "forget a saved cursor and start from the first page", 0, 0, &opt_restart },
	{ NULL, NULL, "force-resume", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "take over a run that stopped updating (over 90 s ago)", 0, 0, &opt_force_resume },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "backfill-sync",
	.synopsis = "backfill-sync [-nqv] [-c file] [-d conninfo] [--batch-size n] "
		    "[--max-duration time] [--restart | --force-resume]",
	.purpose = "links MailerLite subscribers to the rows of the contacts table by\n"
		   "email, writing the crosswalk and a shadow for every matched contact.",
	.options = options,
	.takes = CFG_TAKES_DRY_RUN | CFG_TAKES_BATCH | CFG_TAKES_DURATION,
};

/* Where the walk stands: the B cursor of the page holding the next row to
 * link (NULL: the first page) and, inside that page, the last id already
 * linked (NULL: none); or the end of B, once the last page is linked. */
struct position {
	char *page_cursor;
	char *last_id;
	bool walked;
};

/* The job's totals from its earlier runs, kept in sync_status.backfill. */
struct totals {
	struct link_counts links;
	long long errors;
	long long batches;
};

struct run {
	struct cw_config *cfg;
	struct db *db;	       /* lock, lookup, batches */
	struct db *bucket_db;  /* the rate limit's own autocommit session */
	struct ratelimit *bucket;
	struct ml_client *ml;
	struct store *store;
	struct linker *linker;
	struct progress *bar;
	char *status_key, *cursor_key, *lock_name, *runner;
	char *run_id;
	struct position pos;
	long long total;       /* B subscribers counted when the job began; -1 unknown */
	struct totals before;  /* the job's totals when this run began */
	struct link_counts counts; /* this run's */
	long long batches, errors, only_in_a, skipped_in_a;
	long long rows_done;   /* B rows linked by the whole job so far */
	bool done, resumed;
	long long started_ms, deadline_ms, last_beat_ms;
	const char *message;
};

enum walk_end {
	WALK_DONE,
	WALK_STOPPED,  /* a signal or --max-duration: paused */
	WALK_FAILED,   /* err says why */
	WALK_DB_LOST,  /* the connection went away: reconnect and resume */
};

static void position_set(struct position *pos, const char *page_cursor, const char *last_id)
{
	char *c = page_cursor ? xstrdup(page_cursor) : NULL;
	char *l = last_id ? xstrdup(last_id) : NULL;

	free(pos->page_cursor);
	free(pos->last_id);
	pos->page_cursor = c;
	pos->last_id = l;
	pos->walked = false;
}

/* The position after a page's last row: its next page, or the end. */
static void position_after_page(struct position *pos, const char *next_cursor)
{
	position_set(pos, next_cursor, NULL);
	pos->walked = next_cursor == NULL;
}

static long long member_ll(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : 0;
}

/* ---- setup ---- */

/* Thousands of small commits need not each wait for the disk: a server
 * crash can lose only the last few batches, and since each batch's cursor
 * commits with its rows, a re-run redoes exactly those. */
static int tune_session(struct db *db, struct cw_error *err)
{
	return db_exec(db, "SET synchronous_commit = off", 0, NULL, err);
}

static int open_run(struct run *run, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;

	run->status_key = state_key("sync_status", cfg->namespace);
	run->cursor_key = state_key("cursor:" JOB, cfg->namespace);
	run->lock_name = job_lock_name(JOB, cfg->namespace);
	run->runner = job_runner();
	run->only_in_a = -1;

	if (!(run->db = db_connect(cfg, program.name, err)) || migrate_check(run->db, err) < 0 ||
	    !(run->store = store_open(run->db, cfg, err)) || tune_session(run->db, err) < 0)
		return -1;
	if (cfg->check_config)
		return (run->ml = ml_client_new(cfg, NULL, err)) ? 0 : -1;
	if (job_lock(run->db, run->lock_name, err) < 0)
		return -1;
	/* The bucket's row lock must never wait on this job's transactions. */
	if (cfg->rate_limit > 0 && !(run->bucket_db = db_connect(cfg, program.name, err)))
		return -1;
	if (!(run->bucket = ratelimit_new(run->bucket_db, cfg->rate_limit, 0, err)) ||
	    !(run->ml = ml_client_new(cfg, run->bucket, err)))
		return -1;
	return pagecap_restore(run->db, run->ml, err);
}

static void close_run(struct run *run)
{
	progress_free(run->bar);
	linker_free(run->linker);
	store_free(run->store);
	ml_client_free(run->ml);
	ratelimit_free(run->bucket);
	db_close(run->bucket_db);
	db_close(run->db);
	free(run->pos.page_cursor);
	free(run->pos.last_id);
	free(run->status_key);
	free(run->cursor_key);
	free(run->lock_name);
	free(run->runner);
	free(run->run_id);
}

/* ---- the saved cursor ---- */

static json_t *cursor_object(const struct run *run)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:b, s:I, s:I}", "v", CURSOR_VERSION,
			 "job", JOB, "ns", run->cfg->namespace, "run", run->run_id, "c",
			 run->pos.page_cursor ? json_string(run->pos.page_cursor) : json_null(),
			 "last", run->pos.last_id ? json_string(run->pos.last_id) : json_null(),
			 "end", run->pos.walked, "total", (json_int_t)run->total, "done",
			 (json_int_t)run->rows_done);
}

/* Load the position of an earlier run of this job; 1 when there was one. */
static int load_cursor(struct run *run, struct cw_error *err)
{
	json_t *saved = NULL;

	if (state_get(run->db, run->cursor_key, &saved, err) < 0)
		return -1;
	if (!saved)
		return 0;
	const char *run_id = jsonget_string(saved, "run");
	const json_t *c = json_object_get(saved, "c"), *last = json_object_get(saved, "last");
	if (cursor_check(saved, JOB, run->cfg->namespace, err) < 0 || !run_id ||
	    (!json_is_null(c) && !json_is_string(c)) ||
	    (!json_is_null(last) && !json_is_string(last))) {
		if (!err->code)
			cw_error_set(err, CW_EXIT_DATAERR, "invalid cursor: a member is missing");
		cw_error_prefix(err, "sync_state key \"%s\"", run->cursor_key);
		json_decref(saved);
		return -1;
	}
	/* The same run after a reconnect keeps its id (the linker holds it). */
	if (!run->run_id || strcmp(run->run_id, run_id)) {
		free(run->run_id);
		run->run_id = xstrdup(run_id);
	}
	position_set(&run->pos, jsonget_string(saved, "c"), jsonget_string(saved, "last"));
	run->pos.walked = json_is_true(json_object_get(saved, "end"));
	run->total = json_is_integer(json_object_get(saved, "total"))
			     ? json_integer_value(json_object_get(saved, "total"))
			     : -1;
	run->rows_done = member_ll(saved, "done");
	json_decref(saved);
	return 1;
}

/* ---- deciding how to start ---- */

enum start {
	START_FRESH,
	START_RESUME,
	START_NOTHING_TO_DO,
};

static int decide_start(struct run *run, enum start *how, struct cw_error *err)
{
	json_t *doc = NULL;
	bool stale = false;

	if (state_get(run->db, run->status_key, &doc, err) < 0)
		return -1;
	/* --restart discards a stopped run as surely as --force-resume takes
	 * it over; neither overrides a run that may be alive. */
	if (job_check_live(run->db, run->status_key, doc, JOB, opt_force_resume || opt_restart,
			   &stale, err) < 0) {
		json_decref(doc);
		return -1;
	}
	if (stale)
		log_warning("taking over a backfill run that stopped updating its progress");
	const json_t *sec = json_object_get(doc, JOB);
	const char *status = jsonget_string(sec, "status");
	const bool completed = status && !strcmp(status, "completed");

	run->before.links.shadows_written = member_ll(sec, "shadowsCreated");
	run->before.links.crosswalk_created = member_ll(sec, "crosswalkCreated");
	run->before.links.matched = member_ll(sec, "matched");
	run->before.links.only_in_b = member_ll(sec, "onlyInB");
	run->before.links.skipped = member_ll(sec, "skipped");
	run->before.errors = member_ll(sec, "errors");
	run->before.batches = member_ll(sec, "currentBatch");
	json_decref(doc);

	int saved = opt_restart ? 0 : load_cursor(run, err);
	if (saved < 0)
		return -1;
	if (saved) {
		*how = START_RESUME;
	} else if (!opt_restart && completed) {
		*how = START_NOTHING_TO_DO;
	} else {
		*how = START_FRESH;
		memset(&run->before, 0, sizeof(run->before));
		run->rows_done = 0;
	}
	return 0;
}

/* ---- progress in sync_status.backfill ---- */

static json_t *status_patch(const struct run *run, const char *status, const char *phase)
{
	const struct link_counts *b = &run->before.links, *c = &run->counts;
	long long batches = run->before.batches + run->batches;
	long long total_batches =
		run->total >= 0 ? (run->total + run->cfg->batch_size - 1) / run->cfg->batch_size : -1;
	json_t *patch = json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:s}", "status", status,
		"phase", phase, "currentBatch", (json_int_t)batches, "shadowsCreated",
		(json_int_t)(b->shadows_written + c->shadows_written), "crosswalkCreated",
		(json_int_t)(b->crosswalk_created + c->crosswalk_created), "matched",
		(json_int_t)(b->matched + c->matched), "onlyInB",
		(json_int_t)(b->only_in_b + c->only_in_b), "skipped",
		(json_int_t)(b->skipped + c->skipped), "errors",
		(json_int_t)(run->before.errors + run->errors), "recordsDone",
		(json_int_t)run->rows_done, "paused", !strcmp(status, "paused"), "runId",
		run->run_id ? run->run_id : "", "runner", run->runner);

	result_set_count(patch, "totalBatches", total_batches < batches ? batches : total_batches);
	result_set_count(patch, "totalRecords", run->total);
	/* Known only at the end: null until then, also over an earlier
	 * completed run's figures. The end stamps completedAt over its null. */
	result_set_count(patch, "onlyInA", run->only_in_a);
	json_object_set_new(patch, "completedAt", json_null());
	return patch;
}

static int save_status(struct run *run, const char *status, const char *phase,
		       const char *const *stamps, struct cw_error *err)
{
	if (run->cfg->dry_run)
		return 0;
	json_t *patch = status_patch(run, status, phase);
	int rc = state_merge_section(run->db, run->status_key, JOB, patch, stamps, err);

	json_decref(patch);
	if (rc == 0)
		run->last_beat_ms = cli_now_ms();
	return rc;
}

static const char *const stamp_update[] = { "lastUpdatedAt", NULL };
static const char *const stamp_start[] = { "startedAt", "lastUpdatedAt", NULL };
static const char *const stamp_done[] = { "lastUpdatedAt", "completedAt", NULL };

static int begin_run(struct run *run, enum start how, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;
	long long a_rows = 0;

	if (how == START_FRESH) {
		if (!(run->run_id = job_new_run_id(run->db, err)) ||
		    (!cfg->dry_run && state_delete(run->db, run->cursor_key, err) < 0) ||
		    save_status(run, "running", "counting", stamp_start, err) < 0 ||
		    ml_count_subscribers(run->ml, NULL, &run->total, err) < 0)
			return -1;
	} else {
		run->resumed = true;
		log_info("resuming backfill run %s", run->run_id);
	}
	/* A dry run is one transaction, rolled back at the end: the plan is the
	 * real one, computed by the same statements, and nothing stays. */
	if (cfg->dry_run && db_begin(run->db, err) < 0)
		return -1;
	if (save_status(run, "running", "linking", stamp_update, err) < 0 ||
	    (!cfg->dry_run &&
	     job_log(run->db, program.name, run->run_id, cfg->namespace, "info",
		     how == START_FRESH ? "job_started" : "job_resumed", NULL, err) < 0) ||
	    store_build_lookup(run->store, run->db, &a_rows, err) < 0)
		return -1;
	log_info("%lld rows in %s; %lld subscribers in MailerLite", a_rows, cfg->a_table,
		 run->total);
	run->linker = linker_new(run->db, cfg, program.name, run->run_id);
	run->bar = progress_new("backfill", run->total > 0 ? run->total : 0,
				log_stderr_is_tty() && !cfg->quiet);
	progress_update(run->bar, run->rows_done);
	return 0;
}

/* ---- one batch ---- */

struct batch {
	struct strbuf rows; /* a JSON array being built: "[row,row" */
	size_t n;
};

static void batch_add(struct batch *b, const char *row)
{
	strbuf_addch(&b->rows, b->n ? ',' : '[');
	strbuf_addstr(&b->rows, row);
	b->n++;
}

static void counts_add(struct link_counts *to, const struct link_counts *c, int sign)
{
	to->crosswalk_created += sign * c->crosswalk_created;
	to->shadows_written += sign * c->shadows_written;
	to->matched += sign * c->matched;
	to->only_in_b += sign * c->only_in_b;
	to->skipped += sign * c->skipped;
}

/* The position after the batch; none once the job is complete. */
static int save_cursor(struct run *run, bool final, struct cw_error *err)
{
	if (run->cfg->dry_run)
		return 0;
	if (final)
		return state_delete(run->db, run->cursor_key, err);
	json_t *saved = cursor_object(run);
	int rc = state_put(run->db, run->cursor_key, saved, err);
	json_decref(saved);
	return rc;
}

/* One attempt at the batch's transaction. The status it writes carries the
 * batch's counts, so they are added first and taken back on failure. */
static int commit_attempt(struct run *run, const struct batch *b, bool final, const char *status,
			  struct cw_error *err)
{
	const bool dry = run->cfg->dry_run;
	const long long rows = (long long)b->n, batches = b->n ? 1 : 0;
	struct link_counts got = { 0 };
	long long only_in_a = -1, skipped_in_a = 0;

	if (!dry && db_begin(run->db, err) < 0)
		return -1;
	if ((b->n && linker_link_batch(run->linker, b->rows.buf, &got, err) < 0) ||
	    (final && linker_finish(run->linker, &only_in_a, &skipped_in_a, err) < 0))
		return -1;
	counts_add(&run->counts, &got, 1);
	run->rows_done += rows;
	run->batches += batches;
	run->only_in_a = only_in_a;
	if (save_cursor(run, final, err) == 0 &&
	    save_status(run, status, final ? "done" : "linking", final ? stamp_done : stamp_update,
			err) == 0 &&
	    (dry || db_commit(run->db, err) == 0)) {
		run->skipped_in_a = skipped_in_a;
		return 0;
	}
	counts_add(&run->counts, &got, -1);
	run->rows_done -= rows;
	run->batches -= batches;
	run->only_in_a = -1;
	return -1;
}

/*
 * Link the batch and save where the walk stands, in one transaction:
 * crosswalk rows, shadows, audit rows, the cursor and sync_status move
 * together or not at all. final: the walk is over, so the A rows nobody
 * matched are recorded, the cursor goes and the job is completed.
 * status: what sync_status.backfill says afterwards.
 */
static int commit_batch(struct run *run, struct batch *b, bool final, const char *status,
			struct cw_error *err)
{
	int rc = -1;

	if (b->n)
		strbuf_addch(&b->rows, ']');
	for (int attempt = 1; attempt <= BATCH_ATTEMPTS; attempt++) {
		rc = commit_attempt(run, b, final, status, err);
		if (rc == 0 || run->cfg->dry_run)
			break;
		db_rollback(run->db);
		if (!db_concurrent_conflict(run->db) || attempt == BATCH_ATTEMPTS)
			break;
		log_info("batch %lld met a concurrent writer (SQLSTATE %s); trying it again",
			 run->before.batches + run->batches + 1, db_sqlstate(run->db));
	}
	if (rc < 0) {
		if (b->n)
			b->rows.buf[--b->rows.len] = '\0'; /* the ']' again */
		return -1;
	}
	strbuf_reset(&b->rows);
	b->n = 0;
	progress_update(run->bar, run->rows_done);
	return 0;
}

/* ---- the walk ---- */

struct fetch_ctx {
	struct ml_client *ml;
	bool groups;
};

static int fetch_page(void *arg, const char *cursor, json_t **root, const json_t **items,
		      char **next_cursor, struct cw_error *err)
{
	struct fetch_ctx *ctx = arg;
	struct ml_page page;

	if (ml_list_subscribers(ctx->ml, cursor, 0, ctx->groups, NULL, &page, err) < 0)
		return -1;
	*root = page.root;
	*items = page.data;
	*next_cursor = page.next_cursor;
	page.root = NULL;
	page.next_cursor = NULL;
	ml_page_release(&page);
	return 0;
}

static char *make_row(void *arg, const json_t *item, char **id)
{
	return crosswalk_b_row(item, arg, id);
}

static bool time_is_up(const struct run *run)
{
	return run->deadline_ms && cli_now_ms() >= run->deadline_ms;
}

/* Link one page's rows, committing each full batch with the position
 * after its last row. */
static int take_page(struct run *run, struct batch *b, const struct feed_page *page,
		     struct cw_error *err)
{
	run->counts.skipped += (long long)page->unusable;
	for (size_t i = 0; i < page->nrows; i++) {
		batch_add(b, page->rows[i].text);
		if (i + 1 == page->nrows)
			position_after_page(&run->pos, page->next_cursor);
		else
			position_set(&run->pos, page->cursor, page->rows[i].id);
		if (b->n >= (size_t)run->cfg->batch_size &&
		    commit_batch(run, b, false, "running", err) < 0)
			return -1;
	}
	if (!page->nrows)
		position_after_page(&run->pos, page->next_cursor);
	return 0;
}

static enum walk_end walk(struct run *run, struct cw_error *err)
{
	struct fetch_ctx ctx = { run->ml, run->cfg->nmanaged_groups > 0 && run->cfg->a_groups };
	struct pagefeed_options opts = {
		.start_cursor = run->pos.page_cursor,
		.resume_after_id = run->pos.last_id,
		.fetch = fetch_page,
		.fetch_arg = &ctx,
		.row = make_row,
		.row_arg = run->cfg,
	};
	struct batch b = { STRBUF_INIT, 0 };
	struct pagefeed *feed;
	struct feed_page *page = NULL;
	enum walk_end end = WALK_DONE;
	struct cw_error fetch_err;
	bool fetch_failed = false;

	/* A walk that was already over when the last run stopped (the job died
	 * between its last batch and the finish) has nothing left to fetch. */
	if (run->pos.walked)
		goto finish;
	feed = pagefeed_start(&opts);
	for (;;) {
		if (cli_interrupted() || time_is_up(run)) {
			end = WALK_STOPPED;
			break;
		}
		int got = pagefeed_next(feed, &page, FEED_POLL_MS, &fetch_err);
		if (got == 0)
			break;
		if (got == 2) {
			if (!run->cfg->dry_run &&
			    cli_now_ms() - run->last_beat_ms >= JOB_HEARTBEAT_MS &&
			    save_status(run, "running", "linking", stamp_update, err) < 0) {
				end = db_connection_lost(run->db) ? WALK_DB_LOST : WALK_FAILED;
				break;
			}
			continue;
		}
		if (got < 0) {
			end = cli_interrupted() ? WALK_STOPPED : WALK_FAILED;
			fetch_failed = true;
			*err = fetch_err;
			break;
		}
		int rc = take_page(run, &b, page, err);
		feed_page_free(page);
		if (rc < 0) {
			end = db_connection_lost(run->db) ? WALK_DB_LOST : WALK_FAILED;
			break;
		}
	}
	pagefeed_stop(feed);
	if (end == WALK_DB_LOST) {
		strbuf_release(&b.rows);
		return end;
	}
	if (end == WALK_STOPPED || (end == WALK_FAILED && fetch_failed)) {
		/* Keep what was fetched whole: the rows in hand are committed with
		 * the position after them, so the next run starts right there. */
		struct cw_error flush_err;
		if (commit_batch(run, &b, false, end == WALK_STOPPED ? "paused" : "running",
				 &flush_err) < 0) {
			if (end == WALK_STOPPED)
				*err = flush_err;
			else
				log_cw_error(&flush_err);
			end = db_connection_lost(run->db) ? WALK_DB_LOST : WALK_FAILED;
		}
	}
	if (end != WALK_DONE) {
		strbuf_release(&b.rows);
		return end;
	}
finish:
	position_set(&run->pos, NULL, NULL);
	if (commit_batch(run, &b, true, "completed", err) < 0)
		end = db_connection_lost(run->db) ? WALK_DB_LOST : WALK_FAILED;
	else
		run->done = true;
	strbuf_release(&b.rows);
	return end;
}

/* After a lost connection: a new session, the lock again, the lookup again,
 * and the position from the last commit. */
static int recover(struct run *run, struct cw_error *err)
{
	long long a_rows;

	log_warning("lost the database connection; reconnecting to resume from the saved cursor");
	if (run->cfg->dry_run)
		return cw_error_set(err, CW_EXIT_UNAVAILABLE,
				    "lost the database connection during a dry run");
	if (db_reconnect(run->db, err) < 0 || tune_session(run->db, err) < 0 ||
	    job_lock(run->db, run->lock_name, err) < 0 ||
	    store_build_lookup(run->store, run->db, &a_rows, err) < 0)
		return -1;
	run->resumed = true;
	int saved = load_cursor(run, err);
	if (saved < 0)
		return -1;
	if (!saved)
		position_set(&run->pos, NULL, NULL);
	return 0;
}

static enum walk_end run_job(struct run *run, struct cw_error *err)
{
	for (int lost = 0;; lost++) {
		enum walk_end end = walk(run, err);
		if (end != WALK_DB_LOST)
			return end;
		if (lost >= run->cfg->db_retries || recover(run, err) < 0) {
			if (err->code != CW_EXIT_TEMPFAIL)
				err->code = CW_EXIT_UNAVAILABLE;
			cw_error_hint(err, "The cursor of the last committed batch is saved: run "
					   "backfill-sync again to resume.");
			return WALK_FAILED;
		}
	}
}

/* Remember the page cap the server showed, for the next run. */
static void save_page_cap(struct run *run)
{
	if (!run->cfg->dry_run)
		pagecap_save(run->db, run->ml);
}

/* The run's end in the audit trail, with its result. Best effort: the
 * database may be what failed. */
static void log_job_end(struct run *run, const char *status, const json_t *result)
{
	struct cw_error err;
	char action[32];

	if (!run->run_id || !run->db || run->cfg->dry_run || db_connection_lost(run->db))
		return;
	snprintf(action, sizeof(action), "job_%s", status);
	if (job_log(run->db, program.name, run->run_id, run->cfg->namespace,
		    strcmp(status, "failed") ? "info" : "error", action, result, &err) < 0)
		log_debug("could not log the end of the run: %s", err.msg);
}

/* ---- the result ---- */

static json_t *result_json(const struct run *run, const char *status)
{
	json_t *r = json_pack("{s:s}", "status", status);
	char *next = NULL;

	result_set_count(r, "shadowsCreated", run->counts.shadows_written);
	result_set_count(r, "crosswalkCreated", run->counts.crosswalk_created);
	result_set_count(r, "matched", run->counts.matched);
	result_set_count(r, "onlyInA", run->only_in_a);
	result_set_count(r, "onlyInB", run->counts.only_in_b);
	result_set_count(r, "skipped", run->counts.skipped + run->skipped_in_a);
	result_set_count(r, "errors", run->errors);
	result_set_count(r, "batches", run->batches);
	result_set_count(r, "apiRequests", run->ml ? ml_requests(run->ml) : 0);
	json_object_set_new(r, "done", json_boolean(run->done));
	if (!run->done && run->run_id) {
		json_t *c = cursor_object(run);
		next = cursor_encode(c);
		json_decref(c);
	}
	json_object_set_new(r, "nextCursor", next ? json_string(next) : json_null());
	result_set_count(r, "durationMs", cli_now_ms() - run->started_ms);
	if (run->cfg->dry_run)
		json_object_set_new(r, "dryRun", json_true());
	if (run->message)
		json_object_set_new(r, "message", json_string(run->message));
	free(next);
	return r;
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err;
	struct run run = { .cfg = &cfg };
	enum start how = START_FRESH;
	const char *status = "failed";
	int exit_status;

	cli_init(argc, argv);
	config_init(&cfg);
	exit_status = cli_start(&cfg, &program, argc, argv, false);
	if (exit_status >= 0)
		goto out;
	run.started_ms = cli_now_ms();
	if (cfg.max_duration > 0)
		run.deadline_ms = run.started_ms + cfg.max_duration * 1000;

	if (opt_restart && opt_force_resume) {
		cw_error_set(&err, CW_EXIT_USAGE, "--restart and --force-resume cannot be combined");
		cw_error_hint(&err, "--restart starts over; --force-resume continues a stopped run.");
		goto refused;
	}
	if (open_run(&run, &err) < 0)
		goto refused;
	if (cfg.check_config) {
		json_t *ok = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "table", cfg.a_table,
				       "schema", cfg.schema, "namespace", cfg.namespace);
		exit_status = result_emit(ok, CW_EXIT_OK, cfg.quiet);
		json_decref(ok);
		goto out;
	}
	if (decide_start(&run, &how, &err) < 0)
		goto refused;
	if (how == START_NOTHING_TO_DO) {
		run.done = true;
		run.message = NOTHING_TO_DO;
		status = "completed";
		exit_status = CW_EXIT_OK;
		goto report;
	}
	if (begin_run(&run, how, &err) < 0)
		goto failed;

	switch (run_job(&run, &err)) {
	case WALK_DONE:
		status = "completed";
		exit_status = CW_EXIT_OK;
		break;
	case WALK_STOPPED:
		status = "paused";
		run.message = cli_interrupted() ? "stopped by a signal; run again to resume"
						: "stopped by --max-duration; run again to resume";
		exit_status = CW_EXIT_PARTIAL;
		break;
	case WALK_FAILED:
	case WALK_DB_LOST:
		goto failed;
	}
	if (cfg.dry_run)
		db_rollback(run.db);
	save_page_cap(&run);
	goto report;

failed:
	/* A signal during the count or a wait is a pause, not a failure. */
	status = err.code == CW_EXIT_PARTIAL ? "paused" : "failed";
	if (err.code != CW_EXIT_PARTIAL)
		run.errors++;
	if (run.db && !db_connection_lost(run.db)) {
		struct cw_error ignored;
		db_rollback(run.db);
		if (save_status(&run, status, status, stamp_update, &ignored) < 0)
			log_debug("could not record the run's end: %s", ignored.msg);
		save_page_cap(&run);
	}
	log_cw_error(&err);
	exit_status = err.code ? err.code : CW_EXIT_SOFTWARE;
	run.message = err.msg;
	goto report;

refused:
	/* Nothing was started: no status to update, and no result to print but
	 * the error. */
	log_cw_error(&err);
	exit_status = err.code;
	goto out;

report:
	progress_finish(run.bar);
	{
		json_t *result = result_json(&run, status);
		log_job_end(&run, status, result);
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
