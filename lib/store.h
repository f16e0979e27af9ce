/*
 * The A side: the user's own contacts table, named in [table] and [fields].
 * crosswalk never creates or alters it; this module checks that what the
 * config names exists, and writes the SQL that reads it, with every
 * identifier quoted by libpq and every value a parameter.
 */
#ifndef CW_STORE_H
#define CW_STORE_H

#include <jansson.h>

#include "config.h"
#include "db.h"
#include "error.h"

struct store;

/* Look up the table and every configured column; CW_EXIT_CONFIG naming the
 * first that is missing (or not readable). The store borrows cfg, which
 * must outlive it; free with store_free(). */
struct store *store_open(struct db *db, const struct cw_config *cfg, struct cw_error *err);
void store_free(struct store *store);

/* Quoted SQL names (borrowed): "public"."clients", "id", "updated_at" */
const char *store_table(const struct store *store);
const char *store_key(const struct store *store);
const char *store_updated_at(const struct store *store);

/* The A key's SQL type as format_type() spells it ("uuid", "bigint"), for
 * casting a key carried as text back to it, so that lookups use the
 * table's primary key index. Borrowed. */
const char *store_key_type(const struct store *store);

/* The SQL expression of a row's normalized email, for the table aliased
 * as alias (RECORD_EMAIL_SQL of its email column). New string. */
char *store_email_sql(const struct store *store, const char *alias);

/* A query finding the A row of a normalized email given as the SQL
 * expression value (a column of an outer query, say), for a LATERAL join:
 * columns a_id (the key as text) and n_a (how many rows hold that email;
 * 1 when a row stores it exactly as given, since only the stored text is
 * probed then: a second row differing in case goes unseen). New string. */
char *store_by_email_sql(const struct store *store, const char *value);

/*
 * Write values pulled from B into existing A rows, as one statement:
 * batch_json is a JSON array of
 *   {"k": the key as text, "expect": the A snapshot the plan was made from,
 *    "set": {"email"?: text, "fields"?: {b_field: text or null},
 *            "status"?: text, "groups"?: [managed group names]}}
 * Only the members present in "set" are written, each cast to its column's
 * type; "groups" replaces the managed names in the array column and keeps
 * every other name. The updated_at column is set to now(). A row is
 * written only while its snapshot (updated_at aside) still equals
 * "expect", so a change made in A since the plan is never overwritten.
 * Returns the rows written as (k text, snapshot jsonb after the write), or
 * NULL with err set; a value its column cannot take fails the statement
 * (db_sqlstate() class 22 or 23), which the caller may retry row by row.
 */
PGresult *store_update_rows(struct store *store, struct db *db, const char *batch_json,
			    struct cw_error *err);

/* Insert new A rows, one statement: batch_json is a JSON array of
 * {"e": normalized email, "set": {as above}}; the key comes from the
 * column's default. Returns (e text, k text, snapshot jsonb) per row. */
PGresult *store_insert_rows(struct store *store, struct db *db, const char *batch_json,
			    struct cw_error *err);

/* Build the session's lookup of A by normalized email, in one pass over
 * the table: pg_temp.cw_a_lookup (a_key <key's type>, a_id text, email
 * text, n_a bigint: the rows sharing that email, a_snap jsonb: the row's
 * snapshot as of now), indexed by email. A temp table dies with the
 * session: call again after a reconnect. *rows is the number of A rows. */
int store_build_lookup(struct store *store, struct db *db, long long *rows,
		       struct cw_error *err);

/* The SQL expression of an A row's snapshot, for the table aliased as
 * alias and its normalized email given by email_expr:
 *   {"email", "fields": {b_field: text-or-null, ...}, "status"?, "groups"?,
 *    "updated_at"}
 * Field names come from parameter $keys_param (store_keys_param()) and
 * managed groups from $groups_param (store_groups_param()), both jsonb.
 * New string. */
char *store_snapshot_sql(const struct store *store, const char *alias, const char *email_expr,
			 int keys_param, int groups_param);

/* The parameters the snapshot expression reads, as JSON text made once
 * when the store opens (borrowed): the B field names in mapping order, and
 * the managed group names. */
const char *store_keys_param(const struct store *store);
const char *store_groups_param(const struct store *store);

#endif
