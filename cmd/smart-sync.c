/*
 * smart-sync: the contacts named by email, synced now. It is what an
 * application runs when a user edits a profile, or what a pipeline feeds
 * with the emails that changed: a handful to a few hundred contacts, run
 * hundreds of times a day beside the other programs. Each contact is
 * reconciled with the same 3-way merge as enterprise-sync (lib/reconcile),
 * and one neither side touched since its last sync is left alone unread
 * and unwritten. Guards keep it from making things worse: one run at a
 * time, a circuit breaker over failed runs, a daily record limit, a
 * database health check, and the API budget every program shares.
 */
#include "breaker.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "emaillist.h"
#include "exitcode.h"
#include "job.h"
#include "jsonget.h"
#include "log.h"
#include "mailerlite.h"
#include "migrate.h"
#include "quota.h"
#include "ratelimit.h"
#include "reconcile.h"
#include "repair.h"
#include "result.h"
#include "state.h"
#include "store.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB "smart-sync"
/* A set that meets a deadlock or a serialization failure is done again. */
#define SET_ATTEMPTS 3

static char *opt_mode, *opt_file;
static bool opt_repair, opt_resubscribe;
static long opt_wait;

static const struct cfg_option options[] = {
	{ NULL, NULL, "mode", 0, NULL, CFG_ENUM, 0, 0, "bidirectional",
	  "AtoB|BtoA|bidirectional|full", "MODE",
	  "AtoB, BtoA, bidirectional (default), or full: compare every field", 0, 0, &opt_mode },
	{ NULL, NULL, "file", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "FILE",
	  "read emails from FILE, one per line", 0, 0, &opt_file },
	{ NULL, NULL, "repair", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "re-derive each contact's link and shadow from both sides first", 0, 0, &opt_repair },
	{ NULL, NULL, "resubscribe", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "let A revive unsubscribed, bounced or junk subscribers", 0, 0, &opt_resubscribe },
	{ NULL, NULL, "wait", 0, NULL, CFG_DURATION, 0, 3600, "0", NULL, "TIME",
	  "wait up to TIME for another smart-sync to finish (default 0)", 0, 0, &opt_wait },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "smart-sync",
	.synopsis = "smart-sync [-nqv] [-c file] [-d conninfo] [--mode mode] [--repair] "
		    "[--resubscribe] [--wait time] [--file file] [email ... | -]",
	.purpose = "syncs the contacts named by email between the contacts table and\n"
		   "MailerLite now, skipping those neither side changed since their last sync.",
	.options = options,
	.takes = CFG_TAKES_DRY_RUN | CFG_TAKES_BATCH,
};

struct run {
	struct cw_config *cfg;
	enum cw_direction direction;
	bool incremental;
	struct emaillist input;
	json_t **out;		/* per input entry: its entry in "out", once known */
	struct db *db, *bucket_db;
	struct db_opening *bucket_opening; /* the bucket's connection, opening meanwhile */
	struct ratelimit *bucket;
	struct ml_client *ml;
	struct store *store;
	struct reconcile *rec;
	char *lock_name, *breaker_key, *quota_key, *run_id;
	struct breaker_settings breaker;
	bool trial;		/* this run is the half-open breaker's trial */
	char *retry_at;		/* when an open breaker closes */
	long long allowed;	/* contacts the daily limit leaves this run */
	struct reconcile_counts counts;
	json_t *report;		/* the errors and, in a dry run, the planned changes */
	long long started_ms;
	long long failures, limited;
};

/* ---- input ---- */

static void parse_mode(struct run *run)
{
	run->incremental = true;
	if (!strcmp(opt_mode, "AtoB"))
		run->direction = CW_DIR_A_TO_B;
	else if (!strcmp(opt_mode, "BtoA"))
		run->direction = CW_DIR_B_TO_A;
	else {
		run->direction = CW_DIR_BOTH;
		run->incremental = strcmp(opt_mode, "full") != 0;
	}
}

/* Arguments, --file and standard input ("-", once), all read before any
 * work, so that input which is not a list of emails changes nothing. */
static int read_input(struct run *run, struct cw_error *err)
{
	int nrest = 0;
	char **rest = config_rest(&nrest);
	bool stdin_read = false;

	if (opt_file && emaillist_read_file(&run->input, opt_file, err) < 0)
		return -1;
	for (int i = 0; i < nrest; i++) {
		char where[32];
		if (!strcmp(rest[i], "-")) {
			if (stdin_read)
				return cw_error_set(err, CW_EXIT_USAGE,
						    "\"-\" (standard input) given twice");
			stdin_read = true;
			if (emaillist_read(&run->input, stdin, "standard input", err) < 0)
				return -1;
			continue;
		}
		snprintf(where, sizeof(where), "argument %d", i + 1);
		if (emaillist_add(&run->input, rest[i], where, err) < 0)
			return -1;
	}
	if (!opt_file && nrest == 0 && !run->cfg->check_config) {
		cw_error_set(err, CW_EXIT_USAGE, "no emails given");
		cw_error_hint(err, "Name them as arguments, with --file FILE, or \"-\" to read "
				   "standard input.");
		return -1;
	}
	run->out = xcalloc(run->input.n ? run->input.n : 1, sizeof(*run->out));
	return 0;
}

/* ---- setup and guards ---- */

static int open_run(struct run *run, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;

	run->lock_name = job_lock_name(JOB, cfg->namespace);
	run->breaker_key = state_key("breaker:" JOB, cfg->namespace);
	run->quota_key = state_key("daily:" JOB, cfg->namespace);
	run->breaker = (struct breaker_settings){ cfg->guard_breaker_errors,
						  (double)cfg->guard_breaker_window,
						  (double)cfg->guard_breaker_cooldown };
	run->report = json_object();
	if (!(run->db = db_connect(cfg, program.name, err)))
		return -1;
	/* The bucket's own connection opens while the checks run. */
	if (cfg->rate_limit > 0 && !cfg->check_config)
		run->bucket_opening = db_connect_start(cfg, program.name);
	if (migrate_check(run->db, err) < 0 || !(run->store = store_open(run->db, cfg, err)))
		return -1;
	return 0;
}

/* The guards, in the order that costs least when one refuses. */
static int pass_guards(struct run *run, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;
	double rtt = 0;
	long free_connections = 0;

	if (job_lock_wait(run->db, run->lock_name, (long long)opt_wait * 1000, err) < 0 ||
	    breaker_check(run->db, run->breaker_key, &run->breaker, &run->trial, &run->retry_at,
			  err) < 0 ||
	    db_check_health(run->db, cfg->guard_max_db_latency_ms, cfg->guard_min_free_connections,
			    &rtt, &free_connections, err) < 0 ||
	    quota_left(run->db, run->quota_key, cfg->guard_daily_limit, &run->allowed, err) < 0)
		return -1;
	log_debug("database round trip %.2f ms, %ld free connections, %lld records left today",
		  rtt, free_connections, run->allowed);
	return 0;
}

static int start_work(struct run *run, struct cw_error *err)
{
	struct cw_config *cfg = run->cfg;
	struct reconcile_options ro = {
		.direction = run->direction,
		.resubscribe = opt_resubscribe,
		.dry_run = cfg->dry_run,
		.import_new = true,
		.incremental = run->incremental,
	};

	/* The bucket's row lock must never wait on this run's transactions. */
	if (run->bucket_opening) {
		run->bucket_db = db_connect_finish(run->bucket_opening, err);
		run->bucket_opening = NULL;
		if (!run->bucket_db)
			return -1;
	}
	if (!(run->bucket = ratelimit_new(run->bucket_db, cfg->rate_limit, cfg->import_rate_limit,
					  err)) ||
	    !(run->ml = ml_client_new(cfg, run->bucket, err)) ||
	    !(run->run_id = job_new_run_id(run->db, err)))
		return -1;
	run->rec = reconcile_new(run->db, run->ml, cfg, run->store, program.name, run->run_id, &ro);
	if (!cfg->dry_run &&
	    job_log(run->db, program.name, run->run_id, cfg->namespace, "info", "job_started", NULL,
		    err) < 0)
		return -1;
	return 0;
}

static void close_run(struct run *run)
{
	for (size_t i = 0; run->out && i < run->input.n; i++)
		json_decref(run->out[i]);
	free(run->out);
	emaillist_release(&run->input);
	reconcile_free(run->rec);
	store_free(run->store);
	ml_client_free(run->ml);
	ratelimit_free(run->bucket);
	db_close(db_connect_finish(run->bucket_opening, NULL));
	db_close(run->bucket_db);
	db_close(run->db);
	json_decref(run->report);
	free(run->lock_name);
	free(run->breaker_key);
	free(run->quota_key);
	free(run->run_id);
	free(run->retry_at);
}

/* ---- entries of "out" ---- */

static json_t *skipped(const char *email, const char *reason)
{
	return json_pack("{s:s, s:b, s:s}", "email", email, "skipped", 1, "reason", reason);
}

static json_t *failed(const char *email, const char *error)
{
	return json_pack("{s:s, s:s}", "email", email, "error", error);
}

static json_t *outcome_entry(const char *email, const struct reconcile_outcome *o)
{
	switch (o->result) {
	case RECONCILE_SKIPPED:
		return skipped(email, o->reason);
	case RECONCILE_FAILED:
		return failed(email, o->error);
	case RECONCILE_CHANGED:
	case RECONCILE_UNCHANGED:
		break;
	}
	return json_pack("{s:s, s:b, s:s?}", "email", email, "changed",
			 o->result == RECONCILE_CHANGED, "b_id", o->b_id);
}

/* Every entry not decided yet: make(email, why). */
static void settle_rest(struct run *run, json_t *(*make)(const char *, const char *),
			const char *why)
{
	for (size_t i = 0; i < run->input.n; i++)
		if (!run->out[i]) {
			const struct emaillist_entry *e = &run->input.v[i];
			run->out[i] = make(e->email ? e->email : e->text, why);
		}
}

/* Invalid emails, and those past the daily limit, are decided up front. */
static void screen_input(struct run *run)
{
	long long taken = 0;

	for (size_t i = 0; i < run->input.n; i++) {
		const struct emaillist_entry *e = &run->input.v[i];
		if (!e->email)
			run->out[i] = skipped(e->text, "invalid email");
		else if (taken >= run->allowed) {
			run->out[i] = skipped(e->email, "daily limit");
			run->limited++;
		} else
			taken++;
	}
}

/* ---- one set of contacts ---- */

/* B's records of the set's rows, a /batch of reads per ML_BATCH_MAX rows:
 * a new array, one subscriber or null per row. With --repair a linked
 * contact is also looked up by its email, so that a subscriber whose id
 * changed is found. */
static int read_b(struct run *run, const json_t *rows, json_t **subscribers, struct cw_error *err)
{
	size_t n = json_array_size(rows);

	if (reconcile_fetch_b(run->rec, rows, subscribers, err) < 0)
		return -1;
	if (!opt_repair)
		return 0;
	/* By email, for the linked rows B no longer has under their id. */
	json_t *again = json_array(), *found = NULL;
	size_t *which = xcalloc(n ? n : 1, sizeof(*which)), k = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *row = json_array_get(rows, i);
		if (json_is_string(json_object_get(row, "b")) &&
		    json_is_null(json_array_get(*subscribers, i))) {
			json_array_append_new(again, json_pack("{s:O}", "e", json_object_get(row, "e")));
			which[k++] = i;
		}
	}
	int rc = reconcile_fetch_b(run->rec, again, &found, err);
	for (size_t j = 0; rc == 0 && j < k; j++)
		json_array_set(*subscribers, which[j], json_array_get(found, j));
	json_decref(found);
	json_decref(again);
	free(which);
	return rc;
}

/* Repair (with --repair), reconcile and count the set against the daily
 * limit, in one transaction: all of it commits, or none. */
static int commit_set(struct run *run, struct contact_ref *refs, struct repair_contact *fix,
		      size_t n, struct reconcile_outcome *outcomes, struct cw_error *err)
{
	for (int attempt = 1;; attempt++) {
		const struct reconcile_counts saved = run->counts;
		json_t *report = json_object();
		long long repaired = 0;
		int rc = db_begin(run->db, err);

		if (rc == 0 && opt_repair) {
			rc = repair_contacts(run->db, run->cfg, run->store, program.name, run->run_id,
					     fix, n, &repaired, err);
			for (size_t i = 0; rc == 0 && i < n; i++)
				if (fix[i].unlinked)
					refs[i].a_key = NULL;
		}
		if (rc == 0)
			rc = reconcile_contacts(run->rec, refs, n, &run->counts, report, outcomes, err);
		if (rc == 0 && run->cfg->dry_run) {
			db_rollback(run->db);
		} else if (rc == 0) {
			rc = quota_charge(run->db, run->quota_key, (long long)n, err);
			if (rc == 0)
				rc = db_commit(run->db, err);
		}
		if (rc == 0) {
			reconcile_report_merge(run->report, report);
			json_decref(report);
			if (repaired)
				log_info("%s %lld contacts' links",
					 run->cfg->dry_run ? "would repair" : "repaired", repaired);
			return 0;
		}
		json_decref(report);
		run->counts = saved;
		db_rollback(run->db);
		for (size_t i = 0; i < n; i++)
			reconcile_outcome_release(&outcomes[i]);
		if (!db_concurrent_conflict(run->db) || attempt == SET_ATTEMPTS)
			return -1;
		log_info("a set met a concurrent writer (SQLSTATE %s); doing it again",
			 db_sqlstate(run->db));
	}
}

/* The entries idx[0..n) of the input, found, read and reconciled. */
static int sync_set(struct run *run, const size_t *idx, size_t n, struct cw_error *err)
{
	json_t *emails = json_array(), *rows = NULL, *subs = NULL;
	struct contact_ref *refs = xcalloc(n, sizeof(*refs));
	struct repair_contact *fix = xcalloc(n, sizeof(*fix));
	struct reconcile_outcome *outcomes = xcalloc(n, sizeof(*outcomes));
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(emails, json_string(run->input.v[idx[i]].email));
	if (reconcile_find(run->rec, emails, &rows, err) < 0 || read_b(run, rows, &subs, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const json_t *row = json_array_get(rows, i), *sub = json_array_get(subs, i);
		refs[i].subscriber = json_is_object(sub) ? sub : NULL;
		refs[i].a_key = jsonget_string(row, "k");
		refs[i].email = jsonget_string(row, "e");
		fix[i] = (struct repair_contact){
			.email = refs[i].email,
			.a_key = refs[i].a_key,
			.b_id = refs[i].subscriber ? jsonget_string(refs[i].subscriber, "id") : NULL,
		};
	}
	if (commit_set(run, refs, fix, n, outcomes, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct emaillist_entry *e = &run->input.v[idx[i]];
		run->out[idx[i]] = outcome_entry(e->email, &outcomes[i]);
		run->failures += outcomes[i].result == RECONCILE_FAILED;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		reconcile_outcome_release(&outcomes[i]);
	free(outcomes);
	free(fix);
	free(refs);
	json_decref(emails);
	json_decref(rows);
	json_decref(subs);
	return rc;
}

/* The screened contacts, a set of batch_size at a time. */
static int sync_all(struct run *run, struct cw_error *err)
{
	size_t per = (size_t)run->cfg->batch_size, n = 0;
	size_t *idx = xcalloc(per, sizeof(*idx));
	int rc = 0;

	for (size_t i = 0; rc == 0 && i <= run->input.n; i++) {
		if (i < run->input.n && !run->out[i])
			idx[n++] = i;
		if (n == per || (i == run->input.n && n)) {
			if (cli_interrupted())
				break;
			rc = sync_set(run, idx, n, err);
			n = 0;
		}
	}
	free(idx);
	return rc;
}

/* ---- the end ---- */

static json_t *result_json(const struct run *run, const char *error)
{
	json_t *out = json_array();

	for (size_t i = 0; i < run->input.n; i++)
		json_array_append(out, run->out[i]);
	json_t *r = json_pack("{s:b, s:I, s:o}", "ok", !error && !run->failures, "count",
			      (json_int_t)run->input.n, "out", out);
	result_set_count(r, "apiRequests", run->ml ? ml_requests(run->ml) : 0);
	result_set_count(r, "durationMs", cli_now_ms() - run->started_ms);
	if (error)
		json_object_set_new(r, "error", json_string(error));
	if (run->retry_at)
		json_object_set_new(r, "retryAt", json_string(run->retry_at));
	if (run->cfg->dry_run) {
		json_t *changes = json_object_get(run->report, "changes");
		json_object_set_new(r, "dryRun", json_true());
		json_object_set_new(r, "changes", changes ? json_incref(changes) : json_array());
	}
	return r;
}

/* The run's end in sync_log and in the breaker: a run that could not do
 * its work (the API or the database unavailable, or worse) counts as an
 * error; any other end closes a half-open breaker. Best effort. */
static void record_end(struct run *run, int status, const json_t *result, const char *error)
{
	const bool broke = status == CW_EXIT_UNAVAILABLE || status == CW_EXIT_SOFTWARE;
	struct cw_error ignored;

	if (!run->db || db_connection_lost(run->db))
		return;
	db_rollback(run->db);
	if (run->run_id && !run->cfg->dry_run) {
		const char *action = broke ? "job_failed" : "job_completed";
		if (job_log(run->db, program.name, run->run_id, run->cfg->namespace,
			    broke ? "error" : "info", action, result, &ignored) < 0)
			log_debug("could not record the run: %s", ignored.msg);
	}
	/* A trial proves the services only by using them: one that asked
	 * nothing of the API (every contact past the daily limit) or was
	 * interrupted leaves the breaker half-open for the next run. */
	const bool proved = run->trial && status != CW_EXIT_PARTIAL && run->ml &&
			    ml_requests(run->ml) > 0;
	if ((broke || proved) &&
	    breaker_record(run->db, run->breaker_key, &run->breaker, broke, error, &ignored) < 0)
		log_debug("could not record the run in the circuit breaker: %s", ignored.msg);
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err;
	struct run run = { .cfg = &cfg };
	int exit_status;
	const char *error = NULL;

	cli_init(argc, argv);
	config_init(&cfg);
	emaillist_init(&run.input);
	exit_status = cli_start(&cfg, &program, argc, argv, true);
	if (exit_status >= 0)
		goto out;
	run.started_ms = cli_now_ms();
	parse_mode(&run);
	if (read_input(&run, &err) < 0 || open_run(&run, &err) < 0)
		goto refused;
	if (cfg.check_config) {
		/* The API token's presence and the URL, as every program checks them. */
		if (!(run.ml = ml_client_new(&cfg, NULL, &err)))
			goto refused;
		json_t *ok = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "table", cfg.a_table,
				       "schema", cfg.schema, "namespace", cfg.namespace);
		exit_status = result_emit(ok, CW_EXIT_OK, cfg.quiet);
		json_decref(ok);
		goto out;
	}
	if (pass_guards(&run, &err) < 0)
		goto failed;
	screen_input(&run);
	if (start_work(&run, &err) < 0 || sync_all(&run, &err) < 0)
		goto failed;
	if (cli_interrupted()) {
		settle_rest(&run, skipped, "interrupted");
		exit_status = CW_EXIT_PARTIAL;
	} else {
		exit_status = run.failures ? CW_EXIT_RECORDS : run.limited ? CW_EXIT_TEMPFAIL : CW_EXIT_OK;
	}
	goto report;

failed:
	log_cw_error(&err);
	exit_status = err.code ? err.code : CW_EXIT_SOFTWARE;
	error = err.msg;
	/* A refusal leaves the contacts for a later run; a failure is theirs. */
	if (exit_status == CW_EXIT_PARTIAL)
		settle_rest(&run, skipped, "interrupted");
	else if (exit_status == CW_EXIT_TEMPFAIL)
		settle_rest(&run, skipped, err.msg);
	else
		settle_rest(&run, failed, err.msg);
	goto report;

refused:
	log_cw_error(&err);
	exit_status = err.code;
	goto out;

report:
	{
		json_t *result = result_json(&run, error);
		record_end(&run, exit_status, result, error);
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
