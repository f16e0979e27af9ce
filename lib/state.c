/* Reading and writing the JSON documents of sync_state. */
#include "state.h"
#include "exitcode.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

char *state_key(const char *base, const char *namespace)
{
	if (!namespace || !strcmp(namespace, "default"))
		return xstrdup(base);
	return xasprintf("%s:%s", base, namespace);
}

int state_get(struct db *db, const char *key, json_t **value, struct cw_error *err)
{
	const char *params[] = { key };
	char *sql = xasprintf("SELECT value::text FROM %s.sync_state WHERE key = $1", db_schema(db));
	PGresult *res = db_query(db, sql, 1, params, err);

	free(sql);
	*value = NULL;
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		json_error_t jerr;
		*value = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
		if (!*value) {
			PQclear(res);
			return cw_error_set(err, CW_EXIT_SOFTWARE,
					    "sync_state key \"%s\" does not hold JSON: %s", key,
					    jerr.text);
		}
	}
	PQclear(res);
	return 0;
}

static char *dump(const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);

	return text ? text : xstrdup("null");
}

int state_put(struct db *db, const char *key, const json_t *value, struct cw_error *err)
{
	char *text = dump(value);
	const char *params[] = { key, text };
	char *sql = xasprintf("INSERT INTO %s.sync_state AS s (key, value, updated_at) "
			      "VALUES ($1, $2::jsonb, pg_catalog.now()) "
			      "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
			      "updated_at = EXCLUDED.updated_at",
			      db_schema(db));
	int rc = db_exec(db, sql, 2, params, err);

	free(sql);
	free(text);
	return rc;
}

int state_merge_section(struct db *db, const char *key, const char *section, const json_t *patch,
			const char *const *now_fields, struct cw_error *err)
{
	json_t *names = json_array();
	char *patch_text, *names_text, *sql;

	for (size_t i = 0; now_fields && now_fields[i]; i++)
		json_array_append_new(names, json_string(now_fields[i]));
	patch_text = dump(patch);
	names_text = dump(names);
	json_decref(names);

	const char *params[] = { key, section, patch_text, names_text };
	/* $4 lists members to stamp with now(); jsonb_object_agg over them. */
	sql = xasprintf(
		"WITH stamp AS ("
		"  SELECT coalesce(pg_catalog.jsonb_object_agg(n, " STATE_NOW_ISO_SQL "), '{}') AS s"
		"  FROM pg_catalog.jsonb_array_elements_text($4::jsonb) AS n) "
		"INSERT INTO %s.sync_state AS st (key, value, updated_at) "
		"SELECT $1, pg_catalog.jsonb_build_object($2::text, $3::jsonb || stamp.s), "
		"       pg_catalog.now() FROM stamp "
		"ON CONFLICT (key) DO UPDATE SET "
		"  value = st.value || pg_catalog.jsonb_build_object($2::text, "
		"      coalesce(st.value -> $2::text, '{}') || $3::jsonb || "
		"      (SELECT s FROM stamp)), "
		"  updated_at = EXCLUDED.updated_at",
		db_schema(db));
	int rc = db_exec(db, sql, 4, params, err);

	free(sql);
	free(patch_text);
	free(names_text);
	return rc;
}

int state_delete(struct db *db, const char *key, struct cw_error *err)
{
	const char *params[] = { key };
	char *sql = xasprintf("DELETE FROM %s.sync_state WHERE key = $1", db_schema(db));
	int rc = db_exec(db, sql, 1, params, err);

	free(sql);
	return rc;
}

int state_section_age(struct db *db, const char *key, const char *section, const char *field,
		      double *age, struct cw_error *err)
{
	const char *params[] = { key, section, field };
	/* A malformed time must not fail the statement: test its shape first. */
	char *sql = xasprintf(
		"SELECT CASE WHEN v ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$' "
		"THEN extract(epoch FROM pg_catalog.now() - v::timestamptz) END "
		"FROM (SELECT value -> $2 ->> $3 AS v FROM %s.sync_state WHERE key = $1) s",
		db_schema(db));
	PGresult *res = db_query(db, sql, 3, params, err);

	free(sql);
	*age = -1;
	if (!res)
		return -1;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		*age = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	return 0;
}
