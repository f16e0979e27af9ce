/* The chunk queue from C: one prepared call per SQL function. */
#include "queue.h"
#include "exitcode.h"
#include "strbuf.h"
#include "xalloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* The columns of a claimed chunk, in the order read_chunk() takes them. */
#define CHUNK_COLUMNS                                                                             \
	"c.id, c.parent_id, c.lease_token, c.chunk_index, c.total_chunks, c.attempts,"           \
	" c.max_attempts, c.start_offset, c.end_offset, c.ordered, q.kind, q.namespace, q.params"

void queue_chunk_release(struct queue_chunk *c)
{
	free(c->kind);
	free(c->namespace);
	json_decref(c->params);
	memset(c, 0, sizeof(*c));
}

/* A statement's text for this connection's schema (new string). */
static char *with_schema(struct db *db, const char *fmt)
{
	const char *schema = db_schema(db);
	struct strbuf sql;
	const char *at;

	strbuf_init(&sql, 512);
	/* Every "%s" in the text stands for the schema. */
	while ((at = strstr(fmt, "%s"))) {
		strbuf_add(&sql, fmt, (size_t)(at - fmt));
		strbuf_addstr(&sql, schema);
		fmt = at + 2;
	}
	strbuf_addstr(&sql, fmt);
	return strbuf_detach(&sql, NULL);
}

/* Run a prepared statement whose text has the schema in it. */
static PGresult *call(struct db *db, const char *name, const char *fmt, int n,
		      const char *const *params, struct cw_error *err)
{
	char *sql = with_schema(db, fmt);
	PGresult *res = db_query_prepared(db, name, sql, n, params, err);
	free(sql);
	return res;
}

static void ll_text(char *buf, size_t len, long long v)
{
	snprintf(buf, len, "%lld", v);
}

/* A call whose one parameter is a job's id. */
static PGresult *call_on(struct db *db, const char *name, const char *fmt, long long id,
			 struct cw_error *err)
{
	char id_text[24];
	ll_text(id_text, sizeof(id_text), id);
	const char *params[] = { id_text };
	return call(db, name, fmt, 1, params, err);
}

/* The fenced calls return one boolean row: 1 true, 0 false or null. */
static int fenced_bool(PGresult *res)
{
	int held = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
		   strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return held;
}

int queue_enqueue(struct db *db, const struct queue_job *job, long long *id, int *chunks,
		  struct cw_error *err)
{
	char items[24], size[24], count[16], priority[16], attempts[16];
	char *params_text = job->params ? json_dumps(job->params, JSON_COMPACT) : NULL;

	ll_text(items, sizeof(items), job->total_items);
	ll_text(size, sizeof(size), job->chunk_size);
	snprintf(count, sizeof(count), "%d", job->total_chunks);
	snprintf(priority, sizeof(priority), "%d", job->priority);
	snprintf(attempts, sizeof(attempts), "%d", job->max_attempts);
	const char *params[] = { job->kind,
				 items,
				 job->chunk_size > 0 ? size : NULL,
				 job->total_chunks > 0 ? count : NULL,
				 params_text ? params_text : "{}",
				 priority,
				 job->ordered ? "true" : "false",
				 job->namespace,
				 attempts,
				 job->webhook_url };
	PGresult *res = call(db, "cw_queue_enqueue",
			     "SELECT %s.create_sync_chunks($1, $2::bigint, $3::bigint, $4::integer,"
			     " $5::jsonb, $6::integer, $7::boolean, $8, $9::integer, $10)",
			     10, params, err);
	free(params_text);
	if (!res) {
		/* The function's own refusals, and the table's checks. */
		const char *state = db_sqlstate(db);
		if (strcmp(state, "22023") == 0 || strcmp(state, "23514") == 0)
			err->code = CW_EXIT_DATAERR;
		return -1;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	/* The function's rows are not in its own statement's snapshot. */
	if (!(res = call_on(db, "cw_queue_chunks",
			    "SELECT total_chunks FROM %s.sync_queue WHERE id = $1::bigint", *id, err)))
		return -1;
	*chunks = PQntuples(res) == 1 ? (int)strtol(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	return 0;
}

static long long ll_at(PGresult *res, int col)
{
	return strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

int queue_claim(struct db *db, const char *worker_id, double lease_s, const char *kinds,
		struct queue_chunk *c, struct cw_error *err)
{
	char lease[32];
	snprintf(lease, sizeof(lease), "%.3f", lease_s);
	const char *params[] = { worker_id, lease, kinds };
	PGresult *res = call(db, "cw_queue_claim",
			     "SELECT " CHUNK_COLUMNS
			     " FROM %s.claim_next_chunk_job($1, $2::float8, $3::text[]) c"
			     " JOIN %s.sync_queue q ON q.id = c.parent_id",
			     3, params, err);
	if (!res)
		return -1;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	memset(c, 0, sizeof(*c));
	c->id = ll_at(res, 0);
	c->parent_id = ll_at(res, 1);
	c->lease_token = ll_at(res, 2);
	c->chunk_index = (int)ll_at(res, 3);
	c->total_chunks = (int)ll_at(res, 4);
	c->attempts = (int)ll_at(res, 5);
	c->max_attempts = (int)ll_at(res, 6);
	c->start_offset = ll_at(res, 7);
	c->end_offset = ll_at(res, 8);
	c->ordered = strcmp(PQgetvalue(res, 0, 9), "t") == 0;
	c->kind = xstrdup(PQgetvalue(res, 0, 10));
	c->namespace = xstrdup(PQgetvalue(res, 0, 11));
	c->params = json_loads(PQgetvalue(res, 0, 12), 0, NULL);
	if (!json_is_object(c->params)) {
		json_decref(c->params);
		c->params = json_object();
	}
	PQclear(res);
	return 1;
}

/* The chunk's id and token as text. */
struct fence {
	char id[24], token[24];
};

static void fence_of(const struct queue_chunk *c, struct fence *f)
{
	ll_text(f->id, sizeof(f->id), c->id);
	ll_text(f->token, sizeof(f->token), c->lease_token);
}

int queue_heartbeat(struct db *db, const struct queue_chunk *c, double lease_s,
		    struct cw_error *err)
{
	struct fence f;
	char lease[32];
	fence_of(c, &f);
	snprintf(lease, sizeof(lease), "%.3f", lease_s);
	const char *params[] = { f.id, f.token, lease };
	PGresult *res = call(db, "cw_queue_heartbeat",
			     "SELECT %s.heartbeat_chunk_job($1::bigint, $2::bigint, $3::float8)", 3,
			     params, err);
	return res ? fenced_bool(res) : -1;
}

int queue_complete(struct db *db, const struct queue_chunk *c, const json_t *result,
		   long long processing_ms, struct cw_error *err)
{
	struct fence f;
	char ms[24];
	char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
	fence_of(c, &f);
	ll_text(ms, sizeof(ms), processing_ms);
	const char *params[] = { f.id, f.token, text, processing_ms >= 0 ? ms : NULL };
	PGresult *res = call(db, "cw_queue_complete",
			     "SELECT %s.complete_chunk_job($1::bigint, $2::bigint, $3::jsonb,"
			     " $4::bigint)",
			     4, params, err);
	free(text);
	return res ? fenced_bool(res) : -1;
}

int queue_fail(struct db *db, const struct queue_chunk *c, const char *error, bool retry,
	       const char **status, struct cw_error *err)
{
	struct fence f;
	fence_of(c, &f);
	const char *params[] = { f.id, f.token, error ? error : "failed", retry ? "true" : "false" };
	PGresult *res = call(db, "cw_queue_fail",
			     "SELECT %s.fail_chunk_job($1::bigint, $2::bigint, $3, $4::boolean)", 4,
			     params, err);
	if (!res)
		return -1;
	int held = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
	if (status)
		*status = held && strcmp(PQgetvalue(res, 0, 0), "failed") == 0 ? "failed"
									   : "pending";
	PQclear(res);
	return held;
}

int queue_release(struct db *db, const struct queue_chunk *c, struct cw_error *err)
{
	struct fence f;
	fence_of(c, &f);
	const char *params[] = { f.id, f.token };
	PGresult *res = call(db, "cw_queue_release",
			     "SELECT %s.release_chunk_job($1::bigint, $2::bigint)", 2, params, err);
	return res ? fenced_bool(res) : -1;
}

/* The end statuses as static strings. */
static const char *ended_status(const char *s)
{
	static const char *const names[] = { "completed", "partial_success", "failed",
					      "cancelled" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return names[i];
	return NULL;
}

int queue_finish(struct db *db, long long parent_id, const char **ended, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_finish", "SELECT %s.finish_sync_job($1::bigint)",
				parent_id, err);
	if (!res)
		return -1;
	*ended = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
			 ? ended_status(PQgetvalue(res, 0, 0))
			 : NULL;
	PQclear(res);
	return 0;
}

int queue_roll_up(struct db *db, long long parent_id, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_roll_up", "SELECT %s.roll_up_sync_job($1::bigint)",
				parent_id, err);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int queue_rescue(struct db *db, int *rescued, struct cw_error *err)
{
	PGresult *res = call(db, "cw_queue_rescue", "SELECT %s.rescue_chunk_jobs()", 0, NULL, err);
	if (!res)
		return -1;
	*rescued = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int queue_report(struct db *db, long long id, json_t **report, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_report", "SELECT %s.sync_job_report($1::bigint)",
				id, err);
	*report = NULL;
	if (!res)
		return -1;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		*report = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!*report)
		return 0;
	return 1;
}

int queue_totals(struct db *db, long long id, json_t **totals, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_totals", "SELECT %s.sync_job_totals($1::bigint)",
				id, err);
	if (!res)
		return -1;
	*totals = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!json_is_object(*totals)) {
		json_decref(*totals);
		*totals = json_object();
	}
	return 0;
}

int queue_reports_recent(struct db *db, int limit, json_t **reports, struct cw_error *err)
{
	char n[16];
	snprintf(n, sizeof(n), "%d", limit);
	const char *params[] = { n };
	PGresult *res = call(db, "cw_queue_reports",
			     "SELECT coalesce(jsonb_agg(%s.sync_job_report(j.id) ORDER BY j.id DESC),"
			     " '[]') FROM (SELECT q.id FROM %s.sync_queue q"
			     "  WHERE q.status IN ('pending', 'processing')"
			     "     OR q.completed_at > now() - interval '1 day'"
			     "  ORDER BY q.id DESC LIMIT $1::integer) j",
			     1, params, err);
	if (!res)
		return -1;
	*reports = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!json_is_array(*reports)) {
		json_decref(*reports);
		*reports = json_array();
	}
	return 0;
}

int queue_cancel(struct db *db, long long id, bool *cancelled, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_cancel", "SELECT %s.cancel_sync_job($1::bigint)",
				id, err);
	if (!res)
		return -1;
	*cancelled = fenced_bool(res) == 1;
	return 0;
}

int queue_retry(struct db *db, long long id, int *requeued, struct cw_error *err)
{
	PGresult *res = call_on(db, "cw_queue_retry", "SELECT %s.retry_sync_job($1::bigint)",
				id, err);
	if (!res)
		return -1;
	*requeued = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

#define PRUNE_BATCH 1000

int queue_prune(struct db *db, long older_than_s, long long *deleted, struct cw_error *err)
{
	char age[24], limit[16];
	snprintf(age, sizeof(age), "%ld", older_than_s);
	snprintf(limit, sizeof(limit), "%d", PRUNE_BATCH);
	const char *params[] = { age, limit };

	*deleted = 0;
	for (;;) {
		PGresult *res = call(db, "cw_queue_prune",
				     "SELECT %s.prune_sync_jobs(now() - make_interval(secs =>"
				     " $1::float8), $2::integer)",
				     2, params, err);
		if (!res)
			return -1;
		long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		*deleted += n;
		if (n < PRUNE_BATCH)
			return 0;
	}
}

int queue_backlog(struct db *db, const char *kinds, long long *chunks, struct cw_error *err)
{
	const char *params[] = { kinds };
	PGresult *res = call(db, "cw_queue_backlog",
			     "SELECT count(*) FROM %s.chunked_sync_jobs c"
			     " JOIN %s.sync_queue q ON q.id = c.parent_id"
			     " WHERE c.status IN ('pending', 'processing')"
			     "   AND q.status IN ('pending', 'processing')"
			     "   AND ($1::text[] IS NULL OR q.kind = ANY ($1::text[]))",
			     1, params, err);
	if (!res)
		return -1;
	*chunks = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

const char *queue_worker_id(void)
{
	static char id[256];
	static pid_t owner;
	pid_t pid = getpid();

	/* A forked worker is a new start: its own id. */
	if (owner != pid) {
		char host[128] = "localhost";
		uint32_t nonce = 0;
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
			nonce = (uint32_t)time(NULL) ^ (uint32_t)pid;
		snprintf(id, sizeof(id), "%s:%ld:%lld:%08" PRIx32, host, (long)pid,
			 (long long)time(NULL), nonce);
		owner = pid;
	}
	return id;
}
