/*
 * A circuit breaker for a scheduled job: after max_errors failed runs
 * within a window it refuses runs for a cool-down, then lets one trial run
 * decide whether to close again. Its state is one JSON document in
 * <schema>.sync_state under a key the caller names, timed by the
 * database's clock, so every machine running the job sees the same breaker.
 *
 * The document, readable for operators:
 *
 *   {"state": "closed" | "open" | "half-open",
 *    "errors": [1795000000.123, ...],   epoch seconds of the recent failures
 *    "openedAt": "2026-11-23T10:00:00.000Z",    open and half-open only
 *    "closesAt": "2026-11-23T10:05:00.000Z",    likewise; readable copy of
 *    "closesAtEpoch": 1795000300.0,              this one, which decides
 *    "lastError": "could not connect ...",      at most BREAKER_WHY_MAX bytes
 *    "updatedAt": "2026-11-23T10:00:00.000Z"}
 *
 * Reading it trusts nothing: a document that is not a JSON object, or
 * does not parse, is a closed breaker without errors; each member is used
 * only when it has the right type ("state" one of the three names,
 * "errors" finite positive numbers, "closesAtEpoch" a finite number), and
 * an open or half-open breaker without a usable closesAtEpoch reads as
 * closed. Error times after now are dropped, and a closesAtEpoch more than
 * one cool-down away is brought back to one cool-down from now, so that no
 * stored value can hold the breaker open for ever.
 *
 * Half-open allows one run. No bookkeeping of that trial is needed: runs of
 * a job are serialized by its session advisory lock (job_lock()), so the
 * run that finds the breaker half-open is the only one until it records
 * its outcome. A trial that never records one (a crash) leaves the breaker
 * half-open, and the next run is a trial again.
 *
 * breaker_check() and breaker_record() run their own transaction (the row
 * is taken with SELECT ... FOR UPDATE, so two processes never lose each
 * other's update): call them in autocommit, outside any transaction of the
 * caller; they refuse otherwise (CW_EXIT_SOFTWARE).
 */
#ifndef CW_BREAKER_H
#define CW_BREAKER_H

#include <jansson.h>
#include <stdbool.h>

#include "db.h"
#include "error.h"

/* The most errors a breaker keeps (the bound of guards.breaker_errors). */
#define BREAKER_MAX_ERRORS 1000
/* lastError is cut to this many bytes (on a UTF-8 character boundary). */
#define BREAKER_WHY_MAX 200

struct breaker_settings {
	int max_errors;	   /* failures within the window that open it, 1..BREAKER_MAX_ERRORS */
	double window_s;   /* how far back failures count */
	double cooldown_s; /* how long it stays open */
};
/* Values out of range are clamped: max_errors to 1..BREAKER_MAX_ERRORS,
 * window_s and cooldown_s to at least 1 s. */

/* Before a run. 0: the run may go; *trial (may be NULL) tells that it is
 * the half-open breaker's trial run (an open breaker whose cool-down is over
 * is moved to half-open here). -1 with err: CW_EXIT_TEMPFAIL "circuit
 * breaker is open: ..." with the last error, a detail saying when it opened
 * and a hint naming when it closes; *closes_at (may be NULL) then gets a new
 * string with that time as ISO-8601 UTC text, else NULL. A database error:
 * the code from db_query(), and the transaction is rolled back. */
int breaker_check(struct db *db, const char *key, const struct breaker_settings *s, bool *trial,
		  char **closes_at, struct cw_error *err);

/* After a run. failed: add a failure now, opening the breaker when it makes
 * max_errors within the window, or opening a half-open one again for
 * another cool-down; why (may be NULL) is kept as lastError. !failed:
 * close a half-open breaker (its errors cleared); on a closed breaker a
 * success changes nothing and writes nothing (old failures expire by the
 * window). */
int breaker_record(struct db *db, const char *key, const struct breaker_settings *s, bool failed,
		   const char *why, struct cw_error *err);

/* ---- The decisions, without I/O (for the tests) ---- */

enum breaker_state {
	BREAKER_CLOSED,
	BREAKER_OPEN,
	BREAKER_HALF_OPEN,
};

struct breaker {
	enum breaker_state state;
	double errors[BREAKER_MAX_ERRORS]; /* epoch seconds, oldest first */
	int nerrors;
	char opened_at[32]; /* ISO-8601 text, "" when closed */
	double closes_at;   /* epoch seconds, 0 when closed */
	char last_error[BREAKER_WHY_MAX + 1];
};

/* The state a stored document describes (doc borrowed, may be NULL or
 * anything at all), by the rules above. */
void breaker_from_json(struct breaker *b, const json_t *doc);
/* The document for b written at now (new reference). */
json_t *breaker_to_json(const struct breaker *b, double now);

enum breaker_verdict {
	BREAKER_GO,	/* closed: run */
	BREAKER_TRIAL,	/* half-open: run, and its outcome decides */
	BREAKER_REFUSE, /* open: do not run before b->closes_at */
};

/* What breaker_check() decides at now; b is updated (errors outside the
 * window dropped, open moved to half-open when its cool-down is over, a
 * closes_at beyond one cool-down brought back) and *changed tells whether
 * the stored document must be rewritten. */
enum breaker_verdict breaker_decide(struct breaker *b, const struct breaker_settings *s,
				    double now, bool *changed);

/* What breaker_record() does to b at now; returns whether the document
 * must be rewritten. why may be NULL. */
bool breaker_apply(struct breaker *b, const struct breaker_settings *s, double now, bool failed,
		   const char *why);

/* The failures of b within the window ending at now. */
int breaker_recent_errors(const struct breaker *b, const struct breaker_settings *s, double now);

/* "open", "half-open", "closed". */
const char *breaker_state_name(enum breaker_state state);

/* epoch seconds as ISO-8601 UTC text with milliseconds into buf (at least
 * 32 bytes): "2026-11-23T10:00:00.123Z". */
void breaker_iso_time(double epoch, char *buf, size_t len);

#endif
