/* The daily record limit: one count per UTC day in sync_state. */
#include "quota.h"
#include "xalloc.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* Today's UTC date as the document writes it. */
#define TODAY_SQL "pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
#define MAX_USED_SQL "1000000000000000" /* QUOTA_MAX_USED */

/* The count a document v holds for today, as numeric, by the rules in the
 * header: not today, not a number, negative → 0; huge → the maximum. The
 * type is tested before the cast, so no stored value can fail the
 * statement. */
#define USED_SQL(v)                                                                               \
	"CASE WHEN " v " ->> 'day' = " TODAY_SQL                                                  \
	" AND pg_catalog.jsonb_typeof(" v " -> 'used') = 'number' "                                \
	"THEN LEAST(GREATEST(pg_catalog.trunc((" v " ->> 'used')::pg_catalog.numeric), 0), "      \
	MAX_USED_SQL ") ELSE 0 END"

int quota_left(struct db *db, const char *key, long long limit, long long *left,
	       struct cw_error *err)
{
	const char *params[] = { key };

	*left = LLONG_MAX;
	if (limit <= 0)
		return 0;
	char *sql = xasprintf("SELECT " USED_SQL("s.value") " FROM %s.sync_state s WHERE s.key = $1",
			      db_schema(db));
	PGresult *res = db_query(db, sql, 1, params, err);
	free(sql);
	if (!res)
		return -1;
	long long used = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	PQclear(res);
	*left = used >= limit ? 0 : limit - used;
	return 0;
}

int quota_charge(struct db *db, const char *key, long long n, struct cw_error *err)
{
	char amount[32];
	const char *params[] = { key, amount };

	snprintf(amount, sizeof(amount), "%lld", n);
	char *sql = xasprintf(
		"INSERT INTO %s.sync_state AS s (key, value, updated_at) "
		"VALUES ($1, pg_catalog.jsonb_build_object('day', " TODAY_SQL ", 'used', "
		"  LEAST(GREATEST($2::pg_catalog.numeric, 0), " MAX_USED_SQL ")), pg_catalog.now()) "
		"ON CONFLICT (key) DO UPDATE SET "
		"  value = pg_catalog.jsonb_build_object('day', " TODAY_SQL ", 'used', "
		"    LEAST(GREATEST(" USED_SQL("s.value") " + $2::pg_catalog.numeric, 0), "
		MAX_USED_SQL ")), "
		"  updated_at = EXCLUDED.updated_at",
		db_schema(db));
	int rc = db_exec(db, sql, 2, params, err);

	free(sql);
	return rc;
}
