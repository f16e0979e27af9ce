/*
 * The shared API budget (DESIGN §7): a GCRA bucket kept in one row of
 * <schema>.sync_state, so every process on every machine paces its
 * requests against the same account-wide limit, by the database's clock.
 *
 * Rows: key "token_bucket_state" (every API request) and
 * "token_bucket_import" (in addition, for a /batch that is an import);
 * value {"tat": epoch seconds, "slot": …, "now": …, "limit": N}, where tat
 * is the theoretical arrival time and the other members describe the last
 * grant (for operators; only tat is state).
 *
 * Ownership: ratelimit_new() returns a bucket that ratelimit_free()
 * releases; the struct db is borrowed and must outlive it. One thread at a
 * time. The connection must be in autocommit when a token is taken: inside
 * a transaction the row lock would be held until that transaction ends and
 * stall every other process (ratelimit_take() refuses). Give the bucket its
 * own connection when the caller writes in transactions.
 */
#ifndef CW_RATELIMIT_H
#define CW_RATELIMIT_H

#include <stdbool.h>

#include "db.h"
#include "error.h"

#define RATELIMIT_KEY "token_bucket_state"
#define RATELIMIT_IMPORT_KEY "token_bucket_import"

/* Extra spacing on top of 60 s / limit: limit + 1 consecutive slots span
 * 60 s * (1 + margin), so send-time jitter up to 0.3 s never puts limit + 1
 * requests in the server's 60 s window. */
#define RATELIMIT_MARGIN 0.005
/* x-ratelimit-remaining at or below this counts as "the window is full". */
#define RATELIMIT_LOW_REMAINING 1
/* A wait longer than this means the shared row is wrong: refuse. */
#define RATELIMIT_MAX_WAIT_S 3600.0

enum ratelimit_bucket {
	RATELIMIT_API,
	RATELIMIT_IMPORT,
};

struct ratelimit;

/* limit and import_limit are per minute; 0 turns that bucket off (no
 * database round trip at all). db may be NULL only when both are 0 (or to
 * turn both off). Creates the rows when missing (INSERT … ON CONFLICT DO
 * NOTHING). NULL with err set (CW_EXIT_UNAVAILABLE) on a database error. */
struct ratelimit *ratelimit_new(struct db *db, int limit, int import_limit, struct cw_error *err);
void ratelimit_free(struct ratelimit *rl);

/* Burst allowance (default 1: strictly spaced). n requests may then go
 * back to back after an idle spell; keep 1 against a sliding-window server. */
void ratelimit_set_burst(struct ratelimit *rl, int burst);

/* The API limit in force (per minute): the configured one, or a smaller
 * one the server announced; 0 when off. */
int ratelimit_limit(const struct ratelimit *rl);

struct ratelimit_grant {
	double slot;   /* the database-clock epoch second the request may go */
	double waited; /* seconds slept for it */
};

/* Take one token from bucket `which` and sleep until its slot (a signal
 * cuts the sleep short: -1 with CW_EXIT_PARTIAL). A bucket that is off
 * returns at once with grant->slot 0. grant may be NULL. */
int ratelimit_take(struct ratelimit *rl, enum ratelimit_bucket which,
		   struct ratelimit_grant *grant, struct cw_error *err);

/* What this process took from the API bucket so far. */
struct ratelimit_stats {
	long grants;	  /* tokens granted (0 while the bucket is off) */
	double waited;	  /* seconds slept for them, in total */
	double last_slot; /* the database-clock slot of the last grant, 0 before any */
};
void ratelimit_get_stats(const struct ratelimit *rl, struct ratelimit_stats *stats);

/* What one response said about the budget. */
struct ratelimit_seen {
	long status;
	long limit;	  /* x-ratelimit-limit, -1 absent */
	long remaining;	  /* x-ratelimit-remaining, -1 absent */
	long retry_after; /* seconds, -1 absent */
	bool import;	  /* the request also took an import token */
};

/* Obey the server after a response: adopt a smaller limit (logged once),
 * push the shared bucket past a 429's Retry-After (every process then
 * waits), keep the next slot an interval away when the window is full.
 * At most one UPDATE, only when something must change. */
int ratelimit_observe(struct ratelimit *rl, const struct ratelimit_seen *seen,
		      struct cw_error *err);

/* ---- Pure arithmetic (no I/O), the same steps as the SQL ---- */

/* Seconds between slots for limit requests per minute, margin included;
 * 0 when limit <= 0. */
double ratelimit_interval(int limit);

/* Tolerance for a burst of n (n >= 1): (n - 1) * interval. */
double ratelimit_tolerance(int burst, double interval);

struct ratelimit_step {
	double slot; /* allowed = max(now, tat - tolerance) */
	double wait; /* slot - now, >= 0 */
	double tat;  /* new_tat = max(tat, now) + interval */
};

/* One GCRA reservation at time now against state tat. */
struct ratelimit_step ratelimit_gcra(double tat, double now, double interval, double tolerance);

/* The limit to pace at after a response announcing server_limit (-1 when
 * absent): the smaller of the two; a current 0 (off) stays 0. */
int ratelimit_adopt_limit(int current, long server_limit);

/* The TAT that keeps the next slot at least one interval after slot when
 * the server says the window is (nearly) full, or 0 when remaining does
 * not call for it. With tolerance 0 this is slot + interval, which every
 * grant's own new TAT already reaches: a steady run is never slowed. */
double ratelimit_pace_tat(long remaining, double slot, double interval, double tolerance);

/* Which bucket a 429 speaks for: an import request whose 429 still shows
 * remaining > 0 hit the import limit; anything else the account's. */
enum ratelimit_bucket ratelimit_429_bucket(bool import, long remaining);

#endif
