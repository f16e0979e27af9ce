/*
 * PostgreSQL access through libpq: one connection per struct db, values
 * always as $n parameters, identifiers quoted by libpq, a fixed search_path,
 * reconnection with backoff, advisory locks, and the schema-version check.
 *
 * Ownership: db_connect() returns a new struct db that db_close() frees.
 * Results from db_query() are the caller's: PQclear() them.
 */
#ifndef CW_DB_H
#define CW_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"

struct db;

/* Connect with cfg's conninfo (or libpq's PG* variables), application_name
 * falling back to appname, fixed session settings (search_path pg_catalog,
 * pg_temp; TimeZone UTC; DateStyle ISO), and the session's SIGINT/SIGTERM
 * cancel hook. Retries with backoff up to cfg->db_retries times.
 * On failure: NULL, err code CW_EXIT_UNAVAILABLE. */
struct db *db_connect(const struct cw_config *cfg, const char *appname, struct cw_error *err);
void db_close(struct db *db);

/* db_connect on a thread of its own, so that a second connection opens
 * while the first one works: db_connect_finish() waits for it and returns
 * the struct db (or NULL with err set), freeing the opening; it must be
 * called once for every start. cfg is borrowed until then. Start it only
 * after the process's first connection is open (the cancel hooks are
 * registered without a lock). */
struct db_opening;
struct db_opening *db_connect_start(const struct cw_config *cfg, const char *appname);
struct db *db_connect_finish(struct db_opening *opening, struct cw_error *err);

/* Borrowed libpq handle, for PQescape* and the rare direct call. */
PGconn *db_conn(struct db *db);

/* The bookkeeping schema, quoted for SQL text ("sync"). Borrowed. */
const char *db_schema(struct db *db);

/* A quoted identifier (new string, free()): db_quote_ident(db, "My Col") → "My Col". */
char *db_quote_ident(struct db *db, const char *ident);

/* Run one statement with text parameters (params may contain NULLs for SQL
 * NULL). Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) or NULL
 * with err set: code CW_EXIT_UNAVAILABLE when the connection was lost,
 * CW_EXIT_SOFTWARE otherwise; db_sqlstate() tells which error it was. */
PGresult *db_query(struct db *db, const char *sql, int nparams, const char *const *params,
		   struct cw_error *err);
/* The same for statements whose result is not needed. */
int db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
	    struct cw_error *err);

/* Run a statement prepared once per connection under name (re-prepared by
 * itself after a reconnect): for statements a job runs per batch, so the
 * server parses and plans them once. sql must not change between calls.
 * Every parameter is declared text, so a statement may leave one unused;
 * cast where another type is meant ($1::jsonb). */
PGresult *db_query_prepared(struct db *db, const char *name, const char *sql, int nparams,
			    const char *const *params, struct cw_error *err);
/* The same for prepared statements whose result is not needed. */
int db_exec_prepared(struct db *db, const char *name, const char *sql, int nparams,
		     const char *const *params, struct cw_error *err);

/* SQLSTATE of the last failed statement ("" when none); true when the last
 * failure was a lost connection (the caller may db_reconnect() and redo). */
const char *db_sqlstate(struct db *db);
bool db_connection_lost(struct db *db);
/* True when the last failure came from a concurrent writer (a deadlock, a
 * serialization failure, or a unique key another session inserted first):
 * rolling back and doing the transaction again is the cure. */
bool db_concurrent_conflict(struct db *db);

/* Re-open a lost connection with exponential backoff (cfg->db_retries
 * attempts). Session state (locks, temp tables) is gone: the caller
 * re-establishes what it needs. */
int db_reconnect(struct db *db, struct cw_error *err);

/* True while a transaction is open on the connection (also one in error);
 * false in autocommit and when the connection is gone. */
bool db_in_transaction(struct db *db);

int db_begin(struct db *db, struct cw_error *err);
int db_commit(struct db *db, struct cw_error *err);
/* Roll back if a transaction is open; never fails loudly (used on error paths). */
void db_rollback(struct db *db);

/* COPY ... FROM STDIN with the given data in one go. */
int db_copy_in(struct db *db, const char *copy_sql, const char *data, size_t len,
	       struct cw_error *err);

/* Session advisory locks named by text (scoped to the schema). *got tells
 * whether the lock was taken; a held lock is not an error. */
int db_try_lock(struct db *db, const char *name, bool *got, struct cw_error *err);
int db_unlock(struct db *db, const char *name, struct cw_error *err);

/* Who holds a named advisory lock: pid, application name, client address and
 * backend start, as one line for a message ("pid 123 (backfill-sync) on
 * [local] since 2026-11-23 10:00:00+00"); new string, or NULL when nobody
 * holds it (any more). */
char *db_lock_holder(struct db *db, const char *name);

/* Round-trip time of "SELECT 1" in milliseconds, or -1. */
double db_ping_ms(struct db *db);

/* How the server is doing: *rtt_ms the round trip of "SELECT 1" (the best
 * of 3, so one slow packet does not count), *free_connections the
 * connections a new client can still open: max_connections less
 * superuser_reserved_connections (and reserved_connections, on servers
 * that have it) less the client backends connected now, this one
 * included; never below 0. Any role can read these. Either pointer may be
 * NULL. A database error: the code from db_query(). */
int db_health(struct db *db, double *rtt_ms, long *free_connections, struct cw_error *err);

/* db_health() against limits: -1 with CW_EXIT_UNAVAILABLE "the database is
 * unhealthy: round trip 812.3 ms over max_db_latency_ms 500" (or "3 free
 * connections, under min_free_connections 5"), a detail with both figures
 * and a hint. max_latency_ms <= 0 and min_free <= 0 turn that check off.
 * The figures are filled whenever they could be taken, healthy or not
 * (pointers may be NULL). */
int db_check_health(struct db *db, int max_latency_ms, int min_free, double *rtt_ms,
		    long *free_connections, struct cw_error *err);

/* The judgement of db_check_health() on figures already taken (no I/O). */
int db_health_judge(double rtt_ms, long free_connections, int max_latency_ms, int min_free,
		    struct cw_error *err);

#endif
