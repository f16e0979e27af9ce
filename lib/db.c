/* PostgreSQL sessions: parameters always, retries on a lost connection, locks, schema check. */
#include "db.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Advisory locks live in a two-int key space: the class says "crosswalk". */
#define LOCK_CLASS 0x43574b31 /* "CWK1" */

struct db {
	PGconn *conn;
	PGcancel *cancel;
	int hook;
	char *conninfo;
	char *appname;
	char *schema;	/* quoted */
	char *schema_raw;
	long connect_timeout;
	int retries;
	char sqlstate[6];
	bool lost;
	bool in_tx;
	/* Names prepared on the current connection; emptied on reconnect. */
	char **prepared;
	size_t nprepared;
};

static void cancel_on_signal(void *arg)
{
	struct db *db = arg;
	char buf[64];

	/* Async-signal-safe by libpq's promise. */
	if (db->cancel)
		PQcancel(db->cancel, buf, sizeof(buf));
}

static void on_notice(void *arg, const char *message)
{
	(void)arg;
	size_t n = strlen(message);
	log_debug("server: %.*s", (int)(n && message[n - 1] == '\n' ? n - 1 : n), message);
}

static void drop_conn(struct db *db)
{
	if (db->hook >= 0)
		cli_signal_hook_remove(db->hook);
	db->hook = -1;
	if (db->cancel)
		PQfreeCancel(db->cancel);
	db->cancel = NULL;
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	db->in_tx = false;
	for (size_t i = 0; i < db->nprepared; i++)
		free(db->prepared[i]);
	db->nprepared = 0;
}

/* One connection attempt; leaves a usable session or an error. */
static int open_conn(struct db *db, struct cw_error *err)
{
	char timeout[32];
	const char *keys[6], *vals[6];
	int n = 0;

	snprintf(timeout, sizeof(timeout), "%ld", db->connect_timeout);
	if (db->conninfo) {
		keys[n] = "dbname";
		vals[n++] = db->conninfo;
	}
	keys[n] = "fallback_application_name";
	vals[n++] = db->appname;
	keys[n] = "connect_timeout";
	vals[n++] = timeout;
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	keys[n] = NULL;
	vals[n] = NULL;

	db->conn = PQconnectdbParams(keys, vals, 1);
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
		const char *why = db->conn ? PQerrorMessage(db->conn) : "out of memory";
		size_t len = strlen(why);
		while (len && (why[len - 1] == '\n' || why[len - 1] == ' '))
			len--;
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "could not connect to the database: %.*s",
			     (int)len, why);
		drop_conn(db);
		return -1;
	}
	PQsetNoticeProcessor(db->conn, on_notice, NULL);
	/* A fixed search_path: nothing the user created can shadow a built-in,
	 * and every table crosswalk touches is named with its schema. */
	PGresult *res = PQexec(db->conn,
			       "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', "
			       "false), pg_catalog.set_config('TimeZone', 'UTC', false), "
			       "pg_catalog.set_config('DateStyle', 'ISO, YMD', false), "
			       "pg_catalog.set_config('IntervalStyle', 'postgres', false), "
			       "pg_catalog.set_config('extra_float_digits', '3', false)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "could not set up the database session: %s",
			     PQerrorMessage(db->conn));
		PQclear(res);
		drop_conn(db);
		return -1;
	}
	PQclear(res);
	db->cancel = PQgetCancel(db->conn);
	db->hook = cli_signal_hook_add(cancel_on_signal, db);
	db->lost = false;
	return 0;
}

static long backoff_ms(int attempt)
{
	long base = 250L << (attempt < 6 ? attempt : 6); /* 250 ms .. 16 s */
	return base / 2 + random() % (base / 2 + 1);
}

struct db *db_connect(const struct cw_config *cfg, const char *appname, struct cw_error *err)
{
	struct db *db = xcalloc(1, sizeof(*db));

	db->hook = -1;
	db->conninfo = cfg->db_conninfo && *cfg->db_conninfo ? xstrdup(cfg->db_conninfo) : NULL;
	db->appname = xstrdup(appname);
	db->schema_raw = xstrdup(cfg->schema);
	db->connect_timeout = cfg->db_connect_timeout > 0 ? cfg->db_connect_timeout : 10;
	db->retries = cfg->db_retries;

	if (db_reconnect(db, err) < 0) {
		db_close(db);
		return NULL;
	}
	char *quoted = PQescapeIdentifier(db->conn, db->schema_raw, strlen(db->schema_raw));
	db->schema = xstrdup(quoted ? quoted : "\"sync\"");
	PQfreemem(quoted);
	return db;
}

int db_reconnect(struct db *db, struct cw_error *err)
{
	drop_conn(db);
	for (int attempt = 0;; attempt++) {
		if (open_conn(db, err) == 0) {
			if (attempt > 0)
				log_info("reconnected to the database after %d attempt%s", attempt,
					 attempt == 1 ? "" : "s");
			return 0;
		}
		if (attempt >= db->retries || cli_interrupted())
			break;
		long wait = backoff_ms(attempt);
		log_warning("%s; retrying in %.1f s", err->msg, wait / 1000.0);
		if (!cli_sleep_ms(wait))
			break;
	}
	if (db->retries > 0)
		cw_error_detail(err, "Gave up after %d attempts.", db->retries + 1);
	return -1;
}

/* A connection opened on a thread of its own while the caller works. */
struct db_opening {
	pthread_t thread;
	bool threaded;
	const struct cw_config *cfg;
	char *appname;
	struct db *db;
	struct cw_error err;
};

static void *open_in_background(void *arg)
{
	struct db_opening *o = arg;
	o->db = db_connect(o->cfg, o->appname, &o->err);
	return NULL;
}

struct db_opening *db_connect_start(const struct cw_config *cfg, const char *appname)
{
	struct db_opening *o = xcalloc(1, sizeof(*o));

	o->cfg = cfg;
	o->appname = xstrdup(appname);
	o->threaded = pthread_create(&o->thread, NULL, open_in_background, o) == 0;
	if (!o->threaded) /* no thread to spare: open it now */
		open_in_background(o);
	return o;
}

struct db *db_connect_finish(struct db_opening *o, struct cw_error *err)
{
	if (!o)
		return NULL;
	if (o->threaded)
		pthread_join(o->thread, NULL);
	struct db *db = o->db;
	if (!db && err)
		*err = o->err;
	free(o->appname);
	free(o);
	return db;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	drop_conn(db);
	free(db->conninfo);
	free(db->appname);
	free(db->schema);
	free(db->schema_raw);
	free(db->prepared);
	free(db);
}

PGconn *db_conn(struct db *db)
{
	return db->conn;
}

const char *db_schema(struct db *db)
{
	return db->schema;
}

char *db_quote_ident(struct db *db, const char *ident)
{
	char *q = db->conn ? PQescapeIdentifier(db->conn, ident, strlen(ident)) : NULL;
	char *out;

	if (q) {
		out = xstrdup(q);
		PQfreemem(q);
		return out;
	}
	/* No connection to ask: the same rules by hand (double any quote). */
	struct strbuf sb = STRBUF_INIT;
	strbuf_addch(&sb, '"');
	for (const char *p = ident; *p; p++) {
		if (*p == '"')
			strbuf_addch(&sb, '"');
		strbuf_addch(&sb, *p);
	}
	strbuf_addch(&sb, '"');
	return strbuf_detach(&sb, NULL);
}

const char *db_sqlstate(struct db *db)
{
	return db->sqlstate;
}

bool db_connection_lost(struct db *db)
{
	return db->lost;
}

bool db_concurrent_conflict(struct db *db)
{
	const char *state = db->sqlstate;
	return !strcmp(state, "40P01") || !strcmp(state, "40001") || !strcmp(state, "23505");
}

static void record_failure(struct db *db, PGresult *res, const char *sql, struct cw_error *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;

	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
	db->lost = !db->conn || PQstatus(db->conn) != CONNECTION_OK ||
		   !strncmp(db->sqlstate, "08", 2) || !strcmp(db->sqlstate, "57P01") ||
		   !strcmp(db->sqlstate, "57P02") || !strcmp(db->sqlstate, "57P03");
	if (!primary) {
		primary = db->conn ? PQerrorMessage(db->conn) : "no connection";
		if (!*primary)
			primary = "unknown error";
	}
	size_t len = strlen(primary);
	while (len && primary[len - 1] == '\n')
		len--;
	if (!strcmp(db->sqlstate, "57014") && cli_interrupted())
		cw_error_set(err, CW_EXIT_PARTIAL, "query canceled by signal");
	else
		cw_error_set(err, db->lost ? CW_EXIT_UNAVAILABLE : CW_EXIT_SOFTWARE,
			     "database error: %.*s", (int)len, primary);
	if (detail)
		cw_error_detail(err, "%s", detail);
	if (hint)
		cw_error_hint(err, "%s", hint);
	log_debug("failed statement (SQLSTATE %s): %.200s", db->sqlstate, sql);
	if (db->lost)
		db->in_tx = false;
}

PGresult *db_query(struct db *db, const char *sql, int nparams, const char *const *params,
		   struct cw_error *err)
{
	PGresult *res;

	db->sqlstate[0] = '\0';
	if (!db->conn) {
		db->lost = true;
		cw_error_set(err, CW_EXIT_UNAVAILABLE, "not connected to the database");
		return NULL;
	}
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	record_failure(db, res, sql, err);
	PQclear(res);
	return NULL;
}

PGresult *db_query_prepared(struct db *db, const char *name, const char *sql, int nparams,
			    const char *const *params, struct cw_error *err)
{
	bool ready = false;

	for (size_t i = 0; i < db->nprepared && !ready; i++)
		ready = !strcmp(db->prepared[i], name);
	if (!ready) {
		if (!db->conn) {
			db->lost = true;
			cw_error_set(err, CW_EXIT_UNAVAILABLE, "not connected to the database");
			return NULL;
		}
		Oid types[64];
		if (nparams > 64) {
			cw_error_set(err, CW_EXIT_SOFTWARE, "too many parameters for %s", name);
			return NULL;
		}
		for (int i = 0; i < nparams; i++)
			types[i] = 25; /* text */
		PGresult *res = PQprepare(db->conn, name, sql, nparams, types);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			record_failure(db, res, sql, err);
			PQclear(res);
			return NULL;
		}
		PQclear(res);
		db->prepared = xreallocarray(db->prepared, db->nprepared + 1, sizeof(char *));
		db->prepared[db->nprepared++] = xstrdup(name);
	}
	db->sqlstate[0] = '\0';
	PGresult *res = PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	record_failure(db, res, sql, err);
	PQclear(res);
	return NULL;
}

int db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
	    struct cw_error *err)
{
	PGresult *res = db_query(db, sql, nparams, params, err);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int db_exec_prepared(struct db *db, const char *name, const char *sql, int nparams,
		     const char *const *params, struct cw_error *err)
{
	PGresult *res = db_query_prepared(db, name, sql, nparams, params, err);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

bool db_in_transaction(struct db *db)
{
	PGTransactionStatusType st = db->conn ? PQtransactionStatus(db->conn) : PQTRANS_UNKNOWN;

	return st != PQTRANS_IDLE && st != PQTRANS_UNKNOWN;
}

int db_begin(struct db *db, struct cw_error *err)
{
	if (db_exec(db, "BEGIN", 0, NULL, err) < 0)
		return -1;
	db->in_tx = true;
	return 0;
}

int db_commit(struct db *db, struct cw_error *err)
{
	int rc = db_exec(db, "COMMIT", 0, NULL, err);

	db->in_tx = false;
	return rc;
}

void db_rollback(struct db *db)
{
	if (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(db->conn, "ROLLBACK");
		PQclear(res);
	}
	db->in_tx = false;
}

int db_copy_in(struct db *db, const char *copy_sql, const char *data, size_t len,
	       struct cw_error *err)
{
	PGresult *res = PQexec(db->conn, copy_sql);

	if (PQresultStatus(res) != PGRES_COPY_IN) {
		record_failure(db, res, copy_sql, err);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	int ok = PQputCopyData(db->conn, data, (int)len) == 1 && PQputCopyEnd(db->conn, NULL) == 1;
	res = PQgetResult(db->conn);
	if (!ok || PQresultStatus(res) != PGRES_COMMAND_OK) {
		record_failure(db, res, copy_sql, err);
		PQclear(res);
		while ((res = PQgetResult(db->conn)))
			PQclear(res);
		return -1;
	}
	PQclear(res);
	while ((res = PQgetResult(db->conn)))
		PQclear(res);
	return 0;
}

/* ---------- advisory locks ---------- */

/* The lock key: (LOCK_CLASS, hashtext(schema || ':' || name)). */
#define LOCK_KEY_SQL "%d, pg_catalog.hashtext($1 || ':' || $2)"

int db_try_lock(struct db *db, const char *name, bool *got, struct cw_error *err)
{
	char sql[160];
	const char *params[] = { db->schema_raw, name };

	snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_try_advisory_lock(" LOCK_KEY_SQL ")",
		 LOCK_CLASS);
	PGresult *res = db_query(db, sql, 2, params, err);
	if (!res)
		return -1;
	*got = !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	return 0;
}

int db_unlock(struct db *db, const char *name, struct cw_error *err)
{
	char sql[160];
	const char *params[] = { db->schema_raw, name };

	snprintf(sql, sizeof(sql), "SELECT pg_catalog.pg_advisory_unlock(" LOCK_KEY_SQL ")",
		 LOCK_CLASS);
	return db_exec(db, sql, 2, params, err);
}

char *db_lock_holder(struct db *db, const char *name)
{
	struct cw_error err;
	char sql[800];
	const char *params[] = { db->schema_raw, name };

	/* pg_locks splits the bigint key: classid is the first int, objid the
	 * second (as oid, so compare through bigint arithmetic). */
	snprintf(sql, sizeof(sql),
		 "SELECT a.pid, coalesce(nullif(a.application_name, ''), 'unknown program'), "
		 "coalesce(host(a.client_addr), '[local]'), "
		 "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
		 "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid) "
		 "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
		 "AND l.database = (SELECT oid FROM pg_catalog.pg_database "
		 "WHERE datname = pg_catalog.current_database()) "
		 "AND l.classid::bigint = %d "
		 "AND l.objid::bigint = (pg_catalog.hashtext($1 || ':' || $2)::bigint & 4294967295) "
		 "LIMIT 1",
		 LOCK_CLASS);
	PGresult *res = db_query(db, sql, 2, params, &err);
	if (!res)
		return NULL;
	char *out = NULL;
	if (PQntuples(res) == 1)
		out = xasprintf("server pid %s (%s) from %s since %s UTC", PQgetvalue(res, 0, 0),
				PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
				PQgetvalue(res, 0, 3));
	PQclear(res);
	return out;
}

/* ---------- health ---------- */

/* One "SELECT 1", timed by the monotonic clock. */
static int time_select1(struct db *db, double *ms, struct cw_error *err)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	PGresult *res = db_query(db, "SELECT 1", 0, NULL, err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (!res)
		return -1;
	PQclear(res);
	*ms = (double)(b.tv_sec - a.tv_sec) * 1000.0 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	return 0;
}

double db_ping_ms(struct db *db)
{
	struct cw_error err;
	double ms;

	return time_select1(db, &ms, &err) == 0 ? ms : -1;
}

int db_health(struct db *db, double *rtt_ms, long *free_connections, struct cw_error *err)
{
	double best = -1;

	for (int i = 0; i < 3; i++) {
		double ms;
		if (time_select1(db, &ms, err) < 0)
			return -1;
		if (best < 0 || ms < best)
			best = ms;
	}
	/* current_setting(..., true) is NULL for a setting the server does not
	 * have: reserved_connections is new in PostgreSQL 16. */
	PGresult *res = db_query(
		db,
		"SELECT GREATEST(pg_catalog.current_setting('max_connections')::pg_catalog.int4"
		" - coalesce(pg_catalog.current_setting('superuser_reserved_connections', true)"
		"::pg_catalog.int4, 0)"
		" - coalesce(pg_catalog.current_setting('reserved_connections', true)"
		"::pg_catalog.int4, 0)"
		" - (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity"
		"    WHERE backend_type = 'client backend'), 0)",
		0, NULL, err);
	if (!res)
		return -1;
	if (rtt_ms)
		*rtt_ms = best;
	if (free_connections)
		*free_connections = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int db_health_judge(double rtt_ms, long free_connections, int max_latency_ms, int min_free,
		    struct cw_error *err)
{
	if (max_latency_ms > 0 && rtt_ms > max_latency_ms)
		cw_error_set(err, CW_EXIT_UNAVAILABLE,
			     "the database is unhealthy: round trip %.1f ms over max_db_latency_ms %d",
			     rtt_ms, max_latency_ms);
	else if (min_free > 0 && free_connections < min_free)
		cw_error_set(err, CW_EXIT_UNAVAILABLE,
			     "the database is unhealthy: %ld free connection%s, under "
			     "min_free_connections %d",
			     free_connections, free_connections == 1 ? "" : "s", min_free);
	else
		return 0;
	cw_error_detail(err,
			"The best of three round trips of SELECT 1 took %.1f ms, and %ld "
			"connection%s can still be opened.",
			rtt_ms, free_connections, free_connections == 1 ? "" : "s");
	cw_error_hint(err, "Run again when the database is less busy; the limits are "
			   "max_db_latency_ms and min_free_connections in [guards].");
	return -1;
}

int db_check_health(struct db *db, int max_latency_ms, int min_free, double *rtt_ms,
		    long *free_connections, struct cw_error *err)
{
	double rtt;
	long free_conns;

	if (db_health(db, &rtt, &free_conns, err) < 0)
		return -1;
	if (rtt_ms)
		*rtt_ms = rtt;
	if (free_connections)
		*free_connections = free_conns;
	return db_health_judge(rtt, free_conns, max_latency_ms, min_free, err);
}
