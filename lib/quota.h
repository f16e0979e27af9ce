/*
 * A daily record limit for a job: a count per UTC day, by the database's
 * clock, in one document of <schema>.sync_state under a key the caller
 * names: {"day": "2026-11-23", "used": 1200}.
 *
 * Reading it trusts nothing: a document of another day, or one that is
 * not an object, counts as 0 used; "used" counts only when it is a JSON
 * number, with fractions cut, a negative one read as 0 and a huge one as
 * QUOTA_MAX_USED, so no stored value makes the count negative or overflow.
 * "Today" is the UTC date of the transaction's start (now()), so a batch
 * charged just after midnight with a transaction begun before it counts
 * for the day it began in.
 */
#ifndef CW_QUOTA_H
#define CW_QUOTA_H

#include "db.h"
#include "error.h"

/* The largest count kept: far beyond any limit, far below overflow. */
#define QUOTA_MAX_USED 1000000000000000LL /* 10^15 */

/* Records left today under limit: limit - used, never below 0. limit <= 0
 * means no limit: *left is LLONG_MAX and the database is not asked. */
int quota_left(struct db *db, const char *key, long long limit, long long *left,
	       struct cw_error *err);

/* Add n to today's count, starting a new day's count when the stored day
 * is another (the document is created when absent); a negative n gives
 * records back, the count never going below 0. One upsert, meant for the
 * caller's open transaction so that it commits or rolls back with the
 * work it counts; the row then stays locked until that transaction ends,
 * so charge a batch just before its commit. */
int quota_charge(struct db *db, const char *key, long long n, struct cw_error *err);

#endif
