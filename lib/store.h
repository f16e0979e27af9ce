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

/* Quoted SQL names (borrowed): "public"."clients", "id", ... */
const char *store_table(const struct store *store);
const char *store_key(const struct store *store);

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
 * Field names come from parameter $keys_param (store_field_keys()) and
 * managed groups from $groups_param (store_managed_groups()), both jsonb.
 * New string. */
char *store_snapshot_sql(const struct store *store, const char *alias, const char *email_expr,
			 int keys_param, int groups_param);

/* The jsonb parameters the snapshot expression reads (new references):
 * the B field names in mapping order, and the managed group names. */
json_t *store_field_keys(const struct cw_config *cfg);
json_t *store_managed_groups(const struct cw_config *cfg);

#endif
