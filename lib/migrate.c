/* Installing and upgrading crosswalk's schema, and checking its version. */
#include "migrate.h"
#include "exitcode.h"
#include "log.h"
#include "xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int migrate_latest_version(void)
{
	int latest = 0;

	for (size_t i = 0; i < cw_nmigrations; i++)
		if (cw_migrations[i].version > latest)
			latest = cw_migrations[i].version;
	return latest;
}

int migrate_current_version(struct db *db, int *version, struct cw_error *err)
{
	const char *schema_param[] = { NULL };
	char *sql;
	PGresult *res;

	/* The unquoted name: to_regclass wants the identifier as SQL text. */
	schema_param[0] = db_schema(db);
	res = db_query(db, "SELECT pg_catalog.to_regclass($1 || '.schema_version') IS NOT NULL", 1,
		       schema_param, err);
	if (!res)
		return -1;
	bool installed = !strcmp(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	if (!installed) {
		*version = 0;
		return 0;
	}
	sql = xasprintf("SELECT coalesce(max(version), 0) FROM %s.schema_version", db_schema(db));
	res = db_query(db, sql, 0, NULL, err);
	free(sql);
	if (!res)
		return -1;
	*version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

static int apply_one(struct db *db, const struct migration *m, struct cw_error *err)
{
	char version[16];
	const char *params[2] = { version, m->name };
	char *set_path, *record;
	int rc = -1;

	snprintf(version, sizeof(version), "%d", m->version);
	set_path = xasprintf("SET LOCAL search_path = %s, pg_catalog", db_schema(db));
	record = xasprintf("INSERT INTO %s.schema_version (version, name) VALUES ($1, $2)",
			   db_schema(db));
	if (db_begin(db, err) < 0)
		goto out;
	if (db_exec(db, set_path, 0, NULL, err) < 0)
		goto fail;
	/* The file is several statements: the simple-query protocol runs them
	 * all; it carries no values, only the schema's fixed text. */
	PGresult *res = PQexec(db_conn(db), m->sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		cw_error_set(err, CW_EXIT_CONFIG, "migration %s failed: %s", m->name,
			     PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (db_exec(db, record, 2, params, err) < 0)
		goto fail;
	if (db_commit(db, err) < 0)
		goto out;
	log_info("applied migration %s", m->name);
	rc = 0;
	goto out;
fail:
	db_rollback(db);
out:
	free(set_path);
	free(record);
	return rc;
}

int migrate_apply(struct db *db, bool dry_run, int *from, int *applied, struct cw_error *err)
{
	char *create = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", db_schema(db));
	int rc = -1, current = 0;

	*applied = 0;
	/* A blocking lock: a second installer waits, then finds nothing to do. */
	if (db_exec(db, "SELECT pg_catalog.pg_advisory_lock(1129728817, 0)", 0, NULL, err) < 0)
		goto out;
	if (migrate_current_version(db, &current, err) < 0)
		goto unlock;
	*from = current;
	if (current > migrate_latest_version()) {
		cw_error_set(err, CW_EXIT_CONFIG,
			     "the database schema is at version %d, newer than this build knows (%d)",
			     current, migrate_latest_version());
		cw_error_hint(err, "Upgrade crosswalk on this machine.");
		goto unlock;
	}
	if (!dry_run && current == 0 && db_exec(db, create, 0, NULL, err) < 0)
		goto unlock;
	for (size_t i = 0; i < cw_nmigrations; i++) {
		const struct migration *m = &cw_migrations[i];
		if (m->version <= current)
			continue;
		if (!dry_run && apply_one(db, m, err) < 0)
			goto unlock;
		(*applied)++;
	}
	rc = 0;
unlock:
	db_exec(db, "SELECT pg_catalog.pg_advisory_unlock(1129728817, 0)", 0, NULL, NULL);
out:
	free(create);
	return rc;
}

int migrate_check(struct db *db, struct cw_error *err)
{
	int current, latest = migrate_latest_version();

	if (migrate_current_version(db, &current, err) < 0)
		return -1;
	if (current == latest)
		return 0;
	if (current > latest) {
		cw_error_set(err, CW_EXIT_CONFIG,
			     "the database schema is at version %d, newer than this program knows "
			     "(%d)",
			     current, latest);
		cw_error_hint(err, "Upgrade crosswalk on this machine.");
		return -1;
	}
	if (current == 0)
		cw_error_set(err, CW_EXIT_CONFIG, "crosswalk's schema %s is not installed",
			     db_schema(db));
	else
		cw_error_set(err, CW_EXIT_CONFIG,
			     "the database schema is at version %d, this program needs %d", current,
			     latest);
	cw_error_hint(err, "Run \"crosswalk-migrate\" with the same --config/--db/--schema "
			   "settings.");
	return -1;
}
