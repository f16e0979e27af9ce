/*
 * chunk-worker: split a large job into chunks (enqueue), work chunks with
 * any number of workers on any number of machines (run), and look after
 * the jobs (status, cancel, retry, rescue, prune). PostgreSQL coordinates
 * the workers through the queue of QUEUE.md; the shared API bucket keeps
 * them all inside one MailerLite rate limit.
 */
#include "chunkkind.h"
#include "cli.h"
#include "config.h"
#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "migrate.h"
#include "progress.h"
#include "queue.h"
#include "result.h"
#include "worker.h"
#include "workerpool.h"
#include "xalloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* --param a=1,b=2 */
static struct {
	char **v;
	size_t n;
} opt_param;
static long opt_chunks, opt_chunk_size, opt_priority = 100, opt_max_attempts = 5;
static long opt_concurrency = 1, opt_lease = 60, opt_grace = 30, opt_rescue_interval = 15;
static long opt_older_than = 7 * 86400;
static bool opt_ordered, opt_until_empty, opt_resubscribe;
static char *opt_webhook, *opt_kinds;

static const struct cfg_option options[] = {
	/* enqueue */
	{ NULL, NULL, "chunks", 0, NULL, CFG_INT, 1, 1000000, NULL, NULL, "N",
	  "enqueue: split the job into N chunks", 0, 0, &opt_chunks },
	{ NULL, NULL, "chunk-size", 0, NULL, CFG_LONG, 1, 1000000000L, NULL, NULL, "N",
	  "enqueue: N items per chunk (default: the kind's)", 0, 0, &opt_chunk_size },
	{ NULL, NULL, "ordered", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "enqueue: run the chunks one at a time, in order", 0, 0, &opt_ordered },
	{ NULL, NULL, "priority", 0, NULL, CFG_INT, -1000000, 1000000, "100", NULL, "P",
	  "enqueue: lower runs first (default 100)", 0, 0, &opt_priority },
	{ NULL, NULL, "max-attempts", 0, NULL, CFG_INT, 1, 1000, "5", NULL, "N",
	  "enqueue: attempts per chunk before it fails for good (default 5)", 0, 0,
	  &opt_max_attempts },
	{ NULL, NULL, "webhook", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "URL",
	  "enqueue: POST the job's final report to URL when it ends", 0, 0, &opt_webhook },
	{ NULL, NULL, "param", 0, NULL, CFG_LIST, 0, 0, NULL, NULL, "KEY=VALUE,...",
	  "enqueue: the kind's parameters", 0, 0, &opt_param },
	{ NULL, NULL, "resubscribe", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "enqueue push: let A revive unsubscribed, bounced or junk subscribers", 0, 0,
	  &opt_resubscribe },
	/* run */
	{ NULL, NULL, "concurrency", 0, NULL, CFG_INT, 1, 64, "1", NULL, "N",
	  "run: N worker processes (default 1)", 0, 0, &opt_concurrency },
	{ NULL, NULL, "kinds", 0, NULL, CFG_STRING, 0, 0, NULL, NULL, "K,...",
	  "run: claim only these kinds (default: every kind this setup can work)", 0, 0,
	  &opt_kinds },
	{ NULL, NULL, "until-empty", 0, NULL, CFG_FLAG, 0, 0, NULL, NULL, NULL,
	  "run: exit once no chunk of these kinds is left", 0, 0, &opt_until_empty },
	{ NULL, NULL, "lease", 0, NULL, CFG_DURATION, 2, 3600, "60", NULL, "TIME",
	  "run: a chunk's lease, renewed every third of it (default 60s)", 0, 0, &opt_lease },
	{ NULL, NULL, "grace", 0, NULL, CFG_DURATION, 0, 3600, "30", NULL, "TIME",
	  "run: on SIGTERM, let the chunk in hand finish this long (default 30s)", 0, 0,
	  &opt_grace },
	{ NULL, NULL, "rescue-interval", 0, NULL, CFG_DURATION, 1, 3600, "15", NULL, "TIME",
	  "run: look for expired leases every TIME to twice TIME (default 15s)", 0, 0,
	  &opt_rescue_interval },
	/* prune */
	{ NULL, NULL, "older-than", 0, NULL, CFG_DURATION, 0, 3650L * 86400, "7d", NULL, "TIME",
	  "prune: delete jobs that ended over TIME ago (default 7d)", 0, 0, &opt_older_than },
	{ 0 },
};

static const struct cfg_program program = {
	.name = "chunk-worker",
	.synopsis = "chunk-worker [-nqv] [-c file] [-d conninfo] enqueue kind [--chunks n | "
		    "--chunk-size n] [--ordered] [--priority p] [--max-attempts n] [--webhook url] "
		    "[--param key=value,...] [--resubscribe]\n"
		    "chunk-worker [-qv] [-c file] [-d conninfo] run [--concurrency n] "
		    "[--kinds k,...] [--until-empty] [--max-duration time] [--lease time] "
		    "[--grace time] [--rescue-interval time]\n"
		    "chunk-worker [-qv] [-c file] [-d conninfo] status [job]\n"
		    "chunk-worker [-nqv] [-c file] [-d conninfo] cancel job | retry job | rescue | "
		    "prune [--older-than time]",
	.purpose = "splits a large job into chunks and works them, with any number of\n"
		   "workers on any number of machines coordinated by PostgreSQL. Kinds:\n"
		   "backfill, push and noop (see chunk-worker(1)).",
	.options = options,
	.takes = CFG_TAKES_DURATION | CFG_TAKES_DRY_RUN,
};

#define KINDS_DETAIL "The kinds: %s."

/* ---- arguments ---- */

/* A job id argument: a positive integer, else CW_EXIT_USAGE. */
static int parse_job_id(const char *text, long long *id, struct cw_error *err)
{
	char *end;
	errno = 0;
	long long v = text ? strtoll(text, &end, 10) : 0;
	if (!text || !*text || *end || errno || v < 1)
		return cw_error_set(err, CW_EXIT_USAGE, "\"%s\" is not a job id (a positive integer)",
				    text ? text : "");
	*id = v;
	return 0;
}

/* --param key=value,... as an object (values as text; kinds read them). */
static int parse_params(json_t *params, struct cw_error *err)
{
	for (size_t i = 0; i < opt_param.n; i++) {
		const char *kv = opt_param.v[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv)
			return cw_error_set(err, CW_EXIT_USAGE, "--param \"%s\" is not KEY=VALUE", kv);
		char *key = xstrndup(kv, (size_t)(eq - kv));
		json_object_set_new(params, key, json_string(eq + 1));
		free(key);
	}
	if (opt_resubscribe)
		json_object_set_new(params, "resubscribe", json_true());
	return 0;
}

static struct db *open_db(const struct cw_config *cfg, struct cw_error *err)
{
	struct db *db = db_connect(cfg, program.name, err);
	if (db && migrate_check(db, err) < 0) {
		db_close(db);
		return NULL;
	}
	return db;
}

/* ---- enqueue ---- */

static json_t *enqueue(const struct cw_config *cfg, int argc, char **argv, struct cw_error *err)
{
	if (argc != 1) {
		cw_error_set(err, CW_EXIT_USAGE, "enqueue takes one kind");
		cw_error_detail(err, KINDS_DETAIL, chunk_kind_names());
		return NULL;
	}
	const struct chunk_kind *kind = chunk_kind_find(argv[0]);
	if (!kind) {
		cw_error_set(err, CW_EXIT_USAGE, "unknown kind \"%s\"", argv[0]);
		cw_error_detail(err, KINDS_DETAIL, chunk_kind_names());
		return NULL;
	}
	if (opt_webhook && strncmp(opt_webhook, "http://", 7) != 0 &&
	    strncmp(opt_webhook, "https://", 8) != 0) {
		cw_error_set(err, CW_EXIT_USAGE, "--webhook must be an http:// or https:// URL");
		return NULL;
	}
	if (opt_chunks && opt_chunk_size) {
		cw_error_set(err, CW_EXIT_USAGE, "give --chunks or --chunk-size, not both");
		return NULL;
	}
	long long size = opt_chunks ? 0 : opt_chunk_size ? opt_chunk_size : kind->default_chunk_size;
	if (kind->max_chunk_size && size > kind->max_chunk_size) {
		cw_error_set(err, CW_EXIT_DATAERR, "--chunk-size %lld is over the %s kind's %lld", size,
			     kind->name, kind->max_chunk_size);
		return NULL;
	}
	json_t *params = json_object(), *out = NULL;
	struct chunk_tools tools = { 0 };
	struct db *db = NULL;
	long long total = 0, id = 0;
	int chunks = 0;

	if (parse_params(params, err) < 0 || !(db = open_db(cfg, err)) ||
	    chunk_tools_open(&tools, cfg, db, kind->needs_api, kind->needs_table, program.name,
			     err) < 0)
		goto out;
	struct chunk_env env = { .cfg = cfg, .db = db, .ml = tools.ml, .store = tools.store,
				 .program = program.name };
	if (kind->plan(&env, params, &total, err) < 0)
		goto out;
	if (kind->max_chunk_size && opt_chunks &&
	    (total + opt_chunks - 1) / opt_chunks > kind->max_chunk_size) {
		cw_error_set(err, CW_EXIT_DATAERR,
			     "%ld chunks for %lld items would be over the %s kind's %lld per chunk",
			     opt_chunks, total, kind->name, kind->max_chunk_size);
		goto out;
	}
	long long per = size ? size : total / opt_chunks + (total % opt_chunks != 0);
	if (kind->split && kind->split(&env, params, total, per > 0 ? per : 1, err) < 0)
		goto out;
	struct queue_job job = {
		.kind = kind->name,
		.total_items = total,
		.chunk_size = size,
		.total_chunks = (int)opt_chunks,
		.params = params,
		.priority = (int)opt_priority,
		.ordered = opt_ordered || kind->ordered,
		.namespace = cfg->namespace,
		.max_attempts = (int)opt_max_attempts,
		.webhook_url = opt_webhook,
	};
	/* A dry run plans and sizes the job, then takes it back. */
	if ((cfg->dry_run && db_begin(db, err) < 0) ||
	    queue_enqueue(db, &job, &id, &chunks, err) < 0)
		goto out;
	db_rollback(db);
	out = json_pack("{s:I, s:s, s:i, s:I, s:b, s:i, s:s, s:O}", "id", (json_int_t)id, "kind",
			kind->name, "chunks", chunks, "total_items", (json_int_t)total, "ordered",
			job.ordered, "priority", job.priority, "namespace", job.namespace, "params",
			params);
	if (cfg->dry_run)
		json_object_set_new(out, "dryRun", json_true());
	log_info("%s %lld: %s, %lld items in %d chunks", cfg->dry_run ? "would enqueue job" : "job",
		 id, kind->name, total, chunks);
out:
	chunk_tools_close(&tools);
	db_close(db);
	json_decref(params);
	return out;
}

/* ---- run ---- */

struct bar {
	struct progress *progress;
	long long done;
};

static void count_chunk(void *arg, const char *what, const struct queue_chunk *c)
{
	struct bar *bar = arg;
	if (strcmp(what, "released") != 0 && strcmp(what, "lost") != 0)
		progress_update(bar->progress, ++bar->done);
}

static const char *end_name(enum worker_end end)
{
	return end == WORKER_EMPTY ? "empty" : end == WORKER_DEADLINE ? "deadline" : "stopped";
}

static json_t *run(const struct cw_config *cfg, int argc, int *status, struct cw_error *err)
{
	if (argc != 0) {
		cw_error_set(err, CW_EXIT_USAGE, "run takes no arguments");
		return NULL;
	}
	if (cfg->dry_run) {
		cw_error_set(err, CW_EXIT_USAGE, "run has no --dry-run: a worker's claims are writes");
		cw_error_detail(err, "\"chunk-worker status\" shows the work waiting.");
		return NULL;
	}
	char *kinds = worker_kinds(cfg, opt_kinds, err);
	if (!kinds)
		return NULL;
	long long started = cli_now_ms(), backlog = 0;
	struct bar bar = { 0 };
	struct worker_options o = {
		.kinds = kinds,
		.lease_s = (double)opt_lease,
		.until_empty = opt_until_empty,
		.deadline_ms = cfg->max_duration ? started + cfg->max_duration * 1000LL : 0,
		.grace_ms = opt_grace * 1000,
		.poll_ms = 1500,
		.rescue_ms = opt_rescue_interval * 1000,
		.on_chunk = count_chunk,
		.arg = &bar,
	};
	struct pool_stats ps;
	bool tty = log_stderr_is_tty() && !cfg->quiet;

	/* The bar's total: the chunks waiting now (a terminal only; the
	 * supervisor opens no connection its workers would inherit). */
	if (tty) {
		struct db *db = open_db(cfg, err);
		if (!db || queue_backlog(db, kinds, &backlog, err) < 0) {
			db_close(db);
			free(kinds);
			return NULL;
		}
		db_close(db);
	}
	bar.progress = progress_new("chunks", backlog, tty);
	cli_defer_signals(true);
	int rc = pool_run(cfg, &o, (int)opt_concurrency, &ps, err);
	progress_free(bar.progress);
	free(kinds);
	if (rc < 0)
		return NULL;
	const struct worker_stats *s = &ps.sum;
	json_t *out = json_pack("{s:b, s:i}", "ok",
				s->failed == 0 && !ps.workers_failed && !ps.workers_killed, "workers",
				ps.workers);
	json_object_update_new(out, worker_stats_json(s));
	json_object_set_new(out, "end", json_string(end_name(ps.end)));
	json_object_set_new(out, "durationMs", json_integer(cli_now_ms() - started));
	if (ps.workers_failed)
		json_object_set_new(out, "error", json_string(err->msg));
	if (ps.workers_killed)
		json_object_set_new(out, "workersKilled", json_integer(ps.workers_killed));
	/* A stop, or the time budget, may leave work: run again. */
	if (ps.workers_failed)
		*status = err->code ? err->code : CW_EXIT_SOFTWARE;
	else if (ps.end != WORKER_EMPTY)
		*status = CW_EXIT_PARTIAL;
	else
		*status = s->failed || s->record_errors ? CW_EXIT_RECORDS : CW_EXIT_OK;
	return out;
}

/* ---- status, cancel, retry, rescue, prune ---- */

/* The job's report, or CW_EXIT_DATAERR when there is no such job. */
static json_t *report_of(struct db *db, long long id, struct cw_error *err)
{
	json_t *report = NULL;
	int found = queue_report(db, id, &report, err);
	if (found == 0)
		cw_error_set(err, CW_EXIT_DATAERR, "there is no job %lld", id);
	return found == 1 ? report : NULL;
}

static json_t *look_after(const struct cw_config *cfg, const char *cmd, int argc, char **argv,
			  struct cw_error *err)
{
	bool takes_id = !strcmp(cmd, "cancel") || !strcmp(cmd, "retry");
	bool may_take_id = takes_id || !strcmp(cmd, "status");
	long long id = 0;
	json_t *out = NULL;

	if (argc > (may_take_id ? 1 : 0) || (takes_id && argc != 1)) {
		cw_error_set(err, CW_EXIT_USAGE, "%s takes %s", cmd,
			     takes_id ? "one job id" : may_take_id ? "at most one job id" : "no arguments");
		return NULL;
	}
	if (argc == 1 && parse_job_id(argv[0], &id, err) < 0)
		return NULL;
	struct db *db = open_db(cfg, err);
	if (!db)
		return NULL;
	/* A dry run does the change, reports it, and takes it back. */
	const bool dry = cfg->dry_run && strcmp(cmd, "status") != 0;
	if (dry && db_begin(db, err) < 0) {
		db_close(db);
		return NULL;
	}
	if (!strcmp(cmd, "status")) {
		json_t *jobs = NULL;
		if (id)
			out = report_of(db, id, err);
		else if (queue_reports_recent(db, 100, &jobs, err) == 0)
			out = json_pack("{s:o}", "jobs", jobs);
	} else if (!strcmp(cmd, "cancel")) {
		bool cancelled = false;
		json_t *report = NULL;
		if (queue_cancel(db, id, &cancelled, err) == 0 && (report = report_of(db, id, err))) {
			out = json_pack("{s:I, s:b, s:O}", "id", (json_int_t)id, "cancelled", cancelled,
					"status", json_object_get(report, "status"));
			if (!cancelled)
				log_info("job %lld had ended already", id);
		}
		json_decref(report);
	} else if (!strcmp(cmd, "retry")) {
		int requeued = 0;
		json_t *report = NULL;
		if (queue_retry(db, id, &requeued, err) == 0 && (report = report_of(db, id, err)))
			out = json_pack("{s:I, s:i, s:O}", "id", (json_int_t)id, "requeued", requeued,
					"status", json_object_get(report, "status"));
		json_decref(report);
	} else if (!strcmp(cmd, "rescue")) {
		int rescued = 0;
		if (queue_rescue(db, &rescued, err) == 0)
			out = json_pack("{s:i, s:b}", "rescued", rescued < 0 ? 0 : rescued, "busy",
					rescued < 0);
	} else {
		long long deleted = 0;
		if (queue_prune(db, opt_older_than, &deleted, err) == 0)
			out = json_pack("{s:I}", "deleted", (json_int_t)deleted);
	}
	db_rollback(db);
	if (dry && out)
		json_object_set_new(out, "dryRun", json_true());
	db_close(db);
	return out;
}

/* --check-config: the settings, the database and its schema, and the
 * kinds this setup can work. */
static json_t *check_config(const struct cw_config *cfg, struct cw_error *err)
{
	struct db *db = open_db(cfg, err);
	char *kinds = db ? worker_kinds(cfg, opt_kinds, err) : NULL;
	json_t *out = NULL;

	if (kinds) {
		size_t n;
		const struct chunk_kind *const *all = chunk_kinds(&n);
		json_t *list = json_array();
		for (size_t i = 0; i < n; i++)
			if (worker_kind_listed(kinds, all[i]->name))
				json_array_append_new(list, json_string(all[i]->name));
		out = json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "schema", cfg->schema, "namespace",
				cfg->namespace, "kinds", list);
	}
	free(kinds);
	db_close(db);
	return out;
}

static bool is_command(const char *cmd)
{
	static const char *const commands[] = { "enqueue", "run",    "status", "cancel",
						"retry",   "rescue", "prune",  NULL };
	for (size_t i = 0; commands[i]; i++)
		if (!strcmp(cmd, commands[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct cw_config cfg;
	struct cw_error err = { 0 };
	json_t *out = NULL;
	int nargs, status;

	cli_init(argc, argv);
	config_init(&cfg);
	status = cli_start(&cfg, &program, argc, argv, true);
	if (status >= 0)
		goto out;
	char **args = config_rest(&nargs);
	const char *cmd = nargs > 0 ? args[0] : NULL;
	if (cfg.check_config) {
		status = CW_EXIT_OK;
		out = check_config(&cfg, &err);
		goto done;
	}
	if (!cmd || !is_command(cmd)) {
		if (cmd)
			cw_error_set(&err, CW_EXIT_USAGE, "unknown command \"%s\"", cmd);
		else
			cw_error_set(&err, CW_EXIT_USAGE, "no command given");
		cw_error_hint(&err, "the commands: enqueue, run, status, cancel, retry, rescue, prune");
		goto failed;
	}
	status = CW_EXIT_OK;
	if (!strcmp(cmd, "enqueue"))
		out = enqueue(&cfg, nargs - 1, args + 1, &err);
	else if (!strcmp(cmd, "run"))
		out = run(&cfg, nargs - 1, &status, &err);
	else
		out = look_after(&cfg, cmd, nargs - 1, args + 1, &err);
done:
	if (!out)
		goto failed;
	if (json_object_get(out, "error"))
		log_cw_error(&err);
	status = result_emit(out, status, cfg.quiet) == CW_EXIT_IOERR ? CW_EXIT_IOERR : status;
	goto out;
failed:
	if (err.code == CW_EXIT_USAGE && !err.hint[0])
		cw_error_hint(&err, "Try \"%s --help\" for more information.", program.name);
	log_cw_error(&err);
	status = err.code ? err.code : CW_EXIT_SOFTWARE;
out:
	json_decref(out);
	config_release(&cfg);
	return cli_exit(status);
}
