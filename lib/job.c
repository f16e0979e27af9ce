/* One run at a time per job and namespace, and telling live runs from dead ones. */
#include "job.h"
#include "cli.h"
#include "exitcode.h"
#include "jsonget.h"
#include "state.h"
#include "xalloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *job_lock_name(const char *job, const char *namespace)
{
	return xasprintf("%s:%s", job, namespace);
}

int job_lock(struct db *db, const char *lock_name, struct cw_error *err)
{
	return job_lock_wait(db, lock_name, 0, err);
}

int job_lock_wait(struct db *db, const char *lock_name, long long wait_ms, struct cw_error *err)
{
	const long long deadline = cli_now_ms() + wait_ms;
	bool got = false;

	/* Polled rather than blocking in pg_advisory_lock, so that a signal
	 * ends the wait at once and the holder can be named at the end. */
	for (;;) {
		if (db_try_lock(db, lock_name, &got, err) < 0)
			return -1;
		if (got)
			return 0;
		long long left = deadline - cli_now_ms();
		if (left <= 0)
			break;
		if (!cli_sleep_ms(left < JOB_LOCK_POLL_MS ? left : JOB_LOCK_POLL_MS))
			return cw_error_set(err, CW_EXIT_PARTIAL,
					    "interrupted while waiting for the lock \"%s\"", lock_name);
	}
	char *holder = db_lock_holder(db, lock_name);
	cw_error_set(err, CW_EXIT_TEMPFAIL, "another run holds the lock \"%s\"", lock_name);
	if (holder)
		cw_error_detail(err, "It is held by %s.", holder);
	cw_error_hint(err, "Wait for that run to finish, or stop it; this run changed nothing.");
	free(holder);
	return -1;
}

char *job_new_run_id(struct db *db, struct cw_error *err)
{
	PGresult *res = db_query(db, "SELECT pg_catalog.gen_random_uuid()::text", 0, NULL, err);

	if (!res)
		return NULL;
	char *id = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return id;
}

int job_log(struct db *db, const char *program, const char *run_id, const char *namespace,
	    const char *level, const char *action, const json_t *detail, struct cw_error *err)
{
	char *detail_text = detail ? json_dumps(detail, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	const char *params[] = { program, run_id, namespace, level, action, detail_text };
	char *sql = xasprintf("INSERT INTO %s.sync_log (program, run_id, namespace, level, action, "
			      "detail) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
			      db_schema(db));
	int rc = db_exec(db, sql, 6, params, err);

	free(sql);
	free(detail_text);
	return rc;
}

int job_log_records(struct db *db, const char *program, const char *run_id,
		    const char *namespace, const json_t *rows, struct cw_error *err)
{
	if (!json_array_size(rows))
		return 0;
	char *text = json_dumps(rows, JSON_COMPACT);
	const char *params[] = { text, program, run_id, namespace };
	char *sql = xasprintf("INSERT INTO %s.sync_log (program, run_id, namespace, level, action,"
			      "  email, a_id, b_id, detail)"
			      " SELECT $2, $3, $4, p.level, p.action, p.e, p.a, p.b, p.detail"
			      " FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS p(level text,"
			      "  action text, e text, a text, b text, detail jsonb)",
			      db_schema(db));
	int rc = db_exec_prepared(db, "cw_job_log_records", sql, 4, params, err);

	free(sql);
	free(text);
	return rc;
}

char *job_runner(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown host");
	host[sizeof(host) - 1] = '\0';
	return xasprintf("pid %ld on %s", (long)getpid(), host);
}

static const char *member_text(const json_t *obj, const char *name, const char *fallback)
{
	const char *text = jsonget_string(obj, name);
	return text ? text : fallback;
}

int job_check_live(struct db *db, const char *status_key, const json_t *doc,
		   const char *section, bool take_over, bool *stale, struct cw_error *err)
{
	double age = -1;

	*stale = false;
	const json_t *sec = json_object_get(doc, section);
	if (strcmp(member_text(sec, "status", ""), "running") != 0)
		return 0;
	if (state_section_age(db, status_key, section, "lastUpdatedAt", &age, err) < 0)
		return -1;
	/* No readable time: nobody can prove it alive, so it counts as stale. */
	const bool alive = age >= 0 && age < JOB_STALE_AFTER_S;
	if (!alive && take_over) {
		*stale = true;
		return 0;
	}
	if (alive) {
		cw_error_set(err, CW_EXIT_TEMPFAIL, "a %s run may still be running", section);
		cw_error_hint(err, "Wait for it. If you know it has stopped, run again with "
				   "--force-resume once its lastUpdatedAt is over %.0f s old.",
			      JOB_STALE_AFTER_S);
	} else {
		cw_error_set(err, CW_EXIT_TEMPFAIL, "a %s run stopped updating its progress",
			     section);
		cw_error_hint(err, "If that run has stopped, take it over with --force-resume: it "
				   "resumes from the saved cursor.");
	}
	if (age >= 0)
		cw_error_detail(err, "Run %s (%s) updated %s.%s.lastUpdatedAt %.0f s ago.",
				member_text(sec, "runId", "?"),
				member_text(sec, "runner", "runner unknown"), status_key, section, age);
	else
		cw_error_detail(err, "Run %s (%s) left %s.%s with no readable lastUpdatedAt.",
				member_text(sec, "runId", "?"),
				member_text(sec, "runner", "runner unknown"), status_key, section);
	return -1;
}
