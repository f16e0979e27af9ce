/* Reading the user's A table: existence checks, the email lookup, snapshot SQL. */
#include "store.h"
#include "exitcode.h"
#include "record.h"
#include "strbuf.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct store {
	const struct cw_config *cfg;
	char *table;		/* "schema"."table" */
	char *table_display;	/* schema.table, for messages */
	char *key, *email, *updated_at, *status, *groups; /* quoted; status/groups may be NULL */
	char *key_type, *email_type, *status_type, *groups_type; /* format_type() of each */
	char **fields;		/* quoted A columns, in cfg->fields order */
	char **field_types;
	size_t nfields;
	char *update_sql, *insert_sql; /* built on first use */
	char *keys_param, *groups_param; /* JSON text for the snapshot SQL */
};

static json_t *field_keys(const struct cw_config *cfg);
static json_t *managed_groups(const struct cw_config *cfg);

static char *json_text(json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT);
	json_decref(value);
	return text;
}

/* The quoted name of a configured column (new string), and its SQL type
 * as format_type() spells it in *type (new string), for casts on writes. */
static char *check_column(PGresult *cols, struct db *db, const char *column, const char *setting,
			  const char *table, bool want_array, char **type, struct cw_error *err)
{
	for (int i = 0; i < PQntuples(cols); i++) {
		if (strcmp(PQgetvalue(cols, i, 0), column))
			continue;
		if (want_array && strcmp(PQgetvalue(cols, i, 2), "t")) {
			cw_error_set(err, CW_EXIT_CONFIG,
				     "column \"%s\" of table %s (setting %s) is of type %s, not an "
				     "array of group names",
				     column, table, setting, PQgetvalue(cols, i, 1));
			return NULL;
		}
		*type = xstrdup(PQgetvalue(cols, i, 1));
		return db_quote_ident(db, column);
	}
	cw_error_set(err, CW_EXIT_CONFIG, "column \"%s\" named by %s does not exist in table %s",
		     column, setting, table);
	cw_error_hint(err, "Correct %s in the config file; crosswalk never alters your table.",
		      setting);
	return NULL;
}

struct store *store_open(struct db *db, const struct cw_config *cfg, struct cw_error *err)
{
	char *schema, *table;
	struct store *store = xcalloc(1, sizeof(*store));

	store->cfg = cfg;
	store->keys_param = json_text(field_keys(cfg));
	store->groups_param = json_text(managed_groups(cfg));
	config_a_table_parts(cfg, &schema, &table);
	store->table_display = xasprintf("%s.%s", schema, table);

	const char *params[] = { schema, table };
	PGresult *res = db_query(db,
				 "SELECT c.oid, pg_catalog.has_table_privilege(c.oid, 'SELECT') "
				 "FROM pg_catalog.pg_class c "
				 "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
				 "WHERE n.nspname = $1 AND c.relname = $2 "
				 "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
				 2, params, err);
	if (!res)
		goto fail;
	if (PQntuples(res) != 1) {
		PQclear(res);
		cw_error_set(err, CW_EXIT_CONFIG, "table %s named by table.name does not exist",
			     store->table_display);
		cw_error_hint(err, "Set table.name in the config file to your contacts table "
				   "(schema.table).");
		goto fail;
	}
	char *oid = xstrdup(PQgetvalue(res, 0, 0));
	bool readable = !strcmp(PQgetvalue(res, 0, 1), "t");
	PQclear(res);
	if (!readable) {
		free(oid);
		cw_error_set(err, CW_EXIT_CONFIG, "permission denied to read table %s",
			     store->table_display);
		goto fail;
	}
	const char *oid_param[] = { oid };
	PGresult *cols = db_query(db,
				  "SELECT attname, pg_catalog.format_type(atttypid, atttypmod), "
				  "attndims > 0 OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t "
				  "  WHERE t.oid = atttypid AND t.typcategory = 'A') "
				  "FROM pg_catalog.pg_attribute "
				  "WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped",
				  1, oid_param, err);
	free(oid);
	if (!cols)
		goto fail;

	char *s = db_quote_ident(db, schema), *t = db_quote_ident(db, table);
	store->table = xasprintf("%s.%s", s, t);
	free(s);
	free(t);

	const char *disp = store->table_display;
	char *updated_type = NULL;
	if (!(store->key = check_column(cols, db, cfg->a_key, "table.key", disp, false,
					&store->key_type, err)) ||
	    !(store->email = check_column(cols, db, cfg->a_email, "table.email", disp, false,
					  &store->email_type, err)) ||
	    !(store->updated_at = check_column(cols, db, cfg->a_updated_at, "table.updated_at",
					       disp, false, &updated_type, err)))
		goto fail_cols;
	free(updated_type);
	if (cfg->a_status && *cfg->a_status &&
	    !(store->status = check_column(cols, db, cfg->a_status, "table.status", disp, false,
					   &store->status_type, err)))
		goto fail_cols;
	if (cfg->a_groups && *cfg->a_groups &&
	    !(store->groups = check_column(cols, db, cfg->a_groups, "table.groups", disp, true,
					   &store->groups_type, err)))
		goto fail_cols;
	store->fields = xcalloc(cfg->nfields ? cfg->nfields : 1, sizeof(char *));
	store->field_types = xcalloc(cfg->nfields ? cfg->nfields : 1, sizeof(char *));
	for (size_t i = 0; i < cfg->nfields; i++) {
		char setting[300];
		snprintf(setting, sizeof(setting), "[fields] %s", cfg->fields[i].a_column);
		store->fields[i] = check_column(cols, db, cfg->fields[i].a_column, setting, disp,
						false, &store->field_types[i], err);
		if (!store->fields[i])
			goto fail_cols;
		store->nfields++;
	}
	PQclear(cols);
	free(schema);
	free(table);
	return store;

fail_cols:
	PQclear(cols);
fail:
	free(schema);
	free(table);
	store_free(store);
	return NULL;
}

void store_free(struct store *store)
{
	if (!store)
		return;
	for (size_t i = 0; i < store->nfields; i++) {
		free(store->fields[i]);
		free(store->field_types[i]);
	}
	free(store->fields);
	free(store->field_types);
	free(store->key_type);
	free(store->email_type);
	free(store->status_type);
	free(store->groups_type);
	free(store->update_sql);
	free(store->insert_sql);
	free(store->keys_param);
	free(store->groups_param);
	free(store->table);
	free(store->table_display);
	free(store->key);
	free(store->email);
	free(store->updated_at);
	free(store->status);
	free(store->groups);
	free(store);
}

const char *store_table(const struct store *store)
{
	return store->table;
}

const char *store_key(const struct store *store)
{
	return store->key;
}

const char *store_updated_at(const struct store *store)
{
	return store->updated_at;
}

int store_build_lookup(struct store *store, struct db *db, long long *rows, struct cw_error *err)
{
	char email_expr[256];
	snprintf(email_expr, sizeof(email_expr), "t.%s", store->email);
	/* CREATE TABLE AS takes no parameters: the shape first, then an INSERT
	 * that reads the mapping's names from $1 and $2. */
	char *create = xasprintf("CREATE TEMP TABLE cw_a_lookup AS "
				 "SELECT t.%s AS a_key, NULL::text AS a_id, NULL::text AS email, "
				 "0::bigint AS n_a, NULL::jsonb AS a_snap FROM %s t WITH NO DATA",
				 store->key, store->table);
	char *snap = store_snapshot_sql(store, "t", "n.email", 1, 2);
	char *fill = xasprintf("INSERT INTO pg_temp.cw_a_lookup (a_key, a_id, email, n_a, a_snap) "
			       "SELECT t.%s, t.%s::text, n.email, "
			       "count(*) OVER (PARTITION BY n.email), %s "
			       "FROM %s t CROSS JOIN LATERAL (SELECT " RECORD_EMAIL_SQL("%s")
			       " AS email) n",
			       store->key, store->key, snap, store->table, email_expr);
	const char *params[] = { store->keys_param, store->groups_param };
	int rc = db_exec(db, "DROP TABLE IF EXISTS pg_temp.cw_a_lookup", 0, NULL, err);

	if (rc == 0)
		rc = db_exec(db, create, 0, NULL, err);
	/* Prepared, so both parameters are declared even when the mapping
	 * leaves one unused (no managed groups). */
	PGresult *filled = rc == 0 ? db_query_prepared(db, "cw_lookup_fill", fill, 2, params, err)
				   : NULL;
	if (filled) {
		*rows = strtoll(PQcmdTuples(filled), NULL, 10);
		PQclear(filled);
	} else {
		rc = -1;
	}
	/* Statistics of the email column only: the snapshots are never searched. */
	if (rc == 0)
		rc = db_exec(db, "CREATE INDEX ON pg_temp.cw_a_lookup (email)", 0, NULL, err);
	if (rc == 0)
		rc = db_exec(db, "ANALYZE pg_temp.cw_a_lookup (email)", 0, NULL, err);
	free(create);
	free(snap);
	free(fill);
	return rc;
}

char *store_snapshot_sql(const struct store *store, const char *alias, const char *email_expr,
			 int keys_param, int groups_param)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "pg_catalog.jsonb_build_object('email', %s, 'fields', ", email_expr);
	/* jsonb_build_object takes at most 100 arguments: 50 fields per call,
	 * concatenated. An empty mapping is an empty object. */
	if (store->nfields == 0)
		strbuf_addstr(&sb, "'{}'::jsonb");
	for (size_t start = 0; start < store->nfields; start += 50) {
		if (start)
			strbuf_addstr(&sb, " || ");
		strbuf_addstr(&sb, "pg_catalog.jsonb_build_object(");
		for (size_t i = start; i < store->nfields && i < start + 50; i++)
			strbuf_addf(&sb, "%s($%d::jsonb ->> %zu), %s.%s::text", i > start ? ", " : "",
				    keys_param, i, alias, store->fields[i]);
		strbuf_addch(&sb, ')');
	}
	if (store->status)
		strbuf_addf(&sb, ", 'status', %s.%s::text", alias, store->status);
	if (store->groups)
		strbuf_addf(&sb,
			    ", 'groups', coalesce((SELECT pg_catalog.jsonb_agg(DISTINCT g::text "
			    "ORDER BY g::text) FROM pg_catalog.unnest(%s.%s) AS g "
			    "WHERE g::text IN (SELECT pg_catalog.jsonb_array_elements_text($%d::jsonb))), "
			    "'[]'::jsonb)",
			    alias, store->groups, groups_param);
	/* The session's TimeZone is UTC (db.c), so ::timestamp gives UTC wall
	 * time for timestamptz and keeps a timestamp as it is: B's format. */
	strbuf_addf(&sb,
		    ", 'updated_at', pg_catalog.to_char(%s.%s::timestamp, 'YYYY-MM-DD HH24:MI:SS'))",
		    alias, store->updated_at);
	return strbuf_detach(&sb, NULL);
}

char *store_by_email_sql(const struct store *store, const char *value)
{
	char *email = store_email_sql(store, "t");
	/* The stored text is usually the normalized email already: the probe
	 * on the column itself can use the table's index on it, and the scan
	 * that normalizes every row runs only when the probe finds nothing. */
	char *sql = xasprintf("(SELECT t.%s::text AS a_id, 1::bigint AS n_a FROM %s t"
			      "  WHERE t.%s = %s AND %s = %s LIMIT 1)"
			      " UNION ALL"
			      " (SELECT t.%s::text, pg_catalog.count(*) OVER () FROM %s t"
			      "  WHERE %s = %s LIMIT 1)"
			      " LIMIT 1",
			      store->key, store->table, store->email, value, email, value, store->key,
			      store->table, email, value);
	free(email);
	return sql;
}

const char *store_key_type(const struct store *store)
{
	return store->key_type;
}

char *store_email_sql(const struct store *store, const char *alias)
{
	char column[300];
	snprintf(column, sizeof(column), "%s.%s", alias, store->email);
	return xasprintf(RECORD_EMAIL_SQL("%s"), column);
}

/* The value a write sets in one column: the member of "set" cast to the
 * column's type when present, else the column as it is (update) or NULL
 * (insert). member is an SQL expression yielding the set's jsonb member. */
static void add_value(struct strbuf *sb, const char *alias, const char *column,
		      const char *type, const char *has, const char *member)
{
	if (alias)
		strbuf_addf(sb, "CASE WHEN %s THEN (%s)::%s ELSE %s.%s END", has, member, type,
			    alias, column);
	else
		strbuf_addf(sb, "(%s)::%s", member, type);
}

/* The column list and values of a write (alias NULL: an insert). $2 holds
 * the field names in mapping order, $3 the managed groups. */
static void write_values(const struct store *store, const char *alias, struct strbuf *columns,
			 struct strbuf *values)
{
	char has[128], member[160];

	strbuf_addstr(columns, store->email);
	add_value(values, alias, store->email, store->email_type, "p.set ? 'email'",
		  "p.set ->> 'email'");
	for (size_t i = 0; i < store->nfields; i++) {
		snprintf(has, sizeof(has), "p.set -> 'fields' ? ($2::jsonb ->> %zu)", i);
		snprintf(member, sizeof(member), "p.set -> 'fields' ->> ($2::jsonb ->> %zu)", i);
		strbuf_addf(columns, ", %s", store->fields[i]);
		strbuf_addstr(values, ", ");
		add_value(values, alias, store->fields[i], store->field_types[i], has, member);
	}
	if (store->status) {
		strbuf_addf(columns, ", %s", store->status);
		strbuf_addstr(values, ", ");
		add_value(values, alias, store->status, store->status_type, "p.set ? 'status'",
			  "p.set ->> 'status'");
	}
	if (store->groups) {
		/* The names crosswalk does not manage stay as they were. */
		char *kept = alias ? xasprintf("SELECT g::text FROM pg_catalog.unnest(%s.%s) AS g "
					       "WHERE g::text NOT IN (SELECT "
					       "pg_catalog.jsonb_array_elements_text($3::jsonb)) "
					       "UNION ALL ",
					       alias, store->groups)
				   : xstrdup("");
		char *merged = xasprintf("ARRAY(%sSELECT pg_catalog.jsonb_array_elements_text("
					 "p.set -> 'groups'))",
					 kept);
		strbuf_addf(columns, ", %s", store->groups);
		strbuf_addstr(values, ", ");
		add_value(values, alias, store->groups, store->groups_type, "p.set ? 'groups'",
			  merged);
		free(kept);
		free(merged);
	}
	strbuf_addf(columns, ", %s", store->updated_at);
	strbuf_addstr(values, ", pg_catalog.now()");
}

static PGresult *run_write(struct store *store, struct db *db, const char *name, const char *sql,
			   const char *batch_json, struct cw_error *err)
{
	const char *params[] = { batch_json, store->keys_param, store->groups_param };
	return db_query_prepared(db, name, sql, 3, params, err);
}

PGresult *store_update_rows(struct store *store, struct db *db, const char *batch_json,
			    struct cw_error *err)
{
	if (!store->update_sql) {
		struct strbuf columns = STRBUF_INIT, values = STRBUF_INIT;
		char *email = store_email_sql(store, "t");
		char *snap = store_snapshot_sql(store, "t", email, 2, 3);

		write_values(store, "t", &columns, &values);
		/* FOR UPDATE first: the comparison with "expect" must see the row
		 * as it is once locked, not as the statement's snapshot had it. */
		store->update_sql = xasprintf(
			"WITH p AS (SELECT * FROM pg_catalog.jsonb_to_recordset($1::jsonb)"
			"  AS p(k text, expect jsonb, set jsonb)),"
			" cur AS (SELECT t.%s AS key FROM %s t JOIN p ON t.%s = p.k::%s"
			"  WHERE (%s) - 'updated_at' = p.expect - 'updated_at' FOR UPDATE OF t)"
			" UPDATE %s AS t SET (%s) = ROW(%s)"
			" FROM p, cur WHERE t.%s = p.k::%s AND cur.key = t.%s"
			" RETURNING p.k, %s",
			store->key, store->table, store->key, store->key_type, snap, store->table,
			columns.buf, values.buf, store->key, store->key_type, store->key, snap);
		strbuf_release(&columns);
		strbuf_release(&values);
		free(email);
		free(snap);
	}
	return run_write(store, db, "cw_store_update", store->update_sql, batch_json, err);
}

PGresult *store_insert_rows(struct store *store, struct db *db, const char *batch_json,
			    struct cw_error *err)
{
	if (!store->insert_sql) {
		struct strbuf columns = STRBUF_INIT, values = STRBUF_INIT;
		char *email = store_email_sql(store, "t");
		char *snap = store_snapshot_sql(store, "t", email, 2, 3);

		write_values(store, NULL, &columns, &values);
		store->insert_sql = xasprintf(
			"INSERT INTO %s AS t (%s)"
			" SELECT %s FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS p(e text, set jsonb)"
			" RETURNING %s, t.%s::text, %s",
			store->table, columns.buf, values.buf, email, store->key, snap);
		strbuf_release(&columns);
		strbuf_release(&values);
		free(email);
		free(snap);
	}
	return run_write(store, db, "cw_store_insert", store->insert_sql, batch_json, err);
}

const char *store_keys_param(const struct store *store)
{
	return store->keys_param;
}

const char *store_groups_param(const struct store *store)
{
	return store->groups_param;
}

static json_t *field_keys(const struct cw_config *cfg)
{
	json_t *keys = json_array();

	for (size_t i = 0; i < cfg->nfields; i++)
		json_array_append_new(keys, json_string(cfg->fields[i].b_field));
	return keys;
}

static json_t *managed_groups(const struct cw_config *cfg)
{
	json_t *groups = json_array();

	for (size_t i = 0; i < cfg->nmanaged_groups; i++)
		json_array_append_new(groups, json_string(cfg->managed_groups[i]));
	return groups;
}
