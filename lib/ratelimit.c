/* The account-wide API budget as a GCRA bucket in sync_state, shared through the database. */
#include "ratelimit.h"
#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The arithmetic (GCRA, the generic cell rate algorithm, in its "virtual
 * scheduling" form).
 *
 * The state is one number, tat, the theoretical arrival time: the moment
 * the next request would be due if requests came exactly at the allowed
 * rate. With interval = 60 s / limit and tolerance = (burst - 1) * interval:
 *
 *   allowed = max(now, tat - tolerance)      the caller's slot
 *   wait    = allowed - now                  how long the caller sleeps
 *   new_tat = max(tat, now) + interval       the state after the grant
 *
 * A caller never has to come back: it reserves its slot and sleeps until
 * then, so n processes asking at once get slots interval apart, in the
 * order their UPDATEs took the row lock. A late arrival (now > tat) is not
 * penalised: its slot is now, and the next one is interval after it.
 * With tolerance 0 (burst 1) consecutive slots are exactly interval apart,
 * which is what a server counting "at most limit requests in any sliding
 * 60 s window" needs; the interval carries RATELIMIT_MARGIN on top so that
 * limit slots span a little more than 60 s, and the jitter between our
 * slot and the request's arrival at the server cannot squeeze limit + 1
 * requests into one window.
 *
 * "now" is the database's clock_timestamp(), never the local clock: the
 * processes sharing the row may run on machines whose clocks disagree, but
 * they all read the same server's clock. Only the wait (a difference) is
 * used locally, measured with the monotonic clock by cli_sleep_ms().
 *
 * The SQL below computes the same three lines in one UPDATE … RETURNING.
 * clock_timestamp() is read inside a sub-select correlated with the row,
 * so when the UPDATE had to wait for another process's lock, PostgreSQL
 * re-evaluates it (EvalPlanQual) against the newer row and reads the clock
 * after the wait: a process that queued behind others never gets a slot
 * in the past.
 */

/* tat as a number, 0 for a missing or mangled value (a fresh row is {}). */
#define TAT_SQL                                                                                   \
	"CASE WHEN pg_catalog.jsonb_typeof(s.value -> 'tat') = 'number' "                          \
	"THEN (s.value ->> 'tat')::pg_catalog.float8 ELSE 0 END"
#define NOW_SQL "pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())"

/* $1 key, $2 interval, $3 tolerance, $4 limit (recorded for operators). */
static const char take_sql[] =
	"UPDATE %s.sync_state AS s SET value = ("
	"  SELECT pg_catalog.jsonb_build_object("
	"    'tat',   GREATEST(g.tat, g.now) + g.interval," /* new_tat = max(tat, now) + interval */
	"    'slot',  GREATEST(g.now, g.tat - g.tolerance)," /* allowed = max(now, tat - tol) */
	"    'now',   g.now,"
	"    'limit', $4::pg_catalog.int4)"
	"  FROM (SELECT " NOW_SQL " AS now, " TAT_SQL " AS tat,"
	"               $2::pg_catalog.float8 AS interval, $3::pg_catalog.float8 AS tolerance) AS g),"
	"  updated_at = pg_catalog.clock_timestamp() "
	"WHERE s.key = $1 "
	"RETURNING (s.value ->> 'slot')::pg_catalog.float8 - (s.value ->> 'now')::pg_catalog.float8,"
	"  (s.value ->> 'slot')::pg_catalog.float8, (s.value ->> 'tat')::pg_catalog.float8";

/* Push tat forward, never back: $1 key, $2 seconds from now (a Retry-After)
 * or NULL, $3 an absolute epoch second or NULL (GREATEST skips NULLs). */
static const char push_sql[] =
	"UPDATE %s.sync_state AS s SET value = s.value || pg_catalog.jsonb_build_object('tat', "
	"  GREATEST(" TAT_SQL ", " NOW_SQL " + $2::pg_catalog.float8, $3::pg_catalog.float8)),"
	"  updated_at = pg_catalog.clock_timestamp() "
	"WHERE s.key = $1 RETURNING (s.value ->> 'tat')::pg_catalog.float8";

static const char init_sql[] = "INSERT INTO %s.sync_state (key, value) VALUES ($1, '{}') "
			       "ON CONFLICT (key) DO NOTHING";

struct ratelimit {
	struct db *db;
	int configured;	  /* API limit from the configuration */
	int limit;	  /* API limit in force (the server may lower it) */
	int import_limit;
	int burst;
	bool adopted_logged;
	double last_slot; /* the API slot of the last grant, 0 before any */
	long grants;	  /* API grants, for ratelimit_get_stats() */
	double waited;
	double known_tat; /* the API tat as of our last statement: a lower bound */
	char *take_sql, *push_sql, *init_sql;
};

/* ---- pure arithmetic ---- */

double ratelimit_interval(int limit)
{
	if (limit <= 0)
		return 0.0;
	return 60.0 / (double)limit * (1.0 + RATELIMIT_MARGIN);
}

double ratelimit_tolerance(int burst, double interval)
{
	return burst > 1 ? (double)(burst - 1) * interval : 0.0;
}

struct ratelimit_step ratelimit_gcra(double tat, double now, double interval, double tolerance)
{
	struct ratelimit_step st;

	st.slot = fmax(now, tat - tolerance);
	st.wait = st.slot - now;
	st.tat = fmax(tat, now) + interval;
	return st;
}

int ratelimit_adopt_limit(int current, long server_limit)
{
	if (current <= 0 || server_limit <= 0 || server_limit >= current)
		return current;
	return (int)server_limit;
}

double ratelimit_pace_tat(long remaining, double slot, double interval, double tolerance)
{
	/* The next slot is tat - tolerance; it must not come before
	 * slot + interval while the server's window is full. Nothing is
	 * known about when the window's oldest request leaves it, so one
	 * interval after our own request is the least we must wait — and,
	 * measured from our slot rather than from the response's arrival,
	 * it costs a steady run nothing. */
	if (remaining < 0 || remaining > RATELIMIT_LOW_REMAINING || interval <= 0.0 || slot <= 0.0)
		return 0.0;
	return slot + interval + tolerance;
}

enum ratelimit_bucket ratelimit_429_bucket(bool import, long remaining)
{
	/* The account limit's 429 shows remaining 0 (or no header); an import
	 * batch refused while the account still had room hit the import
	 * limit. The message tells them apart too, but is never matched on. */
	return import && remaining > 0 ? RATELIMIT_IMPORT : RATELIMIT_API;
}

/* ---- the shared state ---- */

static PGresult *run(struct ratelimit *rl, const char *name, const char *sql, int n,
		     const char *const *params, struct cw_error *err)
{
	PGresult *res = db_query_prepared(rl->db, name, sql, n, params, err);

	/* One reconnect: a redone UPDATE at worst reserves a slot twice. */
	if (!res && db_connection_lost(rl->db) && db_reconnect(rl->db, err) == 0)
		res = db_query_prepared(rl->db, name, sql, n, params, err);
	if (!res)
		cw_error_prefix(err, "could not update the shared rate limit");
	return res;
}

static int ensure_row(struct ratelimit *rl, const char *key, struct cw_error *err)
{
	const char *params[] = { key };
	PGresult *res = run(rl, "cw_ratelimit_init", rl->init_sql, 1, params, err);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

struct ratelimit *ratelimit_new(struct db *db, int limit, int import_limit, struct cw_error *err)
{
	struct ratelimit *rl = xcalloc(1, sizeof *rl);

	rl->db = db;
	rl->configured = rl->limit = db && limit > 0 ? limit : 0;
	rl->import_limit = db && import_limit > 0 ? import_limit : 0;
	rl->burst = 1;
	if (!db)
		return rl;
	rl->take_sql = xasprintf(take_sql, db_schema(db));
	rl->push_sql = xasprintf(push_sql, db_schema(db));
	rl->init_sql = xasprintf(init_sql, db_schema(db));
	if ((rl->limit && ensure_row(rl, RATELIMIT_KEY, err) < 0) ||
	    (rl->import_limit && ensure_row(rl, RATELIMIT_IMPORT_KEY, err) < 0)) {
		ratelimit_free(rl);
		return NULL;
	}
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	free(rl->take_sql);
	free(rl->push_sql);
	free(rl->init_sql);
	free(rl);
}

void ratelimit_set_burst(struct ratelimit *rl, int burst)
{
	rl->burst = burst > 1 ? burst : 1;
}

int ratelimit_limit(const struct ratelimit *rl)
{
	return rl ? rl->limit : 0;
}

static bool parse_double(const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	return end != s && *end == '\0' && isfinite(*out);
}

int ratelimit_take(struct ratelimit *rl, enum ratelimit_bucket which,
		   struct ratelimit_grant *grant, struct cw_error *err)
{
	bool api = which == RATELIMIT_API;
	int limit = !rl ? 0 : api ? rl->limit : rl->import_limit;
	const char *key = api ? RATELIMIT_KEY : RATELIMIT_IMPORT_KEY;
	struct ratelimit_grant g = { 0, 0 };
	PGresult *res = NULL;

	if (grant)
		*grant = g;
	if (limit <= 0)
		return 0;
	if (db_in_transaction(rl->db))
		return cw_error_set(err, CW_EXIT_SOFTWARE,
				    "a rate-limit token was asked for inside a transaction");

	double interval = ratelimit_interval(limit);
	double tolerance = api ? ratelimit_tolerance(rl->burst, interval) : 0.0;
	char s_interval[40], s_tolerance[40], s_limit[16];
	snprintf(s_interval, sizeof s_interval, "%.9f", interval);
	snprintf(s_tolerance, sizeof s_tolerance, "%.9f", tolerance);
	snprintf(s_limit, sizeof s_limit, "%d", limit);
	const char *params[] = { key, s_interval, s_tolerance, s_limit };

	for (int tries = 0; tries < 2; tries++) {
		res = run(rl, "cw_ratelimit_take", rl->take_sql, 4, params, err);
		if (!res)
			return -1;
		if (PQntuples(res) == 1)
			break;
		/* Someone deleted the row (a reset by hand): create it again. */
		PQclear(res);
		res = NULL;
		if (ensure_row(rl, key, err) < 0)
			return -1;
	}
	if (!res)
		return cw_error_set(err, CW_EXIT_UNAVAILABLE,
				    "the rate-limit row \"%s\" keeps disappearing", key);

	double wait, slot, tat;
	bool ok = parse_double(PQgetvalue(res, 0, 0), &wait) &&
		  parse_double(PQgetvalue(res, 0, 1), &slot) &&
		  parse_double(PQgetvalue(res, 0, 2), &tat);
	PQclear(res);
	if (!ok)
		return cw_error_set(err, CW_EXIT_SOFTWARE, "the rate-limit update returned no times");
	if (wait > RATELIMIT_MAX_WAIT_S) {
		cw_error_set(err, CW_EXIT_TEMPFAIL,
			     "the shared rate limit asks for a wait of %.0f s", wait);
		cw_error_detail(err, "The bucket \"%s\" in sync_state is far in the future.", key);
		cw_error_hint(err,
			      "Reset it with: UPDATE %s.sync_state SET value = '{}' WHERE key = '%s'",
			      db_schema(rl->db), key);
		return -1;
	}
	if (api) {
		rl->last_slot = slot;
		rl->known_tat = tat;
	}
	if (wait > 0) {
		long ms = (long)ceil(wait * 1000.0);

		if (wait > 5.0)
			log_debug("rate limit: waiting %.1f s for a slot (%s)", wait, key);
		if (!cli_sleep_ms(ms))
			return cw_error_set(err, CW_EXIT_PARTIAL,
					    "interrupted while waiting for the rate limit");
		g.waited = wait;
	}
	g.slot = slot;
	if (api) {
		rl->grants++;
		rl->waited += g.waited;
	}
	if (grant)
		*grant = g;
	return 0;
}

void ratelimit_get_stats(const struct ratelimit *rl, struct ratelimit_stats *stats)
{
	memset(stats, 0, sizeof *stats);
	if (!rl)
		return;
	stats->grants = rl->grants;
	stats->waited = rl->waited;
	stats->last_slot = rl->last_slot;
}

/* Push the bucket's tat to at least now + after (seconds) and at least at
 * (epoch seconds); either may be negative for "not this one". */
static int push(struct ratelimit *rl, const char *key, double after, double at,
		struct cw_error *err)
{
	char s_after[40], s_at[40];
	const char *params[] = { key, NULL, NULL };
	PGresult *res;

	if (after >= 0) {
		snprintf(s_after, sizeof s_after, "%.6f", after);
		params[1] = s_after;
	}
	if (at >= 0) {
		snprintf(s_at, sizeof s_at, "%.6f", at);
		params[2] = s_at;
	}
	res = run(rl, "cw_ratelimit_push", rl->push_sql, 3, params, err);
	if (!res)
		return -1;
	double tat;
	if (PQntuples(res) == 1 && !strcmp(key, RATELIMIT_KEY) &&
	    parse_double(PQgetvalue(res, 0, 0), &tat))
		rl->known_tat = tat;
	PQclear(res);
	return 0;
}

int ratelimit_observe(struct ratelimit *rl, const struct ratelimit_seen *seen,
		      struct cw_error *err)
{
	if (!rl || !rl->db)
		return 0;

	int adopted = ratelimit_adopt_limit(rl->limit, seen->limit);
	if (adopted != rl->limit) {
		if (!rl->adopted_logged)
			log_info("the API allows %d requests per minute, fewer than the %d "
				 "configured: pacing at %d from now on",
				 adopted, rl->configured, adopted);
		else
			log_debug("the API now allows %d requests per minute", adopted);
		rl->adopted_logged = true;
		rl->limit = adopted;
	}

	if (seen->status == 429) {
		if (seen->retry_after < 0)
			return 0; /* the retry's backoff is all there is to go on */
		enum ratelimit_bucket b = ratelimit_429_bucket(seen->import, seen->remaining);
		if (b == RATELIMIT_IMPORT ? !rl->import_limit : !rl->limit)
			return 0;
		/* Every process waits, not only the one that was told. */
		return push(rl, b == RATELIMIT_IMPORT ? RATELIMIT_IMPORT_KEY : RATELIMIT_KEY,
			    (double)seen->retry_after, -1.0, err);
	}

	if (!rl->limit)
		return 0;
	double interval = ratelimit_interval(rl->limit);
	double need = ratelimit_pace_tat(seen->remaining, rl->last_slot, interval,
					 ratelimit_tolerance(rl->burst, interval));
	/* The row's tat only grows, so known_tat is a lower bound of it: when
	 * it already reaches the need, no round trip is needed (the steady
	 * case with burst 1). */
	if (need <= 0.0 || need <= rl->known_tat)
		return 0;
	return push(rl, RATELIMIT_KEY, -1.0, need, err);
}
